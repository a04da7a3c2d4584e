"""`nixld-hook resolve`: the job around the rounds, and what the user is told.

The order: collect the targets (a directory gives every dynamic ELF in it),
skip binaries marked never (from the hook), take the state lock, start from
the dirs each target's per-user entry and its remembered choice already
name, turn `--with` into packages, run the rounds (nixld.rounds, with the
Nix realiser of nixld.fetch and the prompt), then root everything in the
profile, write each target's entry and remember the choice by content.
Success is reported only when nothing in any closure is missing. All
printing happens here, at the command's edge.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nixld.errors import BadInputError, ExitCode
from nixld.package import Package
from nixld.prompt import Answer
from nixld.rounds import Decide, Decision, Job, Outcome, add_driver_dir, run_rounds
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.analysis import Analysis
    from nixld.entries import Entry
    from nixld.prompt import PlanSummary
    from nixld.rank import Ranking
    from nixld.runtime import Root

# target -> the run-time roots the resolution adds to it (extension modules, --with)
Roots = dict[str, list["Root"]]


@dataclass(frozen=True)
class Options:
    assume_yes: bool = False  # --yes / auto-accept: take the top-ranked plan
    quiet: bool = False  # no progress, only errors and the final line
    with_: Sequence[str] = ()  # extra sonames or attributes loaded with dlopen
    db: str | None = None
    from_hook: bool = False  # asked by the shell hook: honour "never"
    remembered: bool = True  # reuse a choice remembered for the same content
    # target -> run-time roots the resolution adds (a venv's extension modules)
    roots: Roots = field(default_factory=dict)


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


def collect_all(paths: Sequence[str]) -> Roots:
    roots: Roots = {}
    for path in paths:
        for target, extra in collect(path).items():
            roots.setdefault(target, []).extend(extra)
    return roots


def _executables(path: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(full for name in sorted(files)
                     if _is_dynamic_executable(full := os.path.join(root, name)))
    if not found:
        raise BadInputError(f"{safe(path)}: no dynamically linked executables in this directory")
    return found


def _is_dynamic_executable(full: str) -> bool:
    from nixld.elf import ElfInfo, read_binary
    from nixld.runtime import has_elf_magic

    if os.path.islink(full) or not os.path.isfile(full) or not has_elf_magic(full):
        return False
    try:
        info = read_binary(full)
    except BadInputError:
        return False
    return isinstance(info, ElfInfo) and info.interpreter is not None and bool(info.needed)


# ---------------------------------------------------------------- before the rounds


@dataclass
class Kept:
    """What the targets already have: their per-user entry's dirs and packages,
    and those remembered for files with the same content (a copy, a move)."""

    dirs: list[str] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)

    def add(self, dirs: Sequence[str], packages: Sequence[Package]) -> None:
        for d in dirs:
            if d not in self.dirs and os.path.isdir(d):
                self.dirs.append(d)
        self.packages.extend(p for p in packages
                             if p.lib_dir in self.dirs and p not in self.packages)


def kept_for(targets: Sequence[str]) -> Kept:
    from nixld.fileid import sha256_of
    from nixld.memory import recall_choice
    from nixld.search import Search

    kept = Kept()
    for target in targets:
        user = Search.for_binary(target).user_entry()
        if user is not None and user.valid:
            kept.add(user.entry.dirs, user.entry.packages)
        remembered = recall_choice(sha256_of(target))
        if remembered is not None:
            kept.add(remembered.dirs, remembered.packages)
    return kept


@dataclass(frozen=True)
class WithRequests:
    """--with: attributes built from nixpkgs (packages and their dirs); sonames
    become run-time roots of every target (with_roots)."""

    prebuilt: tuple[Package, ...] = ()
    dirs: tuple[str, ...] = ()


def with_requests(opts: Options) -> WithRequests:
    """Build --with's attributes before the rounds."""
    prebuilt = [_build(w) for w in opts.with_ if ".so" not in w]
    return WithRequests(tuple(prebuilt), tuple(p.lib_dir for p in prebuilt))


def with_roots(targets: Sequence[str], opts: Options, roots: Roots) -> Roots:
    """--with's sonames as required roots of every target: looked up like
    missing ones, their own missing libraries resolved in the next round."""
    from nixld.runtime import soname_roots

    sonames = [w for w in opts.with_ if ".so" in w]
    if not sonames:
        return roots
    extra = soname_roots(sonames, "with")
    return {t: [*roots.get(t, []), *extra] for t in targets}


