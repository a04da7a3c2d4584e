"""The world assembly: build a world from its parts once, into
`$NIXLD_WORLD_HOME` (default `$XDG_CACHE_HOME/nixld-world`), under a key made
of WORLD_VERSION, the .deb files and this package's own files, and reuse it
afterwards; the downloaded .deb files are kept there too."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixld import nix
from nixld.demo import binaries as bins
from nixld.demo import fixtures as fx
from nixld.demo.catalog import Foreign, Kind, required_packages, selected
from nixld.demo.debian import fetch_debs
from nixld.demo.nixos_loader import LD_SO_NAME, build_glibc, ensure_loader_link
from nixld.demo.providers import stage_providers, stage_traps, uncovered
from nixld.demo.store import (
    Staged,
    StoreItem,
    add_all,
    build_users_setting,
    cache_public_key,
    copy_to_cache,
    delete_unrooted,
    item_of,
    lib_sonames,
    write_world_database,
)
from nixld.demo.tools import WorldError, check_tools
from nixld.text import safe

# Bump when anything changes what a world holds that its key does not see.
WORLD_VERSION = 1
PACKAGE_DIR = Path(__file__).resolve().parent

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class World:
    """A built world: its paths and the environment tests run in."""

    root: Path
    kind: str
    key: str
    ld_so: Path  # NIX_LD: the NixOS-like loader
    glibc: str  # its store path (kept valid and gc-rooted)
    loader_link: str  # the same-length symlink the patched ld.so searches
    cache_dir: Path  # the file:// binary cache holding every other store path
    database_dir: Path  # NIX_INDEX_DATABASE (the file `files` inside)
    empty_lib_dir: Path  # NIX_LD_LIBRARY_PATH: an empty directory
    binaries: Mapping[str, Path]  # unmodified foreign binaries, by name
    fixtures: Mapping[str, Path]  # compiled fixture binaries, by name
    no_interp: Mapping[str, Path]  # copies whose interpreter does not exist
    shimmed: Mapping[str, Path]  # copies whose interpreter is the shim (if built)
    shim: Path | None  # the world's copy of shim/build/nixld-shim
    items: tuple[StoreItem, ...]  # every store path in the database
    why: Mapping[str, str] = field(default_factory=dict)  # binary -> why it is here

    @property
    def database_file(self) -> Path:
        return self.database_dir / "files"

    @property
    def substituter(self) -> str:
        return f"file://{self.cache_dir}"

    @property
    def nix_config(self) -> str:
        return (f"substituters = {self.substituter}\n"
                f"trusted-public-keys = {cache_public_key(self.cache_dir)}\n"
                f"narinfo-cache-negative-ttl = 0\n{build_users_setting()}")

    def item(self, store_name: str) -> StoreItem:
        """The store item whose name (after the hash) is `store_name`."""
        for item in self.items:
            if item.store_path.split("-", 1)[1] == store_name:
                return item
        raise KeyError(store_name)

    def providers_of(self, soname: str) -> list[StoreItem]:
        return [i for i in self.items if soname in i.sonames]

    @property
    def substitutable(self) -> list[str]:
        """Store paths that live only in the binary cache."""
        return [i.store_path for i in self.items if i.store_path != self.glibc]

    def env(self, home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with the world's settings and an isolated home."""
        env = dict(os.environ if base is None else base)
        for var in ("LD_LIBRARY_PATH", "LD_PRELOAD", "NIX_LD_x86_64_linux",
                    "NIX_LD_LIBRARY_PATH_x86_64_linux", "NIX_PATH"):
            env.pop(var, None)
        env.update({
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "NIX_LD": str(self.ld_so),
            "NIX_LD_LIBRARY_PATH": str(self.empty_lib_dir),
            "NIX_CONFIG": self.nix_config,
            "NIX_INDEX_DATABASE": str(self.database_dir),
        })
        return env


def world_home() -> Path:
    """Where worlds and the .deb download cache live (kept between runs)."""
    env = os.environ.get("NIXLD_WORLD_HOME")
    if env:
        return Path(env)
    from xdg_base_dirs import xdg_cache_home

    return xdg_cache_home() / "nixld-world"


