"""Choosing providers: the package each missing library belongs to.

The nix-index database lists, for a common soname such as `libz.so.1`, dozens
of store paths: the real `zlib`, FHS environments that copy almost every
library, applications that bundle their own copies, non-top-level build
inputs, the same store path under several attributes. Which store path *owns*
each library file was decided once, when the soname index was built
(nixld.ownership: named after it, its pkg-config files, a link to a library it
owns, the best top-level provider that is no bundle). The rules here:

1. Aliases collapse: the attributes listing one store path are one candidate,
   shown under its canonical name (the shortest unscoped attribute; a
   `*Packages.*` scope such as `kdePackages.` last).
2. Tiers: an owner; another top-level library package; a bundle or
   application (most of its libraries belong to other packages); an FHS
   environment; a non-top-level copy. A soname is covered from its best tier
   present, so a bundle, FHS environment or copy serves only when nothing owns
   the soname, and the candidate says so.
3. Within that tier, the fewest packages covering all missing sonames win
   (greedy set cover: one `krb5` beats four small packages); ties go to
   `lib`/`out` outputs, then to the canonical name and store path, so the
   database's order never changes a choice.

Candidates whose library file is already in the local store are also checked
against what the closure needs from them (nixld.candidate: the required
symbol versions, else the symbols only they can provide); one that fails is
dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from nixld import ownership
from nixld.package import Package

if TYPE_CHECKING:
    from nixld.candidate import VersionCheck
    from nixld.index import Provider

# Tiers (rule 2), best first, and the score they give (for display: the choice
# is made by tier, then cover, then the deterministic tie-break).
OWNER, LIBRARY, BUNDLE, FHS, NOT_TOPLEVEL = 4, 3, 2, 1, 0
TIER_SCORE = 1000
IN_COVER = 100
STRONG_CLAIM = 20
WEAK_CLAIM = 10
GOOD_OUTPUT = 5

CLAIM_REASONS = {
    ownership.NAMED: "owns it: named after it",
    ownership.PKG_CONFIG: "owns it: has its pkg-config file",
    ownership.DEV_OUTPUT: "owns it: its dev output has its pkg-config file",
    ownership.LINKED: "owns it: a link to a library it owns",
    ownership.BEST_PROVIDER: "owns it: the top-level package shipping it that is no bundle",
}


# Driver libraries are the system's: on NixOS they come only from the graphics
# driver (hardware.graphics) in /run/opengl-driver/lib (and -32/lib), never
# from a package, since they must match the kernel module and the hardware.
# The dispatchers that find them (libglvnd's libGL, libEGL, libGLX, libOpenGL;
# vulkan-loader's libvulkan) are ordinary packages.
OPENGL_DRIVER_DIRS = ("/run/opengl-driver/lib", "/run/opengl-driver-32/lib")
_DRIVER = re.compile(r"^(?:lib(?:cuda|nvcuvid|nvidia-[\w.-]+|GLX_\w+|EGL_\w+|GLESv[12]\w*_\w+"
                     r"|vdpau_\w+)|\w+_dri|\w+_drv_video)\.so(?:\.[\d.]+)?$")


def is_driver_library(soname: str) -> bool:
    """True for a vendor or driver library: no package may provide it."""
    return _DRIVER.match(soname) is not None


def canonical_attr(attrs: Iterable[str]) -> str:
    """The name to show for a store path listed under several attributes."""
    def key(attr: str) -> tuple[int, int, str]:
        scope = attr.rsplit(".", 1)[0] if "." in attr else ""
        rank = 0 if not scope else 2 if scope.endswith("Packages") else 1
        return rank, len(attr), attr

    return min(attrs, key=key)


@dataclass(frozen=True)
class Candidate:
    """One store path that has `soname` under its `lib/` (its aliases merged)."""

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
    tier: int = LIBRARY
    role: str = ownership.LIBRARY
    owner: bool = False
    aliases: tuple[str, ...] = ()
    lost: str | None = None  # why it was not chosen (None for the choice)

    def to_json(self) -> dict[str, object]:
        return {
            "attr": self.attr,
            "output": self.output,
            "store_path": self.store_path,
            "toplevel": self.toplevel,
            "score": self.score,
            "reasons": list(self.reasons),
            "owner": self.owner,
            "role": self.role if self.toplevel else "non-toplevel",
            "aliases": list(self.aliases),
            "lost": self.lost,
        }


@dataclass
class Choice:
    """The ranked candidates of one missing soname, and the one chosen."""

    soname: str
    candidates: list[Candidate]
    chosen: Candidate | None


@dataclass
class Ranking:
    choices: dict[str, Choice]
    plan: list[Package] = field(default_factory=list)


def _tier(toplevel: bool, claim: str, role: str) -> int:
    if claim:
        return OWNER
    if not toplevel:
        return NOT_TOPLEVEL
    return {ownership.FHS: FHS, ownership.BUNDLE: BUNDLE,
            ownership.APPLICATION: BUNDLE}.get(role, LIBRARY)


def _role_reason(tier: int, role: str, standing: ownership.Standing | None) -> str | None:
    if tier == NOT_TOPLEVEL:
        return "not a top-level package"
    if tier == FHS:
        return "FHS environment holding copies of libraries"
    if tier == BUNDLE and standing is not None:
        what = "application bundling copies" if role == ownership.APPLICATION else "bundle"
        return (f"{what}: {standing.others} of its {standing.libraries} library files "
                f"belong to other packages")
    if tier == LIBRARY:
        return "ships it, but does not own it"
    return None


def _candidate(soname: str, provs: Sequence[Provider], check: VersionCheck | None) -> Candidate:
    """One candidate from the index entries of one store path (its aliases)."""
    first = provs[0]
    sp = first.store_path
    attrs = sorted({p.store_path.origin.attr if p.store_path.origin else sp.name for p in provs})
    attr = canonical_attr(attrs)
    origin = next((p.store_path.origin for p in provs if p.store_path.origin), None)
    output = origin.output if origin else "out"
    toplevel = any(p.store_path.origin.toplevel for p in provs if p.store_path.origin)
    claim = next((p.claim for p in provs if p.claim), "")
    standing = first.standing
    role = standing.role if standing else ownership.LIBRARY
    tier = _tier(toplevel, claim, role)
    reasons = [CLAIM_REASONS.get(claim, "owns it")] if claim else []
    described = _role_reason(tier, role, standing)
    if described:
        reasons.append(described)
    aliases = tuple(a for a in attrs if a != attr)
    if aliases:
        reasons.append(f"also listed as {', '.join(aliases)}")
    score = tier * TIER_SCORE + (STRONG_CLAIM if claim in ownership.STRONG else
                                 WEAK_CLAIM if claim else 0)
    if output in ("lib", "out"):
        score += GOOD_OUTPUT
        reasons.append(f"output {output}")
    failure = check(soname, f"{sp.path}/{first.file}") if check is not None else None
    if failure:
        reasons.append(failure)
    return Candidate(soname, attr, output, sp.path, toplevel, origin.system if origin else None,
                     first.file, score, tuple(reasons), bool(failure), tier,
                     role, bool(claim), aliases)


def _eligible(cands: list[Candidate]) -> list[Candidate]:
    """Rule 2: only the best tier present takes part in the cover."""
    alive = [c for c in cands if not c.dropped]
    if not alive:
        return []
    best = max(c.tier for c in alive)
    return [c for c in alive if c.tier == best]


def _greedy_cover(eligible: dict[str, list[Candidate]]) -> set[str]:
    """Rule 3: pick store paths covering all sonames with the fewest packages.

    Greedy set cover (optimal cover is NP-hard; greedy is what users expect:
    take the package that fixes the most, then the next). Ties go to the
    better-scored candidate, then to the canonical name and store path.
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


