"""32-bit x86 programs on a 64-bit machine: their real loader and their libraries.

The loader emulation is the same for them (nixld.loader, with `$PLATFORM`
i686 and `$LIB` lib); what differs is where things come from:

- the real loader: `NIX_LD_i686_linux`, else a 32-bit glibc (`pkgsi686Linux.glibc`)
  built from the same nixpkgs that builds the libraries, installed in nixld's
  profile (a gc root) and recorded in the binary's entry as a package;
- the libraries: the 64-bit database's owners mapped to `pkgsi686Linux`
  (nixld.pkgsi686), built from the user's nixpkgs and checked to be 32-bit x86
  files with the soname before they enter an entry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixld.errors import BadInputError, NixError
from nixld.pkgsi686 import GLIBC_ATTR, LOADER_NAME, I686Choice, Mapped
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.elf import ElfInfo
    from nixld.package import Package

MACHINE = "i686"  # uname's name, as Search.from_environ takes it
LOADER_SOURCE = "pkgsi686Linux.glibc"  # how reports name a loader found this way


def is_i686(info: ElfInfo) -> bool:
    """A 32-bit x86 program (what pkgsi686Linux serves)."""
    return info.machine == "EM_386" and info.elf_class == 32


def loader_of(glibc_store_path: str) -> str:
    return f"{glibc_store_path}/lib/{LOADER_NAME}"


def recorded_loader(packages: Iterable[Package]) -> tuple[str, str] | None:
    """The 32-bit loader an entry recorded (its pkgsi686Linux.glibc package)."""
    for ref in packages:
        if ref.attr == GLIBC_ATTR and os.path.isfile(loader_of(ref.store_path)):
            return loader_of(ref.store_path), LOADER_SOURCE
    return None


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class Built:
    """A pkgsi686Linux package built from the user's nixpkgs, checked."""

    mapped: Mapped
    store_path: str
    sonames: tuple[str, ...]  # those of the job it really provides


def check_library(store_path: str, soname: str) -> str | None:
    """None if `store_path`/lib/`soname` is a 32-bit x86 library of that soname,
    else why not (read, never run)."""
    from nixld.elf import read_library

    file = os.path.join(store_path, "lib", soname)
    if not os.path.isfile(file):
        return f"has no lib/{safe(soname)}"
    try:
        info = read_library(file, symbols=False)
    except BadInputError as err:
        return str(err)
    if not is_i686(info):
        return f"lib/{safe(soname)} is {info.describe_arch()}, not x86, 32-bit"
    return None  # ld.so opens it by this file name; its DT_SONAME is not checked


Say = Callable[[str], None]
BuildAttr = Callable[[str, str], str]


def _nix_build(attr: str, output: str) -> str:
    from nixld.nix import build_attr

    return build_attr(attr, output)


def build_first(choice: I686Choice, sonames: Iterable[str], say: Say,
                build: BuildAttr | None = None) -> Built | None:
    """Build the first of `choice`'s packages that exists and provides the
    soname, saying why each one before it was passed over."""
    build = build or _nix_build
    wanted = list(dict.fromkeys([choice.soname, *sonames]))
    for n, mapped in enumerate(choice.tries):
        nxt = choice.tries[n + 1].attr if n + 1 < len(choice.tries) else None
        then = f"; trying {safe(nxt)} next" if nxt else ""
        try:
            store_path = build(mapped.attr, mapped.output)
        except NixError as err:
            say(f"{safe(mapped.attr)} ({mapped.output}) for {safe(choice.soname)}: "
                f"{_build_failure(mapped, err)}{then}")
            continue
        problem = check_library(store_path, choice.soname)
        if problem:
            say(f"{safe(mapped.attr)}: {safe(store_path)} {problem}{then}")
            continue
        have = tuple(s for s in wanted if check_library(store_path, s) is None)
        return Built(mapped, store_path, have)
    return None


def _build_failure(mapped: Mapped, err: NixError) -> str:
    """Nix's words, or plainer ones for the common case of a missing attribute."""
    text = str(err)
    if "attribute" in text and "not found" in text:
        return f"your nixpkgs has no {safe(mapped.attr)} (from {safe(mapped.owner_attr)})"
    return text


def build_glibc(build: BuildAttr | None = None) -> str:
    """pkgsi686Linux.glibc from the user's nixpkgs: the 32-bit real loader's store path."""
    build = build or _nix_build
    store_path = build(GLIBC_ATTR, "out")
    loader = loader_of(store_path)
    if not os.path.isfile(loader):
        raise NixError(f"{GLIBC_ATTR} built {safe(store_path)}, which has no lib/{LOADER_NAME}")
    return store_path
