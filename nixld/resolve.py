"""Resolution: turn the plan into installed libraries and per-binary entries.

The rounds, in order (one prompt for the whole job, never one per round):

1. Analyse every target with the directories chosen so far.
2. Rank the providers of what is still missing (minus those that failed).
3. First round only: ask (or take the top-ranked plan with --yes/auto-accept).
4. Realise the chosen store paths with the real Nix; where a store path cannot
   be substituted, build the attribute from the user's nixpkgs instead and
   check that the soname is really there.
5. Add each store path's `lib/` and go back to 1: a fetched library can need
   libraries of its own that its RUNPATH does not cover.

Then root everything in the profile, write each target's entry (atomically)
and remember the choice by content. Success is reported only when nothing in
any closure is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nixld.errors import BadInputError, ExitCode, NixError
from nixld.prompt import Answer
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.analysis import Analysis
    from nixld.entries import Entry
    from nixld.loader import ElfCache
    from nixld.pkgsi686 import Mapped
    from nixld.rank import Candidate, PlanItem, Ranking
    from nixld.runtime import Root

# target -> the run-time roots the resolution adds to it (extension modules, --with)
Roots = dict[str, list["Root"]]

MAX_ROUNDS = 8


@dataclass
class Options:
    assume_yes: bool = False  # --yes / auto-accept: take the top-ranked plan
    quiet: bool = False  # no progress, only errors and the final line
    with_: Sequence[str] = ()  # extra sonames or attributes loaded with dlopen
    db: str | None = None
    from_hook: bool = False  # asked by the shell hook: honour "never"
    dry_run: bool = False
    remembered: bool = True  # reuse a choice remembered for the same content
    # target -> run-time roots the resolution adds (a venv's extension modules)
    roots: Roots = field(default_factory=dict)


@dataclass
class Picked:
    """A store path chosen for the job, and what it was chosen for."""

    store_path: str
    attr: str
    output: str
    sonames: list[str] = field(default_factory=list)

    @property
    def lib_dir(self) -> str:
        return f"{self.store_path}/lib"


@dataclass
class Outcome:
    targets: list[str]
    picked: list[Picked]
    analyses: list[Analysis]
    answer: Answer | None = None
    entries: list[Path] = field(default_factory=list)
    # Dirs asked for with --with: loaded with dlopen, so no closure shows them.
    always_dirs: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # the final search order
    failed: set[str] = field(default_factory=set)  # sonames whose candidates failed

    @property
    def still_missing(self) -> list[str]:
        return sorted({s for a in self.analyses for s in a.missing_sonames})

    @property
    def complete(self) -> bool:
        return not self.still_missing and all(
            a.closure is None or not a.closure.glibc_problems for a in self.analyses)


class Reporter:
    """Progress and results on stderr; nothing with --quiet but the errors."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"nixld-hook: {message}", file=sys.stderr)

    def failed(self, message: str) -> None:
        """Why something failed: --quiet never hides it."""
        print(f"nixld-hook: {message}", file=sys.stderr)


# ---------------------------------------------------------------- targets


def collect_targets(path: str) -> list[str]:
    """The executables `path` stands for (see collect)."""
    return list(collect(path))


def collect(path: str) -> Roots:
    """A file is its own target; a directory gives its executables (a shared
    object gets no entry: the shim reads only the executable's, and the
    executable's analysis covers what it loads); a venv or site-packages
    directory gives its interpreters, with its extension modules as roots."""
    if not os.path.isdir(path):
        return {path: []}
    from nixld import runtime

    env = runtime.python_env(path)
    if env is not None:
        modules = runtime.extension_roots(env.site_packages)
        return {interpreter: list(modules) for interpreter in env.interpreters}
    return {target: [] for target in _executables(path)}


def _collect_all(paths: Sequence[str]) -> Roots:
    roots: Roots = {}
    for path in paths:
        for target, extra in collect(path).items():
            roots.setdefault(target, []).extend(extra)
    return roots


