"""The rounds of a resolution, as a function of the job, a realiser and a decision.

1. Analyse every target with the directories chosen so far (in the search
   model's per-user slot, where the entry will name them).
2. Rank the providers of what is still missing (minus those that failed).
3. First round only: `decide` (the prompt, or the top-ranked plan). One
   question for the whole job, never one per round.
4. `realiser.realise(packages)`: the packages made valid, and the (soname,
   store path) pairs that could not be had.
5. Add each package's `lib/` and go back to 1: a fetched library can need
   libraries of its own that its RUNPATH does not cover.

Nothing here prints, asks or runs Nix: messages go to `say`, the question to
`decide`, Nix to the realiser; tests pass their own (tests/test_rounds.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nixld.package import Package
from nixld.prompt import Answer
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.analysis import Analysis
    from nixld.loader import ElfCache
    from nixld.rank import Candidate, Ranking
    from nixld.runtime import Root

# target -> the run-time roots the resolution adds to it (extension modules, --with)
Roots = Mapping[str, Sequence["Root"]]

MAX_ROUNDS = 8

Say = Callable[[str], None]
Overrides = Mapping[str, "Candidate | None"]


@dataclass(frozen=True)
class Decision:
    answer: Answer
    overrides: Overrides | None = None  # `choose`: the candidate per soname


@dataclass(frozen=True)
class Realised:
    done: tuple[Package, ...]
    failed: frozenset[tuple[str, str]] = frozenset()  # (soname, store path) not to rank again


class Realiser(Protocol):
    """Makes chosen packages valid (nixld.fetch: the real Nix; tests: their own)."""

    # A real loader the realiser provides (path, source), searched by the analyses.
    loader: tuple[str, str] | None

    def needs_loader(self, analyses: Sequence[Analysis]) -> bool:
        """Whether the binaries lack a real loader this realiser can provide."""
        ...

    def provide_loader(self, analyses: Sequence[Analysis]) -> Package | None:
        """The loader's package, made valid now (None: not needed or not ours)."""
        ...

    def realise(self, packages: Sequence[Package], ranking: Ranking) -> Realised: ...


# Picks the realiser for the job once its binaries are known (32-bit x86
# ones are built as pkgsi686Linux attributes).
RealiserFor = Callable[[Sequence["Analysis"]], Realiser]


Decide = Callable[[Sequence["Analysis"], "Ranking"], Decision]


@dataclass(frozen=True)
class Job:
    """What to resolve, and what is decided before the rounds."""

    targets: tuple[str, ...]
    db: str | None = None
    start_dirs: tuple[str, ...] = ()  # kept and remembered dirs: searched from round 1
    prebuilt: tuple[Package, ...] = ()  # --with attributes, built before the rounds
    always_dirs: tuple[str, ...] = ()  # --with's dirs (the built attributes')
    roots: Roots = field(default_factory=dict)  # run-time roots per target (--with sonames)


@dataclass
class Outcome:
    targets: list[str]
    picked: list[Package] = field(default_factory=list)
    analyses: list[Analysis] = field(default_factory=list)
    answer: Answer | None = None
    # --with's dirs: loaded with dlopen, so no closure shows them
    always_dirs: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # the final search order of the chosen dirs
    failed: set[str] = field(default_factory=set)  # sonames whose candidates failed
    entries: list[Path] = field(default_factory=list)  # written by the command, after

    @property
    def still_missing(self) -> list[str]:
        return sorted({s for a in self.analyses for s in a.missing_sonames})

    @property
    def complete(self) -> bool:
        return not self.still_missing and all(
            a.closure is None or not a.closure.glibc_problems for a in self.analyses)


def analyse_all(targets: Sequence[str], dirs: Sequence[str], cache: ElfCache | None = None,
                loader: tuple[str, str] | None = None,
                roots: Roots | None = None) -> list[Analysis]:
    """Every target with these dirs in its search (and a loader the job built),
    its run-time roots analysed too."""
    from nixld.analysis import Planned, analyse_closure

    roots = roots or {}
    return [analyse_closure(t, cache=cache, planned=Planned(dirs, loader, roots.get(t, ())))
            for t in targets]


def add_driver_dir(analyses: Sequence[Analysis], dirs: list[str], say: Say) -> None:
    """Driver libraries the closure links come from the system's driver directory."""
    from nixld.rank import OPENGL_DRIVER_DIRS, is_driver_library

    drivers = sorted({s for a in analyses for s in a.missing_sonames if is_driver_library(s)}
                     | {s for a in analyses for n in a.runtime if n.root.path is None
                        for s in n.root.sonames if is_driver_library(s)})
    if not drivers:
        return
    for driver_dir in OPENGL_DRIVER_DIRS[:1]:
        if os.path.isdir(driver_dir) and driver_dir not in dirs:
            say(f"{', '.join(map(safe, drivers))}: from the system's graphics driver in "
                f"{driver_dir}")
            dirs.append(driver_dir)
            return
    say(f"{', '.join(map(safe, drivers))}: driver libraries come only from the system's "
        f"graphics driver in {OPENGL_DRIVER_DIRS[0]} (on NixOS: hardware.graphics.enable "
        "= true), never from a package; it is not here")