def _with_for_i686(opts: Options, targets: Sequence[str]) -> Options:
    """For 32-bit x86 targets, --with ATTR means pkgsi686Linux.ATTR."""
    from nixld.pkgsi686 import PACKAGE_SET
    from nixld.search import elf_machine

    if not targets or not all(elf_machine(t) == "EM_386" for t in targets):
        return opts
    mapped = [w if ".so" in w or w.startswith(f"{PACKAGE_SET}.") else f"{PACKAGE_SET}.{w}"
              for w in opts.with_]
    return replace(opts, with_=mapped)


def _build(attr: str) -> Package:
    from nixld import nix

    name, _, output = attr.partition("^")
    return Package(nix.build_attr(name, output or "out"), name, output or "out")


# ---------------------------------------------------------------- the question


class NotAsked(Exception):
    """There is no terminal to ask on and no --yes."""


def auto_accept_enabled() -> bool:
    from nixld.config import auto_accept, load_config

    return auto_accept(load_config())


def prompt_decider(opts: Options, rep: Reporter, label: str) -> Decide:
    """Round 1's decision: --yes or auto-accept, else the prompt on a terminal."""

    def decide(analyses: Sequence[Analysis], ranking: Ranking) -> Decision:
        if opts.assume_yes or auto_accept_enabled():
            return Decision(Answer.YES)
        from nixld import prompt

        if not prompt.can_prompt():
            raise NotAsked
        answer = prompt.ask_plan(_summary(analyses, ranking, opts, label))
        if answer is Answer.CHOOSE:
            return Decision(answer, prompt.choose_candidates(list(ranking.choices.values())))
        if answer is Answer.ALWAYS:
            from nixld.config import set_setting

            set_setting("auto_accept", True)
            rep.say("auto-accept is on from now on (nixld-hook install --auto-accept; "
                    "turn off in the config file)")
        return Decision(answer)

    return decide


def _summary(analyses: Sequence[Analysis], ranking: Ranking, opts: Options,
             label: str) -> PlanSummary:
    from nixld import prompt

    plan, to_fetch, size = _shown_plan(analyses, ranking)
    # Offered per root (a plugin, a recommended note): not in the plan.
    hints = [f"{s} (for {os.path.basename(n.root.label)})" if n.root.path else s
             for a in analyses for n in a.optional_needs
             if n.root.priority == "recommended"  # suggested ones: explain lists them
             for s in n.missing_sonames if s not in opts.with_]
    return prompt.PlanSummary(label, list(ranking.choices), plan, size,
                              len(to_fetch), list(dict.fromkeys(hints)))


def _shown_plan(analyses: Sequence[Analysis], ranking: Ranking,
                ) -> tuple[list[Package], list[str], int | None]:
    """The plan the prompt shows, with what it would download. A 32-bit job
    shows its pkgsi686Linux packages, to be built (no store path yet)."""
    from nixld import nix
    from nixld.errors import NixError
    from nixld.i686 import is_i686

    infos = [a.closure.binary for a in analyses if a.closure is not None]
    if infos and all(is_i686(i) for i in infos):
        from nixld import pkgsi686

        items = pkgsi686.plan(pkgsi686.map_ranking(ranking).values())
        return [Package("", i.attr, i.output, i.sonames) for i in items], [], None
    try:
        to_fetch, size = nix.query_missing([p.store_path for p in ranking.plan])
    except NixError:
        to_fetch, size = [], None
    return ranking.plan, to_fetch, size


# ---------------------------------------------------------------- entries


def _entry_dirs(analysis: Analysis, dirs: Sequence[str], always: Sequence[str]) -> list[str]:
    """The chosen dirs this binary's closure loads from (and --with's), in order."""
    used = [n for c in analysis.all_closures() for n in c.needed if n.via == "entry" and n.path]
    return [d for d in dirs
            if d in always or any(os.path.exists(os.path.join(d, n.soname)) for n in used)]