def _candidates(soname: str, provs: Sequence[Provider],
                check: VersionCheck | None) -> list[Candidate]:
    """Rule 1: one candidate per store path (lib/ and lib64/, and aliases, merged)."""
    if is_driver_library(soname):  # the system's graphics driver provides it, or nothing
        return []
    by_path: dict[str, list[Provider]] = {}
    for prov in provs:
        by_path.setdefault(prov.store_path.path, []).append(prov)
    return [_candidate(soname, group, check) for _, group in sorted(by_path.items())]


def rank_candidates(
    providers: Mapping[str, Sequence[Provider]],
    *,
    version_check: VersionCheck | None = None,
) -> Ranking:
    """Rank the providers of each missing soname and propose one package set."""
    ranked = {soname: _candidates(soname, provs, version_check)
              for soname, provs in providers.items()}
    cover = _greedy_cover({s: _eligible(c) for s, c in ranked.items()})
    choices: dict[str, Choice] = {}
    for soname, cands in ranked.items():
        final = [_in_cover(c) if c.store_path in cover and not c.dropped else c for c in cands]
        final.sort(key=lambda c: (c.dropped, -c.score, c.attr, c.store_path))
        chosen = next((c for c in final if c.store_path in cover and not c.dropped), None)
        choices[soname] = Choice(soname, [_with_loss(c, chosen) for c in final], chosen)
    return Ranking(choices, plan_from_choices(choices.values()))


def _in_cover(cand: Candidate) -> Candidate:
    why = ("in the smallest set of owners covering all missing libraries" if cand.owner
           else "used only because nothing owns it")
    return replace(cand, score=cand.score + IN_COVER, reasons=(*cand.reasons, why))


def _with_loss(cand: Candidate, chosen: Candidate | None) -> Candidate:
    """Say why a runner-up lost to the choice."""
    if chosen is not None and cand.store_path == chosen.store_path:
        return cand
    return replace(cand, lost=_loss(cand, chosen))


def _loss(cand: Candidate, chosen: Candidate | None) -> str:
    if cand.dropped:
        return cand.reasons[-1]
    if chosen is None:
        return "not in the package set"
    if chosen.tier > cand.tier:
        return f"{chosen.attr} owns it" if chosen.owner else f"{chosen.attr} ranks higher"
    return f"{chosen.attr} covers the missing libraries with fewer packages or ranks first"


def plan_from_choices(choices: Iterable[Choice]) -> list[Package]:
    """One plan item per chosen store path, with the sonames it provides."""
    by_path: dict[str, tuple[Candidate, list[str]]] = {}
    for choice in choices:
        if choice.chosen is None:
            continue
        cand = choice.chosen
        by_path.setdefault(cand.store_path, (cand, []))[1].append(choice.soname)
    return [
        Package(c.store_path, c.attr, c.output, tuple(sorted(sonames)))
        for c, sonames in sorted(by_path.values(),
                                 key=lambda item: (item[0].attr, item[0].store_path))
    ]
