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
from tests.conftest import REPO, need, need_root, need_tool, run_cli
from tests.fixtures import schema_check

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
    glibc = build "glibc-i686" [ "out" ] ("/bin/mkdir -p $out/lib"
      + builtins.concatStringsSep "" (map (f: " && /bin/cp ${./${f}} $out/lib/${f}")
        [ "ld-linux.so.2" "libc.so.6" "libm.so.6" "libpthread.so.0" ]));
    # Debian's zlib1g:i386, as nixpkgs' pkgsi686Linux.zlib would hold it.
    zlib = build "zlib-i686" [ "out" ]
      "/bin/mkdir -p $out/lib && /bin/cp ${./libz.so.1} $out/lib/libz.so.1";
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


def owner(attr: str, n: int, output: str = "out", *,
          soname: str = "libgreet.so.1") -> tuple[StorePath, list[FileEntry]]:
    """A 64-bit store path of the database owning lib/`soname` (never substitutable)."""
    sp = StorePath("/nix/store", str(n) * 32, f"{attr}-1.0",
                   Origin(attr, output, True, "x86_64-linux"))
    return sp, [FileEntry(b"", "d"), FileEntry(b"/lib", "d"),
                FileEntry(f"/lib/{soname}".encode(), "r", 16_000)]


DEBIAN_I386 = ("pigz", "zlib1g")  # a real 32-bit program and the library it lacks


