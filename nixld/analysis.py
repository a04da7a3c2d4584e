"""The whole analysis of one binary, as data flows through the project:

binary -> ELF facts -> loader emulation -> missing sonames -> providers from
the soname index -> ranked candidates -> plan.

`analyse` runs those steps; `nixld.report` turns the result into text or JSON;
`nixld.resolve` installs the plan and comes back here for the next round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nixld import paths
from nixld.errors import DatabaseError
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.elf import ElfInfo, ScriptInfo
    from nixld.loader import Closure, ElfCache
    from nixld.pkgsi686 import I686Choice, PlanItem32
    from nixld.rank import Ranking
    from nixld.runtime import Root, RootNeeds
    from nixld.search import Search

HOW_TO_GET_DATABASE = (
    "download a prebuilt one from nix-community/nix-index-database as "
    "~/.cache/nix-index/files, or build one with `nix-index` (slow), or point --db / "
    "$NIX_INDEX_DATABASE at a directory holding `files`"
)


@dataclass
class Analysis:
    """Everything learned about one binary (or script) in one round."""

    path: str
    info: ElfInfo | ScriptInfo
    closure: Closure | None = None
    ranking: Ranking | None = None
    database: Path | None = None
    warnings: list[str] = field(default_factory=list)
    database_error: str | None = None  # something is missing and there is no database
    # A 32-bit x86 binary: per missing soname the pkgsi686Linux packages to
    # try (nixld.pkgsi686), and the plan made of their first ones.
    i686: dict[str, I686Choice] | None = None
    plan32: list[PlanItem32] = field(default_factory=list)
    # What the process loads at run time besides the closure (nixld.runtime).
    runtime: list[RootNeeds] = field(default_factory=list)

    def raise_database_error(self) -> None:
        if self.database_error:
            raise DatabaseError(self.database_error)

    @property
    def missing_sonames(self) -> list[str]:
        """What the process lacks: the closure's, then the required roots'."""
        if self.closure is None:
            return []
        found = [n.soname for n in self.closure.missing]
        for needs in self.runtime:
            if needs.root.priority == "required":
                found += needs.missing_sonames
        return list(dict.fromkeys(found))

    @property
    def optional_needs(self) -> list[RootNeeds]:
        """Roots not installed without asking (recommended, suggested) that lack something."""
        return [n for n in self.runtime if n.root.priority != "required" and n.missing]

    def closures(self) -> list[Closure]:
        """The executable's closure and those of the roots its process must load."""
        if self.closure is None:
            return []
        return [self.closure, *(n.closure for n in self.runtime
                                if n.closure is not None and n.root.priority == "required")]

    def all_closures(self) -> list[Closure]:
        """Every closure, the optional roots' too (what the entry may use)."""
        return [] if self.closure is None else [
            self.closure, *(n.closure for n in self.runtime if n.closure is not None)]


@dataclass(frozen=True)
class Planned:
    """What a resolution in progress adds to a target's analysis: the dirs it
    chose (the per-user slot of the search, where the entry will name them),
    the 32-bit loader it built (path, source), the run-time roots it adds."""

    dirs: Sequence[str] = ()
    loader: tuple[str, str] | None = None
    roots: Sequence[Root] = ()


def search_for(path: str, env: Mapping[str, str] | None, planned: Planned,
               machine: str | None = None) -> Search:
    """The search the shim would set up for `path` today, plus what is planned."""
    from nixld.search import Search

    found = Search.for_binary(path, env, machine=machine, loader=planned.loader)
    return found.with_extra_dirs(planned.dirs)


def _is_i686(info: ElfInfo) -> bool:
    return info.machine == "EM_386" and info.elf_class == 32


def analyse_closure(path: str, *, env: Mapping[str, str] | None = None,
                    cache: ElfCache | None = None, planned: Planned = Planned()) -> Analysis:
    """Read `path` and, for a dynamic ELF, emulate the loader (no ranking).

    `cache` carries parsed ELF facts across calls (the rounds of a resolution
    analyse the same files again with more directories). An executable's
    run-time roots (its .note.dlopen, its own tree, and the planned ones) are
    analysed too.
    """
    from nixld.elf import ScriptInfo, read_binary
    from nixld.loader import ElfCache, resolve_closure

    info = read_binary(path)
    result = Analysis(path=path, info=info)
    if not isinstance(info, ScriptInfo) and not info.is_static:
        cache = cache or ElfCache()
        search = search_for(path, env, planned, info.machine)
        result.closure = resolve_closure(info, search, cache=cache)
        if info.interpreter is not None:
            result.runtime = runtime_needs(result, search, cache, planned.roots, env)
    return result


