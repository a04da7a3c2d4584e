"""The ranking on the corpus (tests/ranking_corpus.py): the top choice is the
owner for at least 98% of missing sonames, graded by store path."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixld.analysis import rank_sonames
from nixld.database import write_database
from nixld.index import SonameIndex

from . import ranking_corpus as corpus

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed", [11, 3, 2026])
def test_top_choice_is_the_owner(tmp_path: Path, xdg: Path, seed: int) -> None:
    generated = corpus.generate(seed)
    db = tmp_path / "files"
    write_database(db, generated.blocks)

    def choose(missing: tuple[str, ...]) -> dict[str, str | None]:
        ranking = rank_sonames(missing, {}, db)
        return {s: c.chosen.store_path if c.chosen else None
                for s, c in ranking.choices.items()}

    grade = corpus.grade(choose, generated, seed)
    assert grade.ratio() >= 0.98, (grade.summary(), grade.wrong[:10])
    for kind in ("single", "bundle", "mixture"):
        assert grade.ratio(kind) >= 0.98, (kind, grade.summary())


def test_ownership_in_the_index_names_exactly_the_owner(tmp_path: Path, xdg: Path) -> None:
    generated = corpus.generate(7)
    db = tmp_path / "files"
    write_database(db, generated.blocks)
    looked_up = SonameIndex.open(db).lookup(corpus.SONAMES)
    wrong = {soname: sorted({p.store_path.path for p in provs if p.claim})
             for soname, provs in looked_up.items()
             if {p.store_path.path for p in provs if p.claim}
             != {corpus.owner_path(corpus.owner_of(soname))}}
    assert wrong == {}


def test_corpus_is_the_size_the_issue_asks_for() -> None:
    generated = corpus.generate(11)
    assert len(corpus.SONAMES) >= 60
    sizes = {len(v) for p, v in generated.bundles.items() if "steam-run" not in p}
    assert min(sizes) >= 3 and max(sizes) <= 10
    assert {"dev-output", "in-out", "none"} == set(generated.dev.values())
    tops = [b[0] for b in generated.blocks if b[0].origin and not b[0].origin.toplevel]
    assert tops  # non-top-level copies
