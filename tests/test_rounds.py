"""nixld.rounds: the resolution rounds as a function of the job, a realiser and
a decision, with no Nix and no terminal: the realiser here "builds" each chosen
store path as a directory holding copies of real fixture libraries.

`needs_a` needs liba.so.1, which needs libb.so.1: the second is only seen
once the first is there, so this takes two rounds and one question."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from nixld.analysis import Analysis
from nixld.database import FileEntry, Origin, StorePath, write_database
from nixld.package import Package
from nixld.prompt import Answer
from nixld.rank import Ranking
from nixld.rounds import Decision, Job, Realised, run_rounds
from tests.fixtures.build import Fixtures

HOST_LIB = Path("/lib/x86_64-linux-gnu")


def store(name: str, n: int, soname: str) -> tuple[StorePath, list[FileEntry]]:
    sp = StorePath("/nix/store", f"{n:032d}".replace("0", "b"), f"{name}-1.0",
                   Origin(name, "out", True, "x86_64-linux"))
    return sp, [FileEntry(b"", "d"), FileEntry(b"/lib", "d"),
                FileEntry(f"/lib/{soname}".encode(), "r", 1000)]


class FakeRealiser:
    """Each package's store path becomes a directory under `root` holding the
    fixture files of its sonames; `fail` names store paths that cannot be had."""

    loader: tuple[str, str] | None = None

    def __init__(self, root: Path, fx: Fixtures, fail: Sequence[str] = ()) -> None:
        self.root, self.fx, self.fail = root, fx, set(fail)
        self.calls: list[list[str]] = []

    def needs_loader(self, analyses: Sequence[Analysis]) -> bool:
        return False

    def provide_loader(self, analyses: Sequence[Analysis]) -> Package | None:
        return None

    def realise(self, packages: Sequence[Package], ranking: Ranking) -> Realised:
        self.calls.append([p.attr for p in packages])
        done, failed = [], set()
        for p in packages:
            if p.store_path in self.fail:
                failed.update((s, p.store_path) for s in p.sonames)
                continue
            built = self.root / p.attr
            (built / "lib").mkdir(parents=True)
            for soname in p.sonames:
                shutil.copy(self.fx.lib / soname, built / "lib" / soname)
            done.append(Package(str(built), p.attr, p.output, p.sonames))
        return Realised(tuple(done), frozenset(failed))


@pytest.fixture
def job_env(tmp_path: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A NixOS-like loader (NIX_LD alone with libc) and a database listing
    liba.so.1 in store path `a` and libb.so.1 in store path `b`."""
    glibc = tmp_path / "glibc" / "lib"
    glibc.mkdir(parents=True)
    shutil.copy2(HOST_LIB / "ld-linux-x86-64.so.2", glibc / "ld-linux-x86-64.so.2")
    shutil.copy2(HOST_LIB / "libc.so.6", glibc / "libc.so.6")
    for var in ("NIX_LD_LIBRARY_PATH", "LD_LIBRARY_PATH", "NIX_LD_x86_64_linux",
                "NIX_LD_LIBRARY_PATH_x86_64_linux"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NIX_LD", str(glibc / "ld-linux-x86-64.so.2"))
    monkeypatch.setenv("NIX_LD_LIBRARY_PATH", str(tmp_path / "empty"))
    db = tmp_path / "db"
    db.mkdir()
    write_database(db / "files", [store("a", 1, "liba.so.1"), store("b", 2, "libb.so.1")])
    return db


def test_two_rounds_one_question(fx: Fixtures, job_env: Path, tmp_path: Path) -> None:
    asked: list[list[str]] = []

    def decide(analyses: Sequence[Analysis], ranking: Ranking) -> Decision:
        asked.append(list(ranking.choices))
        return Decision(Answer.YES)

    realiser = FakeRealiser(tmp_path / "built", fx)
    said: list[str] = []
    outcome = run_rounds(Job((str(fx.needs_a),), str(job_env)), lambda _: realiser, decide,
                         said.append)
    assert asked == [["liba.so.1"]]  # libb is not seen before liba is there
    assert realiser.calls == [["a"], ["b"]]
    assert said == ["round 1: fetching 1 package for 1 library",
                    "round 2: fetching 1 package for 1 library"]
    assert outcome.complete and outcome.answer is Answer.YES
    assert [p.attr for p in outcome.picked] == ["a", "b"]
    assert outcome.dirs == [str(tmp_path / "built" / "a" / "lib"),
                            str(tmp_path / "built" / "b" / "lib")]
    [analysis] = outcome.analyses
    assert analysis.closure is not None
    assert {n.soname: n.via for n in analysis.closure.needed}["libb.so.1"] == "entry"


def test_no_stops_before_anything_is_realised(fx: Fixtures, job_env: Path,
                                              tmp_path: Path) -> None:
    realiser = FakeRealiser(tmp_path / "built", fx)
    outcome = run_rounds(Job((str(fx.needs_a),), str(job_env)), lambda _: realiser,
                         lambda a, r: Decision(Answer.NO), lambda _: None)
    assert outcome.answer is Answer.NO and realiser.calls == [] and outcome.picked == []
    assert outcome.still_missing == ["liba.so.1"]


def test_a_failed_candidate_is_not_tried_again(fx: Fixtures, job_env: Path,
                                               tmp_path: Path) -> None:
    realiser = FakeRealiser(tmp_path / "built", fx, fail=[store("a", 1, "liba.so.1")[0].path])
    outcome = run_rounds(Job((str(fx.needs_a),), str(job_env)), lambda _: realiser,
                         lambda a, r: Decision(Answer.YES), lambda _: None)
    assert realiser.calls == [["a"]]  # round 2 has no other candidate: it stops
    assert not outcome.complete and outcome.failed == {"liba.so.1"}
    assert outcome.still_missing == ["liba.so.1"]


def test_choose_overrides_round_one_only(fx: Fixtures, job_env: Path, tmp_path: Path) -> None:
    """`choose` skipping liba: nothing is realised, the job stops incomplete."""
    realiser = FakeRealiser(tmp_path / "built", fx)
    outcome = run_rounds(Job((str(fx.needs_a),), str(job_env)), lambda _: realiser,
                         lambda a, r: Decision(Answer.CHOOSE, {"liba.so.1": None}),
                         lambda _: None)
    assert realiser.calls == [] and not outcome.complete
    assert os.path.basename(outcome.targets[0]) == "needs_a"
