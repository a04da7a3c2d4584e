"""The NixOS-like loader: a glibc store path made from Debian's libc6 whose
ld.so searches only its own lib/ (its compiled-in system directories and its
/etc/ld.so.cache name overwritten at the same length), used as NIX_LD."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from nixld.demo.catalog import MULTIARCH
from nixld.demo.debian import copy_lib, deb_version, extract_deb, multiarch_libs
from nixld.demo.tools import WorldError

# glibc's compiled-in search directories and its cache file, in ld.so's rodata.
LD_SO_SYSTEM_DIRS = (f"/lib/{MULTIARCH}/", f"/usr/lib/{MULTIARCH}/", "/lib/", "/usr/lib/")
LD_SO_CACHE = "/etc/ld.so.cache"
LOADER_LINK_PREFIX = "/tmp/nixld-ld-"  # + 7 chars = len("/lib/x86_64-linux-gnu")
LD_SO_NAME = "ld-linux-x86-64.so.2"


def _nowhere(length: int) -> bytes:
    """A directory name of exactly `length` bytes (ending in /) that does not exist."""
    return (("/.nixld-no-such-dir" + "-" * length)[:length - 1] + "/").encode()


def loader_link_for(ld_so: bytes) -> str:
    """The symlink the patched ld.so searches first. Named from the unpatched
    ld.so's content: the store path's hash cannot be used (it depends on the
    patched ld.so, which contains this name)."""
    name = LOADER_LINK_PREFIX + hashlib.sha256(ld_so).hexdigest()[:7]
    assert len(name) == len(LD_SO_SYSTEM_DIRS[0]) - 1
    return name


def _replace_all(data: bytes, old: bytes, new: bytes, *, nul_before: bool) -> tuple[bytes, int]:
    """Replace every occurrence of `old` by `new` (same length); with
    `nul_before`, only where `old` starts a C string."""
    assert len(old) == len(new)
    out, count, start = bytearray(data), 0, 0
    while (at := data.find(old, start)) >= 0:
        if not nul_before or at == 0 or data[at - 1] == 0:
            out[at:at + len(old)] = new
            count += 1
        start = at + 1
    return bytes(out), count


def patch_ld_so(data: bytes, link: str) -> bytes:
    """Debian's ld.so made NixOS-like: it searches only `link`/ (-> the store
    path's lib/), and has no /etc/ld.so.cache. glibc keeps the system
    directories as one block of C strings with a table of their lengths beside
    it; every string keeps its length, so the table stays right."""
    rest = LD_SO_SYSTEM_DIRS[1:]
    old_dirs = b"".join(d.encode() + b"\0" for d in LD_SO_SYSTEM_DIRS)
    new_dirs = (link + "/").encode() + b"\0" + b"".join(
        _nowhere(len(d)) + b"\0" for d in rest)
    data, count = _replace_all(data, old_dirs, new_dirs, nul_before=False)
    if count == 0:
        raise WorldError("ld.so has no system directories to patch (not Debian's glibc?)")
    cache = LD_SO_CACHE.encode() + b"\0"
    data, count = _replace_all(data, cache, _nowhere(len(LD_SO_CACHE))[:-1] + b"c\0",
                               nul_before=True)
    if count == 0:
        raise WorldError(f"ld.so has no {LD_SO_CACHE} to patch (not Debian's glibc?)")
    return data


def ensure_loader_link(link: str, glibc: str) -> None:
    """(Re)create the same-length symlink; /tmp may have been cleaned."""
    target = f"{glibc}/lib"
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = f"{link}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def build_glibc(libc6: Path, staging: Path) -> tuple[Path, str]:
    """Stage glibc-VERSION/lib from libc6 with a patched ld.so; return (dir, link)."""
    tree = extract_deb(libc6, staging / "deb-libc6")
    store_dir = staging / f"glibc-{deb_version(libc6)}"
    lib = store_dir / "lib"
    lib.mkdir(parents=True)
    for src in multiarch_libs(tree):
        copy_lib(src, lib)
    ld_so = lib / LD_SO_NAME
    original = ld_so.read_bytes()
    link = loader_link_for(original)
    ld_so.chmod(0o755)
    ld_so.write_bytes(patch_ld_so(original, link))
    ld_so.chmod(0o555)
    return store_dir, link