def _executables(path: str) -> list[str]:
    from nixld.elf import ElfInfo, read_binary

    found: list[str] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            if not _has_elf_magic(full):
                continue
            try:
                info = read_binary(full)
            except BadInputError:
                continue
            if isinstance(info, ElfInfo) and info.interpreter is not None and info.needed:
                found.append(full)
    if not found:
        raise BadInputError(f"{safe(path)}: no dynamically linked executables in this directory")
    return found


def _has_elf_magic(path: str) -> bool:
    # A cheap pre-filter so a large application tree does not parse every
    # data file with pyelftools; pyelftools still reads every real ELF.
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


# ---------------------------------------------------------------- rounds


def _analyse_all(targets: Sequence[str], dirs: Sequence[str],
                 cache: ElfCache | None = None, loader: tuple[str, str] | None = None,
                 roots: Roots | None = None) -> list[Analysis]:
    from nixld.analysis import analyse_closure

    roots = roots or {}
    return [analyse_closure(t, extra_dirs=dirs, cache=cache, loader=loader,
                            roots=roots.get(t, ())) for t in targets]


def _rank_all(analyses: Sequence[Analysis], db: str | None,
              exclude: set[tuple[str, str]]) -> Ranking | None:
    from nixld import paths
    from nixld.analysis import HOW_TO_GET_DATABASE, merged_symbols, merged_versions, rank_sonames
    from nixld.errors import DatabaseError

    sonames = list(dict.fromkeys(s for a in analyses for s in a.missing_sonames))
    required = merged_versions([c for a in analyses for c in a.closures()])
    if not sonames:
        return None
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


def _picks_from(ranking: Ranking, overrides: dict[str, Candidate | None] | None) -> list[Picked]:
    by_path: dict[str, Picked] = {}
    for soname, choice in ranking.choices.items():
        cand = overrides.get(soname) if overrides is not None and soname in overrides \
            else choice.chosen
        if cand is None:
            continue
        pick = by_path.setdefault(cand.store_path,
                                  Picked(cand.store_path, cand.attr, cand.output))
        pick.sonames.append(soname)
    return list(by_path.values())


def _realise(picks: list[Picked], rep: Reporter, quiet: bool,
             exclude: set[tuple[str, str]]) -> list[Picked]:
    """Realise each pick; fall back to building its attribute; drop failures."""
    from nixld import nix

    wanted = [p.store_path for p in picks]
    try:
        nix.realise(wanted, quiet=quiet)
        return picks
    except nix.NixTrustError:
        raise  # only a setting fixes it: one line, exit 5
    except NixError as err:
        rep.say(f"could not substitute all paths ({err}); trying one by one")
    done: list[Picked] = []
    for pick in picks:
        try:
            nix.realise([pick.store_path], quiet=quiet)
            done.append(pick)
            continue
        except nix.NixTrustError:
            raise
        except NixError as err:
            why = str(err)
        rep.say(f"{why}; building {safe(pick.attr)}.{pick.output} from your nixpkgs")
        try:
            built = nix.build_attr(pick.attr, pick.output)
        except NixError as err:
            rep.failed(f"cannot install {safe(pick.attr)}: {why}; building it failed too: {err}")
            exclude.update((s, pick.store_path) for s in pick.sonames)
            continue
        have = [s for s in pick.sonames if os.path.exists(os.path.join(built, "lib", s))]
        if not have:
            rep.failed(f"{safe(built)} does not contain {', '.join(map(safe, pick.sonames))}")
            exclude.update((s, pick.store_path) for s in pick.sonames)
            continue
        done.append(Picked(built, pick.attr, pick.output, have))
    return done


def _mapped_pick(pick: Picked) -> list[Mapped]:
    """A pick ranked outside the job (--with SONAME) as its pkgsi686Linux package."""
    from nixld.pkgsi686 import Mapped, i686_attr

    attr = i686_attr(pick.attr)
    if attr is None or not pick.sonames:
        return []
    return [Mapped(pick.sonames[0], attr, pick.output, pick.attr, pick.store_path,
                   "asked for with --with")]