def write_entries(outcome: Outcome, kept: Sequence[Package] = ()) -> list[Path]:
    """Each target's entry (the dirs its closure uses, their packages) and the
    choice remembered for its content."""
    from nixld import entries
    from nixld.fileid import Identity, sha256_of
    from nixld.memory import remember_choice

    packages = list(dict.fromkeys(p.record() for p in (*outcome.picked, *kept)))
    written = []
    for analysis in outcome.analyses:
        target = os.path.realpath(analysis.path)
        own = _entry_dirs(analysis, outcome.dirs, outcome.always_dirs)
        needed = [n for c in analysis.all_closures() for n in c.needed]
        # A 32-bit glibc built as the loader is recorded too: `run` and the
        # search read it back from the entry.
        loader = analysis.closure.search.loader.path if analysis.closure else ""
        entry = entries.Entry(
            path=target,
            identity=Identity.of_file(target),
            dirs=tuple(own),
            sha256=sha256_of(target),
            packages=tuple(p for p in packages
                           if p.lib_dir in own or loader.startswith(p.store_path + "/")),
            sonames=tuple(dict.fromkeys((n.soname, n.path or "") for n in needed
                                        if n.via == "entry")),
        )
        written.append(entries.write_entry(entry))
        written += _write_build_id_entry(entry)
        remember_choice(entry.sha256, entry.packages, entry.dirs)
    return written


def _write_build_id_entry(entry: Entry) -> list[Path]:
    """Beside the path entry, the build-id entry: a copy elsewhere starts too."""
    from nixld import entries
    from nixld.elf import read_build_id

    build_id = read_build_id(entry.path)
    return [entries.write_build_id_entry(entry, build_id)] if build_id else []


# ---------------------------------------------------------------- entry points


def resolve(paths: Sequence[str], opts: Options) -> tuple[int, Outcome | None]:
    """`nixld-hook resolve`: returns the exit code and what happened."""
    # A group of _resolve_each keeps the roots its directory gave.
    roots = {t: opts.roots.get(t) or extra for t, extra in collect_all(paths).items()}
    opts = replace(opts, roots=roots)
    targets = list(roots)
    groups = _by_word_size(targets)
    if len(groups) > 1:
        return _resolve_each(groups, opts)
    label = paths[0] if len(paths) == 1 else f"{len(targets)} files"
    return _resolve_job(label, targets, opts)


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


def _resolve_job(label: str, targets: Sequence[str], opts: Options,
                 ) -> tuple[int, Outcome | None]:
    """One job: the rounds, then the profile and the entries."""
    from nixld import lock
    from nixld.memory import is_never

    rep = Reporter(opts.quiet)
    if opts.from_hook and any(is_never(t) for t in targets):
        return ExitCode.OK, None
    with lock.state_lock():
        kept = kept_for(targets) if opts.remembered else Kept()
        try:
            outcome = _rounds(targets, kept, opts, rep, label)
        except NotAsked:
            rep.say(f"{safe(label)} lacks libraries; no terminal to ask on: run "
                    f"`nixld-hook resolve --yes {safe(label)}` to install the proposed packages")
            return ExitCode.FAILURE, None
        if outcome.answer in (Answer.NO, Answer.NEVER):
            return _declined(outcome, targets, label, rep), outcome
        _install(outcome, kept)
    return _report(outcome, rep), outcome


def _rounds(targets: Sequence[str], kept: Kept, opts: Options, rep: Reporter,
            label: str) -> Outcome:
    from nixld.fetch import realiser_for

    extra = with_requests(_with_for_i686(opts, targets))
    job = Job(tuple(targets), opts.db, tuple(kept.dirs), extra.prebuilt, extra.dirs,
              with_roots(targets, opts, opts.roots))
    return run_rounds(job, realiser_for(rep.say, rep.failed, quiet=opts.quiet),
                      prompt_decider(opts, rep, label), rep.say)


def _declined(outcome: Outcome, targets: Sequence[str], label: str, rep: Reporter) -> int:
    if outcome.answer is Answer.NEVER:
        from nixld.memory import mark_never

        for target in targets:
            mark_never(target)
        rep.say(f"will not ask about {safe(label)} again (nixld-hook forget to undo)")
        return ExitCode.OK
    rep.say("nothing installed")
    return ExitCode.FAILURE


def _install(outcome: Outcome, kept: Kept) -> None:
    """Root every package in the profile, then write the entries."""
    from nixld import profile

    store_paths = [p.store_path for p in (*outcome.picked, *kept.packages)]
    store_paths += _unrecorded(kept)
    if store_paths:
        profile.install(list(dict.fromkeys(store_paths)))
    # A 32-bit binary may need only its loader: the entry records it.
    outcome.entries = write_entries(outcome, kept.packages) \
        if outcome.dirs or outcome.picked else []


