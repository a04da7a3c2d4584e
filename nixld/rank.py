"""Choosing providers: rank every store path that ships a missing soname.

The nix-index database lists, for a common soname such as `libz.so.1`, dozens
of store paths: the real `zlib`, FHS environments that copy almost every
library, applications that bundle their own copies, non-top-level build
inputs. The rules, in the order they weigh (each leaves a reason behind):

1. Drop non-top-level copies unless nothing else has the soname: they cannot
   be installed by attribute, and their store paths are rarely substitutable.
2. Demote packages that merely bundle copies: FHS environments (steam-run),
   applications that ship many unrelated libraries, `*-unwrapped` builds and
   language-package vendored copies. They work, but pull in a lot.
3. Among the rest, prefer the set that covers all missing sonames with the
   fewest packages (greedy set cover: one `krb5` beats four small packages).
4. Prefer attributes named after the library (`libssl.so.3` -> `openssl`).
5. Prefer the `lib`/`out` outputs.

Candidates whose library file is already in the local store are also checked
against the version requirements of the objects that need them (their
`.gnu.version_d`, cheap); one that lacks a required version is dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nixld.index import Provider

# Scores. Larger is better; the tiers are far apart so that a lower rule never
# outweighs a higher one.
NOT_TOPLEVEL = -10_000
BUNDLE = -1_000
IN_COVER = 100
NAME_MATCH = 30
GOOD_OUTPUT = 10

# A store path shipping at least this many library files is treated as a bundle
# unless the soname is named after it (2.).
MANY_LIBRARIES = 40

# Well-known sonames whose nixpkgs attribute is not guessable from the name.
KNOWN_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "ssl": ("openssl",),
    "crypto": ("openssl",),
    "z": ("zlib",),
    "stdc++": ("gcc-unwrapped", "gcc", "stdenv.cc.cc"),
    "gcc_s": ("gcc-unwrapped", "gcc", "stdenv.cc.cc"),
    "gomp": ("gcc-unwrapped", "gcc"),
    "atomic": ("gcc-unwrapped", "gcc"),
    "quadmath": ("gcc-unwrapped", "gcc"),
    "gfortran": ("gfortran", "gcc-unwrapped"),
    "ncursesw": ("ncurses",),
    "tinfo": ("ncurses",),
    "formw": ("ncurses",),
    "menuw": ("ncurses",),
    "panelw": ("ncurses",),
    "gssapi_krb5": ("krb5",),
    "krb5support": ("krb5",),
    "k5crypto": ("krb5",),
    "com_err": ("krb5", "e2fsprogs"),
    "bz2": ("bzip2",),
    "lzma": ("xz",),
    "X11": ("xorg.libX11", "libX11"),
    "xcb": ("xorg.libxcb", "libxcb"),
    "GL": ("libGL", "libglvnd"),
    "EGL": ("libGL", "libglvnd"),
    "GLX": ("libGL", "libglvnd"),
    "OpenGL": ("libGL", "libglvnd"),
    "glib-2.0": ("glib",),
    "gobject-2.0": ("glib",),
    "gio-2.0": ("glib",),
    "gmodule-2.0": ("glib",),
    "dbus-1": ("dbus",),
    "asound": ("alsa-lib",),
    "uuid": ("libuuid", "util-linux"),
    "blkid": ("util-linux",),
    "mount": ("util-linux",),
    "ffi": ("libffi",),
    "expat": ("expat",),
    "curl": ("curl",),
    "gnutls": ("gnutls",),
    "systemd": ("systemd",),
    "udev": ("systemd", "udev"),
}

FHS_MARKERS = ("fhs", "steam-run", "steam", "appimage-run", "buildFHSEnv")
VENDOR_PREFIXES = (
    "python3Packages.", "python311Packages.", "python312Packages.", "python313Packages.",
    "perlPackages.", "rubyPackages.", "nodePackages.", "haskellPackages.",
    "vscode-extensions.", "luaPackages.", "ocamlPackages.",
)
_STEM = re.compile(r"^(?:lib)?(?P<stem>.+?)(?:[-_.]?\d[\d.]*)?\.so(?:\.[\d.]+)?$")


def soname_stem(soname: str) -> str:
    """`libssl.so.3` -> `ssl`, `libgtk-3.so.0` -> `gtk`, `libQt5Core.so.5` -> `Qt5Core`."""
    match = _STEM.match(soname)
    stem = match.group("stem") if match else soname
    return stem.rstrip("-_.") or soname


def _attr_words(attr: str) -> str:
    """The last component of an attribute, lower-cased, without separators."""
    return re.sub(r"[-_.]", "", attr.rsplit(".", 1)[-1].lower())


def name_matches(soname: str, attr: str) -> bool:
    """Rule 4: is `attr` named after the library `soname`?"""
    stem = soname_stem(soname)
    known = KNOWN_PROVIDERS.get(stem)
    if known and (attr in known or attr.rsplit(".", 1)[-1] in known):
        return True
    key = re.sub(r"[-_.+]", "", stem.lower())
    if len(key) < 2:
        return False
    word = _attr_words(attr)
    return word.startswith(key) or key.startswith(word) or word == f"lib{key}"


def bundle_reason(attr: str, name: str, library_count: int, soname: str) -> str | None:
    """Rule 2: why this store path counts as a bundle of copies, if it does."""
    lowered = f"{attr} {name}".lower()
    if any(marker.lower() in lowered for marker in FHS_MARKERS):
        return "FHS environment holding copies of many libraries"
    if attr.startswith(VENDOR_PREFIXES):
        return "vendored copy inside a language package"
    if attr.endswith("-unwrapped") and not name_matches(soname, attr):
        return "unwrapped build of an application (bundled copy)"
    if library_count >= MANY_LIBRARIES and not name_matches(soname, attr):
        return f"application bundling {library_count} libraries"
    return None


@dataclass(frozen=True)
class Candidate:
    """One store path that has `soname` under its `lib/`."""

    soname: str
    attr: str
    output: str
    store_path: str
    toplevel: bool
    system: str | None
    file: str
    score: int
    reasons: tuple[str, ...]
    dropped: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "attr": self.attr,
            "output": self.output,
            "store_path": self.store_path,
            "toplevel": self.toplevel,
            "score": self.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class PlanItem:
    attr: str
    output: str
    store_path: str
    sonames: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"attr": self.attr, "output": self.output, "store_path": self.store_path,
                "sonames": list(self.sonames)}


@dataclass
class Choice:
    """The ranked candidates of one missing soname, and the one chosen."""

    soname: str
    candidates: list[Candidate]
    chosen: Candidate | None


@dataclass
class Ranking:
    choices: dict[str, Choice]
    plan: list[PlanItem] = field(default_factory=list)


# A check of one candidate's local file against the versions the binary needs:
# returns None when it passes (or cannot be checked), else the reason it fails.
VersionCheck = Callable[[str, str], str | None]


def local_candidate_check(required: Mapping[str, Sequence[str]],
                          symbols: Mapping[str, Sequence[str]],
                          read_facts: Callable[[str], tuple[Iterable[str], Iterable[str]]],
                          ) -> VersionCheck:
    """Build a check of a realised candidate against what the closure needs.

    `required[soname]` lists the versions the closure needs from `soname`;
    `symbols[soname]` the unversioned symbols only `soname` can provide.
    `read_facts(path)` returns a library file's (version definitions,
    exported symbols). Only files already in the local store are read
    (nothing is downloaded to rank). Versions are checked first (cheap, and
    what ld.so checks); symbols only where no version says anything.
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
            have = set(defined)
            lacking = [v for v in versions if v not in have]
            if lacking:
                return (f"lacks required version{'s' if len(lacking) > 1 else ''} "
                        f"{', '.join(lacking)}")
            return None
        exports = set(exported)
        absent = [sym for sym in wanted or () if sym not in exports]
        if absent:
            more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
            return f"lacks symbol {absent[0]}{more}"
        return None

    return check