@dataclass
class Job32:
    """A resolution of 32-bit x86 binaries (nixld.i686): its real loader, when
    one had to be built, and its packages, built from the user's nixpkgs as
    pkgsi686Linux attributes instead of substituted from the 64-bit database."""

    loader: tuple[str, str] | None = None  # (ld-linux.so.2, source) of a built glibc
    # built store path -> the 64-bit owner's store path it was built for
    built_from: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, analyses: Sequence[Analysis]) -> Job32 | None:
        from nixld.i686 import is_i686

        infos = [a.closure.binary for a in analyses if a.closure is not None]
        return cls() if infos and all(is_i686(i) for i in infos) else None

    def lacks_loader(self, analyses: Sequence[Analysis]) -> bool:
        """No variable names a 32-bit loader and the default one is not there."""
        return self.loader is None and any(
            a.closure is not None and a.closure.search.loader.source == "default"
            and (not a.closure.real_loader_exists or a.closure.real_loader_problem is not None)
            for a in analyses)

    def ensure_loader(self, analyses: Sequence[Analysis], rep: Reporter) -> list[Picked]:
        """Build pkgsi686Linux.glibc once when the binaries lack a loader."""
        if not self.lacks_loader(analyses):
            return []
        from nixld import i686
        from nixld.pkgsi686 import GLIBC_ATTR

        rep.say("no 32-bit loader here (NIX_LD_i686_linux is unset): building "
                f"{GLIBC_ATTR} from your nixpkgs")
        store_path = i686.build_glibc()
        self.loader = (i686.loader_of(store_path), i686.LOADER_SOURCE)
        return [Picked(store_path, GLIBC_ATTR, "out", [])]

    def realise(self, picks: list[Picked], ranking: Ranking, rep: Reporter,
                exclude: set[tuple[str, str]]) -> list[Picked]:
        """Each pick's owner as a pkgsi686Linux package, the next candidate when
        one is missing or wrong; what cannot be had is excluded from ranking."""
        from nixld import i686, pkgsi686
        from nixld.rank import Choice

        done: list[Picked] = []
        for pick in picks:
            choice = ranking.choices.get(pick.sonames[0]) if pick.sonames else None
            if choice is None:  # ranked apart from the job: its owner alone
                soname = pick.sonames[0] if pick.sonames else ""
                mapped = pkgsi686.I686Choice(soname, tuple(_mapped_pick(pick)), ())
            else:
                owner = next((c for c in choice.candidates if c.store_path == pick.store_path),
                             None)
                mapped = pkgsi686.map_choice(Choice(choice.soname, choice.candidates, owner))
            built = i686.build_first(mapped, pick.sonames, rep.say)
            lacking = [s for s in pick.sonames if built is None or s not in built.sonames]
            for soname in lacking:  # tried: do not rank these owners again
                exclude.update((soname, c.store_path) for c in
                               (ranking.choices[soname].candidates
                                if soname in ranking.choices else ()))
            if built is not None:
                rep.say(f"built {safe(built.mapped.attr)} ({built.mapped.output}) for "
                        f"{', '.join(map(safe, built.sonames))}: {safe(built.store_path)}")
                self.built_from[built.store_path] = pick.store_path
                done.append(Picked(built.store_path, built.mapped.attr, built.mapped.output,
                                   list(built.sonames)))
        return done


def _shown_plan(outcome: Outcome, ranking: Ranking) -> tuple[list[PlanItem], list[str],
                                                              int | None]:
    """The plan the prompt shows, with what it would download. A 32-bit job
    shows its pkgsi686Linux packages, to be built (no store path yet)."""
    from nixld import nix
    from nixld.rank import PlanItem

    if Job32.of(outcome.analyses):
        from nixld import pkgsi686

        items = pkgsi686.plan(pkgsi686.map_ranking(ranking).values())
        return [PlanItem(i.attr, i.output, "", i.sonames) for i in items], [], None
    try:
        to_fetch, size = nix.query_missing([p.store_path for p in ranking.plan])
    except NixError:
        to_fetch, size = [], None
    return ranking.plan, to_fetch, size


