"""The nixpkgs-like providers, staged from Debian library packages, and the
traps of the real nix-index database staged beside them: an FHS env holding
copies of almost everything, an application bundling copies, a non-top-level
copy, an older soname lacking a symbol version."""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from nixld import elf
from nixld.demo.catalog import (
    BUNDLED_BY_APP,
    BUNDLING_APPS,
    DEV_OUTPUTS,
    FHS_LEAVES_OUT,
    NON_TOPLEVEL_COPIES,
    ONLY_NON_TOPLEVEL,
    TRAP_SEED,
    Provider,
)
from nixld.demo.debian import copy_lib, deb_version, extract_deb, multiarch_libs
from nixld.demo.store import Staged


def store_name(provider: Provider, version: str) -> str:
    base = f"{provider.pname}-{version}"
    return base if provider.output == "out" else f"{base}-{provider.output}"


def stage_providers(providers: Sequence[Provider], debs: Mapping[str, Path],
                    staging: Path) -> tuple[list[Staged], dict[str, Path]]:
    """One staged tree per provider; also every library by soname (for checks)."""
    staged: list[Staged] = []
    libs: dict[str, Path] = {}
    for provider in providers:
        version = deb_version(debs[provider.debs[0]])
        store_dir = staging / "store" / store_name(provider, version)
        lib = store_dir / "lib"
        lib.mkdir(parents=True)
        for pkg in provider.debs:
            tree = extract_deb(debs[pkg], staging / "deb" / pkg)
            for src in multiarch_libs(tree):
                copy_lib(src, lib)
        for so in lib.iterdir():
            libs.setdefault(so.name, so)
        toplevel = provider.pname != ONLY_NON_TOPLEVEL
        staged.append(Staged(store_dir, provider.attr, provider.output, toplevel, "provider"))
    return staged, libs


class _TrapStore:
    """Where the traps are staged: apart from the providers, as the zlib copy
    has a provider's name."""

    def __init__(self, staging: Path) -> None:
        self.root = staging / "traps"

    def lib(self, name: str) -> Path:
        lib = self.root / name / "lib"
        lib.mkdir(parents=True)
        return lib


def _fhs_env(traps: _TrapStore, providers: Sequence[Staged]) -> Staged:
    """A top-level FHS environment whose lib/ holds copies of almost everything."""
    fhs = traps.lib("steam-run-fhs")
    for provider in providers:
        for src in sorted((provider.dir / "lib").iterdir()):
            if not src.name.startswith(FHS_LEAVES_OUT) and not (fhs / src.name).exists():
                copy_lib(src, fhs)
    return Staged(fhs.parent, "steam-run", "out", True, "fhs")


def _bundling_app(traps: _TrapStore, libs: Mapping[str, Path]) -> Staged:
    """An application bundling copies of a few common libraries next to its own."""
    app = traps.lib("zoom-5.16.10.668")
    for soname in BUNDLED_BY_APP:
        if soname in libs:
            shutil.copyfile(libs[soname].resolve(), app / soname)
    (app.parent / "bin").mkdir()
    (app.parent / "bin/zoom").write_text("#!/bin/sh\necho zoom\n")
    (app.parent / "bin/zoom").chmod(0o555)
    return Staged(app.parent, "zoom-us", "out", True, "bundle")


def _non_toplevel_zlib(traps: _TrapStore, providers: Sequence[Staged],
                       libs: Mapping[str, Path]) -> list[Staged]:
    """A non-top-level copy of a library a top-level package also provides."""
    zlib = next((p.dir.name for p in providers if p.attr == "zlib"), None)
    if not zlib or "libz.so.1" not in libs:
        return []
    dup = traps.lib(zlib)
    shutil.copyfile(libs["libz.so.1"].resolve(), dup / "libz.so.1")
    (dup.parent / "nix-support").mkdir()
    (dup.parent / "nix-support/propagated-build-inputs").write_text("\n")
    return [Staged(dup.parent, "zlib", "out", False, "non-toplevel")]