def _base_candidate(provider: Provider, library_counts: Mapping[str, int],
                    check: VersionCheck | None) -> Candidate:
    sp = provider.store_path
    origin = sp.origin
    attr = origin.attr if origin else sp.name
    output = origin.output if origin else "out"
    toplevel = origin.toplevel if origin else False
    system = origin.system if origin else None
    reasons: list[str] = []
    score = 0
    dropped = False
    if not toplevel:
        score += NOT_TOPLEVEL
        reasons.append("not a top-level package")
    bundle = bundle_reason(attr, sp.name, library_counts.get(sp.path, 0), provider.soname)
    if bundle:
        score += BUNDLE
        reasons.append(bundle)
    if name_matches(provider.soname, attr):
        score += NAME_MATCH
        reasons.append(f"named after {provider.soname}")
    if output in ("lib", "out"):
        score += GOOD_OUTPUT
        reasons.append(f"output {output}")
    if check is not None:
        failure = check(provider.soname, f"{sp.path}/{provider.file}")
        if failure:
            dropped = True
            reasons.append(failure)
    return Candidate(provider.soname, attr, output, sp.path, toplevel, system,
                     provider.file, score, tuple(reasons), dropped)


def _eligible(cands: list[Candidate]) -> list[Candidate]:
    """Rule 1 and 2 as filters for the cover: the best tier present wins."""
    alive = [c for c in cands if not c.dropped]
    if not alive:
        return []
    best_tier = max(c.score // -BUNDLE for c in alive)  # tiers are -10, -1, 0
    return [c for c in alive if c.score // -BUNDLE == best_tier]


def _greedy_cover(eligible: dict[str, list[Candidate]]) -> set[str]:
    """Rule 3: pick store paths covering all sonames with the fewest packages.

    Greedy set cover (optimal cover is NP-hard; greedy is what users expect:
    take the package that fixes the most, then the next). Ties go to the
    better-scored candidate, then to the attribute name, for determinism.
    Gains are updated incrementally: only paths sharing a newly covered
    soname change, which keeps a 40-soname binary's cover in a millisecond.
    """
    covers: dict[str, set[str]] = {}
    best: dict[str, Candidate] = {}
    for soname, cands in eligible.items():
        for cand in cands:
            covers.setdefault(cand.store_path, set()).add(soname)
            if cand.store_path not in best or cand.score > best[cand.store_path].score:
                best[cand.store_path] = cand
    # Alphabetical order decides among equals: `max` keeps the first maximum.
    order = sorted(covers, key=lambda p: (best[p].attr, p))
    gains = {p: len(covers[p]) for p in order}
    holders: dict[str, list[str]] = {}
    for p in order:
        for soname in covers[p]:
            holders.setdefault(soname, []).append(p)
    chosen: set[str] = set()
    while True:
        live = [p for p in order if gains[p] > 0]
        if not live:
            break
        store_path = max(live, key=lambda p: (gains[p], best[p].score))
        chosen.add(store_path)
        for soname in covers[store_path]:
            for p in holders.pop(soname, ()):
                gains[p] -= 1
    return chosen


def rank_candidates(
    providers: Mapping[str, Sequence[Provider]],
    *,
    library_counts: Mapping[str, int] | None = None,
    version_check: VersionCheck | None = None,
) -> Ranking:
    """Rank the providers of each missing soname and propose one package set."""
    counts = library_counts or {}
    ranked: dict[str, list[Candidate]] = {}
    for soname, provs in providers.items():
        seen: set[str] = set()
        cands: list[Candidate] = []
        for prov in provs:
            if prov.store_path.path in seen:  # lib/ and lib64/ of one store path
                continue
            seen.add(prov.store_path.path)
            cands.append(_base_candidate(prov, counts, version_check))
        ranked[soname] = cands

    cover = _greedy_cover({s: _eligible(c) for s, c in ranked.items()})
    choices: dict[str, Choice] = {}
    for soname, cands in ranked.items():
        final = [
            _with_cover_bonus(c) if c.store_path in cover and not c.dropped else c
            for c in cands
        ]
        final.sort(key=lambda c: (c.dropped, -c.score, c.attr, c.store_path))
        chosen = next((c for c in final if c.store_path in cover and not c.dropped), None)
        choices[soname] = Choice(soname, final, chosen)
    return Ranking(choices, plan_from_choices(choices.values()))


def _with_cover_bonus(cand: Candidate) -> Candidate:
    return Candidate(
        cand.soname, cand.attr, cand.output, cand.store_path, cand.toplevel, cand.system,
        cand.file, cand.score + IN_COVER,
        (*cand.reasons, "in the smallest package set covering all missing libraries"),
        cand.dropped,
    )


def plan_from_choices(choices: Iterable[Choice]) -> list[PlanItem]:
    """One plan item per chosen store path, with the sonames it provides."""
    by_path: dict[str, tuple[Candidate, list[str]]] = {}
    for choice in choices:
        if choice.chosen is None:
            continue
        cand = choice.chosen
        by_path.setdefault(cand.store_path, (cand, []))[1].append(choice.soname)
    return [
        PlanItem(c.attr, c.output, c.store_path, tuple(sorted(sonames)))
        for c, sonames in sorted(by_path.values(),
                                 key=lambda item: (item[0].attr, item[0].store_path))
    ]
