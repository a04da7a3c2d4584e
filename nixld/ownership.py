"""Which store path a library file belongs to, from facts in the nix-index database.

Computed once, when the soname index is built (nixld.index), and stored in it.
A store path *owns* a library file it ships when, in order of strength:

- `n`: its attribute or store path name matches the library (`libcurl.so.4`
  and `curl`, `libX11.so.6` and `xorg.libX11`, `liblua.so.5.4` and `lua5_4`:
  `lib` prefix, version suffixes and scopes such as `xorg.`, `qt6.` dropped;
  an exact match outranks a partial one such as `libkrb5` and `krb5-extra`);
- `p`: it holds a pkg-config file named after the library
  (`lib/pkgconfig/libudev.pc`), or `d`: the `dev` output of its attribute does;
- `l`: the file is a link to a library file it owns by one of the above
  (ncurses' `libtinfo.so.6 -> libncursesw.so.6`);
- `w`: nothing claims it by name, and it is the best top-level provider that
  is no bundle: a library package (no `bin/`, `opt/`, `share/applications/`)
  before an application, then one that installed the file as libraries are
  installed (`libfoo.so.1 -> libfoo.so.1.2.3`, where copies are plain files),
  then the one most of whose libraries are its own.

A store path most of whose library files are owned by other store paths is a
**bundle**, whatever its size (an *application* when it has `bin/`, `opt/` or
`share/applications/`); an FHS environment (a `usr/` tree, or `fhs` in its
name) owns nothing. Bundles are found twice: first against the name and
pkg-config claims, then against the owners that result, and ownership is
decided again. Aliases (one store path listed under several attributes) are
one store path here, with every attribute's name as evidence. Nothing depends
on the order of the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from nixld.database import StorePath

# Why a store path owns a library file (stored in the index as one letter).
NAMED = "n"
PKG_CONFIG = "p"
DEV_OUTPUT = "d"
LINKED = "l"
BEST_PROVIDER = "w"
STRONG = (NAMED, PKG_CONFIG, DEV_OUTPUT, LINKED)

# What a store path is, for the ranking (stored in the index as flags).
LIBRARY = "library"
BUNDLE = "bundle"
APPLICATION = "application"
FHS = "fhs"
ROLES = (LIBRARY, BUNDLE, APPLICATION, FHS)  # stored as the index in this tuple

# Top-level paths that tell an application or an FHS environment.
APP_MARKERS = frozenset((b"/bin", b"/opt", b"/share/applications"))
FHS_MARKERS = frozenset((b"/usr",))
MARKERS = APP_MARKERS | FHS_MARKERS

_SEPARATORS = re.compile(r"[-_.+]")
_VERSION_TAIL = re.compile(r"[-_.]?\d[\d._-]*$")


def _norm(text: str) -> str:
    return _SEPARATORS.sub("", text.lower())


@lru_cache(maxsize=65536)
def library_keys(soname: str) -> frozenset[str]:
    """`libgtk-3.so.0` -> {gtk3, gtk}; `libQt6Core.so.6` -> {qt6core}."""
    base = soname.removeprefix("lib")
    cut = base.find(".so")
    base = base[:cut] if cut > 0 else base
    keys = {_norm(base), _norm(_VERSION_TAIL.sub("", base))}
    return frozenset(k for k in keys if k)


def _pname(store_name: str) -> str:
    """`xcb-util-cursor-0.1.5` -> `xcb-util-cursor`, `gcc-13.3.0-lib` -> `gcc`."""
    return "-".join(_until_version(store_name.split("-"))) or store_name


def _until_version(parts: Sequence[str]) -> Iterable[str]:
    for i, part in enumerate(parts):
        if i and part[:1].isdigit():
            return
        yield part


def package_words(attrs: Iterable[str], store_name: str) -> frozenset[str]:
    """Names a package goes by: each attribute's last component and the store
    path's pname, normalised, with and without `lib` (`libpng`, `zlib`) and a
    version suffix."""
    words: set[str] = set()
    for raw in (*(a.rsplit(".", 1)[-1] for a in attrs), _pname(store_name)):
        word = _norm(raw)
        bare = word.removeprefix("lib")
        words.update(f for f in (word, bare, bare.rstrip("0123456789"),
                                 bare.removesuffix("lib")) if f)
    return frozenset(words)


def name_match(keys: frozenset[str], words: frozenset[str]) -> int:
    """How well a library with these keys is named after a package with these
    words: 2 exactly (`libcurl` and `curl`), 1 in part (`libxcb-shm` and
    `libxcb`, `libssl` and `openssl`), 0 not at all."""
    if keys & words:
        return 2
    for key in keys:
        for word in words:
            if (len(key) >= 2 and word.startswith(key)) \
                    or (len(word) >= 3 and key.startswith(word)) \
                    or (len(key) >= 3 and word.endswith(key)):
                return 1
    return 0


def names_match(keys: frozenset[str], words: frozenset[str]) -> bool:
    """Is a library with these keys named after a package with these words?"""
    return name_match(keys, words) > 0


@lru_cache(maxsize=65536)
def pkg_config_keys(pc: str) -> frozenset[str]:
    """`libudev` -> {udev}, `gtk+-3.0` -> {gtk30, gtk}: compared with library_keys."""
    bare = pc.removeprefix("lib")
    keys = {_norm(bare), _norm(_VERSION_TAIL.sub("", bare))}
    return frozenset(k for k in keys if len(k) >= 2)


# ---------------------------------------------------------------- input and output


@dataclass
class PathFacts:
    """What the index build learned of one database block with library files."""

    store_path: StorePath
    libraries: dict[str, str]  # library file name -> the file it resolves to
    pkg_config: frozenset[str] = frozenset()
    markers: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Standing:
    """A store path's part in the ownership of its library files."""

    role: str  # LIBRARY, BUNDLE, APPLICATION or FHS
    libraries: int  # library file names it ships
    others: int  # how many of those other store paths own


