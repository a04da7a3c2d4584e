"""32-bit x86 programs end to end: explain, resolve by building pkgsi686Linux
attributes with the real Nix from a tiny `<nixpkgs>` made here, then start.

The tiny nixpkgs has `pkgsi686Linux.glibc` (this machine's 32-bit loader and
libc, from libc6-i386) and `pkgsi686Linux.acme-sdk` (a `lib` output holding
libgreet.so.1, built with gcc -m32), and lacks `pkgsi686Linux.greet`, the
64-bit database's first owner of libgreet.so.1: resolve must explain that and
fall back to the next candidate. The derivations are real `i686-linux` builds
(`nix-build` of Debian's nix-bin runs them on this x86_64 machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nixld import i686, paths
from nixld.database import FileEntry, Origin, StorePath, write_database
from tests import schema_check
from tests.conftest import REPO, need, need_root, need_tool, run_cli

pytestmark = pytest.mark.slow

SCHEMA = json.loads((REPO / "nixld" / "schema" / "explain.schema.json").read_text())
LIB32 = Path("/lib32")  # libc6-i386: the 32-bit glibc on Debian amd64

GREET_C = 'const char *greet(void) { return "hello from libgreet"; }\n'
TOOL_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
const char *greet(void);
int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    printf("%s\nexe=%s\nargc=%d\n", greet(), exe, argc);
    fflush(stdout);
    /* A child started with system(): it must not inherit the library path. */
    return system("echo child LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}") == 0 ? 0 : 3;
}
"""
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello, 32-bit"); return 0; }\n'

NIXPKGS = r"""
{ ... }:
let
  build = name: outputs: script: derivation {
    inherit name outputs;
    system = "i686-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
in {
  # Only what the tests need of nixpkgs: the 32-bit package set, without `greet`.
  pkgsi686Linux = {
    glibc = build "glibc-i686" [ "out" ]
      ("/bin/mkdir -p $out/lib && /bin/cp ${./ld-linux.so.2} $out/lib/ld-linux.so.2"
       + " && /bin/cp ${./libc.so.6} $out/lib/libc.so.6");
    acme-sdk = build "acme-sdk-i686" [ "out" "lib" ]
      "/bin/mkdir -p $out/bin $lib/lib && /bin/cp ${./libgreet.so.1} $lib/lib/libgreet.so.1";
    notlib = build "notlib-i686" [ "out" ]
      "/bin/mkdir -p $out/lib && /bin/cp ${./libgreet64.so.1} $out/lib/libgreet.so.1";
  };
}
"""