def _bundling_apps(traps: _TrapStore, libs: Mapping[str, Path]) -> list[Staged]:
    """Applications (one a `-bin` package) shipping 3 to 10 copies of the
    providers' libraries in lib/, with bin/ and some with share/applications/,
    opt/ or a library of their own: each looks like the best single provider
    of whatever it copies."""
    rng = random.Random(TRAP_SEED)
    pool = sorted(n for n in libs if re.search(r"\.so\.\d+$", n)
                  and not n.startswith(FHS_LEAVES_OUT))
    out: list[Staged] = []
    for i, name in enumerate(BUNDLING_APPS):
        lib = traps.lib(name)
        copies = rng.sample(pool, min(len(pool), rng.randint(3, 10)))
        for soname in copies:
            shutil.copyfile(libs[soname].resolve(), lib / soname)
        pname = name.rsplit("-", 1)[0]
        if i % 2:
            shutil.copyfile(libs[copies[0]].resolve(), lib / f"lib{pname.replace('-', '')}.so")
        extras = [f"bin/{pname}", *([f"share/applications/{pname}.desktop"] if i % 2 == 0 else []),
                  *([f"opt/{pname}/resources.pak"] if i % 3 == 0 else [])]
        for extra in extras:
            (lib.parent / extra).parent.mkdir(parents=True, exist_ok=True)
            (lib.parent / extra).write_text(f"{pname}\n")
        out.append(Staged(lib.parent, pname, "out", True, "bundle"))
    return out


def _non_toplevel_copies(traps: _TrapStore, providers: Sequence[Staged]) -> list[Staged]:
    """Non-top-level copies of some providers (build inputs of something else)."""
    out: list[Staged] = []
    for provider in providers:
        if provider.attr in NON_TOPLEVEL_COPIES:
            lib = traps.lib(provider.dir.name)
            for src in sorted((provider.dir / "lib").iterdir()):
                if src.is_file() and not src.is_symlink():
                    shutil.copyfile(src, lib / src.name)
            # Another store path than the provider's (same name, other contents).
            (lib.parent / "nix-support").mkdir()
            (lib.parent / "nix-support/propagated-build-inputs").write_text("\n")
            out.append(Staged(lib.parent, provider.attr, provider.output, False, "non-toplevel"))
    return out


def _dev_outputs(traps: _TrapStore, providers: Sequence[Staged]) -> list[Staged]:
    """`dev` outputs with pkg-config files and headers, for some providers only."""
    out: list[Staged] = []
    for provider in providers:
        pcs = DEV_OUTPUTS.get(provider.attr)
        if pcs is None or provider.attr in {s.attr for s in out}:
            continue
        name = provider.dir.name.removesuffix(f"-{provider.output}")
        lib = traps.lib(f"{name}-dev")
        (lib / "pkgconfig").mkdir()
        for pc in pcs:
            (lib / "pkgconfig" / f"{pc}.pc").write_text(f"Name: {pc}\n")
        (lib.parent / "include").mkdir()
        (lib.parent / "include" / f"{provider.attr}.h").write_text("/* */\n")
        out.append(Staged(lib.parent, provider.attr, "dev", True, "dev"))
    return out


def _libfoo_releases(traps: _TrapStore, fixture_libs: Mapping[str, Path]) -> list[Staged]:
    """libfoo: the old release (lacks FOO_1.2; also holds libbar, so it covers
    more), the new one, and libbar alone."""
    if not fixture_libs:
        return []
    old = traps.lib("libfoo-1.1")
    shutil.copyfile(fixture_libs["libfoo-1.1"] / "libfoo.so.1", old / "libfoo.so.1")
    shutil.copyfile(fixture_libs["libbar-1.0"] / "libbar.so.1", old / "libbar.so.1")
    out = [Staged(old.parent, "libfoo", "out", True, "old-version")]
    for name, attr in (("libfoo-1.2", "libfoo_1_2"), ("libbar-1.0", "libbar")):
        shutil.copytree(fixture_libs[name], traps.lib(name), dirs_exist_ok=True)
        out.append(Staged(traps.root / name, attr, "out", True, "fixture"))
    return out


def stage_traps(providers: Sequence[Staged], libs: Mapping[str, Path],
                fixture_libs: Mapping[str, Path], staging: Path) -> list[Staged]:
    """The phenomena of the real database (see the module docstring)."""
    traps = _TrapStore(staging)
    return [_fhs_env(traps, providers), _bundling_app(traps, libs),
            *_bundling_apps(traps, libs),
            *_non_toplevel_zlib(traps, providers, libs),
            *_non_toplevel_copies(traps, providers), *_dev_outputs(traps, providers),
            *_libfoo_releases(traps, fixture_libs)]


def needed_of(path: Path) -> list[str]:
    """DT_NEEDED of an ELF file (read, never run)."""
    return list(elf.read_library(path, symbols=False).needed)


def uncovered(binary: Path, libs: Mapping[str, Path]) -> list[str]:
    """The sonames in `binary`'s closure that no library in `libs` provides."""
    seen: set[str] = set()
    missing: list[str] = []
    todo = needed_of(binary)
    while todo:
        soname = todo.pop()
        if soname in seen:
            continue
        seen.add(soname)
        if soname in libs:
            todo += needed_of(libs[soname])
        else:
            missing.append(soname)
    return sorted(missing)
