"""Ranking of providers: the numbered rules of nixld/rank.py, one test each."""

from __future__ import annotations

import pytest

from nixld.database import Origin, StorePath
from nixld.index import Provider
from nixld.rank import (
    bundle_reason,
    local_candidate_check,
    name_matches,
    rank_candidates,
    soname_stem,
)

pytestmark = pytest.mark.unit

_counter = iter(range(1, 10_000))


def sp(attr: str, *, output: str = "out", toplevel: bool = True,
       name: str | None = None) -> StorePath:
    h = f"{next(_counter):032d}"
    return StorePath("/nix/store", h, name or f"{attr}-1.0", Origin(attr, output, toplevel, None))


def prov(soname: str, store: StorePath) -> Provider:
    return Provider(soname, store, f"lib/{soname}", None, 1000)


def test_soname_stems() -> None:
    assert soname_stem("libssl.so.3") == "ssl"
    assert soname_stem("libz.so.1") == "z"
    assert soname_stem("libgtk-3.so.0") == "gtk"
    assert soname_stem("libstdc++.so.6") == "stdc++"


def test_name_matching_uses_known_table_and_stems() -> None:
    assert name_matches("libssl.so.3", "openssl")
    assert name_matches("libz.so.1", "zlib")
    assert name_matches("libzstd.so.1", "zstd")
    assert name_matches("libncursesw.so.6", "ncurses")
    assert not name_matches("libz.so.1", "steam-run")
    assert not name_matches("libssl.so.3", "zlib")


def test_rule1_non_toplevel_dropped_unless_alone() -> None:
    real = sp("zlib")
    inner = sp("zlib-internal", toplevel=False)
    ranking = rank_candidates({"libz.so.1": [prov("libz.so.1", inner), prov("libz.so.1", real)]})
    assert ranking.choices["libz.so.1"].chosen.store_path == real.path
    alone = rank_candidates({"libq.so.1": [prov("libq.so.1", sp("qq", toplevel=False))]})
    chosen = alone.choices["libq.so.1"].chosen
    assert chosen is not None and not chosen.toplevel
    assert "not a top-level package" in chosen.reasons


def test_rule2_bundles_demoted_below_the_real_package() -> None:
    fhs = sp("steam-run")
    app = sp("firefox-unwrapped")
    vend = sp("python3Packages.pillow")
    real = sp("zlib")
    provs = [prov("libz.so.1", s) for s in (fhs, app, vend, real)]
    choice = rank_candidates({"libz.so.1": provs}).choices["libz.so.1"]
    assert choice.chosen is not None and choice.chosen.attr == "zlib"
    assert choice.candidates[0].attr == "zlib"
    reasons = {c.attr: c.reasons for c in choice.candidates}
    assert any("FHS" in r for r in reasons["steam-run"])
    assert any("unwrapped" in r for r in reasons["firefox-unwrapped"])
    assert any("vendored" in r for r in reasons["python3Packages.pillow"])


def test_rule2_many_libraries_count_as_a_bundle() -> None:
    big = sp("bigapp")
    real = sp("libfoo")
    ranking = rank_candidates(
        {"libfoo.so.1": [prov("libfoo.so.1", big), prov("libfoo.so.1", real)]},
        library_counts={big.path: 120, real.path: 1})
    assert ranking.choices["libfoo.so.1"].chosen.attr == "libfoo"
    reason = bundle_reason("bigapp", "bigapp-1", 120, "libfoo.so.1")
    assert reason == "application bundling 120 libraries"


def test_bundle_used_when_nothing_else_has_it() -> None:
    fhs = sp("steam-run")
    ranking = rank_candidates({"libweird.so.1": [prov("libweird.so.1", fhs)]})
    assert ranking.choices["libweird.so.1"].chosen.attr == "steam-run"


def test_rule3_fewest_packages_cover_everything() -> None:
    krb5 = sp("krb5", output="lib")
    small = [sp(f"piece{i}") for i in range(3)]
    sonames = ["libgssapi_krb5.so.2", "libkrb5.so.3", "libk5crypto.so.3"]
    providers = {s: [prov(s, krb5), prov(s, small[i])] for i, s in enumerate(sonames)}
    ranking = rank_candidates(providers)
    assert [p.attr for p in ranking.plan] == ["krb5"]
    assert sorted(ranking.plan[0].sonames) == sorted(sonames)
    assert all(ranking.choices[s].chosen.attr == "krb5" for s in sonames)


