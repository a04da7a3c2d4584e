"""The mapping of the 64-bit database's owners to pkgsi686Linux attributes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nixld import pkgsi686
from nixld.rank import Candidate, Choice

pytestmark = pytest.mark.unit


def cand(attr: str, output: str = "out", *, n: int = 1,
         soname: str = "libX11.so.6") -> Candidate:
    """A top-level candidate of store path number `n`; `replace` changes the rest."""
    return Candidate(soname, attr, output, f"/nix/store/{str(n) * 32}-{attr}", True,
                     "x86_64-linux", f"lib/{soname}", 0, ())


@pytest.mark.parametrize(("attr", "mapped"), [
    ("zlib", "pkgsi686Linux.zlib"),
    ("xorg.libX11", "pkgsi686Linux.xorg.libX11"),
    ("gcc-unwrapped", "pkgsi686Linux.gcc-unwrapped"),
    ("python3Packages.pillow", "pkgsi686Linux.python3Packages.pillow"),
    ("pkgsi686Linux.zlib", None),  # already 32-bit: the database never names these
    ("pkgsCross.aarch64-multiplatform.zlib", None),
    ("pkgsMusl.zlib", None),
    ("pkgsStatic.zlib", None),
    ("zlib.dev", "pkgsi686Linux.zlib.dev"),
    ("", None), ("a..b", None), ("x\ny", None), ("1abc", None),
])
def test_attribute_mapping(attr: str, mapped: str | None) -> None:
    assert pkgsi686.i686_attr(attr) == mapped


def test_scoped_attribute_keeps_its_scope_and_output() -> None:
    x11 = cand("xorg.libX11", "out")
    got = pkgsi686.map_choice(Choice("libX11.so.6", [x11], x11))
    assert [(m.attr, m.output, m.owner_attr) for m in got.tries] == [
        ("pkgsi686Linux.xorg.libX11", "out", "xorg.libX11")]
    assert got.first is not None and got.first.why == "the ranking's choice in the 64-bit database"
    assert got.to_json()["attr"] == "pkgsi686Linux.xorg.libX11"


def test_lib_output_is_kept() -> None:
    gcc = cand("gcc-unwrapped", "lib", soname="libstdc++.so.6")
    got = pkgsi686.map_choice(Choice("libstdc++.so.6", [gcc], gcc))
    assert got.first is not None and (got.first.attr, got.first.output) == (
        "pkgsi686Linux.gcc-unwrapped", "lib")


def test_chosen_first_then_ranked_order_and_unmappable_owners_explained() -> None:
    """Rule 1-3: the ranking's choice leads even when not first in the list;
    non-top-level and other package sets are skipped with the reason; an
    attribute and output is tried once; dropped candidates are not tried."""
    a = cand("libX11", n=1)
    b = cand("xorg.libX11", n=2)
    inner = replace(cand("libX11-internal", n=3), toplevel=False)
    cross = cand("pkgsCross.gnu32.xorg.libX11", n=4)
    again = cand("xorg.libX11", n=5)  # another store path of the same attribute
    gone = replace(cand("libX11-old", n=6), dropped=True)
    got = pkgsi686.map_choice(Choice("libX11.so.6", [a, b, inner, cross, again, gone], b))
    assert [m.attr for m in got.tries] == ["pkgsi686Linux.xorg.libX11", "pkgsi686Linux.libX11"]
    assert got.tries[1].why == "next candidate (rank 2 in the 64-bit database)"
    assert [(u.owner_attr, u.why) for u in got.unmapped] == [
        ("libX11-internal", "not a top-level attribute of nixpkgs"),
        ("pkgsCross.gnu32.xorg.libX11",
         "pkgsCross.gnu32.xorg.libX11 is not an attribute of the default package set")]


def test_no_owner_gives_no_package() -> None:
    got = pkgsi686.map_choice(Choice("libnone.so.1", [], None))
    assert got.tries == () and got.first is None
    assert got.to_json() == {"attr": None, "output": None, "tries": [], "unmapped": []}


def test_plan_groups_sonames_by_package() -> None:
    ssl = cand("openssl", soname="libssl.so.3")
    crypto = cand("openssl", soname="libcrypto.so.3")
    z = cand("zlib", n=2, soname="libz.so.1")
    choices = [pkgsi686.map_choice(Choice(c.soname, [c], c)) for c in (ssl, crypto, z)]
    assert [p.to_json() for p in pkgsi686.plan(choices)] == [
        {"attr": "pkgsi686Linux.openssl", "output": "out", "store_path": None,
         "sonames": ["libcrypto.so.3", "libssl.so.3"]},
        {"attr": "pkgsi686Linux.zlib", "output": "out", "store_path": None,
         "sonames": ["libz.so.1"]}]
