"""nixld.search: the entries that apply, the environment, and the real-loader
discovery, the last on NixOS's real layout built in a mount namespace (a tmpfs
on /run holding /run/current-system), never by overriding the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nixld import search
from nixld.demo import World
from nixld.search import Search, glibc_loader_problem, nix_system, read_interpreter
from tests.conftest import REPO, need, need_root, need_tool
from tests.fixtures.build import Fixtures

DEBIAN_LD = "/lib64/ld-linux-x86-64.so.2"


@pytest.mark.unit
def test_nix_system_from_uname_or_elf_machine() -> None:
    assert nix_system("x86_64") == nix_system("EM_X86_64") == "x86_64_linux"
    assert nix_system("i386") == nix_system("EM_386") == "i686_linux"
    assert nix_system("EM_AARCH64") == nix_system("arm64") == "aarch64_linux"


@pytest.mark.unit
def test_the_32_bit_search_reads_the_i686_variables() -> None:
    env = {"NIX_LD": "/a", "NIX_LD_i686_linux": "/ld32", "NIX_LD_x86_64_linux": "/ld64",
           "NIX_LD_LIBRARY_PATH_i686_linux": "/l32", "NIX_LD_LIBRARY_PATH": "/l"}
    s32 = Search.from_environ(env, machine="EM_386")
    assert (s32.loader.path, s32.loader.source) == ("/ld32", "NIX_LD_i686_linux")
    assert s32.nix_ld_library_path == ("/l32",)
    s64 = Search.from_environ(env, machine="EM_X86_64")
    assert (s64.loader.path, s64.nix_ld_library_path) == ("/ld64", ("/l",))


def test_glibc_loader_is_judged_by_reading(fx: Fixtures, tmp_path: Path) -> None:
    need(os.path.exists(DEBIAN_LD), f"needs {DEBIAN_LD}")
    renamed = tmp_path / "anything"
    shutil.copy(DEBIAN_LD, renamed)
    assert glibc_loader_problem(str(renamed)) is None  # not by its name
    stub = tmp_path / "ld-linux-x86-64.so.2"
    shutil.copy(fx.static, stub)  # a static program named like the loader (stub-ld)
    assert glibc_loader_problem(str(stub)) == f"{stub}: not a glibc ld.so"
    assert glibc_loader_problem("/lib/x86_64-linux-gnu/libc.so.6") == (
        "/lib/x86_64-linux-gnu/libc.so.6: not a glibc ld.so")
    assert glibc_loader_problem(str(tmp_path / "gone")) == f"{tmp_path}/gone: no such file"
    (tmp_path / "empty").write_bytes(b"")
    assert glibc_loader_problem(str(tmp_path / "empty")) == (
        f"{tmp_path}/empty: empty file, not a library")
    need(os.path.exists("/lib/ld-linux.so.2"), "needs libc6-i386's loader")
    assert glibc_loader_problem("/lib/ld-linux.so.2") is None  # 32-bit, read the same way
    assert read_interpreter(str(fx.needs_a)) == DEBIAN_LD
    assert read_interpreter(str(fx.static)) is None
    assert read_interpreter(str(tmp_path / "gone")) is None


@pytest.mark.unit
def test_a_variable_is_used_as_it_is(tmp_path: Path) -> None:
    """nix-ld uses a set NIX_LD without looking further; the emulation judges it."""
    loader = search.discover_loader({"NIX_LD": str(tmp_path / "nope")}, "x86_64_linux")
    assert (loader.path, loader.source, loader.problem) == (str(tmp_path / "nope"), "NIX_LD",
                                                            None)
    assert [t.source for t in loader.tried] == ["NIX_LD"]


def in_nixos_layout(sh_target: Path, nix_ld: Path | None, argv: list[str],
                    env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run argv where /run is a tmpfs holding /run/current-system/sw/bin/sh ->
    sh_target and, if given, nix-ld's default ld.so (a copy of `nix_ld`)."""
    need_root()
    need_tool("unshare")
    setup = ("mount -t tmpfs tmpfs /run && mkdir -p /run/current-system/sw/bin "
             "/run/current-system/sw/share/nix-ld/lib && "
             'ln -s "$1" /run/current-system/sw/bin/sh && shift && '
             '{ [ -z "$1" ] || cp "$1" /run/current-system/sw/share/nix-ld/lib/ld.so; } && '
             'shift && exec "$@"')
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh",
         str(sh_target), str(nix_ld or ""), *argv],
        env=env, capture_output=True, text=True, timeout=120, check=False)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nixld", *args]


def no_loader_env(world_env: dict[str, str]) -> dict[str, str]:
    env = dict(world_env, PYTHONPATH=str(REPO))
    for var in ("NIX_LD", "NIX_LD_x86_64_linux"):
        env.pop(var, None)
    return env


def test_the_loader_of_the_systems_own_sh(world: World, world_env: dict[str, str],
                                          fx: Fixtures, tmp_path: Path) -> None:
    """nix-ld's default is a stub (rejected: no glibc ld.so); the system's sh,
    through a symlink chain, has the store's glibc loader as PT_INTERP."""
    gcc = need_tool("gcc")
    store_ld = f"{world.glibc}/lib/ld-linux-x86-64.so.2"
    sh = tmp_path / "bash-5" / "bin" / "bash"
    sh.parent.mkdir(parents=True)
    subprocess.run([gcc, "-o", str(sh), str(REPO / "tests/fixtures/hello.c"),
                    f"-Wl,--dynamic-linker={store_ld}"], check=True)
    (tmp_path / "bash-5" / "bin" / "sh").symlink_to("bash")
    env = no_loader_env(world_env)
    res = in_nixos_layout(tmp_path / "bash-5" / "bin" / "sh", fx.static,
                          cli("explain", "--json", "/bin/true"), env)
    assert res.returncode == 0, res.stderr
    loader = json.loads(res.stdout)["loader"]
    assert (loader["path"], loader["source"], loader["exists"]) == (store_ld, "system-sh", True)
    assert [(t["source"], t["problem"]) for t in loader["tried"]] == [
        ("default", "/run/current-system/sw/share/nix-ld/lib/ld.so: not a glibc ld.so"),
        ("system-sh", None)]
    text = in_nixos_layout(tmp_path / "bash-5" / "bin" / "sh", None,
                           cli("explain", "/bin/true"), env)
    assert f"real loader: {store_ld} (the interpreter of /run/current-system/sw/bin/sh" \
        in text.stdout
    # `run` finds it the same way: /bin/true needs only libc, from that glibc.
    ran = in_nixos_layout(tmp_path / "bash-5" / "bin" / "sh", None,
                          cli("run", "/bin/true"), env)
    assert (ran.returncode, ran.stderr) == (0, "")


def test_an_sh_outside_the_store_is_no_loader(world_env: dict[str, str],
                                              tmp_path: Path) -> None:
    """Debian's sh has /lib64's loader: not NixOS's, so not taken; without any
    loader `run` says so in one line."""
    env = no_loader_env(world_env)
    res = in_nixos_layout(Path("/bin/sh"), None, cli("explain", "--json", "/bin/true"), env)
    assert res.returncode == 0, res.stderr
    loader = json.loads(res.stdout)["loader"]
    assert (loader["source"], loader["exists"]) == ("default", False)
    tried = {t["source"]: t["problem"] for t in loader["tried"]}
    assert "is not in the store" in tried["system-sh"]
    ran = in_nixos_layout(Path("/bin/sh"), None, cli("run", "/bin/true"), env)
    assert ran.returncode == 1 and ran.stderr.startswith("nixld-hook: error: no real loader:")