def _unrecorded(kept: Kept) -> list[str]:
    """Store paths of kept dirs no package line names (a choice remembered by
    an older version): rooted all the same, or a gc would take them."""
    from nixld.manage import store_path_of

    named = {p.lib_dir for p in kept.packages}
    return [sp for d in kept.dirs if d not in named and (sp := store_path_of(d))]


def _not_libraries(outcome: Outcome) -> tuple[list[str], int]:
    """What libraries cannot fix, said once per target; and the worst exit code."""
    lines: list[str] = []
    code = ExitCode.OK
    for analysis in outcome.analyses:
        line, failed = _not_library_line(analysis)
        if line:
            lines.append(line)
        if failed:
            code = ExitCode.FAILURE
    return lines, code


def _not_library_line(analysis: Analysis) -> tuple[str | None, bool]:
    from nixld.elf import ScriptInfo

    info, name = analysis.info, safe(analysis.path)
    if isinstance(info, ScriptInfo):
        if not info.interpreter_exists:
            return (f"{name} is a script whose #! interpreter {safe(info.interpreter)} does not "
                    "exist: libraries cannot fix that (edit its first line, e.g. "
                    "`#!/usr/bin/env NAME`)"), True
        return f"{name} is a script: its interpreter exists, nothing to do", False
    if info.is_static:
        return f"{name} is statically linked: it needs no loader and no libraries", False
    if analysis.closure is not None and not analysis.closure.real_loader_exists:
        return (f"note: the real loader {safe(analysis.closure.search.loader.path)} does not "
                "exist here, so glibc was not checked (set NIX_LD, or enable the shim on "
                "NixOS)"), False
    return None, False


def _say(line: str) -> None:
    print(f"nixld-hook: {line}", file=sys.stderr)


def _report(outcome: Outcome, rep: Reporter) -> int:
    notes, code = _not_libraries(outcome)
    for note in dict.fromkeys(notes):
        _say(note)
    if outcome.complete:
        if not code:
            _say(_success_line(outcome))
        return code
    missing = outcome.still_missing
    failed = [safe(s) for s in missing if s in outcome.failed]
    unprovided = [safe(s) for s in missing if s not in outcome.failed]
    if failed:
        _say(f"still missing: {', '.join(failed)} (every candidate failed to install; see the "
             "messages above)")
    if unprovided:
        _say(f"still missing: {', '.join(unprovided)} (no package in the database provides "
             "them; a newer database may, or try --with ATTR)")
    for analysis in outcome.analyses:
        if analysis.closure is not None and analysis.closure.glibc_problems:
            versions = sorted({p.version for p in analysis.closure.glibc_problems})
            _say(f"{safe(analysis.path)} needs {', '.join(versions)}, newer than the real "
                 "loader's glibc: libraries cannot fix this")
    return ExitCode.FAILURE


def _success_line(outcome: Outcome) -> str:
    names = ", ".join(safe(t) for t in outcome.targets[:3])
    more = f" and {len(outcome.targets) - 3} more" if len(outcome.targets) > 3 else ""
    installed = ", ".join(safe(p.attr) for p in outcome.picked)
    if installed:
        return f"installed {installed}; {names}{more} now finds every library"
    if outcome.entries:
        return f"{names}{more} now finds every library (remembered choice)"
    return f"{names}{more}: nothing is missing, nothing to install"


def resolve_interactive(path: str, *, quiet: bool = False) -> int:
    """Called by `nixld-hook handle` after a failure caught by a shell hook."""
    code, _ = resolve([path], Options(quiet=quiet, from_hook=True))
    return code


def plan_only(paths: Sequence[str], opts: Options) -> tuple[list[Analysis], Ranking | None]:
    """`resolve --dry-run`: the first round's analyses and ranked plan; nothing
    is built, installed or written."""
    from nixld.rounds import analyse_all, rank_all

    roots = collect_all(paths)
    analyses = analyse_all(list(roots), (), roots=with_roots(list(roots), opts, roots))
    add_driver_dir(analyses, [], Reporter(opts.quiet).say)
    ranking = rank_all(analyses, opts.db, set())
    from nixld.analysis import map_to_i686
    from nixld.i686 import is_i686

    for analysis in analyses:
        analysis.ranking = ranking
        if analysis.closure is not None and is_i686(analysis.closure.binary):
            map_to_i686(analysis)  # its packages are pkgsi686Linux ones
    return analyses, ranking