def _decide(outcome: Outcome, ranking: Ranking, opts: Options, rep: Reporter,
            label: str) -> tuple[Answer, dict[str, Candidate | None] | None]:
    """Round 1: ask, or take the top-ranked plan when auto-accepting."""
    from nixld import prompt

    if opts.assume_yes or auto_accept_enabled():
        return Answer.YES, None
    if not prompt.can_prompt():
        raise NotAsked
    plan, to_fetch, size = _shown_plan(outcome, ranking)
    # Offered per root (a plugin, a recommended note): not in the plan.
    hints = [f"{s} (for {os.path.basename(n.root.label)})" if n.root.path else s
             for a in outcome.analyses for n in a.optional_needs
             if n.root.priority == "recommended"  # suggested ones: explain lists them
             for s in n.missing_sonames if s not in opts.with_]
    summary = prompt.PlanSummary(label, list(ranking.choices), plan, size,
                                 len(to_fetch), list(dict.fromkeys(hints)))
    answer = prompt.ask_plan(summary)
    if answer is Answer.CHOOSE:
        return answer, prompt.choose_candidates(list(ranking.choices.values()))
    return answer, None


class NotAsked(Exception):
    """There is no terminal to ask on and no --yes."""


def auto_accept_enabled() -> bool:
    from nixld.config import auto_accept, load_config

    return auto_accept(load_config())


def _enable_auto_accept() -> None:
    from nixld.config import set_setting

    set_setting("auto_accept", True)


def _first_answer(outcome: Outcome, ranking: Ranking, opts: Options, rep: Reporter,
                  label: str) -> dict[str, Candidate | None] | None:
    """Round 3: the answer, kept in `outcome`; the per-library picks of `choose`."""
    answer, overrides = _decide(outcome, ranking, opts, rep, label)
    outcome.answer = answer
    if answer is Answer.ALWAYS:
        _enable_auto_accept()
        rep.say("auto-accept is on from now on (nixld-hook install --auto-accept; "
                "turn off in the config file)")
    return overrides


def run_rounds(targets: Sequence[str], opts: Options, rep: Reporter,
               label: str, start_dirs: Sequence[str] = ()) -> Outcome:
    """Rounds 1-5 above, until complete or nothing more can be found.

    --with's sonames are roots of every target: looked up like missing ones,
    and their own missing libraries resolved in the next round."""
    from nixld.loader import ElfCache

    roots = _with_roots(targets, opts, opts.roots)
    cache = ElfCache()  # each round reads the same files again: parse them once
    job32: Job32 | None = None
    picked: list[Picked] = []
    dirs: list[str] = list(start_dirs)
    exclude: set[tuple[str, str]] = set()
    outcome = Outcome(list(targets), picked, [])
    overrides: dict[str, Candidate | None] | None = None
    extra = _with_requests(_with_for_i686(opts, targets), rep, dirs, picked)
    outcome.always_dirs.extend(dirs[len(start_dirs):])
    for round_no in range(1, MAX_ROUNDS + 1):
        outcome.analyses = _analyse_all(targets, dirs, cache, job32.loader if job32 else None,
                                        roots)
        _add_driver_dir(outcome.analyses, dirs, rep)
        ranking = _rank_all(outcome.analyses, opts.db, exclude)
        job32 = job32 or Job32.of(outcome.analyses)
        if ranking is None and not extra and not (job32 and job32.lacks_loader(outcome.analyses)):
            break
        if ranking is None:
            from nixld.rank import Ranking

            ranking = Ranking({})
        if round_no == 1:
            overrides = _first_answer(outcome, ranking, opts, rep, label)
            if outcome.answer in (Answer.NO, Answer.NEVER):
                return outcome
        new = [p for p in _picks_from(ranking, overrides if round_no == 1 else None)
               if p.store_path not in {q.store_path for q in picked}]
        forced = {p.store_path for p in extra}
        new += extra
        extra = []
        if job32 and not opts.dry_run:
            picked.extend(job32.ensure_loader(outcome.analyses, rep))
        if not new:
            break
        if opts.dry_run:
            picked.extend(new)
            break
        count = sum(len(p.sonames) for p in new)
        rep.say(f"round {round_no}: fetching {len(new)} package"
                f"{'s' if len(new) != 1 else ''} for {count} librar{'y' if count == 1 else 'ies'}")
        got = job32.realise(new, ranking, rep, exclude) if job32 \
            else _realise(new, rep, opts.quiet, exclude)
        for pick in got:
            picked.append(pick)
            if pick.lib_dir not in dirs:
                dirs.insert(_insert_position(pick, outcome.analyses, dirs), pick.lib_dir)
            if pick.store_path in forced or (job32 and job32.built_from.get(pick.store_path)
                                             in forced):
                outcome.always_dirs.append(pick.lib_dir)
        if not got and not any(ranking.choices.values()):
            break
    outcome.analyses = _analyse_all(targets, dirs, cache, job32.loader if job32 else None, roots)
    outcome.dirs = dirs
    outcome.failed = {soname for soname, _ in exclude}
    return outcome


