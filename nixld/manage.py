"""Managing what was installed: forget entries, collect unused profile elements.

A profile element is in use while some per-user entry (path or build-id entry)
names its store path (as a package, or through one of its `dir`s). Entries go first, then the
elements they alone used: interrupted in between, the profile holds a little
too much (the next `gc` frees it), never too little.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nixld import entries, lock, memory, paths, profile
from nixld.entries import Entry
from nixld.errors import BadInputError
from nixld.text import safe

STORE_DIR = "/nix/store/"


@dataclass
class Released:
    """What a forget or gc removed."""

    entries: list[Entry] = field(default_factory=list)
    store_paths: list[str] = field(default_factory=list)


def store_path_of(path: str) -> str | None:
    """`/nix/store/HASH-name/lib` -> `/nix/store/HASH-name`."""
    if not path.startswith(STORE_DIR):
        return None
    name = path[len(STORE_DIR):].split("/", 1)[0]
    return STORE_DIR + name if name else None


def store_paths_of(entry: Entry) -> set[str]:
    used = {p.store_path for p in entry.packages}
    used.update(s for s in map(store_path_of, entry.dirs) if s)
    return used


def in_use(among: Iterable[Entry]) -> set[str]:
    out: set[str] = set()
    for entry in among:
        out |= store_paths_of(entry)
    return out


def _matching(path: str) -> list[tuple[Path, Entry]]:
    wanted = {os.path.abspath(path), os.path.realpath(path)}
    return [(f, e) for f, e in entries.all_entries() if e.path in wanted]


def _release(files: Sequence[tuple[Path, Entry]], *, drop_choices: bool) -> Released:
    gone = {f for f, _ in files}
    for _file, entry in files:
        entries.remove_entry(entry.path)
        if drop_choices and entry.sha256:
            memory.forget_choice(entry.sha256)
    freed = set().union(*(store_paths_of(e) for _, e in files)) if files else set()
    freed -= in_use(e for f, e in _every_entry() if f not in gone)
    freed &= profile.installed()
    profile.remove(sorted(freed))
    return Released([e for _, e in files], sorted(freed))


def _every_entry() -> list[tuple[Path, Entry]]:
    """Path entries and build-id entries: both keep their packages in use."""
    return entries.all_entries() + entries.build_id_entries()


def forget(path_list: Sequence[str]) -> Released:
    """Remove these binaries' entries, what they remembered, and what only they used."""
    with lock.state_lock():
        found: list[tuple[Path, Entry]] = []
        for path in path_list:
            matches = _matching(path)
            cleared = memory.clear_never(path)
            if not matches and not cleared:
                raise BadInputError(f"no resolution for {safe(path)} (see `nixld-hook list`)")
            found += matches
        return _release(found, drop_choices=True)


def forget_all() -> Released:
    """Remove every entry and memory, and every profile element."""
    with lock.state_lock():
        result = _release(entries.all_entries(), drop_choices=True)
        extra = sorted(profile.installed())
        profile.remove(extra)
        result.store_paths = sorted(set(result.store_paths) | set(extra))
        memory.forget_memories()
        return result


def collect() -> Released:
    """Drop entries whose binary is gone or changed, then every unused profile element."""
    with lock.state_lock():
        _remove_leftover_temp_files()
        current = _every_entry()
        stale = [(f, e) for f, e in current if entries.status(e) != "valid"]
        for file, entry in stale:
            if entry.build_id is None:
                entries.remove_entry(entry.path)
            else:  # the file it was resolved from lost that build-id: only this one goes
                entries.remove_file(file)
        gone = {f for f, _ in stale}
        kept = [e for f, e in _every_entry() if f not in gone]
        unused = sorted(profile.installed() - in_use(kept))
        profile.remove(unused)
        return Released([e for _, e in stale], unused)


def _remove_leftover_temp_files() -> None:
    """A process killed mid-write (SIGKILL, power loss) leaves its temporary file."""
    for directory in (paths.entries_dir(), paths.state_dir() / "choices", paths.state_dir()):
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                if name.startswith(".tmp-"):
                    os.unlink(directory / name)
