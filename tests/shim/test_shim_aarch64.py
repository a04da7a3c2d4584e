"""The aarch64 shim: cross-compiled with Debian's aarch64-linux-gnu-gcc and
run under qemu-aarch64 (user mode), NIX_LD the arm64 cross glibc's ld.so.

qemu 7.2 lacks openat2, so here the shim takes the executable's path from
readlink("/proc/self/exe") (qemu answers it for the guest): its fallback."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need, need_tool
from tests.fixtures.shim.harness import (
    build_id_entry_text,
    compile_c,
    entry_text,
    make_shim,
    write_build_id_entry,
    write_entry,
)

CROSS_LIB = Path("/usr/aarch64-linux-gnu/lib")
CROSS_LD = CROSS_LIB / "ld-linux-aarch64.so.1"


@dataclass(frozen=True)
class ArmHarness:
    root: Path
    shim: Path
    system_entries: Path
    lib: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "NIX_LD": str(CROSS_LD),
                "NIX_LD_LIBRARY_PATH": str(CROSS_LIB), **extra}

    def run(self, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["qemu-aarch64", str(self.root / name)], env=env,
                              capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmHarness]:
    cc = need_tool("aarch64-linux-gnu-gcc")
    need_tool("qemu-aarch64")
    need(CROSS_LD.exists(), "needs libc6-arm64-cross (the aarch64 ld.so)")
    root = tmp_path_factory.mktemp("arm")
    system_entries = root / "system-entries"
    system_entries.mkdir()
    shim = make_shim(root / "nixld-shim", arch="aarch64", system_entries_dir=system_entries)
    lib = root / "lib"
    compile_c(lib / "libwho.so", ["who.c"], cc=cc,
              flags=["-shared", "-fPIC", "-Wl,-soname,libwho.so", '-DWHO="entry"'])
    interp = f"-Wl,--dynamic-linker={shim}"
    compile_c(root / "hello", ["hello.c"], cc=cc, flags=[interp])
    compile_c(root / "probe", ["probe.c"], cc=cc, flags=[interp])
    compile_c(root / "use_who", ["use_who.c"], cc=cc, flags=[interp, f"-L{lib}", "-lwho"])
    yield ArmHarness(root=root, shim=shim, system_entries=system_entries, lib=lib)


def test_aarch64_shim_is_small_and_static(arm: ArmHarness) -> None:
    out = subprocess.run(["aarch64-linux-gnu-readelf", "-hrlW", str(arm.shim)],
                         capture_output=True, text=True, check=True).stdout
    assert "AArch64" in out and "R_AARCH64" not in out and "interpreter" not in out
    assert arm.shim.stat().st_size <= 64 * 1024


def test_aarch64_hello(arm: ArmHarness) -> None:
    r = arm.run("hello", arm.env())
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")


def test_aarch64_normal_start_and_environment(arm: ArmHarness) -> None:
    env = arm.env(LD_LIBRARY_PATH="/mine")
    r = arm.run("probe", env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"exe {arm.root / 'probe'}" in lines
    assert "entry_is_start 1" in lines
    assert f"base {CROSS_LD}" in lines
    # qemu builds the guest's environment in its own order.
    assert sorted(ln[4:] for ln in lines if ln.startswith("env ")) == sorted(
        f"{k}={v}" for k, v in env.items())


def test_aarch64_system_entry(arm: ArmHarness) -> None:
    r = arm.run("use_who", arm.env())
    assert r.returncode == 127 and "libwho.so" in r.stderr
    prog = arm.root / "use_who"
    entry = write_entry(arm.system_entries, prog,
                        entry_text(prog, [arm.lib], identity=False))
    r = arm.run("use_who", arm.env())
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr
    entry.unlink()


def test_aarch64_user_entry(arm: ArmHarness, tmp_path: Path) -> None:
    prog = arm.root / "use_who"
    state = tmp_path / "state"
    env = arm.env(XDG_STATE_HOME=str(state))
    write_entry(state / "nixld" / "entries", prog, entry_text(prog, [arm.lib]))
    r = arm.run("use_who", env)
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr
    write_entry(state / "nixld" / "entries", prog,
                entry_text(prog, [arm.lib]).replace("\nino ", "\nino 1"))  # stale
    assert arm.run("use_who", env).returncode == 127


def test_aarch64_build_id_entry(arm: ArmHarness, tmp_path: Path) -> None:
    """A copy at a new path: found by the build-id in its headers in memory."""
    copy = tmp_path / "new" / "use_who"
    copy.parent.mkdir()
    shutil.copy2(arm.root / "use_who", copy)
    state = tmp_path / "state"
    write_build_id_entry(state / "nixld" / "entries", copy,
                         build_id_entry_text(copy, [arm.lib], path=arm.root / "use_who"))
    run = ["qemu-aarch64", str(copy)]
    r = subprocess.run(run, env=arm.env(XDG_STATE_HOME=str(state)), capture_output=True,
                       text=True, check=False, timeout=60)
    assert (r.returncode, r.stdout) == (0, "who entry\n"), r.stderr
    with copy.open("ab") as f:
        f.write(b"\0")  # same build-id, another size
    r = subprocess.run(run, env=arm.env(XDG_STATE_HOME=str(state)), capture_output=True,
                       text=True, check=False, timeout=60)
    assert r.returncode == 127 and "libwho.so" in r.stderr


def test_aarch64_bad_loader(arm: ArmHarness) -> None:
    r = arm.run("hello", arm.env(NIX_LD="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
    assert r.returncode == 127
    assert r.stderr.startswith("nixld-shim: bad loader ") and r.stderr.count("\n") == 1