def _insert_position(pick: Picked, analyses: Sequence[Analysis], dirs: Sequence[str]) -> int:
    """Where a pick's lib/ goes in the search order.

    Normally last. But a pick that replaces a library found with a version it
    lacks (an older copy chosen in an earlier round, before its versions could
    be read) must come before the dir that holds that older copy, or the
    loader keeps finding the old one first.
    """
    position = len(dirs)
    for analysis in analyses:
        if analysis.closure is None:
            continue
        for need in analysis.closure.needed:
            if need.soname not in pick.sonames or not need.path or not need.version_problems:
                continue
            for i, d in enumerate(dirs):
                if need.path.startswith(d.rsplit("/lib", 1)[0] + "/"):
                    position = min(position, i)
    return position


def _with_roots(targets: Sequence[str], opts: Options, roots: Roots) -> Roots:
    """--with's sonames as required roots of every target."""
    from nixld.runtime import soname_roots

    sonames = [w for w in opts.with_ if ".so" in w]
    if not sonames:
        return roots
    extra = soname_roots(sonames, "with")
    return {t: [*roots.get(t, []), *extra] for t in targets}


def _add_driver_dir(analyses: Sequence[Analysis], dirs: list[str], rep: Reporter) -> None:
    """Driver libraries the closure links come from the system's driver directory."""
    from nixld.rank import OPENGL_DRIVER_DIRS, is_driver_library

    drivers = sorted({s for a in analyses for s in a.missing_sonames if is_driver_library(s)}
                     | {s for a in analyses for n in a.runtime if n.root.path is None
                        for s in n.root.sonames if is_driver_library(s)})
    if not drivers:
        return
    for driver_dir in OPENGL_DRIVER_DIRS[:1]:
        if os.path.isdir(driver_dir) and driver_dir not in dirs:
            rep.say(f"{', '.join(map(safe, drivers))}: from the system's graphics driver in "
                    f"{driver_dir}")
            dirs.append(driver_dir)
            return
    rep.say(f"{', '.join(map(safe, drivers))}: driver libraries come only from the system's "
            f"graphics driver in {OPENGL_DRIVER_DIRS[0]} (on NixOS: hardware.graphics.enable "
            "= true), never from a package; it is not here")


def _with_for_i686(opts: Options, targets: Sequence[str]) -> Options:
    """For 32-bit x86 targets, --with ATTR means pkgsi686Linux.ATTR."""
    from nixld.pkgsi686 import PACKAGE_SET
    from nixld.search import elf_machine

    if not targets or not all(elf_machine(t) == "EM_386" for t in targets):
        return opts
    mapped = [w if ".so" in w or w.startswith(f"{PACKAGE_SET}.") else f"{PACKAGE_SET}.{w}"
              for w in opts.with_]
    return dataclasses.replace(opts, with_=mapped)


def _with_requests(opts: Options, rep: Reporter, dirs: list[str],
                   picked: list[Picked]) -> list[Picked]:
    """--with attributes, built from nixpkgs (--with sonames are roots: _with_roots)."""
    extra: list[Picked] = []
    attrs = [w for w in opts.with_ if ".so" not in w]
    if attrs and not opts.dry_run:
        from nixld import nix

        for attr in attrs:
            name, _, output = attr.partition("^")
            built = nix.build_attr(name, output or "out")
            picked.append(Picked(built, name, output or "out", []))
            dirs.append(f"{built}/lib")
    return extra


