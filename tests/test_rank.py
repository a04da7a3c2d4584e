"""Ranking of providers: ownership (nixld/ownership.py, computed in the index)
and the rules of nixld/rank.py, on small real databases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from nixld.database import FileEntry, Origin, StorePath, write_database
from nixld.index import Provider, SonameIndex
from nixld.ownership import library_keys, names_match, package_words
from nixld.rank import Ranking, canonical_attr, rank_candidates

pytestmark = pytest.mark.unit

Block = tuple[StorePath, list[FileEntry]]


def sp(attr: str, name: str | None = None, *, output: str = "out", toplevel: bool = True,
       hash_of: str | None = None) -> StorePath:
    import hashlib

    name = name or f"{attr.rsplit('.', 1)[-1]}-1.0"
    digest = hashlib.sha256((hash_of or f"{name}/{output}/{toplevel}").encode()).hexdigest()
    return StorePath("/nix/store", digest[:32], name, Origin(attr, output, toplevel, None))


def tree(files: Iterable[str], links: Mapping[str, str] | None = None) -> list[FileEntry]:
    """Regular files (and `links`: path -> target) with every directory above them."""
    entries = {f.encode(): FileEntry(f.encode(), "r", 1000) for f in files}
    entries.update({p.encode(): FileEntry(p.encode(), "s", None, t.encode())
                    for p, t in (links or {}).items()})
    dirs = {b""}
    for path in entries:
        parts = path.split(b"/")
        dirs.update(b"/".join(parts[:i]) for i in range(2, len(parts)))
    dirs -= set(entries)
    return sorted([*(FileEntry(d, "d") for d in dirs), *entries.values()], key=lambda e: e.path)


def libs(*sonames: str, extra: Sequence[str] = ()) -> list[FileEntry]:
    return tree([*(f"/lib/{s}" for s in sonames), *extra])


def app(*sonames: str) -> list[FileEntry]:
    """An application shipping copies: bin/ and share/applications/."""
    return libs(*sonames, extra=["/bin/app", "/share/applications/app.desktop"])


def rank(tmp_path: Path, blocks: Sequence[Block], missing: Sequence[str]) -> Ranking:
    db = tmp_path / f"files-{len(list(tmp_path.iterdir()))}"
    write_database(db, blocks)
    index = SonameIndex.open(db, rebuild=True)
    return rank_candidates(index.lookup(missing))


def chosen(ranking: Ranking, soname: str) -> str | None:
    pick = ranking.choices[soname].chosen
    return pick.attr if pick else None


# ---------------------------------------------------------------- names


def test_library_keys_drop_lib_prefix_and_versions() -> None:
    assert library_keys("libgtk-3.so.0") == {"gtk3", "gtk"}
    assert library_keys("libQt6Core.so.6") == {"qt6core"}
    assert library_keys("libpython3.12.so.1.0") == {"python312", "python"}
    assert library_keys("libz.so.1") == {"z"}


def test_names_match_attributes_scopes_and_version_suffixes() -> None:
    def match(soname: str, attr: str, name: str = "x-1.0") -> bool:
        return names_match(library_keys(soname), package_words([attr], name))

    assert match("libcurl.so.4", "curl")
    assert match("libz.so.1", "zlib")
    assert match("libX11.so.6", "xorg.libX11")
    assert match("libX11-xcb.so.1", "xorg.libX11")
    assert match("liblua.so.5.4", "lua5_4")
    assert match("libicuuc.so.72", "icu72", "icu4c-72.1")
    assert match("libssl.so.3", "openssl")
    assert match("libxkbcommon-x11.so.0", "libxkbcommon")
    assert match("libgcc_s.so.1", "gcc-unwrapped", "gcc-13.3.0-lib")
    assert match("libpulse.so.0", "libpulseaudio")
    assert not match("libz.so.1", "steam-run", "steam-run-fhs")
    assert not match("libssl.so.3", "zlib", "zlib-1.3.1")
    assert not match("libudev.so.1", "zoom-us", "zoom-5.16")


def test_canonical_name_is_the_shortest_unscoped_attribute() -> None:
    assert canonical_attr(["systemdMinimal", "systemd", "systemdLibs"]) == "systemd"
    assert canonical_attr(["xorg.libX11", "libX11"]) == "libX11"
    assert canonical_attr(["kdePackages.qtbase", "qt6.qtbase"]) == "qt6.qtbase"
    assert canonical_attr(["kdePackages.wayland", "wayland"]) == "wayland"
    assert canonical_attr(["stdenv.cc.cc", "gcc-unwrapped"]) == "gcc-unwrapped"


# ---------------------------------------------------------------- ownership and tiers


SIX = ("libcurl.so.4", "libz.so.1", "libsqlite3.so.0", "libpng16.so.16", "libssl.so.3",
       "libzstd.so.1")
OWNERS = (("curl", "libcurl.so.4"), ("zlib", "libz.so.1"), ("sqlite", "libsqlite3.so.0"),
          ("libpng", "libpng16.so.16"), ("openssl", "libssl.so.3"), ("zstd", "libzstd.so.1"))


def test_an_application_bundling_the_missing_libraries_loses_to_their_owners(
        tmp_path: Path) -> None:
    """The issue's case: one application covers all six; each owner covers one."""
    blocks = [(sp(attr), libs(soname)) for attr, soname in OWNERS]
    blocks.append((sp("zoom-us"), app(*SIX, "libzoom.so")))
    ranking = rank(tmp_path, blocks, SIX)
    assert {s: chosen(ranking, s) for s in SIX} == {s: a for a, s in OWNERS}
    zlib = ranking.choices["libz.so.1"]
    [zoom] = [c for c in zlib.candidates if c.attr == "zoom-us"]
    assert zoom.role == "application" and not zoom.owner
    assert "application bundling copies: 6 of its 7 library files belong to other packages" \
        in zoom.reasons
    assert zoom.lost == "zlib owns it"
    assert zlib.chosen is not None and zlib.chosen.lost is None
    assert "owns it: named after it" in zlib.chosen.reasons
    # ... but it owns its own library.
    assert chosen(rank(tmp_path, blocks, ["libzoom.so"]), "libzoom.so") == "zoom-us"


