"""nixld.loader: ld.so's search on NixOS, emulated on a NixOS-like setup.

The real loader is a copy of Debian's ld.so in a tmp dir, with a copy of
libc.so.6 next to it, so "the loader's own directory" holds only what the test
puts there, as glibc's lib/ does on NixOS. NIX_LD_LIBRARY_PATH points at dirs
the tests create. The binaries are system ones and gcc-built fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from nixld.elf import ElfInfo, read_binary
from nixld.glibc import glibc_release, is_glibc_soname
from nixld.loader import (
    GLIBC_SONAMES,
    Closure,
    ElfCache,
    Needed,
    VersionProblem,
    expand_dst,
    resolve_closure,
)
from nixld.search import Search, nix_system
from tests.conftest import need, need_tool
from tests.fixtures.build import Fixtures

DEBIAN_LD = "/lib64/ld-linux-x86-64.so.2"
DEBIAN_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
DEBIAN_LIBDIR = "/lib/x86_64-linux-gnu"


@dataclass
class World:
    """A NixOS-like loader setup under tmp."""

    loader: Path  # NIX_LD: a copy of ld.so
    loader_dir: Path  # its directory, glibc's lib/ on NixOS
    nix_ld_lib: Path  # NIX_LD_LIBRARY_PATH

    def env(self, *, entry_dirs: tuple[str | Path, ...] = (), ld_library_path: str = "",
            nix_ld_library_path: str | None = None) -> Search:
        variables = {
            "NIX_LD": str(self.loader),
            "NIX_LD_LIBRARY_PATH": (str(self.nix_ld_lib) if nix_ld_library_path is None
                                    else nix_ld_library_path),
            "LD_LIBRARY_PATH": ld_library_path,
        }
        return Search.from_environ(
            variables, user_dirs=[str(d) for d in entry_dirs], machine="x86_64")


@pytest.fixture
def world(tmp_path: Path) -> World:
    need(os.path.exists(DEBIAN_LD) and os.path.exists(DEBIAN_LIBC),
         "needs Debian's x86-64 ld.so and libc.so.6")
    loader_dir = tmp_path / "glibc" / "lib"
    loader_dir.mkdir(parents=True)
    shutil.copy(DEBIAN_LD, loader_dir / "ld-linux-x86-64.so.2")
    shutil.copy(DEBIAN_LIBC, loader_dir / "libc.so.6")
    nix_ld_lib = tmp_path / "nix-ld" / "lib"
    nix_ld_lib.mkdir(parents=True)
    # nix-ld's `ld.so` is a symlink to glibc's loader: its realpath's dir counts.
    (nix_ld_lib / "ld.so").symlink_to(loader_dir / "ld-linux-x86-64.so.2")
    return World(nix_ld_lib / "ld.so", loader_dir, nix_ld_lib)


def elf(path: str | Path) -> ElfInfo:
    info = read_binary(path)
    assert isinstance(info, ElfInfo)
    return info


def by_soname(closure: Closure) -> dict[str, Needed]:
    return {n.soname: n for n in closure.needed}


def where(closure: Closure) -> dict[str, tuple[str | None, str | None]]:
    return {n.soname: (n.via, n.path) for n in closure.needed}


def real(path: str | Path) -> str:
    return os.path.realpath(path)


def system_libc_release() -> str:
    return os.confstr("CS_GNU_LIBC_VERSION").split()[1]  # type: ignore[union-attr]


# --- the environment ----------------------------------------------------------------


@pytest.mark.unit
def test_from_environ_defaults_are_nix_lds() -> None:
    env = Search.from_environ({}, machine="x86_64")
    assert (env.entry_dirs, env.ld_library_path, env.nix_ld_library_path) == (
        (), (), ("/run/current-system/sw/share/nix-ld/lib",))
    need(not os.path.exists("/run/current-system"), "this is NixOS: a loader is found")
    assert (env.loader.path, env.loader.source) == (
        "/run/current-system/sw/share/nix-ld/lib/ld.so", "default")


@pytest.mark.unit
def test_from_environ_prefers_the_system_specific_variables() -> None:
    env = Search.from_environ({
        "NIX_LD": "/a/ld.so", "NIX_LD_x86_64_linux": "/b/ld.so",
        "NIX_LD_LIBRARY_PATH": "/x", "NIX_LD_LIBRARY_PATH_x86_64_linux": "/y:/z",
        "LD_LIBRARY_PATH": ":/u::/v;/w:",
    }, user_dirs=["/e"], machine="x86_64")
    assert env.loader.path == "/b/ld.so"
    assert env.loader.source == "NIX_LD_x86_64_linux"
    assert env.nix_ld_library_path == ("/y", "/z")
    assert env.ld_library_path == ("/u", "/v", "/w")
    assert env.entry_dirs == ("/e",)


@pytest.mark.unit
def test_from_environ_treats_empty_as_unset_and_uses_the_machine() -> None:
    env = Search.from_environ(
        {"NIX_LD_aarch64_linux": "", "NIX_LD": "/a/ld.so", "NIX_LD_x86_64_linux": "/b",
         "NIX_LD_LIBRARY_PATH": ""}, machine="aarch64")
    assert (env.loader.path, env.loader.source) == ("/a/ld.so", "NIX_LD")
    assert env.nix_ld_library_path == ("/run/current-system/sw/share/nix-ld/lib",)
    assert nix_system("x86_64") == "x86_64_linux"
    assert nix_system("i386") == "i686_linux"


@pytest.mark.unit
def test_with_extra_dirs_appends_new_dirs_once() -> None:
    env = Search.from_environ({}, user_dirs=["/a"], machine="x86_64")
    assert env.with_extra_dirs(["/b", "/a", "/b", "/c"]).entry_dirs == ("/a", "/b", "/c")
    assert env.entry_dirs == ("/a",)


@pytest.mark.unit
@pytest.mark.parametrize(("text", "expected"), [
    ("$ORIGIN/../lib", "/o/../lib"),
    ("${ORIGIN}/x", "/o/x"),
    ("/p/$LIB/$PLATFORM", "/p/lib/x86_64"),
    ("/p/${LIB}x/${PLATFORM}", "/p/libx/x86_64"),
    ("$ORIGINAL/x", "$ORIGINAL/x"),  # not the token: left as it is
    ("/plain", "/plain"),
])
def test_expand_dst(text: str, expected: str) -> None:
    assert expand_dst(text, "/o", "x86_64") == expected


@pytest.mark.unit
def test_expand_dst_drops_an_unknown_origin() -> None:
    assert expand_dst("$ORIGIN/lib", None, "x86_64") is None


@pytest.mark.unit
def test_glibc_sonames() -> None:
    assert {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"} <= GLIBC_SONAMES
    assert is_glibc_soname("libnss_sss.so.2")
    assert is_glibc_soname("ld-linux-riscv64-lp64d.so.1")
    assert not is_glibc_soname("libstdc++.so.6")
    assert not is_glibc_soname("libcrypt.so.1")  # libxcrypt, a package of its own
    assert glibc_release(["GLIBC_2.2.5", "GLIBC_2.10", "GLIBC_2.9", "GLIBC_PRIVATE"]) == "2.10"


# --- system binaries ------------------------------------------------------------------


def test_ls_on_nixos_misses_libselinux(world: World) -> None:
    need(os.path.exists("/bin/ls"), "needs /bin/ls")
    closure = resolve_closure(elf("/bin/ls"), world.env())
    assert closure.real_loader_exists
    assert closure.real_loader_glibc == system_libc_release()
    assert where(closure) == {
        "libselinux.so.1": (None, None),
        "libc.so.6": ("loader-dir", str(world.loader_dir / "libc.so.6")),
        "ld-linux-x86-64.so.2": ("interpreter", str(world.loader_dir / "ld-linux-x86-64.so.2")),
    }
    assert [n.soname for n in closure.missing] == ["libselinux.so.1"]
    assert by_soname(closure)["libselinux.so.1"].needed_by == ["/bin/ls"]
    assert by_soname(closure)["ld-linux-x86-64.so.2"].needed_by == [
        str(world.loader_dir / "libc.so.6")]
    assert not closure.complete


def test_ls_with_an_entry_dir_is_complete(world: World) -> None:
    need(os.path.exists("/bin/ls"), "needs /bin/ls")
    closure = resolve_closure(elf("/bin/ls"), world.env(entry_dirs=(DEBIAN_LIBDIR,)))
    found = by_soname(closure)
    assert found["libselinux.so.1"].via == "entry"
    assert found["libselinux.so.1"].path == real(f"{DEBIAN_LIBDIR}/libselinux.so.1")
    # libselinux's own need, found with the same rules and symlinks resolved:
    pcre = found["libpcre2-8.so.0"]
    assert pcre.via == "entry" and pcre.path == real(f"{DEBIAN_LIBDIR}/libpcre2-8.so.0")
    assert pcre.needed_by == [real(f"{DEBIAN_LIBDIR}/libselinux.so.1")]
    assert closure.missing == [] and closure.glibc_problems == []
    assert closure.complete
    # BFS: the binary's own needs first, in DT_NEEDED order.
    assert [n.soname for n in closure.needed][:2] == ["libselinux.so.1", "libc.so.6"]


# --- RPATH, RUNPATH, $ORIGIN -----------------------------------------------------------


def test_rpath_is_inherited_along_the_chain(fx: Fixtures, world: World) -> None:
    closure = resolve_closure(elf(fx.needs_a_rpath), world.env())
    assert where(closure)["liba.so.1"] == ("rpath", str(fx.lib / "liba.so.1"))
    # liba has no RPATH/RUNPATH: the executable's RPATH still serves its needs.
    assert where(closure)["libb.so.1"] == ("rpath", str(fx.lib / "libb.so.1"))
    assert by_soname(closure)["libb.so.1"].needed_by == [str(fx.lib / "liba.so.1")]
    assert closure.complete


def test_runpath_is_not_inherited(fx: Fixtures, world: World) -> None:
    closure = resolve_closure(elf(fx.needs_a_runpath), world.env())
    assert where(closure)["liba.so.1"] == ("runpath", str(fx.lib / "liba.so.1"))
    assert where(closure)["libb.so.1"] == (None, None)
    assert [n.soname for n in closure.missing] == ["libb.so.1"]
    # Once the library path has it, it resolves there.
    fixed = resolve_closure(elf(fx.needs_a_runpath), world.env(nix_ld_library_path=str(fx.lib)))
    assert where(fixed)["libb.so.1"] == ("NIX_LD_LIBRARY_PATH", str(fx.lib / "libb.so.1"))
    assert fixed.complete


def test_a_runpath_voids_the_inherited_rpath(fx: Fixtures, world: World) -> None:
    """lib2/liba.so.1 has a RUNPATH: ld.so then does not search the RPATH chain
    for its needs, although the executable's RPATH dir holds libb.so.1."""
    closure = resolve_closure(elf(fx.needs_a_rpath2), world.env())
    assert where(closure)["liba.so.1"] == ("rpath", str(fx.lib2 / "liba.so.1"))
    assert (fx.lib2 / "libb.so.1").exists()
    assert where(closure)["libb.so.1"] == (None, None)