# ---------------------------------------------------------------- entries


def _entry_dirs(analysis: Analysis, dirs: Sequence[str], always: Sequence[str]) -> list[str]:
    """The chosen dirs this binary's closure loads from (and --with's), in order."""
    used = [n for c in analysis.all_closures() for n in c.needed if n.via == "entry" and n.path]
    return [d for d in dirs
            if d in always or any(os.path.exists(os.path.join(d, n.soname)) for n in used)]


def _loader_package(analysis: Analysis) -> set[str]:
    """The store path of a 32-bit glibc a resolution built as the loader: the
    entry records it (its `package` line), and `run` and explain read it back."""
    from nixld.i686 import LOADER_SOURCE

    closure = analysis.closure
    if closure is None or closure.search.loader.source != LOADER_SOURCE:
        return set()
    return {closure.search.loader.path.rsplit("/lib/", 1)[0]}


def write_entries(outcome: Outcome, dirs: Sequence[str]) -> list[Path]:
    from nixld import entries

    refs = tuple(entries.PackageRef(p.store_path, p.attr, p.output) for p in outcome.picked)
    written = []
    for analysis in outcome.analyses:
        target = os.path.realpath(analysis.path)
        own = _entry_dirs(analysis, dirs, outcome.always_dirs)
        sonames = tuple(dict.fromkeys(
            (n.soname, n.path or "") for c in analysis.all_closures() for n in c.needed
            if n.via == "entry"))
        used_paths = {d.rsplit("/lib", 1)[0] for d in own} | _loader_package(analysis)
        entry = entries.Entry(
            path=target,
            identity=entries.Identity.of_file(target),
            dirs=tuple(own),
            sha256=entries.sha256_of(target),
            packages=tuple(r for r in refs if r.store_path in used_paths),
            sonames=sonames,
        )
        written.append(entries.write_entry(entry))
        written += _write_build_id_entry(entry)
        entries.remember_choice(entry.sha256, entry.packages, entry.dirs)
    return written


def _write_build_id_entry(entry: Entry) -> list[Path]:
    """Beside the path entry, the build-id entry: a copy elsewhere starts too."""
    from nixld import entries
    from nixld.elf import read_build_id

    build_id = read_build_id(entry.path)
    return [entries.write_build_id_entry(entry, build_id)] if build_id else []


# ---------------------------------------------------------------- entry points


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    from nixld import lock

    with lock.state_lock():
        yield


def _remembered_dirs(targets: Sequence[str]) -> list[str]:
    """Dirs of each target's valid per-user entry (the entry about to be
    rewritten keeps them), then those remembered for a file with the same
    content (a copy, a move)."""
    from nixld import entries
    from nixld.search import Search

    dirs: list[str] = []
    for target in targets:
        dirs.extend(d for d in Search.for_binary(target).user_dirs if d not in dirs)
        remembered = entries.recall_choice(entries.sha256_of(target))
        if remembered is None:
            continue
        for d in remembered.dirs:
            if d not in dirs and os.path.isdir(d):
                dirs.append(d)
    return dirs


def _by_word_size(targets: Sequence[str]) -> list[list[str]]:
    """64-bit (and other) targets, then 32-bit x86 ones: their packages come
    from different places, so each kind is its own job."""
    from nixld.search import elf_machine

    narrow = [t for t in targets if elf_machine(t) == "EM_386"]
    wide = [t for t in targets if t not in narrow]
    return [g for g in (wide, narrow) if g]


def _resolve_each(groups: Sequence[Sequence[str]], opts: Options) -> tuple[int, Outcome | None]:
    """One resolution per group; the worst exit code and every outcome merged."""
    worst, merged = ExitCode.OK, None
    for group in groups:
        code, outcome = resolve(group, opts)
        worst = max(worst, code)
        if outcome is None:
            continue
        if merged is None:
            merged = outcome
            continue
        merged.targets += outcome.targets
        merged.picked += outcome.picked
        merged.analyses += outcome.analyses
        merged.entries += outcome.entries
    return worst, merged