@dataclass
class Ownership:
    """claims[(file name, store path)] = why it owns it; standing[store path]."""

    claims: dict[tuple[str, str], str] = field(default_factory=dict)
    standing: dict[str, Standing] = field(default_factory=dict)


@dataclass
class _Package:
    """One store path, its aliases merged."""

    path: str
    attrs: set[str]
    name: str
    toplevel: bool
    libraries: dict[str, str]
    pkg_config: set[str]
    markers: frozenset[bytes]
    strong: dict[str, str] = field(default_factory=dict)  # file name -> claim
    exact: set[str] = field(default_factory=set)  # file names named exactly after it

    @property
    def fhs(self) -> bool:
        return bool(self.markers & FHS_MARKERS) or "fhs" in self.name.lower()

    @property
    def application(self) -> bool:
        return bool(self.markers & APP_MARKERS)

    def installed_as_link(self, name: str) -> bool:
        """Installed as libraries are (`libfoo.so.1 -> libfoo.so.1.2.3`), not copied."""
        resolved = self.libraries[name]
        return resolved.rsplit("/", 1)[-1] != name and resolved.startswith("lib")

    @property
    def own_share(self) -> float:
        return len(self.strong) / len(self.libraries)


def _merge(facts: Iterable[PathFacts]) -> dict[str, _Package]:
    packages: dict[str, _Package] = {}
    for fact in facts:
        sp = fact.store_path
        pkg = packages.get(sp.path)
        if pkg is None:
            pkg = packages[sp.path] = _Package(sp.path, set(), sp.name, False, {}, set(),
                                               frozenset())
        if sp.origin is not None:
            pkg.attrs.add(sp.origin.attr)
            pkg.toplevel = pkg.toplevel or sp.origin.toplevel
        pkg.libraries.update(fact.libraries)
        pkg.pkg_config.update(fact.pkg_config)
        pkg.markers = pkg.markers | fact.markers
    return packages