def test_rule4_name_beats_arbitrary_provider() -> None:
    other = sp("aaa-something")
    real = sp("openssl")
    ranking = rank_candidates({"libssl.so.3": [prov("libssl.so.3", other),
                                               prov("libssl.so.3", real)]})
    chosen = ranking.choices["libssl.so.3"].chosen
    assert chosen.attr == "openssl"
    assert "named after libssl.so.3" in chosen.reasons


def test_rule5_lib_output_preferred_over_dev() -> None:
    dev = sp("openssl", output="dev")
    lib = sp("openssl", output="out")
    ranking = rank_candidates({"libssl.so.3": [prov("libssl.so.3", dev), prov("libssl.so.3", lib)]})
    assert ranking.choices["libssl.so.3"].chosen.output == "out"


def test_same_store_path_twice_lib_and_lib64_counted_once() -> None:
    s = sp("zlib")
    providers = {"libz.so.1": [prov("libz.so.1", s),
                               Provider("libz.so.1", s, "lib64/libz.so.1", None, 10)]}
    assert len(rank_candidates(providers).choices["libz.so.1"].candidates) == 1


def test_local_version_check_drops_old_copy(tmp_path) -> None:
    old = tmp_path / "old.so"
    new = tmp_path / "new.so"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    defs = {str(old): ("V1",), str(new): ("V1", "V2")}
    check = local_candidate_check({"libv.so.1": ["V2"]}, {}, lambda p: (defs[p], ()))
    assert check("libv.so.1", str(new)) is None
    assert check("libv.so.1", str(old)) == "lacks required version V2"
    assert check("libv.so.1", str(tmp_path / "not-local.so")) is None


def test_local_symbol_check_only_where_no_version_decides(tmp_path) -> None:
    old = tmp_path / "old.so"
    new = tmp_path / "new.so"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    facts = {str(old): ((), ("q_old",)), str(new): ((), ("q_old", "q_new"))}
    check = local_candidate_check({}, {"libq.so.1": ["q_new", "q_old"]}, lambda p: facts[p])
    assert check("libq.so.1", str(new)) is None
    assert check("libq.so.1", str(old)) == "lacks symbol q_new"
    # Versions, when required, decide alone (ld.so checks those first).
    versioned = local_candidate_check({"libq.so.1": ["Q_1"]}, {"libq.so.1": ["q_new"]},
                                      lambda p: (("Q_1",), facts[p][1]))
    assert versioned("libq.so.1", str(old)) is None


def test_failed_version_check_is_dropped_and_not_chosen(tmp_path) -> None:
    old_sp = sp("libstdcxx-old")
    new_sp = sp("gcc-unwrapped", output="lib")

    def check(soname: str, path: str) -> str | None:
        return "lacks required version GLIBCXX_3.4.30" if old_sp.path in path else None

    ranking = rank_candidates({"libstdc++.so.6": [prov("libstdc++.so.6", old_sp),
                                                   prov("libstdc++.so.6", new_sp)]},
                              version_check=check)
    choice = ranking.choices["libstdc++.so.6"]
    assert choice.chosen.store_path == new_sp.path
    dropped = [c for c in choice.candidates if c.dropped]
    assert [c.store_path for c in dropped] == [old_sp.path]


def test_nothing_provides() -> None:
    ranking = rank_candidates({"libnothing.so.9": []})
    assert ranking.choices["libnothing.so.9"].chosen is None
    assert ranking.plan == []


def test_ranking_is_deterministic_under_input_order() -> None:
    a, b, c = sp("zlib"), sp("zlib-ng"), sp("steam-run")
    p1 = {"libz.so.1": [prov("libz.so.1", x) for x in (a, b, c)]}
    p2 = {"libz.so.1": [prov("libz.so.1", x) for x in (c, b, a)]}
    r1, r2 = rank_candidates(p1), rank_candidates(p2)
    assert [x.store_path for x in r1.choices["libz.so.1"].candidates] == \
        [x.store_path for x in r2.choices["libz.so.1"].candidates]