def resolve(paths: Sequence[str], opts: Options) -> tuple[int, Outcome | None]:
    """`nixld-hook resolve`: returns the exit code and what happened."""
    # A group of _resolve_each keeps the roots its directory gave.
    roots = {t: opts.roots.get(t) or extra for t, extra in _collect_all(paths).items()}
    opts = replace(opts, roots=roots)
    targets = list(roots)
    groups = _by_word_size(targets)
    if len(groups) > 1:
        return _resolve_each(groups, opts)
    label = paths[0] if len(paths) == 1 else f"{len(targets)} files"
    return _resolve_job(label, targets, opts)


def _resolve_job(label: str, targets: Sequence[str], opts: Options,
                 ) -> tuple[int, Outcome | None]:
    """One job: the rounds, then the profile and the entries."""
    rep = Reporter(opts.quiet)
    if opts.from_hook:
        from nixld import entries

        if any(entries.is_never(t) for t in targets):
            return ExitCode.OK, None
    with _locked() if not opts.dry_run else contextlib.nullcontext():
        start = _remembered_dirs(targets) if opts.remembered and not opts.dry_run else []
        try:
            outcome = run_rounds(targets, opts, rep, label, start)
        except NotAsked:
            rep.say(f"{safe(label)} lacks libraries; no terminal to ask on: run "
                    f"`nixld-hook resolve --yes {safe(label)}` to install the proposed packages")
            return ExitCode.FAILURE, None
        if outcome.answer is Answer.NEVER:
            from nixld import entries

            for target in targets:
                entries.mark_never(target)
            rep.say(f"will not ask about {safe(label)} again (nixld-hook forget to undo)")
            return ExitCode.OK, outcome
        if outcome.answer is Answer.NO:
            rep.say("nothing installed")
            return ExitCode.FAILURE, outcome
        if opts.dry_run:
            return ExitCode.OK, outcome
        dirs = outcome.dirs
        if outcome.picked or start:
            from nixld import profile

            remembered = [d.rsplit("/lib", 1)[0] for d in start if d.startswith("/nix/store/")]
            profile.install([p.store_path for p in outcome.picked] + remembered)
        # A 32-bit binary may need only its loader: the entry records it.
        outcome.entries = write_entries(outcome, dirs) if dirs or outcome.picked else []
    return _report(outcome, rep), outcome


def _not_libraries(outcome: Outcome) -> tuple[list[str], int]:
    """What libraries cannot fix, said once per target; and the worst exit code."""
    from nixld.elf import ScriptInfo

    lines: list[str] = []
    code = ExitCode.OK
    for analysis in outcome.analyses:
        info, name = analysis.info, safe(analysis.path)
        if isinstance(info, ScriptInfo):
            if not info.interpreter_exists:
                lines.append(f"{name} is a script whose #! interpreter {safe(info.interpreter)} "
                             "does not exist: libraries cannot fix that (edit its first line, "
                             "e.g. `#!/usr/bin/env NAME`)")
                code = ExitCode.FAILURE
            else:
                lines.append(f"{name} is a script: its interpreter exists, nothing to do")
        elif info.is_static:
            lines.append(f"{name} is statically linked: it needs no loader and no libraries")
        elif analysis.closure is not None and not analysis.closure.real_loader_exists:
            lines.append(f"note: the real loader {safe(analysis.closure.search.loader.path)} does "
                         "not exist here, so glibc was not checked (set NIX_LD, or enable the "
                         "shim on NixOS)")
    return lines, code


