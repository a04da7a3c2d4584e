"""The interpreter shim, run for real: fixtures compiled with gcc and linked
with `--dynamic-linker=<the built shim>`, NIX_LD a copy of Debian's ld.so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixld.elf import read_build_id
from tests.conftest import REPO, need, need_root, need_tool
from tests.fixtures.shim.harness import (
    ShimHarness,
    build_harness,
    build_id_entry_text,
    compile_c,
    entry_name,
    entry_text,
    fnv1a64,
    make_shim,
    world_readable_dir,
    write_build_id_entry,
    write_entry,
)

LOADER_ERROR = "error while loading shared libraries: libwho.so"


@pytest.fixture(scope="module")
def harness() -> Iterator[ShimHarness]:
    need_tool("gcc")
    need_tool("make")
    with world_readable_dir("nixld-shim-test-") as root:
        yield build_harness(root / "w")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A fresh $XDG_STATE_HOME; entries go in state/nixld/entries."""
    return tmp_path / "state"


@pytest.fixture
def system_entries(harness: ShimHarness) -> Iterator[Path]:
    yield harness.system_entries
    for f in harness.system_entries.iterdir():
        f.unlink()


def user_entries(state: Path) -> Path:
    return state / "nixld" / "entries"


def env_lines(stdout: str) -> list[str]:
    return [line[4:] for line in stdout.splitlines() if line.startswith("env ")]


