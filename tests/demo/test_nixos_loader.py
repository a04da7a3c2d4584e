"""The NixOS-like loader: Debian's ld.so patched at the same length to search
only the store path's lib/ (nixld/demo/nixos_loader.py)."""

from __future__ import annotations

import pytest

from nixld.demo import nixos_loader
from nixld.demo.tools import WorldError


@pytest.mark.unit
def test_patch_ld_so_keeps_lengths_and_drops_fhs_dirs() -> None:
    block = b"\x01/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0/usr/lib/\0"
    data = b"junk" + block + b"xx\0/etc/ld.so.cache\0" + block
    link = "/tmp/nixld-ld-abcdefg"
    patched = nixos_loader.patch_ld_so(data, link)
    assert len(patched) == len(data)
    assert patched.count(link.encode() + b"/\0") == 2
    for fhs in (b"/lib/\0", b"/usr/lib/\0", b"/etc/ld.so.cache\0", b"x86_64-linux-gnu"):
        assert fhs not in patched
    # Every replaced string keeps its offset: the length table stays right.
    assert [i for i, b in enumerate(patched) if b == 0] == [i for i, b in enumerate(data)
                                                            if b == 0]


@pytest.mark.unit
def test_patch_ld_so_refuses_a_loader_it_does_not_know() -> None:
    with pytest.raises(WorldError, match="system directories"):
        nixos_loader.patch_ld_so(b"\0/etc/ld.so.cache\0", "/tmp/nixld-ld-abcdefg")
