"""Per-binary entries, exactly as `shim/FORMAT.md` specifies.

An entry is keyed by the FNV-1a hash of the executable's canonical path and
records the file's identity (nixld.fileid), so the shim ignores it once the
file is replaced. Beside it, a build-id entry (keyed by the program's GNU
build-id, recording its size) lets a copy of the same file at another path
start without a new resolve. Every write is nixld.atomic's: a reader (the
shim, another shell) sees the old file or the new one, never half of one,
Ctrl-C included. Which entries apply to a binary, in which order, is
nixld.search's; remembered choices and the never-list are nixld.memory's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from nixld import atomic, paths
from nixld.errors import StateError
from nixld.fileid import Identity
from nixld.lock import ensure_dir
from nixld.package import Package
from nixld.text import safe

MAGIC: Final = b"nixld-entry 1"
MAX_ENTRY_BYTES: Final = 65536
MAX_DIRS: Final = 64
MAX_DIR_BYTES: Final = 4095
SUFFIX: Final = ".entry"
BUILD_ID_SUFFIX: Final = ".build-id"
MAX_BUILD_ID_HEX: Final = 128
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_IDENTITY_KEYS: Final = frozenset((b"dev", b"ino", b"size", b"mtime"))
_KEY_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")

Status = Literal["valid", "changed", "gone"]


@dataclass(frozen=True)
class Entry:
    path: str  # canonical path of the executable (os.path.realpath)
    identity: Identity | None
    dirs: tuple[str, ...]
    sha256: str | None = None
    packages: tuple[Package, ...] = ()  # recorded without their sonames
    sonames: tuple[tuple[str, str], ...] = ()  # (soname, the file it resolved to)
    build_id: str | None = None  # set in a build-id entry (then identity is None)
    size: int | None = None  # a build-id entry's file size


# ---------------------------------------------------------------- keys and locations


def key_for(canonical_path: str | bytes) -> str:
    """FNV-1a 64 of the path's bytes, as 16 lowercase hex digits (FORMAT.md)."""
    data = os.fsencode(canonical_path)
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def canonical(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def entry_file(canonical_path: str, directory: Path | None = None) -> Path:
    return (directory or paths.entries_dir()) / (key_for(canonical_path) + SUFFIX)


def build_id_file(build_id: str, directory: Path | None = None) -> Path:
    return (directory or paths.entries_dir()) / (build_id + BUILD_ID_SUFFIX)


def valid_build_id(value: str) -> bool:
    """2 to 128 lowercase hex digits, an even number (FORMAT.md)."""
    return 2 <= len(value) <= MAX_BUILD_ID_HEX and len(value) % 2 == 0 and \
        all(c in "0123456789abcdef" for c in value)


# ---------------------------------------------------------------- the syntax


def check_value(what: str, value: str) -> bytes:
    raw = os.fsencode(value)
    if b"\n" in raw or b"\r" in raw or not raw:
        raise StateError(f"cannot record {what} {safe(value)!r}: empty or has a line break")
    return raw


def format_entry(entry: Entry) -> bytes:
    """The bytes of an entry file; StateError if FORMAT.md cannot express it."""
    lines = [MAGIC, b"path " + check_value("the path", entry.path)]
    if not entry.path.startswith("/"):
        raise StateError(f"entry path is not absolute: {safe(entry.path)}")
    lines += _identity_lines(entry)
    if len(entry.dirs) > MAX_DIRS:
        raise StateError(f"too many library directories ({len(entry.dirs)} > {MAX_DIRS})")
    for d in entry.dirs:
        raw = check_value("the directory", d)
        if not raw.startswith(b"/") or b":" in raw or len(raw) > MAX_DIR_BYTES:
            raise StateError(f"cannot record the directory {safe(d)}: not absolute, "
                             "contains ':' or too long")
        lines.append(b"dir " + raw)
    if entry.sha256 is not None:
        lines.append(b"sha256 " + check_value("the hash", entry.sha256))
    lines += [package_line(p) for p in entry.packages]
    for soname, file in entry.sonames:
        name = check_value("the soname", soname)
        if b" " in name:
            raise StateError(f"cannot record the soname {safe(soname)!r}: it has a space")
        lines.append(b"soname " + name + (b" " + check_value("the file", file) if file else b""))
    lines.append(b"end")
    data = b"\n".join(lines) + b"\n"
    if len(data) > MAX_ENTRY_BYTES:
        raise StateError(f"the entry for {safe(entry.path)} exceeds {MAX_ENTRY_BYTES} bytes")
    return data


def _identity_lines(entry: Entry) -> list[bytes]:
    """A path entry's dev/ino/size/mtime, or a build-id entry's build_id and size."""
    if entry.build_id is not None:
        if not valid_build_id(entry.build_id) or entry.size is None or entry.identity:
            raise StateError(f"cannot record the build-id {safe(entry.build_id)!r} "
                             f"for {safe(entry.path)}")
        return [b"build_id " + entry.build_id.encode(), b"size %d" % entry.size]
    if entry.identity is None:
        return []
    i = entry.identity
    sec, nsec = divmod(i.mtime_ns, 1_000_000_000)
    return [b"dev %d" % i.dev, b"ino %d" % i.ino, b"size %d" % i.size,
            b"mtime %d %d" % (sec, nsec)]


def package_line(p: Package) -> bytes:
    parts = [check_value("the package", x) for x in (p.store_path, p.attr, p.output)]
    if any(b" " in x for x in parts):
        raise StateError(f"cannot record the package {safe(p.attr)}: a field has a space")
    return b"package " + b" ".join(parts)


def _decimal(raw: bytes) -> int | None:
    if not raw.isdigit() or len(raw) > 20:
        return None
    n = int(raw)
    return n if n < 2**64 else None


@dataclass
class _Fields:
    """What the lines of one entry said, while it is being read."""

    seen: dict[bytes, bytes]
    dirs: list[str]
    packages: list[Package]
    sonames: list[tuple[str, str]]
    sha256: str | None = None


_ONCE_KEYS: Final = _IDENTITY_KEYS | {b"path", b"build_id"}


def parse_entry(data: bytes) -> Entry | None:
    """Parse entry bytes; None unless every rule of FORMAT.md holds."""
    if len(data) > MAX_ENTRY_BYTES or not data.endswith(b"\n") or b"\r" in data:
        return None
    lines = data[:-1].split(b"\n")
    if len(lines) < 3 or lines[0] != MAGIC or lines[-1] != b"end":
        return None
    fields = _Fields({}, [], [], [])
    for line in lines[1:-1]:
        key, sep, value = line.partition(b" ")
        if not sep or not key or not set(key) <= _KEY_CHARS or not _take(fields, key, value):
            return None
    if b"path" not in fields.seen or len(fields.dirs) > MAX_DIRS:
        return None
    return _entry_of(fields)


def _take(fields: _Fields, key: bytes, value: bytes) -> bool:
    """Record one line; False if it breaks a rule."""
    if key in _ONCE_KEYS:
        if key in fields.seen:
            return False
        fields.seen[key] = value
    elif key == b"dir":
        if not value.startswith(b"/") or b":" in value or len(value) > MAX_DIR_BYTES:
            return False
        fields.dirs.append(os.fsdecode(value))
    elif key == b"sha256":
        fields.sha256 = value.decode("ascii", "replace")
    elif key == b"package":
        parts = value.split(b" ")
        if len(parts) == 3:
            store_path, attr, output = (os.fsdecode(f) for f in parts)
            fields.packages.append(Package(store_path, attr, output))
    elif key == b"soname":
        name, _, file = value.partition(b" ")
        fields.sonames.append((os.fsdecode(name), os.fsdecode(file)))
    # any other key belongs to a newer Python side: skipped, as the shim does
    return True


def _entry_of(fields: _Fields) -> Entry | None:
    seen = fields.seen
    build_id, size = None, None
    if b"build_id" in seen:
        build_id = seen[b"build_id"].decode("ascii", "replace")
        size = _decimal(seen.get(b"size", b""))
        if not valid_build_id(build_id) or size is None or \
                _IDENTITY_KEYS & seen.keys() != {b"size"}:
            return None
        identity = None
    else:
        found = _identity(seen)
        if found is False:
            return None
        identity = found
    return Entry(os.fsdecode(seen[b"path"]), identity, tuple(fields.dirs), fields.sha256,
                 tuple(fields.packages), tuple(fields.sonames), build_id, size)


def _identity(seen: dict[bytes, bytes]) -> Identity | Literal[False] | None:
    present = _IDENTITY_KEYS & seen.keys()
    if not present:
        return None
    if present != _IDENTITY_KEYS:
        return False
    dev, ino, size = (_decimal(seen[k]) for k in (b"dev", b"ino", b"size"))
    sec_raw, sep, nsec_raw = seen[b"mtime"].partition(b" ")
    sec, nsec = _decimal(sec_raw), _decimal(nsec_raw)
    if dev is None or ino is None or size is None or sec is None or nsec is None or not sep:
        return False
    return Identity(dev, ino, size, sec * 1_000_000_000 + nsec)


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """nixld.atomic's write, into a directory made if needed; StateError on failure."""
    ensure_dir(target.parent)
    try:
        atomic.write_bytes(target, data, mode)
    except OSError as err:
        raise StateError(f"cannot write {safe(target)}: {err.strerror}") from None


def unlink(path: Path) -> bool:
    """Remove `path` (nixld.atomic); False if it was not there; StateError on failure."""
    try:
        return atomic.unlink(path)
    except OSError as err:
        raise StateError(f"cannot remove {safe(path)}: {err.strerror}") from None


# ---------------------------------------------------------------- entries


def write_entry(entry: Entry, directory: Path | None = None) -> Path:
    """Write `entry` atomically into the per-user entries dir (or `directory`)."""
    if directory is None and entry.identity is None:
        raise ValueError("per-user entries must record the file's identity (FORMAT.md)")
    target = entry_file(entry.path, directory)
    write_atomic(target, format_entry(entry))
    return target


def read_entry(path: str | os.PathLike[str]) -> Entry | None:
    """The entry in file `path`; None if missing, unreadable, corrupt or truncated."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return None
    return parse_entry(data)


def status(entry: Entry) -> Status:
    """Whether the entry still applies to the file at its path (for a build-id
    entry: whether the file it was resolved from still has that build-id and size)."""
    try:
        now = Identity.of_file(entry.path)
    except OSError:
        return "gone"
    if entry.identity is not None and entry.identity != now:
        return "changed"
    if entry.build_id is not None and (entry.size != now.size or
                                       _build_id_of(entry.path) != entry.build_id):
        return "changed"
    return "valid"


def _build_id_of(path: str) -> str | None:
    from nixld.elf import read_build_id  # pyelftools: only when a build-id is needed

    return read_build_id(path)


def build_id_entry_in(directory: Path, target: str) -> tuple[Path, Entry] | None:
    """The build-id entry in `directory` that applies to the file `target`."""
    if not _has_build_id_entries(directory):
        return None  # spares reading the ELF file (and importing pyelftools)
    build_id = _build_id_of(target)
    if build_id is None:
        return None
    file = build_id_file(build_id, directory)
    entry = read_entry(file)
    if entry is None or entry.build_id != build_id:
        return None
    try:
        size = os.stat(target).st_size
    except OSError:
        return None
    return (file, entry) if entry.size == size else None


def _has_build_id_entries(directory: Path) -> bool:
    try:
        with os.scandir(directory) as it:
            return any(e.name.endswith(BUILD_ID_SUFFIX) for e in it)
    except OSError:
        return False


def _scan(directory: Path, suffix: str = SUFFIX) -> Iterator[tuple[Path, Entry]]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if name.endswith(suffix) and not name.startswith("."):
            file = directory / name
            entry = read_entry(file)
            if entry is not None and file.name == _file_name(entry):
                yield file, entry


def _file_name(entry: Entry) -> str:
    if entry.build_id is not None:
        return entry.build_id + BUILD_ID_SUFFIX
    return key_for(entry.path) + SUFFIX


def all_entries() -> list[tuple[Path, Entry]]:
    """Every readable per-user entry (the ones nixld-hook manages)."""
    return list(_scan(paths.entries_dir()))


def system_entries() -> list[tuple[Path, Entry]]:
    return list(_scan(paths.SYSTEM_ENTRIES_DIR))


def build_id_entries() -> list[tuple[Path, Entry]]:
    """Every readable per-user build-id entry."""
    return list(_scan(paths.entries_dir(), BUILD_ID_SUFFIX))


def system_build_id_entries() -> list[tuple[Path, Entry]]:
    return list(_scan(paths.SYSTEM_ENTRIES_DIR, BUILD_ID_SUFFIX))


def write_build_id_entry(entry: Entry, build_id: str,
                         directory: Path | None = None) -> Path:
    """Beside the path entry `entry`: the build-id entry with its dirs, for any
    copy of that file (same build-id, same size). The latest resolve wins."""
    size = entry.identity.size if entry.identity else os.stat(entry.path).st_size
    copy_entry = Entry(entry.path, None, entry.dirs, entry.sha256, entry.packages,
                       entry.sonames, build_id, size)
    target = build_id_file(build_id, directory)
    write_atomic(target, format_entry(copy_entry))
    return target


def remove_entry(path: str | os.PathLike[str]) -> bool:
    """Remove the per-user entries for `path` (as given or canonical): its path
    entry and the build-id entry recording it; True if one went."""
    wanted = {os.path.abspath(path), canonical(path)}
    removed = False
    for file, entry in all_entries() + build_id_entries():  # and the build-id entry it wrote
        if entry.path in wanted:
            removed = unlink(file) or removed
    return removed


def remove_file(file: Path) -> bool:
    """Remove one entry file (a stale build-id entry); True if it went."""
    return unlink(file)