def _world_key(kind: str, debs: Mapping[str, Path]) -> str:
    h = hashlib.sha256(f"{WORLD_VERSION}\0{kind}\0".encode())
    for pkg in sorted(debs):
        h.update(f"{pkg}={debs[pkg].name}\0".encode())
    # Any change to the builder or the fixture sources rebuilds.
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".c", ".map"):
            h.update(f"{path.relative_to(PACKAGE_DIR)}\0".encode() + path.read_bytes())
    return h.hexdigest()[:12]


# ------------------------------------------------------------ building a world


def _build_loader(root: Path, libc6: Path, staging: Path) -> tuple[Path, str, str]:
    """The NixOS-like glibc as a rooted store path: (staged dir, store path, link)."""
    glibc_dir, link = build_glibc(libc6, staging)
    [glibc] = add_all([glibc_dir])
    nix.add_root(glibc, root / "gcroots" / "glibc")
    ensure_loader_link(link, glibc)
    return glibc_dir, glibc, link


def _build_fixtures(root: Path, staging: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The fixture libraries (staged) and binaries (in the world): (libs, binaries)."""
    src = fx.write_sources(staging / "src")
    fixture_libs = fx.build_fixture_libs(src, staging / "fixture-libs")
    return fixture_libs, fx.build_fixtures(src, fixture_libs, root / "fixtures")


def _check_coverage(binaries: Mapping[str, Path], libs: Mapping[str, Path],
                    glibc_dir: Path) -> None:
    """Every foreign binary's closure is provided for (else the world is wrong)."""
    all_libs = dict(libs)
    for so in (glibc_dir / "lib").iterdir():
        all_libs.setdefault(so.name, so)
    for name, path in binaries.items():
        lacking = uncovered(path, all_libs)
        if lacking:
            raise WorldError(f"no provider for {', '.join(lacking)} (needed by {name})")


def _publish(staged: list[Staged], cache: Path) -> list[str]:
    """Add the staged trees to the store, copy them to the cache, delete them again."""
    store_paths = add_all([s.dir for s in staged])
    copy_to_cache(store_paths, cache)
    # Deleted again by ensure_world too; one a gc root holds (a profile of an
    # earlier run, which has the same path) simply stays valid.
    delete_unrooted(store_paths)
    return store_paths


def _manifest(kind: Kind, foreign: list[Foreign], loader: tuple[str, str],
              paths: Mapping[str, Mapping[str, Path]],
              items: list[tuple[StoreItem, Path]]) -> dict[str, Any]:
    """What world.json records; `loader` is (glibc store path, loader link)."""
    return {
        "version": WORLD_VERSION, "kind": kind, "glibc": loader[0], "loader_link": loader[1],
        **{group: {n: str(p) for n, p in found.items()} for group, found in paths.items()},
        "why": {**{f.name: f.why for f in foreign},
                **{n: fx.FIXTURE_WHY[n] for n in paths["fixtures"]}},
        "items": [vars(i) | {"sonames": list(i.sonames)} for i, _ in items],
    }


def build_world(kind: Kind, root: Path, debs: Mapping[str, Path],
                progress: Progress = _quiet) -> dict[str, Any]:
    """Build a world into `root` (a fresh directory); return its manifest."""
    foreign, providers = selected(kind)
    staging = root / "staging"
    progress("making the NixOS-like loader (glibc from Debian's libc6, ld.so patched)")
    glibc_dir, glibc, link = _build_loader(root, debs["libc6"], staging)

    progress(f"staging {len(providers)} nixpkgs-like providers from Debian packages")
    staged, libs = stage_providers(providers, debs, staging)
    fixture_libs: dict[str, Path] = {}
    fixtures: dict[str, Path] = {}
    if kind == "full":
        progress("compiling the C fixtures")
        fixture_libs, fixtures = _build_fixtures(root, staging)
    staged += stage_traps(staged, libs, fixture_libs, staging)

    progress("checking that the providers cover every foreign binary's closure")
    binaries = bins.prepare_foreign(foreign, debs, staging, root / "bin")
    _check_coverage(binaries, libs, glibc_dir)

    progress(f"adding {len(staged)} store paths, copying them to the binary cache")
    store_paths = _publish(staged, root / "cache")
    items = [(item_of(s, p), s.dir) for s, p in zip(staged, store_paths, strict=True)]
    items.append((StoreItem(glibc, "glibc", "out", True, "glibc", lib_sonames(glibc_dir)),
                  glibc_dir))
    progress("writing the nix-index database")
    write_world_database(root / "database" / "files", items)

    no_interp = (bins.no_interp_copies({**binaries, **fixtures}, root / "no-interp")
                 if shutil.which("patchelf") else {})
    (root / "empty-lib").mkdir()
    shutil.rmtree(staging)
    paths = {"binaries": binaries, "fixtures": fixtures, "no_interp": no_interp}
    return _manifest(kind, foreign, (glibc, link), paths, items)


# ------------------------------------------------------------ reusing a world


def _load(root: Path, manifest: Mapping[str, Any], shim: Path | None) -> World:
    binaries = {n: Path(p) for n, p in manifest["binaries"].items()}
    fixtures = {n: Path(p) for n, p in manifest["fixtures"].items()}
    shimmed = (bins.shim_copies({**binaries, **fixtures}, shim, root / "shimmed")
               if shim else {})
    return World(
        root=root, kind=manifest["kind"], key=root.name.split("-", 1)[1],
        ld_so=Path(manifest["glibc"]) / "lib" / LD_SO_NAME,
        glibc=manifest["glibc"], loader_link=manifest["loader_link"],
        cache_dir=root / "cache", database_dir=root / "database",
        empty_lib_dir=root / "empty-lib", binaries=binaries, fixtures=fixtures,
        no_interp={n: Path(p) for n, p in manifest["no_interp"].items()},
        shimmed=shimmed, shim=(root / "shimmed/nixld-shim") if shim else None,
        items=tuple(StoreItem(**(i | {"sonames": tuple(i["sonames"])}))
                    for i in manifest["items"]),
        why=dict(manifest["why"]),
    )


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """One builder at a time (two test sessions, or a test and the demo)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _usable(root: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((root / "world.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != WORLD_VERSION or not nix.is_valid(manifest["glibc"]):
        return None
    return manifest


def ensure_world(kind: Kind = "full", *, home: Path | None = None, shim: Path | None = None,
                 rebuild: bool = False, progress: Progress = _quiet) -> World:
    """Build the world of this kind, or reuse the one built before.

    Every substitutable store path is deleted from the store again (where no
    gc root holds it), so realisations are real substitutions. `shim`: the
    built shim (shim/build/nixld-shim), for the shimmed copies.
    """
    check_tools(kind)
    home = world_home() if home is None else home
    try:
        return _ensure(kind, home, shim, rebuild, progress)
    except OSError as err:
        raise WorldError(f"cannot build the test world in {safe(home)}: "
                         f"{safe(err.strerror or str(err))}") from None


def _ensure(kind: Kind, home: Path, shim: Path | None, rebuild: bool,
            progress: Progress) -> World:
    with locked(home):
        debs = fetch_debs(required_packages(kind), home / "debs")
        root = home / f"{kind}-{_world_key(kind, debs)}"
        manifest = None if rebuild else _usable(root)
        if manifest is None:
            progress(f"building the {kind} test world in {safe(root)}")
            manifest = _build_in_place(kind, home, root, debs, progress)
        world = _load(root, manifest, shim)
        ensure_loader_link(world.loader_link, world.glibc)
        reset_store(world)
        return world


def _build_in_place(kind: Kind, home: Path, root: Path, debs: Mapping[str, Path],
                    progress: Progress) -> dict[str, Any]:
    """Build in a temporary directory, then move it to `root` whole."""
    for old in home.glob(f"{kind}-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=home))
    try:
        manifest = _relocated(build_world(kind, tmp, debs, progress), tmp, root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The gc root names the directory it is in: make it again after the move.
    nix.add_root(manifest["glibc"], root / "gcroots" / "glibc")
    # Written last: a world.json means a complete world.
    (root / ".world.json.tmp").write_text(json.dumps(manifest, indent=1))
    os.replace(root / ".world.json.tmp", root / "world.json")
    return manifest


def reset_store(world: World) -> list[str]:
    """Delete the world's substitutable paths from the store again, so the next
    realisation is a real substitution; return those a gc root still holds."""
    return delete_unrooted(world.substitutable)


def _relocated(manifest: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    text = json.dumps(manifest).replace(json.dumps(str(old))[1:-1], json.dumps(str(new))[1:-1])
    relocated: dict[str, Any] = json.loads(text)
    return relocated