def test_rpath_beats_the_library_path_and_runpath_loses_to_it(
        fx: Fixtures, world: World, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(fx.lib, other)
    env = world.env(entry_dirs=(other,))
    rpath = resolve_closure(elf(fx.needs_a_rpath), env)
    assert where(rpath)["liba.so.1"] == ("rpath", str(fx.lib / "liba.so.1"))
    runpath = resolve_closure(elf(fx.needs_a_runpath), env)
    assert where(runpath)["liba.so.1"] == ("entry", str(other / "liba.so.1"))


def test_library_path_order(fx: Fixtures, world: World, tmp_path: Path) -> None:
    """entry dirs, then LD_LIBRARY_PATH, then NIX_LD_LIBRARY_PATH, then the
    loader's own directory; never /lib or /usr/lib."""
    dirs = {name: tmp_path / name for name in ("entry", "ldlp", "nixld")}
    for d in dirs.values():
        shutil.copytree(fx.lib, d)

    def via_for(**kw: object) -> str | None:
        env = world.env(**kw)  # type: ignore[arg-type]
        return by_soname(resolve_closure(elf(fx.needs_a), env))["liba.so.1"].via

    assert via_for(entry_dirs=(dirs["entry"],), ld_library_path=str(dirs["ldlp"]),
                   nix_ld_library_path=str(dirs["nixld"])) == "entry"
    assert via_for(ld_library_path=f"{tmp_path}/none:{dirs['ldlp']}",
                   nix_ld_library_path=str(dirs["nixld"])) == "LD_LIBRARY_PATH"
    assert via_for(nix_ld_library_path=str(dirs["nixld"])) == "NIX_LD_LIBRARY_PATH"
    shutil.copy(fx.lib / "liba.so.1", world.loader_dir)
    shutil.copy(fx.lib / "libb.so.1", world.loader_dir)
    assert via_for() == "loader-dir"


def test_origin_is_the_real_directory_of_the_executable(
        fx: Fixtures, world: World, tmp_path: Path) -> None:
    """ld.so takes $ORIGIN of the executable from /proc/self/exe: symlinks resolved."""
    link = tmp_path / "elsewhere" / "tool"
    link.parent.mkdir()
    link.symlink_to(fx.needs_a_rpath)
    closure = resolve_closure(elf(link), world.env())
    assert where(closure)["liba.so.1"] == ("rpath", str(fx.lib / "liba.so.1"))
    assert by_soname(closure)["liba.so.1"].needed_by == [str(link)]


def test_origin_of_a_library_is_the_directory_it_was_found_in(
        fx: Fixtures, world: World) -> None:
    """For libraries ld.so takes $ORIGIN from the path it opened, not the
    realpath: lib3/liba.so.1 (RUNPATH $ORIGIN) reached through a symlink in
    linkdir/ looks for libb.so.1 in linkdir/."""
    assert (fx.lib3 / "libb.so.1").exists()
    linked = resolve_closure(elf(fx.needs_a), world.env(entry_dirs=(fx.linkdir,)))
    assert where(linked)["liba.so.1"] == ("entry", str(fx.lib3 / "liba.so.1"))
    assert where(linked)["libb.so.1"] == (None, None)


def test_origin_moves_with_a_copied_tree(fx: Fixtures, world: World, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(fx.root / "bin", copy / "bin")
    shutil.copytree(fx.lib, copy / "lib")
    closure = resolve_closure(elf(copy / "bin" / "needs_a_runpath"), world.env())
    assert where(closure)["liba.so.1"] == ("runpath", str(copy / "lib" / "liba.so.1"))


# --- candidates ld.so skips or stops at --------------------------------------------------


def test_wrong_arch_decoys_are_skipped(fx: Fixtures, world: World) -> None:
    need(fx.decoy32 and fx.decoyarm, "needs gcc -m32 and aarch64-linux-gnu-gcc")
    assert fx.decoy32 is not None and fx.decoyarm is not None
    env = world.env(entry_dirs=(fx.decoy32, fx.decoyarm, fx.lib))
    closure = resolve_closure(elf(fx.needs_a), env)
    libb = by_soname(closure)["libb.so.1"]
    assert (libb.via, libb.path) == ("entry", str(fx.lib / "libb.so.1"))
    assert libb.skipped == [
        f"{fx.decoy32}/libb.so.1: x86, 32-bit",
        f"{fx.decoyarm}/libb.so.1: aarch64, 64-bit",
    ]
    assert closure.complete


def test_only_wrong_arch_candidates_means_missing(fx: Fixtures, world: World) -> None:
    need(fx.decoy32, "needs gcc -m32")
    assert fx.decoy32 is not None
    env = world.env(entry_dirs=(fx.decoy32,), nix_ld_library_path=f"{fx.lib2}/none")
    closure = resolve_closure(elf(fx.needs_a_runpath), env)
    assert [n.soname for n in closure.missing] == ["libb.so.1"]
    assert by_soname(closure)["libb.so.1"].skipped == [f"{fx.decoy32}/libb.so.1: x86, 32-bit"]


def test_a_non_elf_candidate_stops_the_search(fx: Fixtures, world: World, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "liba.so.1").write_text("not a library\n")
    env = world.env(entry_dirs=(broken, fx.lib))
    closure = resolve_closure(elf(fx.needs_a), env)
    liba = by_soname(closure)["liba.so.1"]
    assert liba.path is None
    assert liba.error == f"{broken}/liba.so.1: not an ELF file"
    assert [n.soname for n in closure.missing] == ["liba.so.1"]


def test_32bit_binary_cannot_use_the_64bit_glibc(fx: Fixtures, world: World) -> None:
    need(fx.hello32, "needs gcc -m32")
    assert fx.hello32 is not None
    closure = resolve_closure(elf(fx.hello32), world.env())
    libc = by_soname(closure)["libc.so.6"]
    assert libc.path is None
    assert libc.skipped == [f"{world.loader_dir}/libc.so.6: x86-64, 64-bit"]
    assert closure.missing == []  # glibc's own: comes with a (32-bit) loader
    assert [n.soname for n in closure.unresolved_glibc] == ["libc.so.6"]
    assert not closure.complete


# --- versions ---------------------------------------------------------------------------


def test_missing_version_is_resolved_like_a_missing_library(fx: Fixtures, world: World) -> None:
    old = resolve_closure(elf(fx.needs_v2), world.env(nix_ld_library_path=str(fx.libv_v1)))
    libv = by_soname(old)["libv.so.1"]
    assert (libv.via, libv.path) == ("NIX_LD_LIBRARY_PATH", str(fx.libv_v1 / "libv.so.1"))
    assert libv.version_problems == [
        VersionProblem("libv.so.1", "V2", str(fx.needs_v2), "missing-version")]
    assert old.missing == [libv]
    assert not old.complete
    # An entry dir with the newer release comes first in the search: fixed.
    env = world.env(nix_ld_library_path=str(fx.libv_v1)).with_extra_dirs([str(fx.libv_v2)])
    new = resolve_closure(elf(fx.needs_v2), env)
    assert where(new)["libv.so.1"] == ("entry", str(fx.libv_v2 / "libv.so.1"))
    assert new.complete


def test_ld_so_takes_the_first_match_even_if_it_lacks_a_version(
        fx: Fixtures, world: World) -> None:
    env = world.env(entry_dirs=(fx.libv_v1, fx.libv_v2))
    closure = resolve_closure(elf(fx.needs_v2), env)
    assert where(closure)["libv.so.1"] == ("entry", str(fx.libv_v1 / "libv.so.1"))
    assert [p.version for p in closure.missing[0].version_problems] == ["V2"]


def test_newer_glibc_cannot_be_met_by_libraries(fx: Fixtures, world: World) -> None:
    closure = resolve_closure(elf(fx.needs_glibc99), world.env())
    libc = by_soname(closure)["libc.so.6"]
    assert (libc.via, libc.path) == ("loader-dir", str(world.loader_dir / "libc.so.6"))
    assert closure.glibc_problems == [
        VersionProblem("libc.so.6", "GLIBC_2.99", str(fx.needs_glibc99), "glibc-too-old")]
    assert closure.missing == []
    assert closure.real_loader_glibc == system_libc_release()
    assert not closure.complete


# --- the real loader ------------------------------------------------------------------------


def test_missing_real_loader_is_named_and_the_rest_still_reported(
        fx: Fixtures, tmp_path: Path) -> None:
    env = Search.from_environ({"NIX_LD": str(tmp_path / "no" / "ld.so"),
                                  "NIX_LD_LIBRARY_PATH": str(tmp_path)}, machine="x86_64")
    closure = resolve_closure(elf(fx.needs_a_rpath), env)
    assert not closure.real_loader_exists
    assert closure.search.loader.path == str(tmp_path / "no" / "ld.so")
    assert closure.search.loader.source == "NIX_LD"
    assert closure.real_loader_glibc is None
    assert where(closure)["liba.so.1"] == ("rpath", str(fx.lib / "liba.so.1"))
    assert where(closure)["libc.so.6"] == (None, None)
    assert closure.missing == []  # libc comes with the loader
    assert [n.soname for n in closure.unresolved_glibc] == ["libc.so.6"]
    assert not closure.complete


def test_a_real_loader_of_another_architecture_is_named(fx: Fixtures, tmp_path: Path) -> None:
    need(fx.decoyarm, "needs aarch64-linux-gnu-gcc")
    assert fx.decoyarm is not None
    loader = fx.decoyarm / "libb.so.1"  # any aarch64 ELF object will do
    env = Search.from_environ({"NIX_LD": str(loader), "NIX_LD_LIBRARY_PATH": str(fx.lib)},
                                 machine="x86_64")
    closure = resolve_closure(elf(fx.needs_a), env)
    assert closure.real_loader_exists
    assert closure.real_loader_problem == (
        f"{loader}: built for aarch64, 64-bit, but this binary is x86-64, 64-bit")
    assert where(closure)["liba.so.1"] == ("NIX_LD_LIBRARY_PATH", str(fx.lib / "liba.so.1"))
    assert not closure.complete


def test_a_real_loader_that_is_not_elf_is_named(fx: Fixtures, tmp_path: Path) -> None:
    loader = tmp_path / "ld.so"
    loader.write_text("#!/bin/sh\n")
    env = Search.from_environ({"NIX_LD": str(loader)}, machine="x86_64")
    closure = resolve_closure(elf(fx.needs_a), env)
    assert closure.real_loader_problem == f"{loader}: not an ELF file"
    assert [n.soname for n in closure.unresolved_glibc] == ["libc.so.6"]
    assert not closure.complete


def test_static_binaries_need_nothing(fx: Fixtures, tmp_path: Path) -> None:
    env = Search.from_environ({"NIX_LD": str(tmp_path / "none")}, machine="x86_64")
    for binary in (fx.static, fx.static_pie):
        closure = resolve_closure(elf(binary), env)
        assert closure.needed == [] and closure.complete


# --- cache ----------------------------------------------------------------------------------


def test_cache_is_shared_and_notices_changed_files(
        fx: Fixtures, world: World, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(fx.libv_v1, lib)
    cache = ElfCache()
    env = world.env(entry_dirs=(lib,))
    first = resolve_closure(elf(fx.needs_v2), env, cache=cache)
    assert first.missing
    shutil.copy(fx.libv_v2 / "libv.so.1", lib / "libv.so.1")  # a new release in place
    second = resolve_closure(elf(fx.needs_v2), env, cache=cache)
    assert second.complete


# --- the real ld.so as the oracle -------------------------------------------------------------

ORACLE_CASES = {
    "rpath chain": ("needs_a_rpath", ()),
    "runpath not inherited": ("needs_a_runpath", ()),
    "runpath voids rpath": ("needs_a_rpath2", ()),
    "library path": ("needs_a", ("lib",)),
    "origin of a library": ("needs_a", ("lib3",)),
    "origin of a symlinked library": ("needs_a", ("linkdir",)),
    "decoys skipped": ("needs_a", ("decoy32", "decoyarm", "lib")),
    "only decoys": ("needs_a_runpath", ("decoy32",)),
    "old version": ("needs_v2", ("libv_v1",)),
    "old version first": ("needs_v2", ("libv_v1", "libv_v2")),
    "new version": ("needs_v2", ("libv_v2",)),
}


def ld_so_trace(binary: Path, library_path: list[str]) -> tuple[dict[str, str | None],
                                                                 set[tuple[str, str]]]:
    """What Debian's ld.so itself loads (LD_TRACE_LOADED_OBJECTS, as ldd does;
    the program does not run): soname -> realpath or None, and unmet versions."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LD_TRACE_LOADED_OBJECTS": "1",
           "LD_VERBOSE": "1"}
    out = subprocess.run(
        [DEBIAN_LD, "--inhibit-cache", "--library-path", ":".join(library_path), str(binary)],
        env=env, capture_output=True, text=True, check=False, timeout=60).stdout
    found: dict[str, str | None] = {}
    versions: set[tuple[str, str]] = set()
    for line in out.splitlines():
        if m := re.fullmatch(r"\t(\S+) => (not found|(\S+) \(0x[0-9a-f]+\))", line):
            found[m.group(1)] = real(m.group(3)) if m.group(3) else None
        elif m := re.fullmatch(r"\t\t(\S+) \((\S+)\) => not found", line):
            versions.add((m.group(1), m.group(2)))
    return found, versions


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_agrees_with_the_real_ld_so(fx: Fixtures, world: World, tmp_path: Path,
                                   case: str) -> None:
    """On the fixtures' own libraries (none of them in Debian's default dirs,
    which the real ld.so also searches), our emulation and ld.so agree."""
    binary_name, dir_names = ORACLE_CASES[case]
    dirs = [getattr(fx, name) for name in dir_names]
    need(all(dirs), "needs gcc -m32 and aarch64-linux-gnu-gcc for the decoys")
    binary = getattr(fx, binary_name)
    found, versions = ld_so_trace(binary, [str(d) for d in dirs])
    closure = resolve_closure(elf(binary), world.env(
        ld_library_path=":".join(map(str, dirs)), nix_ld_library_path=str(tmp_path)))
    ours = {n.soname: n.path for n in closure.needed if not is_glibc_soname(n.soname)}
    theirs = {k: v for k, v in found.items() if not is_glibc_soname(k) and "vdso" not in k}
    assert ours == theirs
    assert {(p.soname, p.version) for p in closure.glibc_problems} == set()
    assert {(p.soname, p.version) for n in closure.missing for p in n.version_problems} == versions


# --- names with a slash, and needs met by an already-loaded object ----------------------------


def patched(fx: Fixtures, tmp_path: Path, *args: str) -> Path:
    patchelf = need_tool("patchelf")
    out = tmp_path / "bin" / "tool"
    out.parent.mkdir(exist_ok=True)
    shutil.copy(fx.needs_a, out)
    subprocess.run([patchelf, *args, str(out)], check=True, capture_output=True)
    return out


def test_a_needed_path_is_opened_as_it_is(fx: Fixtures, world: World, tmp_path: Path) -> None:
    tool = patched(fx, tmp_path, "--replace-needed", "liba.so.1", f"{fx.lib}/liba.so.1")
    closure = resolve_closure(elf(tool), world.env())
    assert where(closure)[f"{fx.lib}/liba.so.1"] == ("path", str(fx.lib / "liba.so.1"))
    # liba's own need goes through the search (and finds nothing here).
    assert where(closure)["libb.so.1"] == (None, None)


def test_a_needed_path_with_origin(fx: Fixtures, world: World, tmp_path: Path) -> None:
    shutil.copytree(fx.lib, tmp_path / "lib")
    tool = patched(fx, tmp_path, "--replace-needed", "liba.so.1", "$ORIGIN/../lib/liba.so.1")
    closure = resolve_closure(elf(tool), world.env())
    assert where(closure)["$ORIGIN/../lib/liba.so.1"] == ("path", str(tmp_path / "lib/liba.so.1"))


def test_a_soname_already_loaded_is_reused(fx: Fixtures, world: World, tmp_path: Path) -> None:
    """The program loads libb by path first; liba's need of `libb.so.1` then
    matches that object's DT_SONAME, without a search."""
    tool = patched(fx, tmp_path, "--add-needed", f"{fx.lib2}/libb.so.1")
    assert elf(tool).needed[0] == f"{fx.lib2}/libb.so.1"
    closure = resolve_closure(elf(tool), world.env(entry_dirs=(fx.lib,)))
    assert where(closure)["libb.so.1"] == ("loaded", str(fx.lib2 / "libb.so.1"))
    assert where(closure)["liba.so.1"] == ("entry", str(fx.lib / "liba.so.1"))
    found, _ = ld_so_trace(tool, [str(fx.lib)])
    assert found["liba.so.1"] == str(fx.lib / "liba.so.1")
    assert "libb.so.1" not in found  # the real ld.so did not load lib/libb.so.1 either
