"""Debian packages: downloaded once with `apt-get download`, unpacked with
`dpkg-deb`, their multiarch libraries copied into store-path-to-be trees."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from nixld.demo.catalog import MULTIARCH
from nixld.demo.tools import WorldError, run_tool


def _cached_deb(debs_dir: Path, package: str) -> Path | None:
    found = sorted(debs_dir.glob(f"{package}_*_amd64.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def fetch_debs(packages: Iterable[str], debs_dir: Path) -> dict[str, Path]:
    """The .deb of each package: from the cache, else `apt-get download`."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    wanted = sorted(set(packages))
    missing = [p for p in wanted if _cached_deb(debs_dir, p) is None]
    if missing:
        try:
            run_tool(["apt-get", "download", *missing], cwd=debs_dir)
        except WorldError as err:
            raise WorldError(f"{err} (is `apt-get update` done?)") from None
    found = {p: _cached_deb(debs_dir, p) for p in wanted}
    lost = [p for p, deb in found.items() if deb is None]
    if lost:
        raise WorldError(f"apt-get download gave no .deb for: {', '.join(lost)}")
    return {p: deb for p, deb in found.items() if deb is not None}


def deb_version(deb: Path) -> str:
    """The upstream version in a .deb's file name: 1:1.2.13.dfsg-1 -> 1.2.13."""
    version = deb.name.split("_")[1].replace("%3a", ":")
    version = version.split(":")[-1].rsplit("-", 1)[0]
    for cut in ("+dfsg", ".dfsg", "~", "+"):
        version = version.split(cut)[0]
    return version


def extract_deb(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    run_tool(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


def multiarch_libs(tree: Path) -> list[Path]:
    """The .so files and symlinks directly in a package's multiarch lib dir(s)."""
    found = []
    for sub in (f"lib/{MULTIARCH}", f"usr/lib/{MULTIARCH}"):
        libdir = tree / sub
        if libdir.is_dir():
            found += [p for p in sorted(libdir.iterdir())
                      if ".so" in p.name and (p.is_symlink() or p.is_file())]
    return found


def copy_lib(src: Path, lib_dir: Path) -> None:
    """Copy a library file, or re-make a symlink as a relative one inside lib/."""
    dest = lib_dir / src.name
    if src.is_symlink():
        dest.symlink_to(os.path.basename(os.readlink(src)))
    else:
        shutil.copyfile(src, dest)
        dest.chmod(0o555 if os.access(src, os.X_OK) else 0o444)