def test_a_small_bundle_is_a_bundle_whatever_its_size(tmp_path: Path) -> None:
    blocks = [(sp("zlib"), libs("libz.so.1")), (sp("zstd"), libs("libzstd.so.1")),
              (sp("tinyapp"), libs("libz.so.1", "libzstd.so.1"))]
    ranking = rank(tmp_path, blocks, ["libz.so.1", "libzstd.so.1"])
    assert [p.attr for p in ranking.plan] == ["zlib", "zstd"]
    [tiny] = [c for c in ranking.choices["libz.so.1"].candidates if c.attr == "tinyapp"]
    assert tiny.role == "bundle"


def test_owner_without_a_matching_name_by_pkg_config_of_its_dev_output(tmp_path: Path) -> None:
    systemd = sp("systemd", "systemd-256")
    blocks = [(systemd, libs("libsystemd.so.0", "libudev.so.1", extra=["/bin/udevadm"])),
              (sp("systemd", "systemd-256-dev", output="dev"),
               tree(["/lib/pkgconfig/libudev.pc", "/include/libudev.h"])),
              (sp("some-app"), app("libudev.so.1"))]
    ranking = rank(tmp_path, blocks, ["libudev.so.1"])
    pick = ranking.choices["libudev.so.1"].chosen
    assert pick is not None and pick.store_path == systemd.path
    assert "owns it: its dev output has its pkg-config file" in pick.reasons


def test_owner_by_link_to_a_library_it_is_named_after(tmp_path: Path) -> None:
    ncurses = tree(["/lib/libncursesw.so.6.4", "/bin/tic"],
                   {"/lib/libncursesw.so.6": "libncursesw.so.6.4",
                    "/lib/libtinfo.so.6": "libncursesw.so.6"})
    blocks = [(sp("ncurses"), ncurses), (sp("editor"), app("libtinfo.so.6", "libeditor.so"))]
    pick = rank(tmp_path, blocks, ["libtinfo.so.6"]).choices["libtinfo.so.6"].chosen
    assert pick is not None and pick.attr == "ncurses"
    assert "owns it: a link to a library it owns" in pick.reasons


def test_owner_as_the_top_level_library_package_that_is_no_bundle(tmp_path: Path) -> None:
    util_linux = sp("util-linux", "util-linux-2.40-lib", output="lib")
    blocks = [(util_linux, libs("libuuid.so.1", "libblkid.so.1")),
              (sp("an-app"), app("libuuid.so.1", "liban-app.so")),
              (sp("util-linux", "util-linux-copy", toplevel=False), libs("libuuid.so.1"))]
    pick = rank(tmp_path, blocks, ["libuuid.so.1"]).choices["libuuid.so.1"].chosen
    assert pick is not None and pick.store_path == util_linux.path
    assert "owns it: the top-level package shipping it that is no bundle" in pick.reasons


def test_aliases_collapse_into_one_candidate_under_the_canonical_name(tmp_path: Path) -> None:
    one = "same store path"
    blocks = [(sp(attr, "systemd-256", hash_of=one), libs("libsystemd.so.0", "libudev.so.1"))
              for attr in ("systemdMinimal", "systemd", "systemdLibs")]
    choice = rank(tmp_path, blocks, ["libudev.so.1"]).choices["libudev.so.1"]
    assert len(choice.candidates) == 1
    assert choice.chosen is not None and choice.chosen.attr == "systemd"
    assert choice.chosen.aliases == ("systemdLibs", "systemdMinimal")
    assert "also listed as systemdLibs, systemdMinimal" in choice.chosen.reasons


