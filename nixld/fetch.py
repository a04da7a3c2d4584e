"""The realisers of a resolution: the chosen packages made valid with the real Nix.

`NixRealiser`: all at once first (one query, one download); if that fails, one
by one; a store path no substituter has (the database is newer or older than
the cache) is built from the user's nixpkgs instead, by attribute, and kept
only if its `lib/` really holds the sonames it was chosen for.

`I686Realiser`, for a job of 32-bit x86 binaries (nixld.i686): each chosen
owner built as its pkgsi686Linux attribute (the next candidate when one is
missing or wrong), and pkgsi686Linux.glibc built once as the real loader
when no variable names one and the default is not there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from nixld.errors import NixError
from nixld.package import Package
from nixld.rounds import Realised, Realiser, Say
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.analysis import Analysis
    from nixld.rank import Ranking


def realiser_for(say: Say, failed: Say, *,
                 quiet: bool) -> Callable[[Sequence[Analysis]], Realiser]:
    """The realiser for a job: 32-bit x86 binaries alone are built for i686.
    `say` is progress (--quiet hides it), `failed` why something failed (never hidden)."""

    def pick(analyses: Sequence[Analysis]) -> Realiser:
        from nixld.i686 import is_i686

        infos = [a.closure.binary for a in analyses if a.closure is not None]
        if infos and all(is_i686(i) for i in infos):
            return I686Realiser(say)
        return NixRealiser(say, failed, quiet=quiet)

    return pick


class NixRealiser:
    loader: tuple[str, str] | None = None  # the loader is the system's

    def __init__(self, say: Say, failed: Say, *, quiet: bool) -> None:
        self.say = say
        self.failed = failed
        self.quiet = quiet

    def needs_loader(self, analyses: Sequence[Analysis]) -> bool:
        return False

    def provide_loader(self, analyses: Sequence[Analysis]) -> Package | None:
        return None

    def realise(self, packages: Sequence[Package], ranking: Ranking) -> Realised:
        from nixld import nix

        try:
            nix.realise([p.store_path for p in packages], quiet=self.quiet)
            return Realised(tuple(packages))
        except nix.NixTrustError:
            raise  # only a setting fixes it: one line, exit 5
        except NixError as err:
            self.say(f"could not substitute all paths ({err}); trying one by one")
        done: list[Package] = []
        failed: set[tuple[str, str]] = set()
        for package in packages:
            got = self._one(package)
            if got is None:
                failed.update((s, package.store_path) for s in package.sonames)
            else:
                done.append(got)
        return Realised(tuple(done), frozenset(failed))

    def _one(self, package: Package) -> Package | None:
        """The package substituted, else built from nixpkgs; None if neither works."""
        from nixld import nix

        try:
            nix.realise([package.store_path], quiet=self.quiet)
            return package
        except nix.NixTrustError:
            raise
        except NixError as err:
            why = str(err)
        self.say(f"{why}; building {safe(package.attr)}.{package.output} from your nixpkgs")
        try:
            built = nix.build_attr(package.attr, package.output)
        except NixError as err:
            self.failed(f"cannot install {safe(package.attr)}: {why}; building it failed too: "
                        f"{err}")
            return None
        have = tuple(s for s in package.sonames if os.path.exists(os.path.join(built, "lib", s)))
        if not have:
            self.failed(f"{safe(built)} does not contain {', '.join(map(safe, package.sonames))}")
            return None
        return Package(built, package.attr, package.output, have)


class I686Realiser:
    def __init__(self, say: Say) -> None:
        self.say = say
        self.loader: tuple[str, str] | None = None  # (ld-linux.so.2, source) of a built glibc

    def needs_loader(self, analyses: Sequence[Analysis]) -> bool:
        """No variable names a 32-bit loader and the default one is not there."""
        return self.loader is None and any(
            a.closure is not None and a.closure.search.loader.source == "default"
            and (not a.closure.real_loader_exists or a.closure.real_loader_problem is not None)
            for a in analyses)

    def provide_loader(self, analyses: Sequence[Analysis]) -> Package | None:
        """Build pkgsi686Linux.glibc once when the binaries lack a loader."""
        if not self.needs_loader(analyses):
            return None
        from nixld import i686
        from nixld.pkgsi686 import GLIBC_ATTR

        self.say("no 32-bit loader here (NIX_LD_i686_linux is unset): building "
                 f"{GLIBC_ATTR} from your nixpkgs")
        store_path = i686.build_glibc()
        self.loader = (i686.loader_of(store_path), i686.LOADER_SOURCE)
        return Package(store_path, GLIBC_ATTR, "out")

    def realise(self, packages: Sequence[Package], ranking: Ranking) -> Realised:
        """Each package's owner as a pkgsi686Linux package; what cannot be had
        is not ranked again (every candidate of its sonames)."""
        from nixld import i686, pkgsi686
        from nixld.rank import Choice

        done: list[Package] = []
        failed: set[tuple[str, str]] = set()
        for package in packages:
            choice = ranking.choices[package.sonames[0]]
            owner = next((c for c in choice.candidates if c.store_path == package.store_path),
                         None)
            mapped = pkgsi686.map_choice(Choice(choice.soname, choice.candidates, owner))
            built = i686.build_first(mapped, package.sonames, self.say)
            lacking = [s for s in package.sonames if built is None or s not in built.sonames]
            for soname in lacking:  # tried: do not rank these owners again
                failed.update((soname, c.store_path) for c in
                              (ranking.choices[soname].candidates
                               if soname in ranking.choices else ()))
            if built is not None:
                self.say(f"built {safe(built.mapped.attr)} ({built.mapped.output}) for "
                         f"{', '.join(map(safe, built.sonames))}: {safe(built.store_path)}")
                done.append(Package(built.store_path, built.mapped.attr, built.mapped.output,
                                    built.sonames))
        return Realised(tuple(done), frozenset(failed))
