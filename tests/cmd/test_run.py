"""`nixld-hook run`: a gcc-built program whose library lives only in a store path
installed from a real binary cache, run through the real loader."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nixld import entries, nix, paths, profile
from nixld.entries import Entry, Identity
from nixld.fileid import sha256_of
from nixld.package import Package
from nixld.search import Search, nix_system
from tests.conftest import need, need_tool, run_cli
from tests.fixtures.nix_cache import NixCache, signing_key

pytest_plugins = ("tests.fixtures.nix_cache",)  # the nix_cache fixture

LOADER = "/lib64/ld-linux-x86-64.so.2"

LIB_C = 'const char *which(void) { return "%s"; }\n'
MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
const char *which(void);
int main(int argc, char **argv) {
    const char *llp = getenv("LD_LIBRARY_PATH");
    printf("lib=%s argv0=%s llp=%s\n", which(), argv[0], llp ? llp : "(unset)");
    for (int i = 1; i < argc; i++) printf("arg=%s\n", argv[i]);
    return argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9' ? atoi(argv[1]) : 0;
}
"""


def compile_lib(where: Path, tag: str) -> Path:
    gcc = need_tool("gcc")
    (where / "lib").mkdir(parents=True)
    src = where.parent / f"{where.name}.c"
    src.write_text(LIB_C % tag)
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libwhich.so.1", "-o",
                    str(where / "lib/libwhich.so.1"), str(src)], check=True)
    return where


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """`tool`, linked against libwhich.so.1 with no RPATH: it cannot start alone."""
    need(os.path.exists(LOADER), f"needs {LOADER}")
    build = compile_lib(tmp_path / "build", "build")
    (tmp_path / "main.c").write_text(MAIN_C)
    tool = tmp_path / "app" / "tool"
    tool.parent.mkdir()
    subprocess.run([need_tool("gcc"), "-o", str(tool), str(tmp_path / "main.c"),
                    str(build / "lib/libwhich.so.1")], check=True)
    return tool


@pytest.fixture
def env(xdg: Path) -> dict[str, str]:
    out = dict(os.environ, NIX_LD=LOADER)
    for var in ("LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH", f"NIX_LD_{nix_system()}"):
        out.pop(var, None)
    return out


def resolve_by_hand(tool: Path, nix_cache: NixCache, tag: str = "store") -> str:
    """What `resolve` does, by hand: realise from the cache, install, write the entry."""
    tree = compile_lib(nix_cache.root / f"which-{tag}", tag)
    (tree / "nonce").write_bytes(os.urandom(8))  # a store path of this test's own
    store_path = nix.add_to_store(tree)
    nix.copy_to_cache([store_path], nix_cache.dir, secret_key=signing_key()[0])
    nix.delete_paths([store_path])
    nix.realise([store_path], quiet=True)
    profile.install([store_path])
    real = os.path.realpath(tool)
    entries.write_entry(Entry(real, Identity.of_file(real), (f"{store_path}/lib",),
                              sha256_of(real),
                              (Package(store_path, "which", "out"),),
                              (("libwhich.so.1", f"{store_path}/lib/libwhich.so.1"),)))
    return store_path


def test_without_an_entry_the_program_cannot_start(program: Path, env: dict[str, str]) -> None:
    res = run_cli("run", str(program), env=env)
    assert res.returncode == 127
    assert "libwhich.so.1" in res.stderr


def test_run_uses_the_entry_and_passes_everything_through(
        program: Path, env: dict[str, str], nix_cache: NixCache) -> None:
    resolve_by_hand(program, nix_cache)
    res = run_cli("run", str(program), "--version", "--help", "--", "-h", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"lib=store argv0={program} llp=(unset)",
        "arg=--version", "arg=--help", "arg=--", "arg=-h"]
    assert res.stderr == ""