def test_fhs_env_and_non_top_level_copy_serve_only_when_nothing_owns(tmp_path: Path) -> None:
    fhs = (sp("steam-run", "steam-run-fhs"),
           tree(["/lib/libz.so.1", "/lib/libweird.so.1", "/usr/bin/env"]))
    inner = (sp("zlib", "zlib-1.3.1", toplevel=False), libs("libz.so.1"))
    ranking = rank(tmp_path, [fhs, inner, (sp("zlib"), libs("libz.so.1"))],
                   ["libz.so.1", "libweird.so.1"])
    assert chosen(ranking, "libz.so.1") == "zlib"
    by_attr = {(c.attr, c.toplevel): c for c in ranking.choices["libz.so.1"].candidates}
    assert by_attr[("steam-run", True)].role == "fhs"
    assert by_attr[("zlib", False)].to_json()["role"] == "non-toplevel"
    weird = ranking.choices["libweird.so.1"].chosen
    assert weird is not None and weird.attr == "steam-run" and not weird.owner
    assert weird.reasons[-1] == "used only because nothing owns it"
    alone = rank(tmp_path, [inner], ["libz.so.1"]).choices["libz.so.1"].chosen
    assert alone is not None and not alone.toplevel  # named after it: it owns it


def test_set_cover_among_owners(tmp_path: Path) -> None:
    krb5 = sp("krb5", "krb5-1.21-lib", output="lib")
    sonames = ["libgssapi_krb5.so.2", "libkrb5.so.3", "libkrb5support.so.0"]
    blocks = [(krb5, libs(*sonames))]
    blocks += [(sp(f"krb5-piece{i}"), libs(s)) for i, s in enumerate(sonames)]
    ranking = rank(tmp_path, blocks, sonames)
    assert [p.attr for p in ranking.plan] == ["krb5"]
    assert sorted(ranking.plan[0].sonames) == sorted(sonames)


def test_lib_output_preferred_over_dev(tmp_path: Path) -> None:
    blocks = [(sp("openssl", "openssl-3-dev", output="dev"), libs("libssl.so.3")),
              (sp("openssl", "openssl-3"), libs("libssl.so.3"))]
    pick = rank(tmp_path, blocks, ["libssl.so.3"]).choices["libssl.so.3"].chosen
    assert pick is not None and pick.output == "out"


def test_same_store_path_twice_lib_and_lib64_counted_once(tmp_path: Path) -> None:
    blocks = [(sp("zlib"), libs("libz.so.1", extra=["/lib64/libz.so.1"]))]
    assert len(rank(tmp_path, blocks, ["libz.so.1"]).choices["libz.so.1"].candidates) == 1


def test_nothing_provides(tmp_path: Path) -> None:
    ranking = rank(tmp_path, [(sp("zlib"), libs("libz.so.1"))], ["libnothing.so.9"])
    assert ranking.choices["libnothing.so.9"].chosen is None
    assert ranking.plan == []


def test_providers_without_index_facts_rank_as_libraries() -> None:
    """Providers made by hand (no ownership from an index) still rank."""
    store = sp("zlib")
    ranking = rank_candidates({"libz.so.1": [Provider("libz.so.1", store, "lib/libz.so.1",
                                                      None, 10)]})
    assert chosen(ranking, "libz.so.1") == "zlib"


# ---------------------------------------------------------------- the candidate check


def test_failed_version_check_is_dropped_and_not_chosen(tmp_path: Path) -> None:
    old_sp = sp("gcc-unwrapped", "gcc-11-lib", output="lib")
    new_sp = sp("gcc-unwrapped", "gcc-13-lib", output="lib")

    def check(soname: str, path: str) -> str | None:
        return "lacks required version GLIBCXX_3.4.30" if old_sp.path in path else None

    db = tmp_path / "files"
    write_database(db, [(old_sp, libs("libstdc++.so.6")), (new_sp, libs("libstdc++.so.6"))])
    providers = SonameIndex.open(db).lookup(["libstdc++.so.6"])
    choice = rank_candidates(providers, version_check=check).choices["libstdc++.so.6"]
    assert choice.chosen is not None and choice.chosen.store_path == new_sp.path
    dropped = [c for c in choice.candidates if c.dropped]
    assert [c.store_path for c in dropped] == [old_sp.path]
    assert dropped[0].lost == "lacks required version GLIBCXX_3.4.30"
