"""The i686 shim (`make -C shim ARCH=i686`, gcc -m32), run for real: 32-bit
fixtures linked with `--dynamic-linker=<the built shim>`, NIX_LD a copy of
Debian's 32-bit loader (libc6-i386's /lib/ld-linux.so.2), alone in its
directory. The variables are nix-ld's names for i686: NIX_LD_i686_linux and
NIX_LD_LIBRARY_PATH_i686_linux."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nixld.elf import read_build_id
from tests.conftest import need, need_root, need_tool
from tests.fixtures.shim.harness import (
    build_id_entry_text,
    compile_c,
    entry_text,
    make_shim,
    world_readable_dir,
    write_build_id_entry,
    write_entry,
)

I386_LD = Path("/lib/ld-linux.so.2")
LOADER_ERROR = "error while loading shared libraries: libwho.so"


@dataclass(frozen=True)
class Harness32:
    root: Path
    shim: Path
    ld: Path  # NIX_LD: a copy of the 32-bit ld.so, alone in its directory
    system_entries: Path
    libs: dict[str, Path]  # name -> directory holding a 32-bit libwho.so saying name

    def program(self, name: str) -> Path:
        return self.root / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "NIX_LD_i686_linux": str(self.ld),
                "HOME": str(self.root / "home"), **extra}

    def run(self, program: Path | str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        path = program if isinstance(program, Path) else self.program(program)
        return subprocess.run([str(path)], env=env, capture_output=True, text=True,
                              timeout=60, check=False)


def need_m32() -> None:
    need_tool("gcc")
    need(I386_LD.exists(), "needs libc6-i386 (the 32-bit ld.so)")
    probe = subprocess.run(["gcc", "-m32", "-print-file-name=crt1.o"], capture_output=True,
                           text=True, check=False).stdout.strip()
    need(os.path.isabs(probe), "needs gcc-12-multilib and libc6-dev-i386 (gcc -m32)")


def build_harness32(root: Path) -> Harness32:
    (root / "ldso").mkdir(parents=True)
    ld = root / "ldso" / "ld-linux.so.2"
    shutil.copy2(I386_LD, ld)
    system_entries = root / "system-entries"
    system_entries.mkdir()
    (root / "home").mkdir()
    shim = make_shim(root / "shim" / "nixld-shim", arch="i686", default_ld=ld,
                     system_entries_dir=system_entries)
    libs = {}
    for name in ("entry", "sys", "nix"):
        libs[name] = root / f"lib-{name}"
        compile_c(libs[name] / "libwho.so", ["who.c"],
                  flags=["-m32", "-shared", "-fPIC", "-Wl,-soname,libwho.so", f'-DWHO="{name}"'])
    interp = ["-m32", f"-Wl,--dynamic-linker={shim}"]
    for name, sources, extra in [("hello", ["hello.c"], []), ("probe", ["probe.c"], []),
                                 ("child", ["child.c"], []),
                                 ("use_who", ["use_who.c"], [f"-L{libs['entry']}", "-lwho"])]:
        compile_c(root / "bin" / name, sources, flags=[*interp, *extra])
    return Harness32(root=root, shim=shim, ld=ld, system_entries=system_entries, libs=libs)


@pytest.fixture(scope="module")
def w32() -> Iterator[Harness32]:
    need_m32()
    need_tool("make")
    with world_readable_dir("nixld-shim-i686-") as root:
        yield build_harness32(root / "w")


def lines_with(stdout: str, prefix: str) -> list[str]:
    return [line[len(prefix):] for line in stdout.splitlines() if line.startswith(prefix)]


def test_i686_shim_is_small_static_and_32_bit(w32: Harness32) -> None:
    out = subprocess.run(["readelf", "-hrlW", str(w32.shim)], capture_output=True, text=True,
                         check=True).stdout
    assert "ELF32" in out and "Intel 80386" in out
    assert "R_386" not in out and "interpreter" not in out
    assert w32.shim.stat().st_size <= 64 * 1024


def test_i686_hello_and_the_loader_variables(w32: Harness32) -> None:
    r = w32.run("hello", w32.env())
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    # NIX_LD_i686_linux over NIX_LD. NIX_LD alone is never read: on a 64-bit
    # machine it names the 64-bit loader (as nixld.search models it), so the
    # compiled-in 32-bit default is used.
    r = w32.run("hello", w32.env(NIX_LD="/nonexistent/ld.so"))
    assert r.stdout == "hello\n", r.stderr
    env = w32.env(NIX_LD="/nonexistent/ld.so")
    del env["NIX_LD_i686_linux"]
    r = w32.run("hello", env)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    r = w32.run("hello", w32.env(NIX_LD_i686_linux="/nonexistent/ld.so"))
    assert r.returncode == 127 and r.stderr == (
        "nixld-shim: cannot open loader /nonexistent/ld.so: No such file or directory\n")


def test_i686_program_sees_a_normal_start(w32: Harness32) -> None:
    env = w32.env(LD_LIBRARY_PATH="/mine", FOO="bar baz")
    r = w32.run("probe", env)
    assert r.returncode == 0, r.stderr
    assert lines_with(r.stdout, "exe ") == [str(w32.program("probe"))]
    assert lines_with(r.stdout, "entry_is_start ") == ["1"]
    assert lines_with(r.stdout, "base ") == [str(w32.ld)]
    assert lines_with(r.stdout, "fds ") == ["0 1 2"]
    assert lines_with(r.stdout, "env ") == [f"{k}={v}" for k, v in env.items()]
    # Nothing to borrow: the start block grows by 16 bytes (four words here).
    r = w32.run("probe", {"A": "1"})
    assert r.returncode == 0, r.stderr
    assert lines_with(r.stdout, "env ") == ["A=1", "LD_LIBRARY_PATH="]
    assert lines_with(r.stdout, "entry_is_start ") == ["1"]


def test_i686_library_only_through_an_entry(w32: Harness32, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = w32.env(XDG_STATE_HOME=str(state))
    prog = w32.program("use_who")
    r = w32.run(prog, env)
    assert r.returncode == 127 and LOADER_ERROR in r.stderr
    write_entry(state / "nixld" / "entries", prog, entry_text(prog, [w32.libs["entry"]]))
    assert w32.run(prog, env).stdout == "who entry\n"
    entry = write_entry(w32.system_entries, prog,
                        entry_text(prog, [w32.libs["sys"]], identity=False))
    try:
        assert w32.run(prog, env).stdout == "who entry\n"  # E_user first
        assert w32.run(prog, w32.env()).stdout == "who sys\n"
    finally:
        entry.unlink()
    r = w32.run(prog, w32.env(NIX_LD_LIBRARY_PATH_i686_linux=str(w32.libs["nix"]),
                              NIX_LD_LIBRARY_PATH="/nonexistent"))
    assert r.stdout == "who nix\n", r.stderr


def test_i686_build_id_entry_for_a_copy(w32: Harness32, tmp_path: Path) -> None:
    state = tmp_path / "state"
    prog = w32.program("use_who")
    assert read_build_id(prog)
    write_build_id_entry(state / "nixld" / "entries", prog,
                         build_id_entry_text(prog, [w32.libs["entry"]]))
    copy = tmp_path / "moved" / "use_who"
    copy.parent.mkdir()
    shutil.copy2(prog, copy)
    env = w32.env(XDG_STATE_HOME=str(state))
    r = w32.run(copy, env)
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr
    with copy.open("ab") as f:
        f.write(b"\0")
    assert LOADER_ERROR in w32.run(copy, env).stderr


def test_i686_child_sees_the_original_environment(w32: Harness32, tmp_path: Path) -> None:
    state = tmp_path / "state"
    prog = w32.program("child")
    write_entry(state / "nixld" / "entries", prog, entry_text(prog, [w32.libs["entry"]]))
    env = w32.env(XDG_STATE_HOME=str(state), NIX_LD_LIBRARY_PATH=str(w32.libs["nix"]))
    r = w32.run(prog, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "parent (unset)"
    child_env = dict(line.split("=", 1) for line in lines[1:])
    for added_by_sh in ("PWD", "SHLVL", "_"):
        child_env.pop(added_by_sh, None)
    assert child_env == env


def test_i686_setuid_ignores_entries_and_environment(w32: Harness32) -> None:
    need_root()
    need_tool("setpriv")
    d = w32.root / "setuid"
    d.mkdir(exist_ok=True)
    prog = d / "use_who"
    shutil.copy2(w32.program("use_who"), prog)
    state = d / "state"
    write_entry(state / "nixld" / "entries", prog, entry_text(prog, [w32.libs["entry"]]))
    write_build_id_entry(state / "nixld" / "entries", prog,
                         build_id_entry_text(prog, [w32.libs["entry"]]))
    for p in (state, state / "nixld", state / "nixld" / "entries"):
        os.chmod(p, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    env = w32.env(XDG_STATE_HOME=str(state))
    r = subprocess.run([*nobody, str(prog)], env=env, capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.stdout == "who entry\n", r.stderr
    os.chmod(prog, 0o4755)
    r = subprocess.run([*nobody, str(prog)], env={**env, "NIX_LD_i686_linux": "/nonexistent"},
                       capture_output=True, text=True, check=False, timeout=60)
    # The compiled-in loader, no entry: libwho.so is not found.
    assert r.returncode == 127 and LOADER_ERROR in r.stderr


NAMESPACE = r"""
set -eu
cp "$SHIM" "$STAGE/ld-linux.so.2"
mount --bind "$STAGE/ld-linux.so.2" "$(realpath /lib/ld-linux.so.2)"
# From here on every 32-bit program starts through the i686 shim.
"$PROGRAM" -dc <"$PACKED" >"$OUT/with-entry" || echo $? >"$OUT/with-entry.rc"
XDG_STATE_HOME=/nonexistent "$PROGRAM" -dc <"$PACKED" 2>"$OUT/no-entry.err" \
    || echo $? >"$OUT/no-entry.rc"
