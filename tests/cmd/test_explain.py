"""`nixld-hook explain` end to end, on real binaries, through a NixOS-like loader.

The loader is a copy of this machine's ld.so alone in a directory with
libc.so.6 (as glibc's lib/ is on NixOS), so every other library of a system
binary is missing until a per-binary dir or NIX_LD_LIBRARY_PATH provides it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nixld.database import FileEntry, Origin, StorePath, write_database
from tests.conftest import REPO, run_cli
from tests.fixtures import schema_check
from tests.fixtures.build import Fixtures

SCHEMA = json.loads((REPO / "nixld/schema/explain.schema.json").read_text())
HOST_LIB = Path("/lib/x86_64-linux-gnu")


def store(attr: str, n: int, files: dict[str, int], *, toplevel: bool = True,
          output: str = "out") -> tuple[StorePath, list[FileEntry]]:
    sp = StorePath("/nix/store", f"{n:032d}"[:32].replace("0", "a"), f"{attr}-1.0",
                   Origin(attr, output, toplevel, "x86_64-linux"))
    entries = [FileEntry(b"", "d"), FileEntry(b"/lib", "d")]
    entries += [FileEntry(f"/lib/{name}".encode(), "r", size) for name, size in files.items()]
    return sp, entries


@pytest.fixture
def nixos_env(tmp_path: Path, xdg: Path) -> dict[str, str]:
    glibc = tmp_path / "glibc" / "lib"
    glibc.mkdir(parents=True)
    shutil.copy2(HOST_LIB / "ld-linux-x86-64.so.2", glibc / "ld-linux-x86-64.so.2")
    shutil.copy2(HOST_LIB / "libc.so.6", glibc / "libc.so.6")
    db = tmp_path / "db"
    db.mkdir()
    write_database(db / "files", [
        store("steam-run", 1, {"libselinux.so.1": 1, "libpcre2-8.so.0": 1, "libz.so.1": 1}),
        store("libselinux", 2, {"libselinux.so.1": 200_000}, output="out"),
        store("pcre2", 3, {"libpcre2-8.so.0": 600_000}),
        store("selinux-internal", 4, {"libselinux.so.1": 1}, toplevel=False),
    ])
    env = dict(os.environ)
    env.update(NIX_LD=str(glibc / "ld-linux-x86-64.so.2"), NIX_INDEX_DATABASE=str(db))
    for var in ("NIX_LD_LIBRARY_PATH", "LD_LIBRARY_PATH", "NIX_LD_x86_64_linux",
                "NIX_LD_LIBRARY_PATH_x86_64_linux", "NO_COLOR"):
        env.pop(var, None)
    return env


def test_explain_system_binary_json_matches_schema(nixos_env: dict[str, str]) -> None:
    result = run_cli("explain", "--json", "/bin/ls", env=nixos_env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    assert doc["kind"] == "dynamic"
    assert doc["interpreter"] == {"path": "/lib64/ld-linux-x86-64.so.2", "exists": True}
    assert doc["loader"]["exists"] is True and doc["loader"]["source"] == "NIX_LD"
    by_name = {n["soname"]: n for n in doc["needed"]}
    assert by_name["libc.so.6"]["via"] == "loader-dir"
    assert by_name["libselinux.so.1"]["path"] is None
    missing = {m["soname"]: m for m in doc["missing"]}
    assert set(missing) == {"libselinux.so.1"}
    sel = missing["libselinux.so.1"]
    assert sel["needed_by"] == ["/bin/ls"]
    assert sel["chosen"]["attr"] == "libselinux"
    assert [c["attr"] for c in sel["candidates"]][:2] == ["libselinux", "steam-run"]
    assert "selinux-internal" in [c["attr"] for c in sel["candidates"]]
    assert doc["plan"][0]["attr"] == "libselinux"
    assert doc["complete"] is False


def test_explain_resolved_through_nix_ld_library_path(nixos_env: dict[str, str]) -> None:
    env = dict(nixos_env, NIX_LD_LIBRARY_PATH=str(HOST_LIB))
    doc = json.loads(run_cli("explain", "--json", "/bin/ls", env=env).stdout)
    assert doc["missing"] == [] and doc["complete"] is True
    by_name = {n["soname"]: n for n in doc["needed"]}
    assert by_name["libselinux.so.1"]["via"] == "NIX_LD_LIBRARY_PATH"
    assert by_name["libpcre2-8.so.0"]["needed_by"] == [
        os.path.realpath(HOST_LIB / "libselinux.so.1")]
    text = run_cli("explain", "/bin/ls", env=env).stdout
    assert "every library resolves" in text


def test_explain_text_tree_and_candidates(nixos_env: dict[str, str]) -> None:
    result = run_cli("explain", "/bin/ls", env=nixos_env)
    assert result.returncode == 0
    out = result.stdout
    assert "\x1b[" not in out, "no colour when stdout is not a terminal"
    assert "libselinux.so.1 => MISSING" in out
    assert "missing (1):" in out
    assert "plan: install 1 package" in out
    lines = [line for line in out.splitlines() if "libselinux-1.0" in line]
    assert lines and lines[0].lstrip().startswith("*"), "the chosen candidate is marked"
    assert "owns it: named after it" in lines[0]
    [steam] = [line for line in out.splitlines() if "steam-run-1.0" in line]
    assert steam.rstrip().endswith("bundle: 2 of its 3 library files belong to other "
                                   "packages; output out; lost: libselinux owns it")


def test_explain_json_says_who_owns_and_why_each_runner_up_lost(
        nixos_env: dict[str, str]) -> None:
    doc = json.loads(run_cli("explain", "--json", "/bin/ls", env=nixos_env).stdout)
    [sel] = doc["missing"]
    assert sel["chosen"]["owner"] is True and sel["chosen"]["lost"] is None
    lost = {(c["attr"], c["role"]): c["lost"] for c in sel["candidates"][1:]}
    assert lost == {("steam-run", "bundle"): "libselinux owns it",
                    ("selinux-internal", "non-toplevel"): "libselinux owns it"}


def test_explain_without_database_names_how_to_get_one(nixos_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    env = dict(nixos_env, NIX_INDEX_DATABASE=str(tmp_path / "nowhere"))
    result = run_cli("explain", "/bin/ls", env=env)
    assert result.returncode == 4
    assert "libselinux.so.1 => MISSING" in result.stdout
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "no nix-index database" in err[0] and "nix-index" in err[0]


def test_missing_database_is_only_a_warning_when_nothing_is_missing(
        nixos_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(nixos_env, NIX_INDEX_DATABASE=str(tmp_path / "nowhere"),
               NIX_LD_LIBRARY_PATH=str(HOST_LIB))
    result = run_cli("explain", "--json", "/bin/ls", env=env)
    assert result.returncode == 0
    assert any("no nix-index database" in w for w in json.loads(result.stdout)["warnings"])


def test_script_with_missing_interpreter(tmp_path: Path, nixos_env: dict[str, str]) -> None:
    script = tmp_path / "tool.sh"
    script.write_text("#!/usr/bin/no-such-shell -e\necho hi\n")
    result = run_cli("explain", "--json", str(script), env=nixos_env)
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    assert doc["kind"] == "script"
    assert doc["script"] == {"interpreter": "/usr/bin/no-such-shell", "argument": "-e",
                             "exists": False}
    text = run_cli("explain", str(script), env=nixos_env).stdout
    assert "does not exist" in text


@pytest.mark.parametrize("name", ["missing", "dir", "text", "empty"])
def test_bad_input_is_one_line(tmp_path: Path, name: str, nixos_env: dict[str, str]) -> None:
    target = tmp_path / name
    if name == "dir":
        target.mkdir()
    elif name == "text":
        target.write_text("hello\n")
    elif name == "empty":
        target.write_bytes(b"")
    result = run_cli("explain", str(target), env=nixos_env)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nixld-hook: error: ")
    assert "Traceback" not in result.stderr
    assert str(target) in lines[0]


def test_hostile_file_name_is_escaped(tmp_path: Path, nixos_env: dict[str, str]) -> None:
    evil = tmp_path / "evil\x1b]0;pwned\x07name"
    shutil.copy2("/bin/ls", evil)
    result = run_cli("explain", str(evil), env=nixos_env)
    assert result.returncode == 0
    assert "\x1b]" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b]0;pwned\\x07name" in result.stdout


def test_dry_run_plan(nixos_env: dict[str, str]) -> None:
    result = run_cli("resolve", "--dry-run", "--json", "/bin/ls", env=nixos_env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    assert [p["attr"] for p in doc["plan"]] == ["libselinux"]
    text = run_cli("resolve", "--dry-run", "/bin/ls", env=nixos_env).stdout
    assert "would install 1 package" in text and "libselinux" in text


def test_dry_run_directory_is_one_plan(tmp_path: Path, nixos_env: dict[str, str]) -> None:
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    shutil.copy2("/bin/ls", app / "bin" / "ls")
    shutil.copy2(HOST_LIB / "libselinux.so.1", app / "bin" / "plugin.so")
    (app / "README").write_text("not an ELF")
    result = run_cli("resolve", "--dry-run", "--json", str(app), env=nixos_env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    missing = {m["soname"]: m for m in doc["missing"]}
    # ls is the one executable; plugin.so is a library of its tree: what it
    # lacks is listed (offered), not taken into the plan.
    assert set(missing) == {"libselinux.so.1"}
    assert sorted(p["attr"] for p in doc["plan"]) == ["libselinux"]
    plugin = next(r for r in doc["runtime"] if r["path"] == str(app / "bin" / "plugin.so"))
    assert (plugin["source"], plugin["priority"]) == ("library", "recommended")
    assert [m["soname"] for m in plugin["missing"]] == ["libpcre2-8.so.0"]


def q_world(tmp_path: Path, nixos_env: dict[str, str]) -> tuple[Path, dict[str, str],
                                                                dict[str, str]]:
    """`uses-q` needs q_new from libq.so.1; the database has an old copy named
    after the library (libq, lacking q_new) and a new one (qq-tools), both in
    the local store. Returns (binary, env, {"old"|"new": store path})."""
    import subprocess

    from tests.conftest import need_tool

    gcc = need_tool("gcc")
    need_tool("nix-store")
    src = tmp_path / "q.c"
    src.write_text("int q_old(void) { return 1; }\n#ifdef NEW\nint q_new(void) { return 2; }\n"
                   "#endif\n")
    for name, flags in (("old", []), ("new", ["-DNEW"])):
        lib = tmp_path / f"libq-{name}" / "lib"
        lib.mkdir(parents=True)
        subprocess.run([gcc, "-shared", "-fPIC", *flags, "-Wl,-soname,libq.so.1", "-o",
                        str(lib / "libq.so.1"), str(src)], check=True)
    main = tmp_path / "main.c"
    main.write_text("int q_new(void);\nint main(void) { return q_new(); }\n")
    binary = tmp_path / "uses-q"
    subprocess.run([gcc, "-o", str(binary), str(main), f"-L{tmp_path / 'libq-new' / 'lib'}",
                    "-l:libq.so.1"], check=True)
    added = {}
    for name in ("old", "new"):
        added[name] = subprocess.run(["nix-store", "--add", str(tmp_path / f"libq-{name}")],
                                     capture_output=True, text=True, check=True).stdout.strip()

    def item(name: str, attr: str) -> tuple[StorePath, list[FileEntry]]:
        digest, store_name = added[name].removeprefix("/nix/store/").split("-", 1)
        return (StorePath("/nix/store", digest, store_name, Origin(attr, "out", True, None)),
                [FileEntry(b"", "d"), FileEntry(b"/lib", "d"),
                 FileEntry(b"/lib/libq.so.1", "r", 8000)])

    db = tmp_path / "qdb"
    db.mkdir()
    # The old copy is named after the library: without the check it would win.
    write_database(db / "files", [item("old", "libq"), item("new", "qq-tools")])
    return binary, dict(nixos_env, NIX_INDEX_DATABASE=str(db)), added


def test_local_candidate_lacking_a_symbol_is_dropped(tmp_path: Path,
                                                     nixos_env: dict[str, str]) -> None:
    """No symbol versions to go by: the exported symbols decide (ld.so would
    fail with `undefined symbol: q_new` on the older copy)."""
    binary, env, added = q_world(tmp_path, nixos_env)
    doc = json.loads(run_cli("explain", "--json", str(binary), env=env).stdout)
    [missing] = doc["missing"]
    assert missing["soname"] == "libq.so.1"
    assert missing["chosen"]["store_path"] == added["new"]
    assert [c["store_path"] for c in missing["candidates"]] == [added["new"]]


def test_a_missing_loader_never_discards_a_candidate(tmp_path: Path,
                                                    nixos_env: dict[str, str]) -> None:
    """With no real loader, libc's symbols look unprovided: no candidate may be
    dropped for lacking them (it once dropped every provider)."""
    binary, env, added = q_world(tmp_path, nixos_env)
    env["NIX_LD"] = str(tmp_path / "no-such-ld.so")
    doc = json.loads(run_cli("explain", "--json", str(binary), env=env).stdout)
    assert doc["loader"]["exists"] is False
    [missing] = doc["missing"]
    assert sorted(c["store_path"] for c in missing["candidates"]) == sorted(added.values())
    assert missing["chosen"] is not None


def test_32_bit_binary_is_explained_with_pkgsi686linux_packages(
        tmp_path: Path, nixos_env: dict[str, str]) -> None:
    """The 64-bit database's owners, in the ranking's order, as pkgsi686Linux
    attributes; the non-top-level copy cannot be one."""
    import subprocess

    from tests.conftest import need_tool

    gcc = need_tool("gcc")
    patchelf = need_tool("patchelf")
    src = tmp_path / "m.c"
    src.write_text("int main(void) { return 0; }\n")
    binary = tmp_path / "tool32"
    built = subprocess.run([gcc, "-m32", "-o", str(binary), str(src)], capture_output=True,
                           text=True, check=False)
    assert built.returncode == 0, f"gcc -m32 (gcc-12-multilib): {built.stderr}"
    subprocess.run([patchelf, "--add-needed", "libselinux.so.1", str(binary)], check=True)
    result = run_cli("explain", "--json", str(binary), env=nixos_env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    assert doc["elf"]["class"] == 32
    assert "32-bit" in doc["host_compat"]
    assert [m["soname"] for m in doc["missing"]] == ["libselinux.so.1"]
    [missing] = doc["missing"]
    assert missing["chosen"]["attr"] == "libselinux"
    i686 = missing["i686"]
    assert (i686["attr"], i686["output"]) == ("pkgsi686Linux.libselinux", "out")
    assert [(t["attr"], t["from"]["attr"]) for t in i686["tries"]] == [
        ("pkgsi686Linux.libselinux", "libselinux"), ("pkgsi686Linux.steam-run", "steam-run")]
    assert "ranking's choice" in i686["tries"][0]["why"]
    assert "next candidate" in i686["tries"][1]["why"]
    assert [(u["attr"], u["why"]) for u in i686["unmapped"]] == [
        ("selinux-internal", "not a top-level attribute of nixpkgs")]
    assert doc["plan"] == [{"attr": "pkgsi686Linux.libselinux", "output": "out",
                            "store_path": None, "sonames": ["libselinux.so.1"]}]
    assert not any("no providers are proposed" in w for w in doc["warnings"])
    # The 32-bit loader: NIX_LD (64-bit here) is not read for it.
    assert doc["loader"]["source"] == "default"
    assert doc["loader"]["path"] == "/run/current-system/sw/share/nix-ld32/lib/ld.so"
    text = run_cli("explain", str(binary), env=nixos_env).stdout
    assert "32-bit x86 binary" in text
    assert "32-bit: pkgsi686Linux.libselinux (out), from libselinux (out)" in text
    assert "plan: build 1 package for 32-bit x86 from your nixpkgs" in text


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_only_on_a_terminal_and_never_with_no_color(nixos_env: dict[str, str],
                                                          no_color: bool) -> None:
    import sys

    import pexpect

    env = dict(nixos_env, PYTHONPATH=str(REPO), TERM="xterm")
    if no_color:
        env["NO_COLOR"] = "1"
    child = pexpect.spawn(sys.executable, ["-m", "nixld", "explain", "/bin/ls"], env=env,
                          encoding="utf-8", timeout=60)
    child.expect(pexpect.EOF)
    out = child.before
    child.close()
    assert child.exitstatus == 0
    assert "libselinux.so.1" in out
    import re

    assert (re.search(r"\x1b\[[0-9;]*m", out) is not None) is not no_color
    assert "entries/s)/bin/ls" not in out, "the index progress line is erased"


def test_resolve_says_what_libraries_cannot_fix(tmp_path: Path,
                                                nixos_env: dict[str, str]) -> None:
    import subprocess

    from tests.conftest import need_tool

    script = tmp_path / "tool.sh"
    script.write_text("#!/usr/bin/no-such-shell\n")
    result = run_cli("resolve", "--yes", str(script), env=nixos_env)
    assert result.returncode == 1
    assert "#! interpreter /usr/bin/no-such-shell does not exist" in result.stderr
    gcc = need_tool("gcc")
    src = tmp_path / "s.c"
    src.write_text("int main(void) { return 0; }\n")
    static = tmp_path / "static-tool"
    subprocess.run([gcc, "-static", "-o", str(static), str(src)], check=True)
    result = run_cli("resolve", "--yes", str(static), env=nixos_env)
    assert result.returncode == 0
    assert "statically linked" in result.stderr
    state = Path(nixos_env["XDG_STATE_HOME"]) / "nixld" / "entries"
    assert not state.exists() or not any(state.iterdir())


def test_explain_on_the_loader_fixtures(fx: Fixtures, nixos_env: dict[str, str]) -> None:
    """The rules as `nixld-hook explain --json` reports them, on gcc-built fixtures."""

    def via(binary: Path,
            env: dict[str, str] = nixos_env) -> dict[str, tuple[str | None, str | None]]:
        result = run_cli("explain", "--json", str(binary), env=env)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert schema_check.errors(doc, SCHEMA) == []
        return {n["soname"]: (n["via"], n["path"]) for n in doc["needed"]}

    # RPATH is inherited along the chain; RUNPATH is not. Both are $ORIGIN/../lib.
    rpath = via(fx.needs_a_rpath)
    assert rpath["liba.so.1"] == ("rpath", str(fx.lib / "liba.so.1"))
    assert rpath["libb.so.1"] == ("rpath", str(fx.lib / "libb.so.1"))
    runpath = via(fx.needs_a_runpath)
    assert runpath["liba.so.1"] == ("runpath", str(fx.lib / "liba.so.1"))
    assert runpath["libb.so.1"] == (None, None)
    # A version requirement the older copy lacks is reported as such.
    doc = json.loads(run_cli("explain", "--json", str(fx.needs_v2),
                             env=dict(nixos_env, NIX_LD_LIBRARY_PATH=str(fx.libv_v1))).stdout)
    [need] = [n for n in doc["needed"] if n["soname"] == "libv.so.1"]
    assert [p["version"] for p in need["version_problems"]] == ["V2"]
    assert [m["reason"] for m in doc["missing"]] == ["missing-version"]
    # A wrong-architecture decoy earlier in the path is skipped, as ld.so skips it.
    if fx.hello32 is not None:
        decoy = via(fx.needs_a_runpath,
                    dict(nixos_env, NIX_LD_LIBRARY_PATH=f"{fx.root / 'decoy32'}:{fx.lib}"))
        assert decoy["libb.so.1"] == ("NIX_LD_LIBRARY_PATH", str(fx.lib / "libb.so.1"))
