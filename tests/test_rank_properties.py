"""Properties of the ranking on small generated databases (hypothesis): the
database's order never changes a choice; a bundle duplicating owned libraries
never changes a choice; without the owner, the bundle is the explained
fallback."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nixld.database import FileEntry, Origin, StorePath, write_database
from nixld.index import SonameIndex
from nixld.rank import rank_candidates

pytestmark = pytest.mark.unit

Block = tuple[StorePath, list[FileEntry]]
WORDS = ("alpha", "bravo", "carrot", "delta", "ember", "fjord", "gamma", "helix")
_files = itertools.count()


def store_path(name: str, attr: str, output: str = "out") -> StorePath:
    digest = hashlib.sha256(f"{name}/{output}".encode()).hexdigest()[:32]
    return StorePath("/nix/store", digest, name, Origin(attr, output, True, None))


def block(sp: StorePath, files: Sequence[str]) -> Block:
    entries = {f.encode(): FileEntry(f.encode(), "r", 1000) for f in files}
    dirs = {b""}
    for path in entries:
        parts = path.split(b"/")
        dirs.update(b"/".join(parts[:i]) for i in range(2, len(parts)))
    return sp, sorted([*(FileEntry(d, "d") for d in dirs - set(entries)), *entries.values()],
                      key=lambda e: e.path)


@dataclass(frozen=True)
class Owner:
    word: str
    named: int  # libraries named after it: lib<word>.so.1, lib<word>-2.so.1 ...
    unnamed: int  # libraries named after nothing (owned as the best provider)
    dev: bool  # a dev output with pkg-config files for the unnamed ones

    @property
    def sonames(self) -> list[str]:
        named = [f"lib{self.word}{'-' + str(i) if i else ''}.so.1" for i in range(self.named)]
        return [*named, *(f"libzz{self.word[:2]}{i}.so.1" for i in range(self.unnamed))]

    def blocks(self) -> list[Block]:
        out = [block(store_path(f"{self.word}-1.0", self.word),
                     [f"/lib/{s}" for s in self.sonames])]
        if self.dev:
            pcs = [f"/lib/pkgconfig/zz{self.word[:2]}{i}.pc" for i in range(self.unnamed)]
            out.append(block(store_path(f"{self.word}-1.0-dev", self.word, "dev"),
                             [*pcs, "/include/x.h"]))
        return out


owners_strategy = st.lists(
    st.builds(Owner, st.sampled_from(WORDS), st.integers(1, 3), st.integers(0, 2),
              st.booleans()),
    min_size=2, max_size=5, unique_by=lambda o: o.word)


def bundle(name: str, sonames: Sequence[str], own: bool = False) -> Block:
    files = [f"/lib/{s}" for s in sonames] + ["/bin/app", "/share/applications/app.desktop"]
    if own and len(sonames) >= 2:
        files.append(f"/lib/lib{name}.so")
    return block(store_path(f"{name}-3.1", name), files)


def choices(tmp_path: Path, blocks: Sequence[Block], missing: Sequence[str]) -> dict[str, str]:
    db = tmp_path / f"files-{next(_files)}"
    write_database(db, blocks)
    ranking = rank_candidates(SonameIndex.open(db, rebuild=True).lookup(missing))
    return {s: c.chosen.store_path for s, c in ranking.choices.items() if c.chosen}


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(owners_strategy, st.data())
def test_shuffling_the_database_never_changes_a_choice(tmp_path: Path, xdg: Path,
                                                        owners: list[Owner],
                                                        data: st.DataObject) -> None:
    sonames = [s for o in owners for s in o.sonames]
    blocks = [b for o in owners for b in o.blocks()]
    blocks.append(bundle("appone", data.draw(st.lists(st.sampled_from(sonames), min_size=1,
                                                       unique=True))))
    missing = data.draw(st.lists(st.sampled_from(sonames), min_size=1, unique=True))
    shuffled = data.draw(st.permutations(blocks))
    assert choices(tmp_path, shuffled, missing) == choices(tmp_path, blocks, missing)


@SETTINGS
@given(owners_strategy, st.data())
def test_a_bundle_duplicating_owned_libraries_never_changes_a_choice(
        tmp_path: Path, xdg: Path, owners: list[Owner], data: st.DataObject) -> None:
    sonames = [s for o in owners for s in o.sonames]
    blocks = [b for o in owners for b in o.blocks()]
    missing = data.draw(st.lists(st.sampled_from(sonames), min_size=1, unique=True))
    before = choices(tmp_path, blocks, missing)
    copies = data.draw(st.lists(st.sampled_from(sonames), min_size=1, unique=True))
    trap = bundle("apptwo", copies, own=data.draw(st.booleans()))
    after = choices(tmp_path, [*blocks, trap], missing)
    assert after == before
    assert set(before) == set(missing)  # every soname has its owner


@SETTINGS
@given(owners_strategy, st.data())
def test_without_the_owner_the_bundle_is_the_explained_fallback(
        tmp_path: Path, xdg: Path, owners: list[Owner], data: st.DataObject) -> None:
    gone, *rest = owners
    soname = data.draw(st.sampled_from(gone.sonames))
    others = [s for o in rest for s in o.sonames]
    assume(len(others) >= 2)
    # Most of the bundle's libraries belong to the owners that stay.
    copies = data.draw(st.lists(st.sampled_from(others), min_size=2, unique=True))
    trap = bundle("appthree", [soname, *copies])
    blocks = [b for o in rest for b in o.blocks()] + [trap]
    db = tmp_path / f"files-{next(_files)}"
    write_database(db, blocks)
    choice = rank_candidates(SonameIndex.open(db, rebuild=True).lookup([soname])).choices[soname]
    assert choice.chosen is not None and choice.chosen.store_path == trap[0].path
    assert not choice.chosen.owner and choice.chosen.role == "application"
    assert choice.chosen.reasons[-1] == "used only because nothing owns it"
    assert any(r.startswith("application bundling copies: ") for r in choice.chosen.reasons)