def test_a_bare_name_is_looked_up_in_path(program: Path, env: dict[str, str],
                                          nix_cache: NixCache) -> None:
    resolve_by_hand(program, nix_cache)
    env["PATH"] = f"{program.parent}:{env['PATH']}"
    res = run_cli("run", "tool", "x", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "lib=store argv0=tool llp=(unset)\narg=x\n"  # as a shell passes it


def test_exit_status_is_the_programs(program: Path, env: dict[str, str],
                                     nix_cache: NixCache) -> None:
    resolve_by_hand(program, nix_cache)
    assert run_cli("run", str(program), "7", env=env).returncode == 7
    assert run_cli("run", "--", str(program), "3", env=env).returncode == 3


def test_library_path_order_matches_the_shim(program: Path, env: dict[str, str],
                                             nix_cache: NixCache, tmp_path: Path) -> None:
    resolve_by_hand(program, nix_cache)
    user = compile_lib(tmp_path / "user", "user")
    nixld = compile_lib(tmp_path / "nixld", "nixld")
    env.update(LD_LIBRARY_PATH=f"{user}/lib", NIX_LD_LIBRARY_PATH=f"{nixld}/lib")
    # entry dirs before LD_LIBRARY_PATH; the program still sees its own LD_LIBRARY_PATH
    res = run_cli("run", str(program), env=env)
    assert res.stdout.startswith(f"lib=store argv0={program} llp={user}/lib\n")
    entries.remove_entry(program)
    assert run_cli("run", str(program), env=env).stdout.startswith("lib=user")
    env.pop("LD_LIBRARY_PATH")
    assert run_cli("run", str(program), env=env).stdout.startswith("lib=nixld")
    # NIX_LD_LIBRARY_PATH_<system> wins over NIX_LD_LIBRARY_PATH
    env[f"NIX_LD_LIBRARY_PATH_{nix_system()}"] = f"{user}/lib"
    assert run_cli("run", str(program), env=env).stdout.startswith("lib=user")


@pytest.mark.unit
def test_library_path_composition(xdg: Path, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "SYSTEM_ENTRIES_DIR", tmp_path / "sys")
    binary = tmp_path / "b"
    binary.write_bytes(b"x")
    real = os.path.realpath(binary)
    entries.write_entry(Entry(real, Identity.of_file(real), ("/u1", "/u2")))
    entries.write_entry(Entry(real, None, ("/s1",)), directory=tmp_path / "sys")
    # The per-user entries dir is the one of the environment given (FORMAT.md).
    home = {k: os.environ[k] for k in ("HOME", "XDG_STATE_HOME")}
    search = Search.for_binary(str(binary), {**home, "LD_LIBRARY_PATH": "/l1::/l2"})
    assert search.library_path_string() == (
        f"/u1:/u2:/s1:/l1:/l2:{paths.NIX_LD_LIBRARY_PATH_DEFAULT}")
    assert search.stale == ()
    search = Search.for_binary(str(binary), {**home, "NIX_LD_LIBRARY_PATH": "/n"})
    assert search.library_path_string() == "/u1:/u2:/s1:/n"


def test_a_stale_entry_is_ignored_with_a_warning(program: Path, env: dict[str, str],
                                                 nix_cache: NixCache) -> None:
    resolve_by_hand(program, nix_cache)
    os.utime(program, ns=(0, 1))  # the file "changed"
    res = run_cli("run", str(program), env=env)
    assert "is stale (the file changed)" in res.stderr
    assert res.returncode == 127  # run without the stale dirs, as the shim would


def test_the_loader_is_found_as_the_shim_finds_it(program: Path, env: dict[str, str],
                                                  tmp_path: Path) -> None:
    env[f"NIX_LD_{nix_system()}"] = str(tmp_path / "nope")
    res = run_cli("run", str(program), env=env)
    assert res.returncode == 1
    assert res.stderr == (f"nixld-hook: error: NIX_LD_{nix_system()}="
                          f"{tmp_path}/nope is not a file: point it at the real dynamic "
                          "loader (ld-linux)\n")
    env.pop("NIX_LD")
    env.pop(f"NIX_LD_{nix_system()}")
    res = run_cli("run", str(program), env=env)
    need(not paths.NIX_LD_DEFAULT.exists(), "nix-ld is installed here")
    assert res.stderr.startswith("nixld-hook: error: no real loader:")


def test_bad_command_lines(env: dict[str, str], tmp_path: Path) -> None:
    res = run_cli("run", env=env)
    assert res.returncode == 2 and "PATH is required" in res.stderr
    res = run_cli("run", str(tmp_path / "missing"), env=env)
    assert res.returncode == 3
    assert res.stderr == f"nixld-hook: error: {tmp_path}/missing: no such file\n"
