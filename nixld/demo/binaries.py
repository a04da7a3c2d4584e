"""The world's binaries: unmodified foreign ones from Debian packages, and
the copies the hooks' failure cases need (patchelf'd interpreters)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from nixld.demo.catalog import Foreign
from nixld.demo.debian import extract_deb
from nixld.demo.tools import WorldError, run_tool

# The interpreter the no-interpreter copies point at: like
# /lib64/ld-linux-x86-64.so.2 on NixOS, it does not exist.
MISSING_INTERPRETER = "/lib64/nixld-world-missing/ld-linux-x86-64.so.2"


def prepare_foreign(foreign: Sequence[Foreign], debs: Mapping[str, Path],
                    staging: Path, bin_dir: Path) -> dict[str, Path]:
    """Each foreign binary copied out of its package into `bin_dir`."""
    bin_dir.mkdir(parents=True)
    out = {}
    for f in foreign:
        tree = extract_deb(debs[f.deb], staging / "deb" / f.deb)
        src = next((tree / d / f.name for d in ("usr/bin", "bin")
                    if (tree / d / f.name).is_file()), None)
        if src is None:
            raise WorldError(f"package {f.deb} has no bin/{f.name}")
        shutil.copy2(src, bin_dir / f.name)
        out[f.name] = bin_dir / f.name
    return out


def no_interp_copies(binaries: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    """Copies whose interpreter does not exist (no shim installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, path in binaries.items():
        copy = dest / name
        shutil.copy2(path, copy)
        run_tool(["patchelf", "--set-interpreter", MISSING_INTERPRETER, str(copy)])
        out[name] = copy
    return out


def _own_shim(shim: Path, dest: Path) -> Path:
    """The world's copy of the shim, replaced when the built one changed."""
    own = dest / "nixld-shim"
    if not own.exists() or own.read_bytes() != shim.read_bytes():
        tmp = dest / ".nixld-shim.tmp"
        shutil.copyfile(shim, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, own)
    return own


def shim_copies(binaries: Mapping[str, Path], shim: Path, dest: Path) -> dict[str, Path]:
    """Copies whose interpreter is the world's copy of the shim (redone if it changed)."""
    dest.mkdir(parents=True, exist_ok=True)
    own = _own_shim(shim, dest)
    out = {}
    for name, path in binaries.items():
        copy = dest / name
        if not copy.exists() or copy.stat().st_mtime < own.stat().st_mtime:
            tmp = dest / f".{name}.tmp"
            shutil.copy2(path, tmp)
            run_tool(["patchelf", "--set-interpreter", str(own), str(tmp)])
            os.replace(tmp, copy)
        out[name] = copy
    return out