def probe(stdout: str, key: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(key + " "):
            return line[len(key) + 1:]
    raise AssertionError(f"no {key} in {stdout!r}")


# --- Starting programs ------------------------------------------------------

def test_hello_runs_through_the_shim(harness: ShimHarness) -> None:
    r = harness.run("hello", harness.env())
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    assert harness.shim.stat().st_size <= 64 * 1024


def test_built_shim_is_small_and_needs_no_relocation(harness: ShimHarness) -> None:
    out = subprocess.run(["readelf", "-rlW", str(harness.shim)], capture_output=True,
                         text=True, check=True).stdout
    assert "R_X86_64" not in out
    assert "Requesting program interpreter" not in out
    assert harness.shim.stat().st_size <= 64 * 1024


def test_program_sees_a_normal_start(harness: ShimHarness) -> None:
    env = harness.env(FOO="bar baz")
    r = harness.run("probe", env, ["one", "two words"])
    assert r.returncode == 0, r.stderr
    program = str(harness.program("probe"))
    assert probe(r.stdout, "exe") == program
    assert probe(r.stdout, "execfn") == program
    assert probe(r.stdout, "entry_is_start") == "1"  # AT_ENTRY put back
    assert probe(r.stdout, "base") == str(harness.ld)  # AT_BASE is the real loader
    assert probe(r.stdout, "secure") == "0"
    assert probe(r.stdout, "fds") == "0 1 2"  # the shim's own fds are all closed
    assert [ln[4:] for ln in r.stdout.splitlines() if ln.startswith("arg ")] == [
        program, "one", "two words"]


@pytest.mark.parametrize("extra", [
    {},  # LD_LIBRARY_PATH unset: NIX_LD's slot is borrowed, then put back
    {"LD_LIBRARY_PATH": "/somewhere:/else"},
    {"NIX_LD_LIBRARY_PATH": "/nix-lib"},
    {"NIX_LD_LIBRARY_PATH_x86_64_linux": "/sys-lib", "NIX_LD_LIBRARY_PATH": "/nix-lib"},
    {"LD_LIBRARY_PATH": ""},
])
def test_program_gets_its_environment_back(harness: ShimHarness, extra: dict[str, str]) -> None:
    env = harness.env(**extra)
    r = harness.run("probe", env)
    assert r.returncode == 0, r.stderr
    assert env_lines(r.stdout) == [f"{k}={v}" for k, v in env.items()]


def test_nothing_to_borrow_leaves_an_empty_library_path(harness: ShimHarness) -> None:
    # No LD_LIBRARY_PATH and no NIX_LD*: the shim grows the start block by one
    # slot, which the program then sees as an empty LD_LIBRARY_PATH (ignored
    # by glibc), as nix-ld does. The compiled-in default loader is used.
    r = harness.run("probe", {"A": "1"})
    assert r.returncode == 0, r.stderr
    assert env_lines(r.stdout) == ["A=1", "LD_LIBRARY_PATH="]
    assert probe(r.stdout, "entry_is_start") == "1"
    assert probe(r.stdout, "base") == str(harness.ld)
    r = harness.run("probe", {})
    assert env_lines(r.stdout) == ["LD_LIBRARY_PATH="]


def test_the_shim_leaves_no_fd_open(harness: ShimHarness, state: Path,
                                    system_entries: Path) -> None:
    """Its fds (the executable's, the entries', the loader's) are closed together
    when they are one run, one by one around an fd the program inherited."""
    prog = harness.program("probe")
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    write_entry(system_entries, prog, entry_text(prog, [harness.libs["sys"]], identity=False))
    env = harness.env(XDG_STATE_HOME=str(state))
    assert probe(harness.run(prog, env).stdout, "fds") == "0 1 2"
    for inherited in (3, 4, 5):
        # A shell opens the fd and execs the program with it (never in pytest's
        # own process, whose fds these may be).
        out = subprocess.run(["/bin/sh", "-c", f'exec {inherited}</dev/null; exec "$0"',
                              str(prog)], env=env, capture_output=True, text=True,
                             timeout=60, check=False).stdout
        assert probe(out, "fds") == f"0 1 2 {inherited}", inherited


# --- Where libraries come from ---------------------------------------------

def test_library_found_only_through_a_user_entry(harness: ShimHarness, state: Path) -> None:
    env = harness.env(XDG_STATE_HOME=str(state))
    r = harness.run("use_who", env)
    assert r.returncode == 127 and LOADER_ERROR in r.stderr
    write_entry(user_entries(state), harness.program("use_who"),
                entry_text(harness.program("use_who"), [harness.libs["entry"]]))
    r = harness.run("use_who", env)
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr


def test_user_entry_found_under_home_without_xdg(harness: ShimHarness, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_entry(home / ".local/state/nixld/entries", harness.program("use_who"),
                entry_text(harness.program("use_who"), [harness.libs["entry"]]))
    r = harness.run("use_who", harness.env(HOME=str(home)))
    assert r.stdout == "who entry\n", r.stderr
    # A relative XDG_STATE_HOME does not count (FORMAT.md): HOME is used.
    r = harness.run("use_who", harness.env(HOME=str(home), XDG_STATE_HOME="rel/state"))
    assert r.stdout == "who entry\n", r.stderr


def run_as(harness: ShimHarness, argv0: str, env: dict[str, str], cwd: Path
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([argv0], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def test_entry_applies_however_the_program_is_named(
        harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    """The key is the canonical path: found from AT_EXECFN when that is plain,
    else from /proc/self/exe (symlinks, `..`)."""
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    prog = copy_program(harness, real_dir, "use_who")
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    (tmp_path / "link").symlink_to(prog)
    (tmp_path / "linkdir").symlink_to(real_dir)
    (tmp_path / "sub").mkdir()
    env = harness.env(XDG_STATE_HOME=str(state))
    for argv0, cwd in [(str(prog), tmp_path), ("./use_who", real_dir),
                       ("././use_who", real_dir), ("real/use_who", tmp_path),
                       (str(tmp_path / "link"), tmp_path), ("./link", tmp_path),
                       (str(tmp_path / "linkdir/use_who"), tmp_path),
                       ("../real/use_who", tmp_path / "sub"),
                       (str(tmp_path / "sub/../real/use_who"), tmp_path),
                       (str(tmp_path) + "//real/use_who", tmp_path),
                       (str(prog).lstrip("/"), Path("/"))]:
        r = run_as(harness, argv0, env, cwd)
        assert (r.returncode, r.stdout) == (0, "who entry\n"), (argv0, r.stderr)


def test_an_entry_under_the_name_executed_applies_when_its_identity_matches(
        harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    """AT_EXECFN's own key is tried first (FORMAT.md): an entry recorded for
    that name applies when its identity is the file's (the same file); one
    whose identity is another file's sends the shim to the canonical path."""
    prog = copy_program(harness, tmp_path, "use_who")
    link = tmp_path / "link"
    link.symlink_to(prog)
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    by_name = entry_text(prog, [harness.libs["user"]]).replace(f"path {prog}\n", f"path {link}\n")
    (user_entries(state) / entry_name_of(str(link))).write_text(by_name)
    env = harness.env(XDG_STATE_HOME=str(state))
    assert harness.run(link, env).stdout == "who user\n"
    assert harness.run(prog, env).stdout == "who entry\n"
    (tmp_path / "sub").mkdir()
    other = copy_program(harness, tmp_path / "sub", "hello")
    stale = entry_text(other, [harness.libs["user"]]).replace(f"path {other}\n", f"path {link}\n")
    (user_entries(state) / entry_name_of(str(link))).write_text(stale)
    assert harness.run(link, env).stdout == "who entry\n"


def entry_name_of(path: str) -> str:
    return f"{fnv1a64(path.encode()):016x}.entry"


def test_long_library_path(harness: ShimHarness, state: Path) -> None:
    """Long dirs (far past the shim's static buffer) before the real one; the
    entry file just under its 64 KiB limit."""
    prog = harness.program("use_who")
    dirs = [f"/nonexistent/{i:02d}" + "x" * 4000 for i in range(15)]
    write_entry(user_entries(state), prog, entry_text(prog, [*dirs, harness.libs["entry"]]))
    r = harness.run(prog, harness.env(XDG_STATE_HOME=str(state),
                                  LD_LIBRARY_PATH="/also/" + "y" * 3000))
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr[-500:]


def test_library_found_only_through_nix_ld_library_path(harness: ShimHarness) -> None:
    r = harness.run("use_who", harness.env(NIX_LD_LIBRARY_PATH=str(harness.libs["nix"])))
    assert (r.returncode, r.stdout) == (0, "who nix\n"), r.stderr
    r = harness.run("use_who", harness.env(
        NIX_LD_LIBRARY_PATH=str(harness.libs["nix"]),
        NIX_LD_LIBRARY_PATH_x86_64_linux=str(harness.libs["nixsys"])))
    assert r.stdout == "who nixsys\n", r.stderr


def test_default_library_path_when_nix_ld_library_path_unset(harness: ShimHarness) -> None:
    shutil.copy2(harness.libs["nix"] / "libwho.so", harness.default_library_path / "libwho.so")
    try:
        r = harness.run("use_who", harness.env(NIX_LD_LIBRARY_PATH=""))
        assert r.stdout == "who nix\n", r.stderr
    finally:
        (harness.default_library_path / "libwho.so").unlink()


def test_search_order(harness: ShimHarness, state: Path, system_entries: Path) -> None:
    """E_user : E_sys : $LD_LIBRARY_PATH : NIX_LD_LIBRARY_PATH, RUNPATH after."""
    prog = harness.program("use_who")
    env = harness.env(XDG_STATE_HOME=str(state), LD_LIBRARY_PATH=str(harness.libs["user"]),
                    NIX_LD_LIBRARY_PATH=str(harness.libs["nix"]))
    assert harness.run(prog, env).stdout == "who user\n"
    write_entry(system_entries, prog, entry_text(prog, [harness.libs["sys"]], identity=False))
    assert harness.run(prog, env).stdout == "who sys\n"
    write_entry(user_entries(state), prog,
                entry_text(prog, ["/nonexistent", harness.libs["entry"]]))
    assert harness.run(prog, env).stdout == "who entry\n"
    # A binary's own DT_RUNPATH comes after the list, so the entry wins too.
    runpath = harness.program("use_who_runpath")
    assert harness.run(runpath, harness.env()).stdout == "who runpath\n"
    write_entry(user_entries(state), runpath, entry_text(runpath, [harness.libs["entry"]]))
    assert harness.run(runpath, env).stdout == "who entry\n"


def test_nix_ld_for_the_system_wins(harness: ShimHarness) -> None:
    env = harness.env(NIX_LD="/nonexistent/ld.so", NIX_LD_x86_64_linux=str(harness.ld))
    r = harness.run("hello", env)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_dlopen_finds_entry_libraries_after_the_environment_is_restored(
        harness: ShimHarness, state: Path) -> None:
    prog = harness.program("dlopen_who")
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    r = harness.run(prog, harness.env(XDG_STATE_HOME=str(state)))
    assert r.stdout == "ld_library_path (unset)\nwho entry\n", r.stderr


@pytest.mark.parametrize("ld_library_path", [None, "/mine"])
def test_child_does_not_inherit_the_injected_path(
        harness: ShimHarness, state: Path, ld_library_path: str | None) -> None:
    prog = harness.program("child")
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    env = harness.env(XDG_STATE_HOME=str(state), NIX_LD_LIBRARY_PATH=str(harness.libs["nix"]))
    if ld_library_path:
        env["LD_LIBRARY_PATH"] = ld_library_path
    r = harness.run(prog, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"parent {ld_library_path or '(unset)'}"
    child_env = dict(line.split("=", 1) for line in lines[1:])
    for added_by_sh in ("PWD", "SHLVL", "_"):
        child_env.pop(added_by_sh, None)
    assert child_env == env


# --- Entries that must not apply ----------------------------------------------

def copy_program(harness: ShimHarness, tmp_path: Path, name: str) -> Path:
    prog = tmp_path / name
    shutil.copy2(harness.program(name), prog)
    return prog


def test_stale_entry_is_ignored(harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    prog = copy_program(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    assert harness.run(prog, env).stdout == "who entry\n"
    st = prog.stat()
    os.utime(prog, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # rebuilt: new mtime
    r = harness.run(prog, env)
    assert r.returncode == 127 and LOADER_ERROR in r.stderr
    # Replaced by a same-sized copy: a new inode.
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    assert harness.run(prog, env).stdout == "who entry\n"
    shutil.copy2(prog, tmp_path / "new")
    os.replace(tmp_path / "new", prog)
    assert LOADER_ERROR in harness.run(prog, env).stderr


def test_user_entry_needs_identity_system_entry_does_not(
        harness: ShimHarness, state: Path, system_entries: Path, tmp_path: Path) -> None:
    prog = copy_program(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    write_entry(user_entries(state), prog,
                entry_text(prog, [harness.libs["entry"]], identity=False))
    assert LOADER_ERROR in harness.run(prog, env).stderr
    write_entry(system_entries, prog, entry_text(prog, [harness.libs["sys"]], identity=False))
    assert harness.run(prog, env).stdout == "who sys\n"


def test_entry_for_another_path_is_ignored(harness: ShimHarness, state: Path,
                                           tmp_path: Path) -> None:
    # A hash collision: the file name matches but the `path` line does not.
    prog = copy_program(harness, tmp_path, "use_who")
    text = entry_text(prog, [harness.libs["entry"]]).replace(
        f"path {prog}\n", f"path {prog}x\n")
    write_entry(user_entries(state), prog, text)
    assert LOADER_ERROR in harness.run(prog, harness.env(XDG_STATE_HOME=str(state))).stderr


def corruptions(good: str) -> dict[str, bytes]:
    b = good.encode()
    return {
        "truncated": b[: len(b) // 2],
        "no end": b.replace(b"end\n", b""),
        "after end": b + b"dir /x\n",
        "crlf": b.replace(b"\n", b"\r\n"),
        "blank line": b.replace(b"\ndir", b"\n\ndir", 1),
        "bad header": b.replace(b"nixld-entry 1", b"nixld-entry 2"),
        "duplicate path": b.replace(b"\ndev", b"\npath /x\ndev", 1),
        "duplicate dev": b.replace(b"\ndev", b"\ndev 1\ndev", 1),
        "partial identity": b"\n".join(ln for ln in b.split(b"\n")
                                       if not ln.startswith(b"ino ")),
        "relative dir": b.replace(b"dir /", b"dir ", 1),
        "colon in dir": b.replace(b"\nend", b"\ndir /a:/b\nend"),
        "too many dirs": b.replace(b"\nend", b"".join(b"\ndir /d%d" % i for i in range(65))
                                   + b"\nend"),
        "too big": b.replace(b"\nend", b"\nsha256 " + b"0" * 65536 + b"\nend"),
        "nul byte": b.replace(b"dir /", b"dir /\0", 1),
        "two spaces": b.replace(b"dir ", b"dir  ", 1),
        "bad number": b.replace(b"\nino ", b"\nino +", 1),
        "empty": b"",
    }


def test_corrupt_entries_are_ignored_whole(harness: ShimHarness, state: Path,
                                           tmp_path: Path) -> None:
    prog = copy_program(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    good = entry_text(prog, [harness.libs["entry"]], extra=["sha256 00", "package /nix/store/x"])
    write_entry(user_entries(state), prog, good)
    assert harness.run(prog, env).stdout == "who entry\n"
    for name, data in corruptions(good).items():
        write_entry(user_entries(state), prog, data)
        r = harness.run(prog, env)
        assert (r.returncode, r.stdout) == (127, ""), name
        assert LOADER_ERROR in r.stderr and "nixld-shim" not in r.stderr, name


# --- Build-id entries ---------------------------------------------------------

def moved_copy(harness: ShimHarness, tmp_path: Path, name: str, where: str = "new/dir") -> Path:
    """A copy at a new path, as a launcher's update puts it: no path entry."""
    (tmp_path / where).mkdir(parents=True, exist_ok=True)
    return copy_program(harness, tmp_path / where, name)


def test_copy_at_a_new_path_starts_through_its_build_id_entry(
        harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    resolved = copy_program(harness, tmp_path, "use_who")
    write_build_id_entry(user_entries(state), resolved,
                         build_id_entry_text(resolved, [harness.libs["entry"]]))
    copy = moved_copy(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    r = harness.run(copy, env)
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr
    # The same build-id rebuilt to another size: the entry does not apply.
    with copy.open("ab") as f:
        f.write(b"\0")
    assert read_build_id(copy) == read_build_id(resolved)
    r = harness.run(copy, env)
    assert r.returncode == 127 and LOADER_ERROR in r.stderr


def test_build_id_precedence(harness: ShimHarness, state: Path, system_entries: Path,
                             tmp_path: Path) -> None:
    """Per directory: the path entry, else the build-id entry; user before system."""
    copy = moved_copy(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    write_build_id_entry(system_entries, copy, build_id_entry_text(copy, [harness.libs["sys"]]))
    assert harness.run(copy, env).stdout == "who sys\n"
    write_entry(system_entries, copy, entry_text(copy, [harness.libs["nixsys"]], identity=False))
    assert harness.run(copy, env).stdout == "who nixsys\n"  # the system's path entry first
    write_build_id_entry(user_entries(state), copy,
                         build_id_entry_text(copy, [harness.libs["entry"]]))
    assert harness.run(copy, env).stdout == "who entry\n"  # E_user before E_sys
    write_entry(user_entries(state), copy, entry_text(copy, [harness.libs["user"]]))
    assert harness.run(copy, env).stdout == "who user\n"  # the user's path entry, not both
    # A stale user path entry: the user's build-id entry applies again.
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert harness.run(copy, env).stdout == "who entry\n"


def test_entry_kinds_do_not_mix(harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    copy = moved_copy(harness, tmp_path, "use_who")
    env = harness.env(XDG_STATE_HOME=str(state))
    build_id = read_build_id(copy)
    # A build-id entry under the path's file name, and a path entry under the
    # build-id's file name: both ignored.
    write_entry(user_entries(state), copy,
                build_id_entry_text(copy, [harness.libs["entry"]], path=copy))
    (user_entries(state) / f"{build_id}.build-id").write_text(
        entry_text(copy, [harness.libs["entry"]]))
    assert LOADER_ERROR in harness.run(copy, env).stderr
    # Another build-id in the entry than in its file name: ignored.
    text = build_id_entry_text(copy, [harness.libs["entry"]])
    assert build_id
    other = ("1" if build_id[0] == "0" else "0") + build_id[1:]
    (user_entries(state) / f"{build_id}.build-id").write_text(
        text.replace(f"build_id {build_id}", f"build_id {other}"))
    assert LOADER_ERROR in harness.run(copy, env).stderr
    (user_entries(state) / f"{build_id}.build-id").write_text(text)
    assert harness.run(copy, env).stdout == "who entry\n"


def test_build_id_in_a_note_aligned_to_8(harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    prog = harness.program("use_who_note8")
    assert read_build_id(prog) == "8a112233445566778899aabbccddeeff00010203"
    write_build_id_entry(user_entries(state), prog,
                         build_id_entry_text(prog, [harness.libs["entry"]]))
    copy = moved_copy(harness, tmp_path, "use_who_note8")
    r = harness.run(copy, harness.env(XDG_STATE_HOME=str(state)))
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr


def test_no_build_id_means_path_entries_only(harness: ShimHarness, state: Path,
                                             tmp_path: Path) -> None:
    prog = copy_program(harness, tmp_path, "use_who_no_build_id")
    assert read_build_id(prog) is None
    env = harness.env(XDG_STATE_HOME=str(state))
    assert LOADER_ERROR in harness.run(prog, env).stderr
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    assert harness.run(prog, env).stdout == "who entry\n"


def test_build_id_child_does_not_inherit_the_injected_path(
        harness: ShimHarness, state: Path, tmp_path: Path) -> None:
    copy = moved_copy(harness, tmp_path, "child")
    write_build_id_entry(user_entries(state), copy,
                         build_id_entry_text(copy, [harness.libs["entry"]]))
    env = harness.env(XDG_STATE_HOME=str(state))
    r = harness.run(copy, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "parent (unset)"
    child_env = dict(line.split("=", 1) for line in lines[1:])
    for added_by_sh in ("PWD", "SHLVL", "_"):
        child_env.pop(added_by_sh, None)
    assert child_env == env


# --- Failures and other ways to start --------------------------------------

@pytest.mark.parametrize("loader", ["/nonexistent/ld.so", "/etc/passwd", "/etc", "aarch64",
                                    "loop"])
def test_bad_loader_is_one_line_and_127(harness: ShimHarness, loader: str, tmp_path: Path) -> None:
    if loader == "aarch64":
        loader = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1"
        need(Path(loader).exists(), "needs libc6-arm64-cross")
    if loader == "loop":  # ELOOP: an errno without words of its own
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        loader = str(tmp_path / "a")
    r = harness.run("hello", harness.env(NIX_LD=loader))
    assert r.returncode == 127
    assert r.stdout == ""
    assert r.stderr.startswith("nixld-shim: ") and r.stderr.count("\n") == 1
    assert loader in r.stderr
    if loader.endswith("/a"):
        assert r.stderr.endswith(": error 40\n")


def test_default_loader_missing(tmp_path: Path) -> None:
    need_tool("gcc")
    shim = make_shim(tmp_path / "nixld-shim", default_ld=tmp_path / "no-ld.so")
    hello = compile_c(tmp_path / "hello", ["hello.c"], flags=[f"-Wl,--dynamic-linker={shim}"])
    r = subprocess.run([str(hello)], env={"NIX_LD": ""}, capture_output=True, text=True,
                       check=False)
    assert (r.returncode, r.stdout) == (127, "")
    assert r.stderr == f"nixld-shim: cannot open loader {tmp_path}/no-ld.so: " \
                       "No such file or directory\n"


def test_run_directly(harness: ShimHarness) -> None:
    r = subprocess.run([str(harness.shim)], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and r.stderr.startswith("usage: nixld-shim PROGRAM")
    # With a program: as running the real loader on it.
    plain = harness.root / "plain-hello"
    if not plain.exists():
        compile_c(plain, ["hello.c"])  # Debian's own loader as interpreter
    r = subprocess.run([str(harness.shim), str(plain)], env=harness.env(), capture_output=True,
                       text=True, check=False)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_setuid_program_ignores_entries_and_environment(harness: ShimHarness) -> None:
    need_root()
    need_tool("setpriv")
    d = harness.root / "setuid"
    d.mkdir(exist_ok=True)
    prog = d / "who"
    shutil.copy2(harness.program("use_who_runpath"), prog)
    os.chown(prog, 0, 0)
    state = d / "state"
    write_entry(user_entries(state), prog, entry_text(prog, [harness.libs["entry"]]))
    write_build_id_entry(user_entries(state), prog,
                         build_id_entry_text(prog, [harness.libs["user"]]))
    for p in (state, user_entries(state).parent, user_entries(state)):
        os.chmod(p, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*nobody, str(prog)], env=env, capture_output=True, text=True,
                              check=False, timeout=60)

    os.chmod(prog, 0o755)
    env = harness.env(XDG_STATE_HOME=str(state))
    assert run(env).stdout == "who entry\n"  # the same file, not setuid
    os.chmod(prog, 0o4755)  # chmod keeps dev/ino/size/mtime: the entry still matches
    r = run({**env, "NIX_LD": "/nonexistent/ld.so",
             "LD_LIBRARY_PATH": str(harness.libs["user"])})
    assert (r.returncode, r.stdout) == (0, "who runpath\n"), r.stderr
    (user_entries(state) / entry_name(prog)).unlink()  # the build-id entry alone: ignored too
    r = run({**env, "NIX_LD": "/nonexistent/ld.so"})
    assert (r.returncode, r.stdout) == (0, "who runpath\n"), r.stderr
    os.chmod(prog, 0o755)
    assert run(env).stdout == "who user\n"  # ... which applies when not setuid
    os.chmod(prog, 0o4755)
    if os.path.exists("/proc/self/status"):
        probe_prog = d / "probe"
        shutil.copy2(harness.program("probe"), probe_prog)
        os.chmod(probe_prog, 0o4755)
        r = subprocess.run([*nobody, str(probe_prog)], env={"NIX_LD": "/nonexistent"},
                           capture_output=True, text=True, check=False)
        assert probe(r.stdout, "secure") == "1", r.stderr
        assert probe(r.stdout, "base") == str(harness.ld)  # the compiled-in default
        assert env_lines(r.stdout) == ["NIX_LD=/nonexistent"]  # handed over unchanged


def test_entry_names_follow_format() -> None:
    """The helper that names the tests' entries agrees with FORMAT.md."""
    assert entry_name(Path("/usr/bin/true")) == "a7d497c60831a2bb.entry"
    assert f"{fnv1a64(b''):016x}" == "cbf29ce484222325"


def test_benchmark_runs() -> None:
    """A smoke run of bench/shim_bench.py, so the benchmark does not rot."""
    need_tool("gcc")
    r = subprocess.run([sys.executable, str(REPO / "bench/shim_bench.py"), "--rounds", "5",
                        "--no-check"], capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    for variant in ("direct, no LD_LIBRARY_PATH", "nix-ld", "shim, no entry", "shim, path entry",
                    "shim, build-id entry (a copy)"):
        assert re.search(rf"^  {re.escape(variant)} +\d+\.\dus +[+-]\d+\.\dus", r.stdout,
                         re.M), r.stdout
    for pair in ("without entry", "others' entries", "with entry", "build-id entry"):
        assert re.search(rf"shim vs nix-ld {pair}: +[+-]\d+\.\d us", r.stdout), r.stdout
