"""Run a binary with its resolved libraries through the real loader, as the shim would.

For machines with no shim installed: `ld.so --library-path LIST --argv0 PATH
PATH ARGS...`, with LIST composed exactly as shim/FORMAT.md says and the real
loader found as the shim finds it. `--library-path` is the loader's own option,
so the program's children do not inherit the list (as with the shim).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nixld import entries, paths
from nixld.errors import BadInputError, NixldError
from nixld.text import safe

# uname's machine -> the Nix system name with `-` as `_` (FORMAT.md).
_SYSTEMS = {"x86_64": "x86_64_linux", "amd64": "x86_64_linux", "i686": "i686_linux",
            "i386": "i686_linux",
            "aarch64": "aarch64_linux", "arm64": "aarch64_linux"}


I686 = "i686_linux"


def is_i686_file(path: str) -> bool:
    """ELFCLASS32 and EM_386, from the first 20 bytes (cheap: `run` is a hot path)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[:5] == b"\x7fELF\x01" and head[5] == 1 and \
        int.from_bytes(head[18:20], "little") == 3


def system_suffix(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return _SYSTEMS.get(machine, f"{machine}_linux")


def real_loader(environ: Mapping[str, str]) -> str:
    """`NIX_LD_<system>`, then `NIX_LD`, then nix-ld's default; must exist."""
    for var in (f"NIX_LD_{system_suffix()}", "NIX_LD"):
        value = environ.get(var, "")
        if value:
            if not os.path.isfile(value):
                raise NixldError(f"{var}={safe(value)} is not a file: point it at the real "
                                 "dynamic loader (ld-linux)")
            return value
    default = os.fspath(paths.NIX_LD_DEFAULT)
    if not os.path.isfile(default):
        raise NixldError(f"no real loader: {default} is missing and NIX_LD is unset "
                         "(enable programs.nix-ld on NixOS, or set NIX_LD)")
    return default


@dataclass(frozen=True)
class Launch:
    loader: str
    library_path: str
    argv: list[str]  # for os.execv(loader, argv)
    stale: list[entries.Entry]  # entries that matched the path but not the file


def real_loader_i686(environ: Mapping[str, str], packages: Sequence[entries.PackageRef]) -> str:
    """A 32-bit x86 program's: `NIX_LD_i686_linux` (never the 64-bit `NIX_LD`),
    then the 32-bit glibc its entry recorded, then the NixOS module's; must exist."""
    from nixld import i686

    value = environ.get("NIX_LD_i686_linux", "")
    if value:
        if not os.path.isfile(value):
            raise NixldError(f"NIX_LD_i686_linux={safe(value)} is not a file: point it at a "
                             "32-bit glibc loader (ld-linux.so.2)")
        return value
    recorded = i686.recorded_loader(packages)
    if recorded is not None:
        return recorded[0]
    default = os.fspath(paths.NIX_LD_I686_DEFAULT)
    if not os.path.isfile(default):
        raise NixldError(f"no 32-bit loader: NIX_LD_i686_linux is unset, {default} is missing "
                         "and no resolution recorded one (run `nixld-hook resolve` on the "
                         "program, which builds pkgsi686Linux.glibc)")
    return default


def library_path(binary: str, environ: Mapping[str, str], *, system: str | None = None,
                 ) -> tuple[str, list[entries.Entry]]:
    """E_user : E_sys : LD_LIBRARY_PATH : NIX_LD_LIBRARY_PATH(_<system>) or the default."""
    parts: list[str] = []
    stale = []
    for entry, valid in entries.entries_for(binary):
        if valid:
            parts.extend(entry.dirs)
        else:
            stale.append(entry)
    parts.extend(environ.get("LD_LIBRARY_PATH", "").split(":"))
    system = system or system_suffix()
    default = paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT if system == I686 \
        else paths.NIX_LD_LIBRARY_PATH_DEFAULT
    nix_ld = environ.get(f"NIX_LD_LIBRARY_PATH_{system}") or \
        environ.get("NIX_LD_LIBRARY_PATH") or default
    parts.extend(nix_ld.split(":"))
    return ":".join(p for p in parts if p), stale


def _valid_packages(binary: str) -> list[entries.PackageRef]:
    return [p for entry, valid in entries.entries_for(binary) if valid for p in entry.packages]


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
    system = I686 if is_i686_file(binary) and system_suffix() != I686 else None
    lib_path, stale = library_path(binary, environ, system=system)
    loader = real_loader_i686(environ, _valid_packages(binary)) if system \
        else real_loader(environ)
    argv = [loader, "--library-path", lib_path, "--argv0", name, binary, *args]
    return Launch(loader, lib_path, argv, stale)