def rank_all(analyses: Sequence[Analysis], db: str | None,
             exclude: set[tuple[str, str]]) -> Ranking | None:
    """One ranking for every target's missing sonames (None: nothing missing)."""
    from nixld import paths
    from nixld.analysis import HOW_TO_GET_DATABASE, rank_sonames
    from nixld.candidate import merged_symbols, merged_versions
    from nixld.errors import DatabaseError

    sonames = list(dict.fromkeys(s for a in analyses for s in a.missing_sonames))
    if not sonames:
        return None
    required = merged_versions([c for a in analyses for c in a.closures()])
    db_file = paths.database_file(db)
    if not db_file.exists():
        raise DatabaseError(f"no nix-index database at {db_file}: {HOW_TO_GET_DATABASE}")

    def symbols() -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for analysis in analyses:  # each process judged against what it loads
            for soname, syms in merged_symbols(analysis.closures()).items():
                merged.setdefault(soname, []).extend(syms)
        return merged

    return rank_sonames(sonames, required, db_file, exclude=exclude, symbols=symbols)


def packages_from(ranking: Ranking, overrides: Overrides | None = None) -> list[Package]:
    """One package per chosen store path, with the sonames it is chosen for."""
    by_path: dict[str, tuple[Candidate, list[str]]] = {}
    for soname, choice in ranking.choices.items():
        cand = overrides.get(soname) if overrides is not None and soname in overrides \
            else choice.chosen
        if cand is not None:
            by_path.setdefault(cand.store_path, (cand, []))[1].append(soname)
    return [Package(c.store_path, c.attr, c.output, tuple(sonames))
            for c, sonames in by_path.values()]


def insert_position(package: Package, analyses: Sequence[Analysis],
                    dirs: Sequence[str], picked: Sequence[Package]) -> int:
    """Where a package's lib/ goes in the search order.

    Normally last. But a package that replaces a library found with a version
    it lacks (an older copy chosen in an earlier round, before its versions
    could be read) must come before the dir of the package holding that older
    copy, or the loader keeps finding the old one first.
    """
    owner = {p.lib_dir: p.store_path for p in picked}
    position = len(dirs)
    for analysis in analyses:
        for need in analysis.closure.needed if analysis.closure else ():
            if need.soname not in package.sonames or not need.path or not need.version_problems:
                continue
            for i, d in enumerate(dirs):
                if need.path.startswith(owner.get(d, d) + "/"):
                    position = min(position, i)
    return position


@dataclass
class _State:
    """What the rounds have chosen so far."""

    job: Job
    outcome: Outcome
    dirs: list[str]
    exclude: set[tuple[str, str]] = field(default_factory=set)

    def new_packages(self, ranking: Ranking, overrides: Overrides | None) -> list[Package]:
        have = {p.store_path for p in self.outcome.picked}
        return [p for p in packages_from(ranking, overrides) if p.store_path not in have]

    def add(self, packages: Sequence[Package]) -> None:
        for package in packages:
            self.outcome.picked.append(package)
            if package.lib_dir not in self.dirs:
                at = insert_position(package, self.outcome.analyses, self.dirs,
                                     self.outcome.picked)
                self.dirs.insert(at, package.lib_dir)


def _fetching(round_no: int, packages: Sequence[Package]) -> str:
    count = sum(len(p.sonames) for p in packages)
    return (f"round {round_no}: fetching {len(packages)} package"
            f"{'s' if len(packages) != 1 else ''} for {count} "
            f"librar{'y' if count == 1 else 'ies'}")


def run_rounds(job: Job, realiser_for: RealiserFor, decide: Decide, say: Say) -> Outcome:
    """Rounds 1-5 above, until complete or nothing more can be found."""
    from nixld.loader import ElfCache
    from nixld.rank import Ranking

    cache = ElfCache()  # each round reads the same files again: parse them once
    outcome = Outcome(list(job.targets), picked=list(job.prebuilt),
                      always_dirs=list(job.always_dirs))
    state = _State(job, outcome, list(job.start_dirs) + [
        d for d in job.always_dirs if d not in job.start_dirs])
    outcome.analyses = analyse_all(job.targets, state.dirs, cache, roots=job.roots)
    realiser = realiser_for(outcome.analyses)
    for round_no in range(1, MAX_ROUNDS + 1):
        if round_no > 1:
            outcome.analyses = analyse_all(job.targets, state.dirs, cache, realiser.loader,
                                           job.roots)
        add_driver_dir(outcome.analyses, state.dirs, say)
        ranking = rank_all(outcome.analyses, job.db, state.exclude)
        if ranking is None and not realiser.needs_loader(outcome.analyses):
            break
        ranking = ranking or Ranking({})
        overrides: Overrides | None = None
        if round_no == 1:
            decision = decide(outcome.analyses, ranking)
            outcome.answer, overrides = decision.answer, decision.overrides
            if decision.answer in (Answer.NO, Answer.NEVER):
                return outcome
        new = state.new_packages(ranking, overrides)
        loader = realiser.provide_loader(outcome.analyses)
        if loader is not None:
            outcome.picked.append(loader)
        if not new:
            break
        say(_fetching(round_no, new))
        got = realiser.realise(new, ranking)
        state.exclude |= got.failed
        state.add(got.done)
        if not got.done and not any(ranking.choices.values()):
            break
    outcome.analyses = analyse_all(job.targets, state.dirs, cache, realiser.loader, job.roots)
    outcome.dirs = state.dirs
    outcome.failed = {soname for soname, _ in state.exclude}
    return outcome
