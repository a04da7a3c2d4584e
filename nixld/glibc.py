"""What glibc itself provides: sonames that come with the loader, and its version.

On NixOS these libraries live next to the real loader (glibc's `lib/`), so a
binary needing them never needs a package: a missing one means the loader is
missing, and a missing *version* of one means the system glibc is too old,
which adding libraries cannot fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Every shared object glibc 2.3x installs under lib/, by soname.
GLIBC_SONAMES: frozenset[str] = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libresolv.so.2", "libutil.so.1", "libanl.so.1", "libmvec.so.1", "libnsl.so.1",
    "libBrokenLocale.so.1", "libc_malloc_debug.so.0", "libthread_db.so.1",
    "libmemusage.so", "libpcprofile.so", "libSegFault.so", "libcidn.so.1",
    "libnss_files.so.2", "libnss_dns.so.2", "libnss_compat.so.2", "libnss_db.so.2",
    "libnss_hesiod.so.2", "libnss_nis.so.2", "libnss_nisplus.so.2",
    # The loader, per architecture (its soname, as libc.so.6 names it).
    "ld-linux-x86-64.so.2", "ld-linux-x32.so.2", "ld-linux.so.2", "ld-linux-aarch64.so.1",
    "ld-linux-aarch64_be.so.1", "ld-linux-armhf.so.3", "ld-linux.so.3",
    "ld-linux-riscv64-lp64d.so.1", "ld-linux-riscv64-lp64.so.1", "ld64.so.2", "ld64.so.1",
    "ld.so.1", "ld-linux-loongarch-lp64d.so.1", "ld-linux-mipsn8.so.1",
})

_LOADER_NAME = re.compile(r"ld-linux[-.\w]*\.so\.\d+|ld64\.so\.\d+|ld\.so\.\d+")
_GLIBC_VERSION = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")


def is_glibc_soname(soname: str) -> bool:
    """True for a library that comes with glibc (and so with the loader)."""
    if soname in GLIBC_SONAMES:
        return True
    if soname.startswith("libnss_") and soname.endswith(".so.2"):
        return True
    return bool(_LOADER_NAME.fullmatch(soname))


def is_glibc_version(version: str) -> bool:
    """`GLIBC_2.38`, `GLIBC_PRIVATE`, `GLIBC_ABI_DT_RELR`: versions only glibc defines."""
    return version.startswith("GLIBC_")


def version_key(version: str) -> tuple[int, ...]:
    """`2.38` -> (2, 38), for comparing release numbers."""
    return tuple(int(part) for part in version.split("."))


def glibc_release(version_defs: Iterable[str]) -> str | None:
    """The newest `GLIBC_x.y` a libc defines, e.g. "2.36".

    Why libc.so.6 rather than ld.so: every glibc release adds a version node to
    libc.so.6, while ld.so only gains one when its own interface changes.
    """
    releases = [m.group(1) for d in version_defs if (m := _GLIBC_VERSION.fullmatch(d))]
    return max(releases, key=version_key) if releases else None
