"""The world's store paths, its binary cache and its nix-index database.

Every store path the world makes is added with `nix-store --add`, copied into
a local file:// binary cache and deleted from the store again, so every
realisation is a real substitution. All Nix calls go through nixld.nix.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixld import nix
from nixld.demo.catalog import STORE_DIR, SYSTEM
from nixld.errors import NixError

DATABASE_SEED = 5  # the shuffle of store paths in the database; any fixed number


@dataclass(frozen=True)
class StoreItem:
    """A store path the world made, as the database describes it."""

    store_path: str
    attr: str
    output: str
    toplevel: bool
    role: str  # provider, glibc, fhs, bundle, non-toplevel, old-version, fixture
    sonames: tuple[str, ...]  # the library names directly under lib/

    @property
    def lib_dir(self) -> str:
        return f"{self.store_path}/lib"


@dataclass(frozen=True)
class Staged:
    """A tree waiting to become a store path, and how the database names it."""

    dir: Path
    attr: str
    output: str
    toplevel: bool
    role: str


def lib_sonames(store_dir: Path) -> tuple[str, ...]:
    lib = store_dir / "lib"
    return tuple(sorted(p.name for p in lib.iterdir() if ".so" in p.name)) if lib.is_dir() else ()


def item_of(staged: Staged, store_path: str) -> StoreItem:
    return StoreItem(store_path, staged.attr, staged.output, staged.toplevel, staged.role,
                     lib_sonames(staged.dir))


# ------------------------------------------------------------ the store and the cache


def build_users_setting() -> str:
    """The world builds only trivial things (profile generations, the tests'
    fallback builds): as root it does so as root. Root's Nix would build as
    the `nixbld` group's users, which Debian's nix-bin alone (without
    nix-setup-systemd) does not create (every build then fails), and which
    two Nix stores on one machine share (each kills the build user's
    processes before a build: the other store's builder dies of SIGKILL)."""
    import grp

    if os.geteuid() == 0:
        return "build-users-group =\n"
    try:
        grp.getgrnam("nixbld")
    except KeyError:
        return "build-users-group =\n"
    return ""


def add_all(dirs: Sequence[Path]) -> list[str]:
    return [nix.add_to_store(d) for d in dirs]


def cache_public_key(cache_dir: Path) -> str:
    """The key a world's cache is signed with (`name:base64`), made on first use
    beside the cache: clients trust it with `trusted-public-keys`, as real
    caches are trusted, never with `require-sigs = false`."""
    secret, public = cache_dir.parent / "cache-key.sec", cache_dir.parent / "cache-key.pub"
    if not (secret.exists() and public.exists()):
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        return nix.generate_signing_key(f"nixld-world-{cache_dir.parent.name}", secret, public)
    return public.read_text().strip()


def copy_to_cache(store_paths: Sequence[str], cache_dir: Path) -> None:
    """Signed with the cache's own key; zstd-compressed: Nix's default (xz)
    takes the world's build from 3 s to 30 s on this machine."""
    cache_public_key(cache_dir)
    nix.copy_to_cache(store_paths, cache_dir, compression="zstd",
                      secret_key=cache_dir.parent / "cache-key.sec")


def delete_unrooted(store_paths: Iterable[str]) -> list[str]:
    """Delete the valid ones from the store; return those still alive (rooted)."""
    paths = list(store_paths)
    invalid = set(nix.invalid_paths(paths))
    live = nix.live_paths()
    alive = [p for p in paths if p not in invalid and p in live]
    dead = [p for p in paths if p not in invalid and p not in live]
    # With the garbage that refers to them (old profile generations).
    dead = nix.referrers_closure(dead)
    try:
        nix.delete_paths(dead)
    except NixError:  # rooted meanwhile (another Nix process): one by one
        alive += _delete_one_by_one(dead, set(paths))
    return alive


def _delete_one_by_one(dead: Sequence[str], ours: set[str]) -> list[str]:
    """Delete each path alone; return those of `ours` that stayed alive."""
    alive = []
    for path in dead:
        try:
            nix.delete_paths([path])
        except NixError:
            if path in ours:
                alive.append(path)
    return alive


# ------------------------------------------------------------ the nix-index database


def file_entries(root: Path) -> list[tuple[bytes, str, int | None, bytes | None]]:
    """(path, kind, size, target) of a tree, in nix-index's order: pre-order,
    children in descending name order, the root first with the empty path."""
    entries: list[tuple[bytes, str, int | None, bytes | None]] = []

    def visit(path: Path, rel: bytes) -> None:
        st = path.lstat()
        if path.is_symlink():
            entries.append((rel, "s", None, os.fsencode(os.readlink(path))))
        elif path.is_dir():
            children = sorted(path.iterdir(), key=lambda p: os.fsencode(p.name), reverse=True)
            entries.append((rel, "d", len(children), None))
            for child in children:
                visit(child, rel + b"/" + os.fsencode(child.name))
        else:
            entries.append((rel, "x" if st.st_mode & 0o111 else "r", st.st_size, None))

    visit(root, b"")
    return entries


def write_world_database(file: Path, items: Sequence[tuple[StoreItem, Path]],
                         seed: int = DATABASE_SEED) -> None:
    """The world's nix-index database, store paths in a shuffled order."""
    from nixld.database import FileEntry, Origin, StorePath, write_database
    from nixld.demo.catalog import ALIASES

    # A provider's store path is listed again under each alias attribute.
    order = [(item, tree, attr) for item, tree in items
             for attr in (item.attr, *(ALIASES.get(item.attr, ()) if item.role == "provider"
                                       else ()))]
    random.Random(seed).shuffle(order)

    def blocks() -> Iterator[tuple[StorePath, list[FileEntry]]]:
        for item, tree, attr in order:
            base = item.store_path.rsplit("/", 1)[1]
            digest, name = base.split("-", 1)
            store_path = StorePath(STORE_DIR, digest, name,
                                   Origin(attr, item.output, item.toplevel, SYSTEM))
            yield store_path, [FileEntry(p, k, s, t)  # type: ignore[arg-type]
                               for p, k, s, t in file_entries(tree)]

    file.parent.mkdir(parents=True, exist_ok=True)
    write_database(file, blocks())