def runtime_needs(result: Analysis, search: Search, cache: ElfCache,
                  roots: Sequence[Root], env: Mapping[str, str] | None) -> list[RootNeeds]:
    """The executable's run-time roots, each analysed as its process loads it."""
    from nixld import runtime
    from nixld.elf import ElfInfo
    from nixld.trace import recorded_roots

    info, closure = result.info, result.closure
    assert isinstance(info, ElfInfo) and closure is not None

    found = [*runtime.note_roots(info), *runtime.tree_roots(info, closure, cache, env),
             *recorded_roots(info.path), *roots]
    unique = list(dict.fromkeys(found))
    return runtime.analyse_roots(unique, info, closure, search, cache)


def analyse(path: str, *, db: str | None = None, env: Mapping[str, str] | None = None,
            extra_dirs: Sequence[str] = ()) -> Analysis:
    """Analyse `path` and, if libraries are missing, rank their providers."""
    result = analyse_closure(path, env=env, planned=Planned(extra_dirs))
    if result.closure is None:
        return result
    missing = result.missing_sonames
    db_file = paths.database_file(db)
    result.database = db_file
    from nixld.elf import host_compat

    if missing and host_compat(result.closure.binary) and not _is_i686(result.closure.binary):
        # The database's libraries are for this machine's architecture: none of
        # them can serve this binary, so proposing them would only mislead.
        result.warnings.append(
            "no providers are proposed: the nix-index database lists libraries for this "
            "machine's architecture, which this binary cannot use")
        return result
    if not missing:
        if not db_file.exists():
            result.warnings.append(
                f"no nix-index database at {db_file} (not needed now: nothing is missing)")
        return result
    if not db_file.exists():
        # Reported after the analysis is shown: the tree is still worth seeing.
        more = f" and {len(missing) - 1} more are" if len(missing) > 1 else " is"
        result.database_error = (
            f"{safe(missing[0])}{more} missing, but there is no nix-index database at "
            f"{safe(db_file)}: {HOW_TO_GET_DATABASE}")
        return result
    result.ranking = rank_analysis(result, db_file)
    if _is_i686(result.closure.binary):
        map_to_i686(result)
    return result


def map_to_i686(result: Analysis) -> None:
    """A 32-bit x86 binary: the ranking's owners as pkgsi686Linux packages."""
    from nixld import pkgsi686

    if result.ranking is None:
        return
    result.i686 = pkgsi686.map_ranking(result.ranking)
    result.plan32 = pkgsi686.plan(result.i686.values())


def rank_analysis(result: Analysis, db_file: Path) -> Ranking:
    """Rank what the process lacks: the closure's and the required roots' needs."""
    from nixld.candidate import merged_symbols, merged_versions

    closures = result.closures()
    return rank_sonames(result.missing_sonames, merged_versions(closures), db_file,
                        symbols=lambda: merged_symbols(closures))


def rank_missing(closure: Closure, db_file: Path) -> Ranking:
    """Look up every missing soname of one closure in one go and rank them."""
    from nixld.candidate import required_symbols, required_versions

    return rank_sonames([n.soname for n in closure.missing], required_versions(closure), db_file,
                        symbols=lambda: required_symbols(closure))


def rank_sonames(sonames: Sequence[str], required: Mapping[str, Sequence[str]],
                 db_file: Path, *, exclude: Set[tuple[str, str]] = frozenset(),
                 symbols: Callable[[], Mapping[str, Sequence[str]]] | None = None) -> Ranking:
    """Rank the providers of `sonames`, minus excluded (soname, store path) pairs.

    `symbols` computes (only when some candidate is already local, since it
    reads every resolved library's exports) the unversioned symbols each
    missing soname must provide.
    """
    from nixld.candidate import check_for
    from nixld.index import SonameIndex
    from nixld.progress import ProgressLine
    from nixld.rank import rank_candidates

    progress = ProgressLine()  # a first index build takes seconds: show it, then erase it
    index = SonameIndex.open(db_file, progress=progress.show if progress.live else None)
    progress.end()
    providers = {
        soname: [p for p in provs if (soname, p.store_path.path) not in exclude]
        for soname, provs in index.lookup(sonames).items()
    }
    for soname in sonames:
        providers.setdefault(soname, [])
    check = check_for(providers, required, symbols)
    return rank_candidates(providers, version_check=check)
