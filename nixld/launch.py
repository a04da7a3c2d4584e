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
from nixld.search import AppliedEntry, RealLoader, Search, elf_machine
from nixld.text import safe


def usable_loader(loader: RealLoader) -> str:
    """The loader's path, or one line saying why `run` cannot use it."""
    if loader.from_variable:
        if not os.path.isfile(loader.path):
            raise NixldError(f"{loader.source}={safe(loader.path)} is not a file: point it at "
                             "the real dynamic loader (ld-linux)")
        if loader.problem:
            raise NixldError(f"{loader.source}={safe(loader.path)}: {loader.problem}")
        return loader.path
    if not os.path.isfile(loader.path) or loader.problem:
        default = os.fspath(paths.NIX_LD_DEFAULT)
        raise NixldError(f"no real loader: {default} is missing and NIX_LD is unset "
                         "(enable programs.nix-ld on NixOS, or set NIX_LD)")
    return loader.path


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
    loader = usable_loader(search.loader)
    lib_path = search.library_path_string()
    argv = [loader, "--library-path", lib_path, "--argv0", name, binary, *args]
    return Launch(loader, lib_path, argv, search.stale)
