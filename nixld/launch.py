"""Run a binary with its resolved libraries through the real loader, as the shim would.

For machines with no shim installed: `ld.so --library-path LIST --argv0 PATH
PATH ARGS...`, with LIST and the real loader taken from the one search model
(`nixld.search`). `--library-path` is the loader's own option, so the
program's children do not inherit the list (as with the shim).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nixld import paths
from nixld.errors import BadInputError, NixldError
from nixld.search import AppliedEntry, Search, elf_machine, foreign_i686
from nixld.text import safe


def usable_loader(search: Search) -> str:
    """The loader's path, or one line saying why `run` cannot use it."""
    loader, i686 = search.loader, foreign_i686(search.system)
    if loader.from_variable:
        if not os.path.isfile(loader.path):
            what = "a 32-bit glibc loader (ld-linux.so.2)" if i686 else \
                "the real dynamic loader (ld-linux)"
            raise NixldError(f"{loader.source}={safe(loader.path)} is not a file: point it at "
                             f"{what}")
        if loader.problem:
            raise NixldError(f"{loader.source}={safe(loader.path)}: {loader.problem}")
        return loader.path
    if os.path.isfile(loader.path) and not loader.problem:
        return loader.path
    if i686:
        raise NixldError(f"no 32-bit loader: NIX_LD_i686_linux is unset, {safe(loader.path)} is "
                         "missing and no resolution recorded one (run `nixld-hook resolve` on "
                         "the program, which builds pkgsi686Linux.glibc)")
    default = os.fspath(paths.NIX_LD_DEFAULT)
    raise NixldError(f"no real loader: {default} is missing and NIX_LD is unset "
                     "(enable programs.nix-ld on NixOS, or set NIX_LD)")


@dataclass(frozen=True)
class Launch:
    loader: str
    library_path: str
    argv: list[str]  # for os.execv(loader, argv)
    stale: tuple[AppliedEntry, ...]  # entries that matched the path but not the file


def locate(name: str, environ: Mapping[str, str]) -> str:
    """A name with no `/` is looked up in PATH, as the shell does (then in `.`)."""
    if "/" in name:
        return name
    found = shutil.which(name, path=environ.get("PATH", os.defpath))
    return found if found is not None else name


def prepare(name: str, args: Sequence[str], environ: Mapping[str, str]) -> Launch:
    """The loader command line; argv[0] is `name` as given, as a shell would pass it."""
    binary = locate(name, environ)
    if not os.path.isfile(binary):
        raise BadInputError(f"{safe(binary)}: no such file")
    if not os.access(binary, os.X_OK):
        raise BadInputError(f"{safe(binary)}: not executable")
    search = Search.for_binary(binary, environ, machine=elf_machine(binary))
    loader = usable_loader(search)
    lib_path = search.library_path_string()
    argv = [loader, "--library-path", lib_path, "--argv0", name, binary, *args]
    return Launch(loader, lib_path, argv, search.stale)