def _report(outcome: Outcome, rep: Reporter) -> int:
    installed = ", ".join(f"{safe(p.attr)}" for p in outcome.picked)
    notes, code = _not_libraries(outcome)
    for note in dict.fromkeys(notes):
        print(f"nixld-hook: {note}", file=sys.stderr)
    if outcome.complete and code:
        return code
    if outcome.complete:
        names = ", ".join(safe(t) for t in outcome.targets[:3])
        more = f" and {len(outcome.targets) - 3} more" if len(outcome.targets) > 3 else ""
        if installed:
            print(f"nixld-hook: installed {installed}; {names}{more} now finds every library",
                  file=sys.stderr)
        elif outcome.entries:
            print(f"nixld-hook: {names}{more} now finds every library (remembered choice)",
                  file=sys.stderr)
        else:
            print(f"nixld-hook: {names}{more}: nothing is missing, nothing to install",
                  file=sys.stderr)
        return ExitCode.OK
    missing = outcome.still_missing
    failed = [safe(s) for s in missing if s in outcome.failed]
    unprovided = [safe(s) for s in missing if s not in outcome.failed]
    if failed:
        print(f"nixld-hook: still missing: {', '.join(failed)} (every candidate failed to "
              "install; see the messages above)", file=sys.stderr)
    if unprovided:
        print(f"nixld-hook: still missing: {', '.join(unprovided)} (no package in the "
              "database provides them; a newer database may, or try --with ATTR)",
              file=sys.stderr)
    for analysis in outcome.analyses:
        if analysis.closure is not None and analysis.closure.glibc_problems:
            versions = sorted({p.version for p in analysis.closure.glibc_problems})
            print(f"nixld-hook: {safe(analysis.path)} needs {', '.join(versions)}, newer than "
                  "the real loader's glibc: libraries cannot fix this", file=sys.stderr)
    return ExitCode.FAILURE


def resolve_interactive(path: str, *, quiet: bool = False) -> int:
    """Called by `nixld-hook handle` after a failure caught by a shell hook."""
    code, _ = resolve([path], Options(quiet=quiet, from_hook=True))
    return code


def upgrade_entries(paths: Sequence[str], *, assume_yes: bool = False) -> int:
    """Re-resolve entries against the current database, as if new."""
    from nixld import entries, profile
    from nixld.search import Search

    targets = [os.path.realpath(p) for p in paths] if paths else [
        e.path for _, e in entries.all_entries()]
    if not targets:
        print("nixld-hook: no entries to upgrade", file=sys.stderr)
        return ExitCode.OK
    worst = ExitCode.OK
    for target in targets:
        applied = Search.for_binary(target).user_entry()  # only the user's is ours to redo
        found = applied.entry if applied else None
        old = {p.store_path for p in found.packages} if found else set()
        if found:
            entries.remove_entry(target)
        code, outcome = resolve([target], Options(assume_yes=assume_yes, remembered=False))
        if outcome is None or outcome.answer in (Answer.NO, Answer.NEVER):
            if found:  # keep what worked before
                entries.write_entry(found)
            worst = max(worst, code)
            continue
        new = {p.store_path for p in outcome.picked}
        stale = old - new - _store_paths_in_use()
        if stale:
            with _locked():
                profile.remove(sorted(stale))
        worst = max(worst, code)
    return worst


def _store_paths_in_use() -> set[str]:
    from nixld import entries

    return {p.store_path for _, e in entries.all_entries() for p in e.packages}


def plan_only(paths: Sequence[str], opts: Options) -> tuple[list[Analysis], Ranking | None]:
    """`resolve --dry-run`: the first round's analyses and ranked plan."""
    roots = _collect_all(paths)
    analyses = _analyse_all(list(roots), (), None, None, _with_roots(list(roots), opts, roots))
    _add_driver_dir(analyses, [], Reporter(opts.quiet))
    ranking = _rank_all(analyses, opts.db, set())
    extra = _with_requests(opts, Reporter(opts.quiet), [], [])
    if extra:
        from nixld.rank import PlanItem, Ranking

        ranking = ranking or Ranking({})
        ranking.plan.extend(PlanItem(p.attr, p.output, p.store_path, tuple(p.sonames))
                            for p in extra
                            if p.store_path not in {i.store_path for i in ranking.plan})
    from nixld.analysis import map_to_i686

    for analysis in analyses:
        analysis.ranking = ranking
        if Job32.of([analysis]):
            map_to_i686(analysis)  # its packages are pkgsi686Linux ones
    return analyses, ranking