def debian_i386(dest: Path) -> Path:
    """pigz:i386 and zlib1g:i386 unpacked into `dest` (the .debs kept between
    runs beside the test world's; `dpkg --add-architecture i386` in .ci/run)."""
    from nixld.demo import world_home

    need_tool("apt-get")
    cache = world_home() / "debs-i386"
    cache.mkdir(parents=True, exist_ok=True)
    missing = [p for p in DEBIAN_I386 if not list(cache.glob(f"{p}_*_i386.deb"))]
    if missing:
        got = subprocess.run(["apt-get", "download", *(f"{p}:i386" for p in missing)],
                             cwd=cache, capture_output=True, text=True, check=False)
        need(got.returncode == 0, "apt-get download PKG:i386 needs `dpkg --add-architecture "
             f"i386 && apt-get update`: {got.stderr.strip()[-300:]}")
    for package in DEBIAN_I386:
        [deb] = sorted(cache.glob(f"{package}_*_i386.deb"))[-1:]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


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
    for name in ("ld-linux.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0"):
        shutil.copy2(LIB32 / name, nixpkgs / name)
    debian = debian_i386(tmp_path / "debian")
    shutil.copy2(os.path.realpath(debian / "lib/i386-linux-gnu/libz.so.1"), nixpkgs / "libz.so.1")
    shutil.copy2(debian / "usr/bin/pigz", app / "pigz")
    (nixpkgs / "default.nix").write_text(NIXPKGS)
    db = tmp_path / "db"
    db.mkdir()
    write_database(db / "files", [owner("greet", 1), owner("acme-sdk", 2, "lib"),
                                  owner("zlib", 3, soname="libz.so.1")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIX_LD", "LD_"))}
    env.update(NIX_PATH=f"nixpkgs={nixpkgs}", NIX_INDEX_DATABASE=str(db),
               # The tiny builders use /bin/sh and coreutils: no sandbox for them.
               NIX_CONFIG="substituters =\nrequire-sigs = false\nsandbox = false")
    return {"tool": app / "tool32", "hello": app / "hello32", "pigz": app / "pigz", "env": env,
            "nixpkgs": nixpkgs}


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
    loader = dict(after["loader"])
    tried = loader.pop("tried")  # where the search model looked, in order
    assert loader == {"path": i686.loader_of(glibc), "source": "pkgsi686Linux.glibc",
                      "exists": True, "glibc": after["loader"]["glibc"]}
    assert tried == [{"source": "pkgsi686Linux.glibc", "path": i686.loader_of(glibc),
                      "problem": None}]
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
    # gc keeps the loader: the entry names it as one of its packages.
    assert run_cli("gc", env=env).returncode == 0
    listed = json.loads(run_cli("list", "--json", env=env).stdout)
    assert {p["attr"] for e in listed for p in e["packages"]} >= {"pkgsi686Linux.glibc",
                                                                   "pkgsi686Linux.acme-sdk"}
    profile = subprocess.run(["nix-env", "-p", str(paths.profile_path()), "-q", "--out-path"],
                             env=env, capture_output=True, text=True, check=True).stdout
    assert glibc in profile

    # Through the i686 shim as /lib/ld-linux.so.2, with no environment at all.
    shimmed = through_shim(tool, glibc, env, "x")
    assert shimmed.returncode == 0, shimmed.stderr
    lines = shimmed.stdout.splitlines()
    assert lines[:3] == ["hello from libgreet", f"exe={tool}", "argc=2"], shimmed.stdout
    assert lines[3] in ("child LD_LIBRARY_PATH=unset", "child LD_LIBRARY_PATH="), lines
    forgot = run_cli("forget", "--all", env=env)
    assert forgot.returncode == 0, forgot.stderr


# As NixOS with the module has it (nix/nixos-module.nix): the i686 shim at
# /lib/ld-linux.so.2, built with the 32-bit defaults, and the 32-bit glibc's
# loader at the default's place. Here only inside a private mount namespace:
# on Debian /lib/ld-linux.so.2 is the real loader.
NAMESPACE = r"""
set -eu
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$(dirname "$DEFAULT_LD")"
ln -s "$GLIBC_LD" "$DEFAULT_LD"
mount --bind "$SHIM" "$(realpath /lib/ld-linux.so.2)"
exec env -i HOME="$HOME" PATH=/usr/bin:/bin "$@"
"""


def through_shim(program: Path, glibc: str, env: dict[str, str], *args: str,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run `program` (interpreter /lib/ld-linux.so.2) through the i686 shim."""
    from tests.fixtures.shim.harness import make_shim

    need_tool("make")
    need_tool("unshare")
    shim = make_shim(Path(env["HOME"]).parent / "shim32" / "nixld-shim", arch="i686",
                     default_ld=paths.NIX_LD_I686_DEFAULT,
                     default_library_path=Path(paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT))
    run_env = {"PATH": "/usr/bin:/bin", "HOME": env["HOME"], "SHIM": str(shim),
               "GLIBC_LD": i686.loader_of(glibc), "DEFAULT_LD": str(paths.NIX_LD_I686_DEFAULT)}
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                           NAMESPACE, "sh", str(program), *args], env=run_env, input=stdin,
                          capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def test_a_real_debian_i386_binary_resolved_and_started(world32: dict[str, object]) -> None:
    """pigz from Debian's i386 archive, lacking libz.so.1: pkgsi686Linux.zlib."""
    pigz, env = world32["pigz"], world32["env"]
    assert isinstance(pigz, Path) and isinstance(env, dict)
    [missing] = explain(pigz, env)["missing"]
    assert missing["soname"] == "libz.so.1"
    assert missing["i686"]["attr"] == "pkgsi686Linux.zlib"
    result = run_cli("resolve", "--yes", "--json", str(pigz), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    installed = {p["attr"]: p["store_path"] for p in json.loads(result.stdout)["installed"]}
    assert set(installed) == {"pkgsi686Linux.glibc", "pkgsi686Linux.zlib"}
    packed = subprocess.run(["gzip", "-c"], input=b"32-bit payload\n", capture_output=True,
                            check=True).stdout
    shimmed = through_shim(pigz, installed["pkgsi686Linux.glibc"], env, "-dc", stdin=packed)
    assert (shimmed.returncode, shimmed.stdout) == (0, "32-bit payload\n"), shimmed.stderr
    ran = run_cli("run", str(pigz), "--version", env=env)
    assert ran.returncode == 0 and "pigz 2." in ran.stdout + ran.stderr, ran.stderr
    assert run_cli("forget", "--all", env=env).returncode == 0


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


def test_mixed_32_and_64_bit_targets_are_two_jobs(world32: dict[str, object]) -> None:
    from nixld.resolve import _by_word_size

    tool, hello = str(world32["tool"]), str(world32["hello"])
    assert _by_word_size([tool, "/bin/ls", hello]) == [["/bin/ls"], [tool, hello]]
    assert _by_word_size([tool]) == [[tool]]


def test_the_hook_handler_offers_to_resolve_a_32_bit_binary(world32: dict[str, object],
                                                             tmp_path: Path) -> None:
    """No shim at the 32-bit interpreter path (NixOS without the module): the
    handler names what is missing and the commands, instead of "another machine"."""
    tool, env = world32["tool"], world32["env"]
    assert isinstance(tool, Path) and isinstance(env, dict)
    moved = tmp_path / "bin" / "game"
    moved.parent.mkdir()
    shutil.copy2(tool, moved)
    subprocess.run([need_tool("patchelf"), "--set-interpreter", "/lib/nixld-none/ld-linux.so.2",
                    str(moved)], check=True)
    result = run_cli("handle", "--shell", "bash", "--status", "127", "--cwd",
                     str(moved.parent), "--", "./game", env=env)
    assert result.returncode == 0, result.stderr
    assert "needs the ELF interpreter /lib/nixld-none/ld-linux.so.2" in result.stderr
    assert "it also lacks libgreet.so.1: first run: nixld-hook resolve ./game" in result.stderr
    assert "another machine" not in result.stderr and "cannot use 64-bit" not in result.stderr


def test_with_for_a_32_bit_binary_builds_pkgsi686linux_packages(
        world32: dict[str, object]) -> None:
    """--with SONAME (a library it loads with dlopen) is looked up in the 64-bit
    database and built as the owner's pkgsi686Linux package; --with ATTR is
    pkgsi686Linux.ATTR."""
    hello, env = world32["hello"], world32["env"]
    assert isinstance(hello, Path) and isinstance(env, dict)
    result = run_cli("resolve", "--yes", "--json", "--with", "libz.so.1", "--with",
                     "acme-sdk^lib", str(hello), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    installed = {p["attr"]: p for p in json.loads(result.stdout)["installed"]}
    assert set(installed) == {"pkgsi686Linux.glibc", "pkgsi686Linux.zlib",
                              "pkgsi686Linux.acme-sdk"}
    assert installed["pkgsi686Linux.zlib"]["sonames"] == ["libz.so.1"]
    from nixld.search import Search

    found = Search.for_binary(str(hello), env).user_entry()  # what the shim applies
    assert found is not None and found.valid
    assert {d.rsplit("/", 1)[0] for d in found.entry.dirs} == {
        installed["pkgsi686Linux.zlib"]["store_path"],
        installed["pkgsi686Linux.acme-sdk"]["store_path"]}
    assert run_cli("forget", "--all", env=env).returncode == 0


def test_dry_run_plans_pkgsi686linux_packages(world32: dict[str, object]) -> None:
    tool, env = world32["tool"], world32["env"]
    assert isinstance(tool, Path) and isinstance(env, dict)
    doc = json.loads(run_cli("resolve", "--dry-run", "--json", str(tool), env=env).stdout)
    assert doc["plan"] == [{"attr": "pkgsi686Linux.greet", "output": "out", "store_path": None,
                            "sonames": ["libgreet.so.1"]}]
    text = run_cli("resolve", "--dry-run", str(tool), env=env).stdout
    assert "pkgsi686Linux.greet (out)  [libgreet.so.1]" in text
    both = json.loads(run_cli("resolve", "--dry-run", "--json", str(tool),
                              str(world32["pigz"]), env=env).stdout)
    assert [p["attr"] for p in both["plan"]] == ["pkgsi686Linux.greet", "pkgsi686Linux.zlib"]
