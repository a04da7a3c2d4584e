"""What nixld-hook remembers besides entries: choices by file content, and
binaries never to ask about (both under $XDG_STATE_HOME/nixld/).

`choices/<sha256>`: the packages and dirs a resolution chose for a file with
that content, so a copy or a moved binary is resolved again with no question.
`never`: lines `path P` and `sha256 H` of binaries the user said never for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixld import paths
from nixld.entries import canonical, check_value, package_line, unlink, write_atomic
from nixld.errors import StateError
from nixld.fileid import sha256_of
from nixld.package import Package
from nixld.text import safe


@dataclass(frozen=True)
class Choice:
    """A resolution remembered by the content of the file."""

    packages: tuple[Package, ...]
    dirs: tuple[str, ...]


def _choices_dir() -> Path:
    return paths.state_dir() / "choices"


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def remember_choice(sha256: str | None, packages: Iterable[Package],
                    dirs: Sequence[str]) -> None:
    """Remember the resolution for files with this content (a copy, a move)."""
    if sha256 is None:
        return
    lines = [b"nixld-choice 1"]
    lines += [package_line(p) for p in packages]
    lines += [b"dir " + check_value("the directory", d) for d in dirs]
    lines.append(b"end")
    write_atomic(_choices_dir() / _check_sha(sha256), b"\n".join(lines) + b"\n")


def recall_choice(sha256: str) -> Choice | None:
    """The resolution remembered for this content, if any."""
    try:
        data = (_choices_dir() / _check_sha(sha256)).read_bytes()
    except (OSError, ValueError):
        return None
    lines = data.split(b"\n")
    if lines[:1] != [b"nixld-choice 1"] or lines[-2:] != [b"end", b""]:
        return None
    packages: list[Package] = []
    dirs: list[str] = []
    for line in lines[1:-2]:
        key, _, value = line.partition(b" ")
        if key == b"dir":
            dirs.append(os.fsdecode(value))
        elif key == b"package" and len(fields := value.split(b" ")) == 3:
            store_path, attr, output = (os.fsdecode(f) for f in fields)
            packages.append(Package(store_path, attr, output))
    return Choice(tuple(packages), tuple(dirs))


def forget_choice(sha256: str) -> bool:
    try:
        return unlink(_choices_dir() / _check_sha(sha256))
    except ValueError:
        return False


def forget_memories() -> None:
    """Forget every remembered choice and every `never`."""
    try:
        names = os.listdir(_choices_dir())
    except FileNotFoundError:
        names = []
    except OSError as err:
        raise StateError(f"cannot read {safe(_choices_dir())}: {err.strerror}") from None
    for name in names:
        unlink(_choices_dir() / name)
    unlink(_never_file())


# ---------------------------------------------------------------- never ask again


def _never_file() -> Path:
    return paths.state_dir() / "never"


def _never_lines() -> list[bytes]:
    try:
        return _never_file().read_bytes().splitlines()
    except OSError:
        return []


def mark_never(path: str | os.PathLike[str]) -> None:
    """Never ask about this binary again: by canonical path, and by content."""
    target = canonical(path)
    lines = _never_lines()
    new = [b"path " + check_value("the path", target)]
    with contextlib.suppress(OSError):
        new.append(b"sha256 " + sha256_of(target).encode())
    lines += [x for x in new if x not in lines]
    write_atomic(_never_file(), b"\n".join(lines) + b"\n")


def is_never(path: str | os.PathLike[str]) -> bool:
    lines = _never_lines()
    if not lines:
        return False
    if b"path " + os.fsencode(canonical(path)) in lines:
        return True
    if not any(x.startswith(b"sha256 ") for x in lines):
        return False
    try:
        return b"sha256 " + sha256_of(path).encode() in lines
    except OSError:
        return False


def clear_never(path: str | os.PathLike[str], sha256: str | None = None) -> bool:
    """Undo `mark_never` for this path (and this content); True if something was cleared."""
    lines = _never_lines()
    drop = {b"path " + os.fsencode(canonical(path)), b"path " + os.fsencode(os.path.abspath(path))}
    if sha256 is not None:
        drop.add(b"sha256 " + sha256.encode())
    with contextlib.suppress(OSError):
        drop.add(b"sha256 " + sha256_of(path).encode())
    kept = [x for x in lines if x not in drop]
    if len(kept) == len(lines):
        return False
    write_atomic(_never_file(), b"\n".join(kept) + b"\n" if kept else b"")
    return True
