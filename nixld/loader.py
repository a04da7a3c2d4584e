"""Emulate glibc's ld.so as it runs on NixOS behind the shim, without running it.

Given a binary's ELF facts and the environment, compute the whole dependency
closure: for every needed soname, the file ld.so would load and by which rule,
or that it is missing, and whether the versions each object requires are
defined. This is done the NixOS way always, also on another distribution:
there are no FHS default directories and no ld.so.cache; the real loader's own
directory (glibc's `lib/`) is the only default.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from nixld.elf import ElfInfo, read_library
from nixld.errors import BadInputError
from nixld.fileid import Identity
from nixld.glibc import GLIBC_SONAMES, glibc_release, is_glibc_soname
from nixld.search import Search, Via
from nixld.text import safe

__all__ = [
    "GLIBC_SONAMES", "Closure", "ElfCache", "Needed", "VersionProblem", "expand_dst",
    "resolve_closure",
]

# $PLATFORM as glibc sets it from AT_PLATFORM, per e_machine.
PLATFORMS: dict[str, str] = {
    "EM_X86_64": "x86_64", "EM_386": "i686", "EM_AARCH64": "aarch64",
    "EM_ARM": "v7l", "EM_RISCV": "riscv64", "EM_PPC64": "ppc64le",
}

# $LIB on NixOS: glibc is built with plain `lib` (no multiarch triplet).
NIXOS_LIB = "lib"

_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


@dataclass(frozen=True)
class VersionProblem:
    soname: str
    version: str  # e.g. "GLIBCXX_3.4.32"
    required_by: str  # the object requiring it
    kind: Literal["missing-version", "glibc-too-old"]


@dataclass
class Needed:
    """One distinct soname of the closure.

    `soname`, `needed_by` and `path` are raw data (escape them with
    nixld.text.safe before printing); `skipped` and `error` are display text,
    already escaped.
    """

    soname: str
    needed_by: list[str]
    path: str | None = None  # the file ld.so would load, symlinks resolved
    via: Via | None = None  # the rule that found it
    version_problems: list[VersionProblem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<file>: <why>", as ld.so skips them
    error: str | None = None  # a candidate ld.so would stop at ("invalid ELF header")


class ElfCache:
    """Parsed ELF facts per (realpath, file identity), for one run.

    Passed explicitly so iterative resolution reuses it across calls; a file
    changed on disk gets a new key.
    """

    def __init__(self) -> None:
        self._facts: dict[tuple[str, Identity], ElfInfo | BadInputError] = {}

    def library(self, path: str) -> ElfInfo:
        """Facts of `path` (without symbols); raises BadInputError."""
        real = os.path.realpath(path)
        try:
            key = (real, Identity.of_file(real))
        except OSError:
            return read_library(real, symbols=False)  # raises the right message
        if key not in self._facts:
            try:
                self._facts[key] = read_library(real, symbols=False)
            except BadInputError as err:
                self._facts[key] = err
        found = self._facts[key]
        if isinstance(found, BadInputError):
            raise found
        return found


@dataclass
class Closure:
    binary: ElfInfo
    search: Search
    real_loader_exists: bool
    real_loader_glibc: str | None  # e.g. "2.36"
    needed: list[Needed]  # BFS order, as ld.so loads them
    real_loader_problem: str | None = None  # it exists but cannot serve this binary
    # The ELF facts read while walking: later questions about the closure's
    # objects (their version needs) reuse them instead of parsing again.
    objects: ElfCache = field(default_factory=ElfCache, repr=False, compare=False)

    @property
    def missing(self) -> list[Needed]:
        """Sonames a package could provide: not found, unusable, or lacking a
        version. glibc's own never count: they come with the loader."""
        return [
            n for n in self.needed
            if not is_glibc_soname(n.soname)
            and (n.path is None or any(p.kind == "missing-version" for p in n.version_problems))
        ]

    @property
    def glibc_problems(self) -> list[VersionProblem]:
        """Versions of a newer glibc than the real loader's: no library can help."""
        return [p for n in self.needed for p in n.version_problems if p.kind == "glibc-too-old"]

    @property
    def unresolved_glibc(self) -> list[Needed]:
        """glibc sonames not found: they come with the (missing or odd) loader."""
        return [n for n in self.needed if is_glibc_soname(n.soname) and n.path is None]

    @property
    def complete(self) -> bool:
        """True when ld.so would load the whole closure."""
        if not self.binary.is_static and (
                not self.real_loader_exists or self.real_loader_problem):
            return False
        return all(n.path is not None and not n.version_problems for n in self.needed)