def _strong_claims(pkg: _Package, dev_pkg_config: Mapping[str, frozenset[str]]) -> None:
    """Fill pkg.strong: the library files it is named after, has pkg-config files
    for, or links to one of those."""
    words = package_words(pkg.attrs, pkg.name)
    own_pc = frozenset().union(*(pkg_config_keys(p) for p in pkg.pkg_config))
    dev_pc: frozenset[str] = frozenset().union(
        *(pkg_config_keys(p) for a in pkg.attrs for p in dev_pkg_config.get(a, ())))
    for name in pkg.libraries:
        keys = library_keys(name)
        match = name_match(keys, words)
        if match:
            pkg.strong[name] = NAMED
            if match == 2:
                pkg.exact.add(name)
        elif keys & own_pc:
            pkg.strong[name] = PKG_CONFIG
        elif keys & dev_pc:
            pkg.strong[name] = DEV_OUTPUT
    owned_files = {pkg.libraries[name] for name in pkg.strong}
    for name, resolved in pkg.libraries.items():
        if name not in pkg.strong and resolved in owned_files:
            pkg.strong[name] = LINKED


def _owners(name: str, holders: Sequence[_Package], bundles: set[str]) -> dict[str, str]:
    """The owners of one library file among the store paths that ship it."""
    best: tuple[bool, int, bool, bool, bool, float] | None = None
    owners: dict[str, str] = {}
    for pkg in holders:
        if pkg.fhs:
            continue
        claim = pkg.strong.get(name)
        if claim is None and not (pkg.toplevel and pkg.path not in bundles):
            continue
        strength = 0 if claim is None else 2 if name in pkg.exact else 1
        rank = (pkg.toplevel, strength, pkg.path not in bundles,
                not pkg.application, pkg.installed_as_link(name), pkg.own_share)
        if best is None or rank > best:
            best, owners = rank, {}
        if rank == best:
            owners[pkg.path] = claim or BEST_PROVIDER
    return owners


def _bundles(packages: Mapping[str, _Package],
             owners_of: Mapping[str, Mapping[str, str]]) -> tuple[set[str], dict[str, int]]:
    """Store paths most of whose library files other store paths own."""
    others: dict[str, int] = {}
    for pkg in packages.values():
        others[pkg.path] = sum(1 for name in pkg.libraries
                               if owners_of.get(name) and pkg.path not in owners_of[name])
    bundles = {p.path for p in packages.values()
               if not p.fhs and 2 * others[p.path] > len(p.libraries)}
    return bundles, others


def compute(facts: Iterable[PathFacts],
            dev_pkg_config: Mapping[str, frozenset[str]]) -> Ownership:
    """Ownership of every library file; `dev_pkg_config[attr]` lists the
    pkg-config names of that attribute's `dev` output."""
    packages = _merge(facts)
    holders: dict[str, list[_Package]] = {}
    for pkg in sorted(packages.values(), key=lambda p: p.path):
        _strong_claims(pkg, dev_pkg_config)
        for name in pkg.libraries:
            holders.setdefault(name, []).append(pkg)
    strong_owners = {
        name: {p.path: p.strong[name] for p in pkgs
               if name in p.strong and p.toplevel and not p.fhs}
        for name, pkgs in holders.items()}
    bundles, _ = _bundles(packages, strong_owners)
    first = {name: _owners(name, pkgs, bundles) for name, pkgs in holders.items()}
    bundles, others = _bundles(packages, first)
    result = Ownership()
    for name, pkgs in holders.items():
        for path, claim in _owners(name, pkgs, bundles).items():
            result.claims[(name, path)] = claim
    for pkg in packages.values():
        result.standing[pkg.path] = Standing(_role(pkg, bundles), len(pkg.libraries),
                                             others[pkg.path])
    return result


def _role(pkg: _Package, bundles: set[str]) -> str:
    if pkg.fhs:
        return FHS
    if pkg.path in bundles:
        return APPLICATION if pkg.application else BUNDLE
    return LIBRARY
