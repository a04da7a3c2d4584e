"""Debian packages (nixld/demo/debian.py): versions as nixpkgs names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixld.demo import debian


@pytest.mark.unit
@pytest.mark.parametrize(("deb", "version"), [
    ("zlib1g_1%3a1.2.13.dfsg-1_amd64.deb", "1.2.13"),
    ("libssl3_3.0.17-1~deb12u2_amd64.deb", "3.0.17"),
    ("zstd_1.5.4+dfsg2-5_amd64.deb", "1.5.4"),
    ("libgssapi-krb5-2_1.20.1-2+deb12u2_amd64.deb", "1.20.1"),
])
def test_deb_version_is_the_upstream_version(deb: str, version: str) -> None:
    assert debian.deb_version(Path(deb)) == version