def gcc32(*args: str) -> None:
    gcc = need_tool("gcc")
    proc = subprocess.run([gcc, "-m32", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"gcc -m32 (gcc-12-multilib, libc6-dev-i386): {proc.stderr}"


def owner(attr: str, n: int, output: str = "out") -> tuple[StorePath, list[FileEntry]]:
    """A 64-bit store path of the database owning lib/libgreet.so.1 (never substitutable)."""
    sp = StorePath("/nix/store", str(n) * 32, f"{attr}-1.0",
                   Origin(attr, output, True, "x86_64-linux"))
    return sp, [FileEntry(b"", "d"), FileEntry(b"/lib", "d"),
                FileEntry(b"/lib/libgreet.so.1", "r", 16_000)]


@pytest.fixture
def world32(tmp_path: Path, xdg: Path) -> dict[str, object]:
    """The fixtures, the tiny nixpkgs, the database and the environment."""
    need_root()
    need_tool("nix-build")
    need((LIB32 / "ld-linux.so.2").exists(), "needs /lib32/ld-linux.so.2 (libc6-i386)")
    build = tmp_path / "build"
    build.mkdir()
    (build / "greet.c").write_text(GREET_C)
    (build / "tool.c").write_text(TOOL_C)
    (build / "hello.c").write_text(HELLO_C)
    nixpkgs = tmp_path / "nixpkgs"
    nixpkgs.mkdir()
    gcc32("-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o",
          str(nixpkgs / "libgreet.so.1"), str(build / "greet.c"))
    subprocess.run([need_tool("gcc"), "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o",
                    str(nixpkgs / "libgreet64.so.1"), str(build / "greet.c")], check=True)
    app = tmp_path / "app"
    app.mkdir()
    # Linked against a copy that is then removed: only an entry can find it.
    gcc32("-o", str(app / "tool32"), str(build / "tool.c"), str(nixpkgs / "libgreet.so.1"))
    gcc32("-o", str(app / "hello32"), str(build / "hello.c"))
    for name in ("ld-linux.so.2", "libc.so.6"):
        shutil.copy2(LIB32 / name, nixpkgs / name)
    (nixpkgs / "default.nix").write_text(NIXPKGS)
    db = tmp_path / "db"
    db.mkdir()
    write_database(db / "files", [owner("greet", 1), owner("acme-sdk", 2, "lib")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIX_LD", "LD_"))}
    env.update(NIX_PATH=f"nixpkgs={nixpkgs}", NIX_INDEX_DATABASE=str(db),
               # The tiny builders use /bin/sh and coreutils: no sandbox for them.
               NIX_CONFIG="substituters =\nrequire-sigs = false\nsandbox = false")
    return {"tool": app / "tool32", "hello": app / "hello32", "env": env, "nixpkgs": nixpkgs}


def explain(path: Path, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    result = run_cli("explain", "--json", str(path), env=env)
    assert result.returncode == 0, result.stderr
    doc: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    assert schema_check.errors(doc, SCHEMA) == []
    return doc


def test_a_32_bit_binary_is_explained_resolved_by_building_and_runs(
        world32: dict[str, object]) -> None:
    tool, env = world32["tool"], world32["env"]
    assert isinstance(tool, Path) and isinstance(env, dict)
    doc = explain(tool, env)
    assert doc["elf"]["class"] == 32 and doc["elf"]["machine"] == "EM_386"
    assert doc["loader"]["exists"] is False  # no NIX_LD_i686_linux, no NixOS module
    [missing] = doc["missing"]
    assert missing["soname"] == "libgreet.so.1" and missing["chosen"]["attr"] == "greet"
    assert [(t["attr"], t["output"]) for t in missing["i686"]["tries"]] == [
        ("pkgsi686Linux.greet", "out"), ("pkgsi686Linux.acme-sdk", "lib")]
    assert doc["plan"] == [{"attr": "pkgsi686Linux.greet", "output": "out", "store_path": None,
                            "sonames": ["libgreet.so.1"]}]
    text = run_cli("explain", str(tool), env=env).stdout
    assert "32-bit: pkgsi686Linux.greet (out), from greet (out)" in text
    assert "else:   pkgsi686Linux.acme-sdk (lib), from acme-sdk (lib)" in text

    result = run_cli("resolve", "--yes", "--json", str(tool), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    # The first owner has no pkgsi686Linux attribute: said, then the next one built.
    assert "your nixpkgs has no pkgsi686Linux.greet (from greet); trying " \
        "pkgsi686Linux.acme-sdk next" in result.stderr
    assert "building pkgsi686Linux.glibc from your nixpkgs" in result.stderr
    installed = {p["attr"]: p for p in json.loads(result.stdout)["installed"]}
    assert set(installed) == {"pkgsi686Linux.glibc", "pkgsi686Linux.acme-sdk"}
    sdk = installed["pkgsi686Linux.acme-sdk"]
    assert sdk["output"] == "lib" and sdk["store_path"].endswith("-acme-sdk-i686-lib")
    assert sdk["sonames"] == ["libgreet.so.1"]

    # The entry records the built loader: explain now finds everything.
    after = explain(tool, env)
    assert after["complete"] is True, after
    glibc = installed["pkgsi686Linux.glibc"]["store_path"]
    assert after["loader"] == {"path": i686.loader_of(glibc), "source": "pkgsi686Linux.glibc",
                               "exists": True, "glibc": after["loader"]["glibc"]}
    [need_] = [n for n in after["needed"] if n["soname"] == "libgreet.so.1"]
    assert need_["via"] == "entry" and need_["path"].startswith(sdk["store_path"])
    profile = subprocess.run(["nix-env", "-p", str(paths.profile_path()), "-q", "--out-path"],
                             env=env, capture_output=True, text=True, check=True).stdout
    assert glibc in profile and sdk["store_path"] in profile  # both gc-rooted

    # `run`, with no NIX_LD_i686_linux: the recorded loader, the entry's library.
    ran = run_cli("run", str(tool), "x", env=env)
    assert ran.returncode == 0, ran.stderr
    # Through `run` the kernel started the loader, so /proc/self/exe names it
    # (the shim's start is the one where it names the program).
    assert ran.stdout.splitlines() == ["hello from libgreet", f"exe={i686.loader_of(glibc)}",
                                       "argc=2", "child LD_LIBRARY_PATH=unset"]
    forgot = run_cli("forget", "--all", env=env)
    assert forgot.returncode == 0, forgot.stderr


def test_only_the_loader_missing_builds_just_the_32_bit_glibc(
        world32: dict[str, object]) -> None:
    hello, env = world32["hello"], world32["env"]
    assert isinstance(hello, Path) and isinstance(env, dict)
    assert explain(hello, env)["missing"] == []
    result = run_cli("resolve", "--yes", "--json", str(hello), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [p["attr"] for p in json.loads(result.stdout)["installed"]] == ["pkgsi686Linux.glibc"]
    ran = run_cli("run", str(hello), env=env)
    assert (ran.returncode, ran.stdout) == (0, "hello, 32-bit\n"), ran.stderr
    assert run_cli("forget", "--all", env=env).returncode == 0


def test_a_64_bit_library_is_not_taken_for_a_32_bit_binary(world32: dict[str, object]) -> None:
    """The built package is read before it enters an entry: the wrong class is
    a reason to try the next candidate."""
    nixpkgs = world32["nixpkgs"]
    assert isinstance(nixpkgs, Path)
    env = world32["env"]
    assert isinstance(env, dict)
    built = subprocess.run(["nix-build", "<nixpkgs>", "--no-out-link", "-A",
                            "pkgsi686Linux.notlib"], env=env, capture_output=True, text=True,
                           check=True).stdout.split()[-1]
    problem = i686.check_library(built, "libgreet.so.1")
    assert problem == "lib/libgreet.so.1 is x86-64, 64-bit, not x86, 32-bit"
    assert i686.check_library(built, "libother.so.1") == "has no lib/libother.so.1"