"""


def test_i686_shim_as_the_system_loader_runs_a_real_debian_binary(
        w32: Harness32, tmp_path: Path) -> None:
    """Debian's pigz:i386, lacking libz.so.1 here, unmodified: with the shim
    bind-mounted over /lib/ld-linux.so.2 in a private mount namespace, its
    per-user entry names the directory of zlib1g:i386's libz."""
    need_root()
    need_tool("unshare")
    from tests.test_i686 import debian_i386

    debian = debian_i386(tmp_path / "debian")
    pigz = debian / "usr" / "bin" / "pigz"
    zlib_dir = debian / "lib" / "i386-linux-gnu"
    assert (zlib_dir / "libz.so.1").exists()
    state = tmp_path / "state"
    write_entry(state / "nixld" / "entries", pigz, entry_text(pigz, [zlib_dir]))
    packed = tmp_path / "packed.gz"
    packed.write_bytes(subprocess.run(["gzip", "-c"], input=b"32-bit payload\n",
                                      capture_output=True, check=True).stdout)
    shim = make_shim(tmp_path / "shim" / "nixld-shim", arch="i686")  # the default build
    (tmp_path / "stage").mkdir()
    (tmp_path / "out").mkdir()
    env = {"PATH": "/usr/bin:/bin", "SHIM": str(shim), "STAGE": str(tmp_path / "stage"),
           "OUT": str(tmp_path / "out"), "PROGRAM": str(pigz), "PACKED": str(packed),
           "NIX_LD_i686_linux": str(w32.ld), "XDG_STATE_HOME": str(state)}
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", NAMESPACE],
                       env=env, capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    assert not (out / "with-entry.rc").exists(), r.stderr
    assert (out / "with-entry").read_text() == "32-bit payload\n"
    assert (out / "no-entry.rc").read_text() == "127\n"
    assert "libz.so.1" in (out / "no-entry.err").read_text()
