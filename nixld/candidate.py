"""The candidate check: can a provider's library serve this closure?

Only files already in the local store are read (nothing is downloaded to
rank). For each missing soname the closure needs, from its provider:

- the symbol versions its objects require (`.gnu.version_r`, what ld.so
  checks first): a candidate lacking one is dropped;
- where no version says anything, the unversioned symbols only that soname
  can provide (the undefined symbols of the objects needing it that no
  resolved library exports): a candidate lacking one is dropped.

Without glibc in the closure (no real loader found) libc's symbols cannot be
told apart from the missing library's, so no candidate is held to symbols:
a missing loader never discards the right provider.

`rank.rank_candidates` takes the check as a `VersionCheck`; later work (the
dlopen plugins, 32-bit candidates) changes the rules here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nixld.errors import BadInputError

if TYPE_CHECKING:
    from nixld.elf import ElfInfo
    from nixld.index import Provider
    from nixld.loader import Closure

# A check of one candidate's local file (soname, path): None when it passes
# (or cannot be checked), else the reason it fails.
VersionCheck = Callable[[str, str], str | None]
ReadFacts = Callable[[str], tuple[Iterable[str], Iterable[str]]]


def required_versions(closure: Closure) -> dict[str, list[str]]:
    """soname -> versions the closure needs from it."""
    required: dict[str, set[str]] = {}
    objects = [closure.binary, *(_object(closure, n.path) for n in closure.needed if n.path)]
    for info in objects:
        for need in info.version_needs if info else ():
            required.setdefault(need.library, set()).update(need.versions)
    return {soname: sorted(vs) for soname, vs in required.items()}


def _object(closure: Closure, path: str) -> ElfInfo | None:
    """An object of the closure, as the loader emulation already read it."""
    try:
        return closure.objects.library(path)
    except BadInputError:  # already reported by the loader
        return None


def required_symbols(closure: Closure, loaded: Sequence[str] = ()) -> dict[str, list[str]]:
    """Per missing soname without version requirements: the undefined symbols
    of the objects that need it which nothing the process has loaded exports:
    the closure's resolved libraries and `loaded` (the executable and the
    other closures of the process: an extension module's Py* symbols come
    from the interpreter). A candidate must export these (ld.so binds
    unversioned symbols to whichever loaded object has them). Empty without
    glibc (see above)."""
    if closure.unresolved_glibc:
        return {}
    versioned = required_versions(closure)
    exported: set[str] = set()
    for path in dict.fromkeys([*loaded, *(n.path for n in closure.needed if n.path)]):
        exported.update(library_facts(path)[1])
    out: dict[str, list[str]] = {}
    for need in closure.missing:
        if need.soname in versioned or need.path is not None:
            continue
        rest = sorted(_undefined_by(closure, need.needed_by) - exported)
        # Several missing sonames share the rest; only a soname needed alone by
        # its objects can be held to it.
        if rest and sum(1 for n in closure.missing if set(n.needed_by) & set(need.needed_by)) == 1:
            out[need.soname] = rest
    return out


def merged_versions(closures: Sequence[Closure]) -> dict[str, list[str]]:
    """required_versions of several closures of one process, merged."""
    merged: dict[str, list[str]] = {}
    for closure in closures:
        for soname, versions in required_versions(closure).items():
            have = merged.setdefault(soname, [])
            have.extend(v for v in versions if v not in have)
    return merged


def merged_symbols(closures: Sequence[Closure]) -> dict[str, list[str]]:
    """required_symbols of one process's closures: each judged against what the
    whole process has loaded (the executable, its closure, the roots')."""
    loaded = [c.binary.path for c in closures[:1]]
    loaded += [n.path for c in closures for n in c.needed if n.path]
    merged: dict[str, list[str]] = {}
    for closure in closures:
        for soname, syms in required_symbols(closure, loaded).items():
            merged.setdefault(soname, []).extend(syms)
    return merged


def _undefined_by(closure: Closure, needers: Iterable[str]) -> set[str]:
    undefined: set[str] = set()
    for needer in needers:
        info = closure.binary if needer == closure.binary.path else _object(closure, needer)
        undefined.update(info.undefined_symbols if info else ())
    return undefined


def library_facts(path: str) -> tuple[list[str], list[str]]:
    """(version definitions, exported symbols) of a library file, cached by
    the file's identity so the same checks are not paid twice."""
    from nixld.index import LibraryFactsCache

    cache = LibraryFactsCache()
    facts = cache.get(Path(path))
    if isinstance(facts, dict) and {"version_defs", "exports"} <= facts.keys():
        return list(facts["version_defs"]), list(facts["exports"])
    from nixld.elf import read_library

    info = read_library(path, symbols=True)
    defs, exports = list(info.version_defs), sorted(info.exported_symbols)
    cache.put(Path(path), {"version_defs": defs, "exports": exports})
    return defs, exports


def local_candidate_check(required: Mapping[str, Sequence[str]],
                          symbols: Mapping[str, Sequence[str]],
                          read_facts: ReadFacts) -> VersionCheck:
    """Build a check of a realised candidate against what the closure needs.

    `required[soname]` lists the versions the closure needs from `soname`;
    `symbols[soname]` the unversioned symbols only `soname` can provide.
    `read_facts(path)` returns a library file's (version definitions,
    exported symbols). Versions are checked first (cheap, and what ld.so
    checks); symbols only where no version says anything.
    """

    def check(soname: str, path: str) -> str | None:
        versions = required.get(soname)
        wanted = symbols.get(soname)
        if not (versions or wanted) or not os.path.exists(path):
            return None
        try:
            defined, exported = read_facts(path)
        except Exception:  # a broken local file is no reason to stop ranking
            return None
        if versions:
            return _lacking_versions(versions, defined)
        return _lacking_symbols(wanted or (), exported)

    return check


def _lacking_versions(versions: Sequence[str], defined: Iterable[str]) -> str | None:
    have = set(defined)
    lacking = [v for v in versions if v not in have]
    if not lacking:
        return None
    return f"lacks required version{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}"


def _lacking_symbols(wanted: Sequence[str], exported: Iterable[str]) -> str | None:
    exports = set(exported)
    absent = [sym for sym in wanted if sym not in exports]
    if not absent:
        return None
    more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
    return f"lacks symbol {absent[0]}{more}"


def check_for(providers: Mapping[str, Sequence[Provider]],
              required: Mapping[str, Sequence[str]],
              symbols: Callable[[], Mapping[str, Sequence[str]]] | None) -> VersionCheck:
    """The check for one ranking: `symbols` is computed only when some
    candidate is already local (it reads every resolved library's exports)."""
    any_local = any(os.path.exists(p.path) for provs in providers.values() for p in provs)
    wanted = symbols() if symbols is not None and any_local else {}
    return local_candidate_check(required, wanted, library_facts)
