"""32-bit x86 providers: the 64-bit database's owners as `pkgsi686Linux` attributes.

nix-index-database publishes no i686 database, but nixpkgs builds its
libraries for i686 too, as `pkgsi686Linux.<attr>` with the same outputs. So
the owner the ranking chose for a soname in the 64-bit database names the
package, and the same attribute under `pkgsi686Linux` (same output) is its
32-bit build: `xorg.libX11` (out) -> `pkgsi686Linux.xorg.libX11` (out).

The rules, in order, for each missing soname:

1. The ranking's chosen owner first, then the other candidates in ranked
   order (the scoring is the ranking's; nothing is re-scored here).
2. An owner that is not a top-level attribute, or that belongs to another
   package set (`pkgsCross.*`, `pkgsMusl.*`, `pkgsStatic.*`, ...), has no
   `pkgsi686Linux` counterpart: skipped, with the reason.
3. One attribute and output is tried once, however many owners name it.

Whether the attribute exists in the user's nixpkgs (and builds for i686) is
learned only by building it (nixld.i686); a missing one falls back to the
next mapped candidate, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nixld.rank import Candidate, Choice, Ranking

PACKAGE_SET = "pkgsi686Linux"
# The 32-bit glibc: its ld-linux.so.2 is the real loader when NIX_LD_i686_linux is unset.
GLIBC_ATTR = f"{PACKAGE_SET}.glibc"
LOADER_NAME = "ld-linux.so.2"

# Package sets of nixpkgs whose members are built for another platform or
# libc: their attributes have no pkgsi686Linux counterpart.
OTHER_PACKAGE_SETS = ("pkgsCross.", "pkgsMusl.", "pkgsStatic.", "pkgsLLVM.", "pkgsi686Linux.",
                      "pkgsx86_64Darwin.", "pkgsExtraHardening.", "pkgsLLVMLibc.")
_ATTR_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_'\-]*(?:\.[A-Za-z_][A-Za-z0-9_'\-]*)*")


def i686_attr(attr: str) -> str | None:
    """`xorg.libX11` -> `pkgsi686Linux.xorg.libX11`; None when there is none."""
    if attr.startswith(OTHER_PACKAGE_SETS) or not _ATTR_PATH.fullmatch(attr):
        return None
    return f"{PACKAGE_SET}.{attr}"


@dataclass(frozen=True)
class Mapped:
    """One 32-bit package to try for a soname, and the 64-bit owner it comes from."""

    soname: str
    attr: str  # pkgsi686Linux.<owner's attr>
    output: str  # the owner's output
    owner_attr: str
    owner_store_path: str
    why: str  # "the ranking's choice", "next candidate (rank 2)"

    def to_json(self) -> dict[str, object]:
        return {"attr": self.attr, "output": self.output,
                "from": {"attr": self.owner_attr, "output": self.output,
                         "store_path": self.owner_store_path},
                "why": self.why}


@dataclass(frozen=True)
class Unmapped:
    """A 64-bit owner with no pkgsi686Linux counterpart, and why."""

    owner_attr: str
    owner_store_path: str
    why: str

    def to_json(self) -> dict[str, object]:
        return {"attr": self.owner_attr, "store_path": self.owner_store_path, "why": self.why}


@dataclass(frozen=True)
class I686Choice:
    """The 32-bit packages for one missing soname, in the order they are tried."""

    soname: str
    tries: tuple[Mapped, ...]
    unmapped: tuple[Unmapped, ...]

    @property
    def first(self) -> Mapped | None:
        return self.tries[0] if self.tries else None

    def to_json(self) -> dict[str, object]:
        first = self.first
        return {"attr": first.attr if first else None,
                "output": first.output if first else None,
                "tries": [m.to_json() for m in self.tries],
                "unmapped": [u.to_json() for u in self.unmapped]}


def _ordered_owners(choice: Choice) -> list[Candidate]:
    """Rule 1: the chosen owner first, then the rest in the ranking's order."""
    alive = [c for c in choice.candidates if not c.dropped]
    chosen = choice.chosen
    if chosen is None:
        return alive
    return [chosen, *(c for c in alive if c.store_path != chosen.store_path)]


def _unmappable(owner: Candidate) -> str | None:
    """Rule 2: why this owner has no pkgsi686Linux counterpart."""
    if not owner.toplevel:
        return "not a top-level attribute of nixpkgs"
    if i686_attr(owner.attr) is None:
        return f"{owner.attr} is not an attribute of the default package set"
    return None


def map_choice(choice: Choice) -> I686Choice:
    """The pkgsi686Linux packages to try for one soname (rules 1-3)."""
    tries: list[Mapped] = []
    unmapped: list[Unmapped] = []
    seen: set[tuple[str, str]] = set()
    for rank, owner in enumerate(_ordered_owners(choice), start=1):
        problem = _unmappable(owner)
        if problem:
            unmapped.append(Unmapped(owner.attr, owner.store_path, problem))
            continue
        attr = i686_attr(owner.attr)
        assert attr is not None
        if (attr, owner.output) in seen:  # rule 3
            continue
        seen.add((attr, owner.output))
        chosen = choice.chosen is not None and owner.store_path == choice.chosen.store_path
        why = ("the ranking's choice in the 64-bit database" if chosen
               else f"next candidate (rank {rank} in the 64-bit database)")
        tries.append(Mapped(choice.soname, attr, owner.output, owner.attr,
                            owner.store_path, why))
    return I686Choice(choice.soname, tuple(tries), tuple(unmapped))


def map_ranking(ranking: Ranking) -> dict[str, I686Choice]:
    """Every missing soname's 32-bit packages, by soname."""
    return {soname: map_choice(choice) for soname, choice in ranking.choices.items()}


@dataclass(frozen=True)
class PlanItem32:
    """One package to build from the user's nixpkgs, and the sonames it is for."""

    attr: str
    output: str
    sonames: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        # No store path yet: it is known once the attribute is built.
        return {"attr": self.attr, "output": self.output, "store_path": None,
                "sonames": list(self.sonames)}


def plan(choices: Iterable[I686Choice]) -> list[PlanItem32]:
    """The first package of every soname, one item per attribute and output."""
    by_attr: dict[tuple[str, str], list[str]] = {}
    for choice in choices:
        if choice.first is not None:
            by_attr.setdefault((choice.first.attr, choice.first.output), []).append(choice.soname)
    return [PlanItem32(attr, output, tuple(sorted(sonames)))
            for (attr, output), sonames in sorted(by_attr.items())]