@dataclass
class _Object:
    """A loaded object: what ld.so calls a link map."""

    info: ElfInfo
    name: str  # how reports name it (the binary as given, libraries by realpath)
    origin: str | None  # $ORIGIN: the directory it was opened from
    loader: _Object | None  # the object whose DT_NEEDED loaded it first


def expand_dst(text: str, origin: str | None, platform: str | None) -> str | None:
    """Expand $ORIGIN, $LIB and $PLATFORM (also as ${...}) as ld.so does.

    Returns None when a token cannot be expanded: ld.so drops that element.
    """
    failed = False

    def sub(match: re.Match[str]) -> str:
        nonlocal failed
        token = match.group(1) or match.group(2)
        value = {"ORIGIN": origin, "LIB": NIXOS_LIB, "PLATFORM": platform}[token]
        if value is None:
            failed = True
            return ""
        return value

    expanded = _DST.sub(sub, text)
    return None if failed else expanded


def _expanded(dirs: Sequence[str], obj: _Object, platform: str | None) -> Iterator[str]:
    for d in dirs:
        out = expand_dst(d, obj.origin, platform)
        if out:
            yield out


class _Resolver:
    """One closure computation: the loaded objects and the search rules."""

    def __init__(self, info: ElfInfo, search: Search, cache: ElfCache) -> None:
        self.search = search
        self.real_loader = search.loader.path
        self.cache = cache
        self.platform = PLATFORMS.get(info.machine)
        self.arch = (info.elf_class, info.machine)
        real = os.path.realpath(info.path)
        self.main = _Object(info, info.path, os.path.dirname(real), None)
        self.objects: dict[str, _Object] = {real: self.main}  # by realpath (dev/ino for ld.so)
        self.by_soname: dict[str, tuple[_Object, Via]] = {}
        if info.soname:
            self.by_soname[info.soname] = (self.main, "loaded")
        self.needed: dict[str, Needed] = {}
        self.loader_exists = os.path.exists(self.real_loader)
        self.loader_dir = (
            os.path.dirname(os.path.realpath(self.real_loader)) if self.loader_exists else None)
        self.loader_problem: str | None = None
        self.interpreter = self._load_interpreter()

    def _load_interpreter(self) -> _Object | None:
        """The real loader is already loaded when the program's needs are
        searched: a need of its soname (libc.so.6 needs ld-linux-x86-64.so.2)
        is met by it."""
        if not self.loader_exists:
            return None
        try:
            info = self.cache.library(self.real_loader)
        except BadInputError as err:
            self.loader_problem = str(err)
            return None
        if (info.elf_class, info.machine) != self.arch:
            self.loader_problem = (
                f"{safe(self.real_loader)}: built for {info.describe_arch()}, "
                f"but this binary is {self.main.info.describe_arch()}")
            return None
        if self.search.loader.problem:  # e.g. a shim or stub-ld where ld.so should be
            self.loader_problem = self.search.loader.problem
            return None
        real = os.path.realpath(self.real_loader)
        obj = _Object(info, real, os.path.dirname(real), None)
        self.objects[real] = obj
        names = {info.soname, os.path.basename(self.main.info.interpreter or "")} - {None, ""}
        for name in names:
            assert name is not None
            self.by_soname[name] = (obj, "interpreter")
        return obj

    # The order ld.so searches (glibc elf/dl-load.c, _dl_map_object):
    #  1. a name containing '/' is a path, opened as it is;
    #  2. DT_RPATH of the needing object, then of the object that loaded it, and
    #     on up to the executable -- only if the needing object has no
    #     DT_RUNPATH (an object's RPATH is void when it has a RUNPATH);
    #  3. the library path the shim hands the loader (nixld.search: entry
    #     dirs, LD_LIBRARY_PATH, NIX_LD_LIBRARY_PATH or nix-ld's default);
    #  4. DT_RUNPATH of the needing object only;
    #  5. the real loader's own directory, glibc's lib/ on NixOS (unless the
    #     object says DF_1_NODEFLIB). No /lib, /usr/lib, no ld.so.cache.
    def search_dirs(self, obj: _Object) -> Iterator[tuple[str, Via]]:
        if not obj.info.runpath:
            chain: _Object | None = obj
            while chain is not None:
                if not chain.info.runpath:
                    for d in _expanded(chain.info.rpath, chain, self.platform):
                        yield d, "rpath"
                chain = chain.loader
        for d, via in self.search.library_path():
            # ld.so expands tokens in the library path against the executable.
            out = expand_dst(d, self.main.origin, self.platform)
            if out:
                yield out, via
        for d in _expanded(obj.info.runpath, obj, self.platform):
            yield d, "runpath"
        if self.loader_dir and not obj.info.nodeflib:
            yield self.loader_dir, "loader-dir"

    def find(self, soname: str, obj: _Object, need: Needed) -> tuple[str, ElfInfo] | None:
        """The first usable candidate, recording skipped ones on `need`."""
        if "/" in soname:
            path = expand_dst(soname, obj.origin, self.platform)
            candidates: Iterator[tuple[str, Via]] = iter(
                [(os.path.dirname(path), "path")] if path else [])
            soname_part = os.path.basename(path) if path else soname
        else:
            candidates = self.search_dirs(obj)
            soname_part = soname
        for directory, via in candidates:
            file = os.path.join(directory, soname_part)
            if not os.path.isfile(file):
                continue  # ld.so goes on after ENOENT and ENOTDIR ...
            if not os.access(file, os.R_OK):
                need.skipped.append(f"{safe(file)}: permission denied")  # ... and EACCES
                continue
            try:
                info = self.cache.library(file)
            except BadInputError as err:
                # ld.so stops at a file that is there but not a loadable ELF
                # object ("invalid ELF header", "file too short").
                need.error = str(err)
                return None
            if (info.elf_class, info.machine) != self.arch:
                # ld.so skips a library of another class or machine silently.
                need.skipped.append(f"{safe(file)}: {info.describe_arch()}")
                continue
            need.via = via
            return file, info
        return None

    def resolve_one(self, soname: str, obj: _Object) -> _Object | None:
        need = Needed(soname, [obj.name])
        self.needed[soname] = need
        if soname in self.by_soname:
            loaded, via = self.by_soname[soname]
            need.path, need.via = os.path.realpath(loaded.info.path), via
            return None
        found = self.find(soname, obj, need)
        if found is None:
            need.via = None
            return None
        file, info = found
        real = os.path.realpath(file)
        need.path = real
        if real in self.objects:  # the same file under another name: loaded once
            self.by_soname[soname] = (self.objects[real], "loaded")
            return None
        new = _Object(replace(info, path=real), real, os.path.dirname(file), obj)
        self.objects[real] = new
        self.by_soname[soname] = (new, "loaded")
        if info.soname:
            self.by_soname.setdefault(info.soname, (new, "loaded"))
        return new

    def walk(self) -> None:
        """Breadth first, as ld.so maps dependencies (_dl_map_object_deps)."""
        queue = deque([self.main])
        while queue:
            obj = queue.popleft()
            for soname in obj.info.needed:
                if soname in self.needed:
                    if obj.name not in self.needed[soname].needed_by:
                        self.needed[soname].needed_by.append(obj.name)
                    continue
                new = self.resolve_one(soname, obj)
                if new is not None:
                    queue.append(new)

    def check_versions(self) -> None:
        """Each object's version needs against the library that met the need
        (ld.so's _dl_check_map_versions). A library with no version
        definitions at all only earns a warning from ld.so, not a failure."""
        for obj in list(self.objects.values()):
            for vneed in obj.info.version_needs:
                need = self.needed.get(vneed.library)
                target = self.by_soname.get(vneed.library)
                if need is None or target is None or need.path is None:
                    continue
                defs = target[0].info.version_defs
                if not defs:
                    continue
                kind: Literal["missing-version", "glibc-too-old"] = (
                    "glibc-too-old" if is_glibc_soname(vneed.library) else "missing-version")
                for version in vneed.versions:
                    if version not in defs:
                        need.version_problems.append(
                            VersionProblem(vneed.library, version, obj.name, kind))

    def loader_glibc(self) -> str | None:
        """The glibc release of the real loader: its libc.so.6's newest
        GLIBC_x.y, else the loader's own."""
        if self.loader_dir is None:
            return None
        for candidate in (os.path.join(self.loader_dir, "libc.so.6"), self.real_loader):
            try:
                release = glibc_release(self.cache.library(candidate).version_defs)
            except BadInputError:
                continue
            if release:
                return release
        return None


def resolve_closure(info: ElfInfo, search: Search, *,
                    cache: ElfCache | None = None) -> Closure:
    """The closure ld.so would load for `info` under `search` (see _Resolver)."""
    cache = cache or ElfCache()
    resolver = _Resolver(info, search, cache)
    if not info.is_static:
        resolver.walk()
        resolver.check_versions()
    return Closure(
        binary=info,
        search=search,
        real_loader_exists=resolver.loader_exists,
        real_loader_glibc=resolver.loader_glibc(),
        needed=list(resolver.needed.values()),
        real_loader_problem=resolver.loader_problem,
        objects=cache,
    )
