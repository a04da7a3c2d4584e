"""The soname index: which store paths have which library file under lib/.

One pass over the nix-index database collects every file directly under a store
path's `lib/` or `lib64/` whose name looks like a shared library (`*.so`,
`*.so.*`), following symlinks inside the same store path, and writes a compact
file to the XDG cache, keyed by the database file's identity (size, mtime,
inode, device), so it is rebuilt by itself when the database changes.

The warm path (open + look up a binary's sonames) must cost a few milliseconds
inside a process that answers in under 150 ms, so the file is read with mmap
and binary search, nothing is unpickled, and zstandard is not imported. Layout
(all integers little-endian, sections 8-byte aligned):

    header        HEADER below: magic, database identity, counts, section offsets
    paths index   u64 offsets (n_paths + 1) into the paths blob
    paths blob    each store path's JSON, exactly as in the database's `p` line
    names index   u64 offsets (n_sonames + 1) into the names blob
    names blob    the sonames, sorted bytewise, concatenated
    records index u64 offsets (n_sonames + 1) into the records blob
    records blob  per soname, per provider: `path#\\0file\\0target\\0size\\0claim\\0`,
                  claim being why that store path owns the file (nixld.ownership), or empty
    standing      u64 per store path: library files (bits 0-23), how many of them
                  other store paths own (24-47), its role (48-55; ownership.ROLES)

Ownership is computed once here, over the whole database (nixld.ownership),
from each store path's library files, its `lib/pkgconfig/*.pc` files and those
of its attribute's `dev` output, and its top-level `bin/`, `opt/`,
`share/applications/` and `usr/`.

Also here: LibraryFactsCache, the cache of facts learned about realised library
files (version definitions, exported symbols), keyed by path and identity.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from nixld import ownership
from nixld.database import StorePath, iter_raw, missing_database_message, parse_store_path
from nixld.errors import DatabaseError
from nixld.paths import cache_dir
from nixld.text import safe

INDEX_MAGIC = b"NXLDSO03"  # bump the digits when the layout changes
# magic, db size, mtime_ns, inode, device, built at (ns), entries, store paths,
# store paths with libraries, sonames, providers, build time (ms), 7 offsets
HEADER = struct.Struct("<8s6Q4I I4x7Q")
LIB_DIRS = (b"/lib/", b"/lib64/")
MAX_SYMLINK_HOPS = 40  # as the kernel's limit
PROGRESS_SECONDS = 0.5

Identity = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Provider:
    """A library file that provides `soname` in a store path.

    `file` is relative to the store path ("lib/libz.so.1"). If it is a symlink,
    `target` is the file it resolves to inside the store path ("lib/libz.so.1.3.1"),
    or the absolute link target when the link leaves the store path (then
    `size` is None); `size` is the resolved regular file's size.
    """

    soname: str
    store_path: StorePath
    file: str
    target: str | None
    size: int | None
    # From the index (nixld.ownership): why this store path owns the file ("" if
    # it does not) and the store path's standing. Not part of equality.
    claim: str = field(default="", compare=False)
    standing: ownership.Standing | None = field(default=None, compare=False)

    @property
    def path(self) -> str:
        """The absolute path of the library file as named (not resolved)."""
        return f"{self.store_path.path}/{self.file}"


# ---------------------------------------------------------------- one store path


def is_library_name(name: bytes) -> bool:
    return name.endswith(b".so") or b".so." in name


def _resolve(entries: dict[bytes, bytes], path: bytes, root: bytes) -> tuple[bytes, bytes] | None:
    """Follow symlinks in `path` (relative to the store path) as the kernel would.

    Returns (resolved path, its meta) inside the store path, (absolute target,
    b"") when a link leaves the store path, or None when dangling or looping.
    """
    parts = path.split(b"/")[1:]
    parts.reverse()  # a stack: the next component is last
    current = b""
    hops = 0
    while parts:
        part = parts.pop()
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not current:
                return None  # above the store path: not something we can know
            current = current[:current.rindex(b"/")]
            continue
        candidate = current + b"/" + part
        meta = entries.get(candidate)
        if meta is None:
            return None
        if not meta.endswith(b"s"):
            current = candidate
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            return None
        target = meta[:-1]
        if target.startswith(b"/"):
            if target != root and not target.startswith(root + b"/"):
                rest = b"/".join(reversed(parts))
                return (target + b"/" + rest if rest else target), b""
            target, current = target[len(root):], b""
        new = target.split(b"/")
        new.reverse()
        parts.extend(new)
    meta = entries.get(current)
    return None if meta is None else (current, meta)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


Found = tuple[bytes, bytes, bytes | None, int | None]  # soname, file, target, size


def library_files(raw_entries: list[tuple[bytes, bytes]], raw_json: bytes,
                  wanted: frozenset[bytes] | None = None,
                  pkg_config: list[bytes] | None = None) -> list[Found]:
    """The shared libraries directly under lib/ and lib64/ of one store path.

    `raw_json` is the store path's `p` line, parsed only if a symlink needs it
    (absolute links back into the store path); `wanted` limits the result to
    those file names; the names of `lib/pkgconfig/*.pc` files are appended to
    `pkg_config` when given. A bad `p` line raises ValueError.
    """
    found: list[tuple[bytes, bytes, bytes]] = []
    for meta, path in raw_entries:
        if not path.startswith(LIB_DIRS):
            continue
        slash = path.index(b"/", 1)
        name = path[slash + 1:]
        if b"/" in name:
            if pkg_config is not None and name.startswith(b"pkgconfig/") \
                    and name.endswith(b".pc") and name.count(b"/") == 1:
                pkg_config.append(name[10:-3])
            continue
        if not is_library_name(name):
            continue
        if wanted is not None and name not in wanted:
            continue
        found.append((name, path, meta))
    if not found:
        return []
    return _resolved(found, raw_entries, raw_json)


def _resolved(found: list[tuple[bytes, bytes, bytes]], raw_entries: list[tuple[bytes, bytes]],
              raw_json: bytes) -> list[Found]:
    lookup: dict[bytes, bytes] | None = None
    root = b""
    out: list[Found] = []
    for name, path, meta in found:
        kind = meta[-1:]
        if kind in (b"r", b"x"):
            out.append((name, path[1:], None, _size(meta)))
        elif kind == b"s":
            if lookup is None:
                lookup = {p: m for m, p in raw_entries}
                root = _root_of(raw_json)[1]
            resolved = _resolve(lookup, path, root)
            if resolved is None:
                continue
            target, target_meta = resolved
            if not target_meta:  # leaves the store path
                out.append((name, path[1:], target, None))
            elif target_meta[-1:] in (b"r", b"x"):
                out.append((name, path[1:], target[1:], _size(target_meta)))
    return out


def _size(meta: bytes) -> int | None:
    digits = meta[:-1]
    return int(digits) if digits.isdigit() and len(digits) < 20 else None


def _root_of(raw_json: bytes) -> tuple[StorePath, bytes]:
    try:
        store_path = parse_store_path(raw_json)
    except ValueError as err:
        raise ValueError(f"bad store path line: {err}") from None
    return store_path, store_path.path.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- building


def db_identity(db_file: Path) -> Identity:
    try:
        st = os.stat(db_file)
    except FileNotFoundError:
        raise DatabaseError(missing_database_message(db_file)) from None
    except OSError as err:
        raise DatabaseError(f"cannot read the nix-index database {safe(db_file)}: "
                            f"{err.strerror or err}") from None
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


class _Progress:
    """Counts the pass and reports it at most every PROGRESS_SECONDS."""

    def __init__(self, callback: Callable[[str], None] | None) -> None:
        self.callback = callback
        self.start = time.monotonic()
        self.next_report = self.start + PROGRESS_SECONDS
        self.store_paths = 0
        self.entries = 0

    def step(self, entries: int) -> None:
        self.store_paths += 1
        self.entries += entries
        if self.callback is not None and (self.store_paths & 63) == 0:
            now = time.monotonic()
            if now >= self.next_report:
                self.next_report = now + PROGRESS_SECONDS
                self.callback(self.message(now))

    def message(self, now: float) -> str:
        rate = self.entries / max(now - self.start, 1e-9)
        return (f"indexing: {self.store_paths:,} store paths, {self.entries:,} entries "
                f"({rate:,.0f} entries/s)")


Record = tuple[bytes, int, bytes, bytes | None, int | None]  # name, path#, file, target, size


@dataclass
class _Collected:
    """What the pass keeps: store paths with library files and their facts."""

    paths: list[bytes] = field(default_factory=list)
    providers: list[Record] = field(default_factory=list)
    facts: list[ownership.PathFacts] = field(default_factory=list)
    dev_pkg_config: dict[str, set[str]] = field(default_factory=dict)

    def add(self, raw_json: bytes, raw_entries: list[tuple[bytes, bytes]]) -> None:
        pkg_config: list[bytes] = []
        found = library_files(raw_entries, raw_json, pkg_config=pkg_config)
        if not found and not pkg_config:
            return
        store_path = _root_of(raw_json)[0]  # what goes into the index must parse later
        origin = store_path.origin
        pc_names = frozenset(_decode(n) for n in pkg_config)
        if origin is not None and origin.output == "dev" and pc_names:
            self.dev_pkg_config.setdefault(origin.attr, set()).update(pc_names)
        if not found:
            return
        number = len(self.paths)
        self.paths.append(raw_json)
        self.providers.extend((name, number, file, target, size)
                              for name, file, target, size in found)
        libraries = {_decode(name): _decode(target if target is not None else file)
                     for name, file, target, _ in found}
        markers = ownership.MARKERS.intersection(map(itemgetter(1), raw_entries))
        self.facts.append(ownership.PathFacts(store_path, libraries, pc_names,
                                              frozenset(markers)))


def build_index(db_file: Path, identity: Identity,
                progress: Callable[[str], None] | None = None) -> bytes:
    """One pass over the database, then ownership; returns the index file's bytes."""
    state = _Progress(progress)
    kept = _Collected()
    for raw_json, raw_entries in iter_raw(db_file):
        state.step(len(raw_entries))
        try:
            kept.add(raw_json, raw_entries)
        except ValueError as err:
            raise DatabaseError(f"{safe(db_file)}: corrupt nix-index database: {err}") from None
    if progress is not None:
        progress(state.message(time.monotonic()))
    owned = ownership.compute(kept.facts, {a: frozenset(p)
                                           for a, p in kept.dev_pkg_config.items()})
    kept.providers.sort(key=lambda p: (p[0], p[1]))  # stable: database order within a path
    build_ms = int((time.monotonic() - state.start) * 1000)
    counts = (state.entries, state.store_paths, len(kept.paths), build_ms)
    return _serialise(identity, counts, kept, owned)


def _serialise(identity: Identity, counts: tuple[int, int, int, int], kept: _Collected,
               owned: ownership.Ownership) -> bytes:
    paths = [fact.store_path.path for fact in kept.facts]
    names: list[bytes] = []
    records: list[bytes] = []
    for name, number, file, target, size in kept.providers:
        claim = owned.claims.get((_decode(name), paths[number]), "")
        record = b"%d\0%s\0%s\0%s\0%s\0" % (number, file, target or b"",
                                             b"" if size is None else b"%d" % size,
                                             claim.encode())
        if names and names[-1] == name:
            records[-1] += record
        else:
            names.append(name)
            records.append(record)
    files_per_path = [0] * len(paths)
    for provider in kept.providers:
        files_per_path[provider[1]] += 1
    standing = [_pack_standing(files_per_path[i], owned.standing[path])
                for i, path in enumerate(paths)]
    sections = [_offsets(kept.paths), b"".join(kept.paths), _offsets(names), b"".join(names),
                _offsets(records), b"".join(records),
                struct.pack(f"<{len(paths)}Q", *standing)]
    offsets: list[int] = []
    body = bytearray()
    for section in sections:
        offsets.append(HEADER.size + len(body))
        body += section
        body += b"\0" * (-len(body) % 8)
    entries, store_paths, with_libs, build_ms = counts
    header = HEADER.pack(INDEX_MAGIC, *identity, time.time_ns(), entries, store_paths,
                         with_libs, len(names), len(kept.providers), build_ms, *offsets)
    return header + bytes(body)


_FIELD = (1 << 24) - 1


def _pack_standing(files: int, standing: ownership.Standing) -> int:
    role = ownership.ROLES.index(standing.role)
    return min(files, _FIELD) | min(standing.others, _FIELD) << 24 | role << 48


def _unpack_standing(value: int, libraries: int) -> ownership.Standing:
    role = ownership.ROLES[min((value >> 48) & 0xFF, len(ownership.ROLES) - 1)]
    return ownership.Standing(role, libraries, (value >> 24) & _FIELD)


def _offsets(items: list[bytes]) -> bytes:
    out = [0]
    for item in items:
        out.append(out[-1] + len(item))
    return struct.pack(f"<{len(out)}Q", *out)


def index_file(db_file: Path) -> Path:
    """One index per database file, so switching `--db` does not thrash it."""
    key = zlib.crc32(os.fsencode(os.path.abspath(db_file)))
    return cache_dir() / f"soname-index-{key:08x}.bin"


def _write_atomically(file: Path, data: bytes) -> None:
    from nixld import atomic

    file.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(file, data, durable=False)  # a cache: rebuilt if lost


# ---------------------------------------------------------------- reading


class SonameIndex:
    """A built index, memory-mapped; look up many sonames at once."""

    def __init__(self, buffer: bytes | mmap.mmap, file: Path | None = None) -> None:
        self._buf = buffer
        self.file = file
        header = HEADER.unpack_from(buffer)
        if header[0] != INDEX_MAGIC:
            raise ValueError("not a soname index")
        self.identity: Identity = header[1:5]
        (self._built_at_ns, self._entries, self._store_paths, self._with_libs,
         self._n_names, self._n_providers, self._build_ms) = header[5:12]
        offsets = header[12:19]
        n_paths, n_names = self._with_libs, self._n_names
        self._paths_index = self._table(offsets[0], n_paths + 1)
        self._paths_blob = offsets[1]
        self._names_index = self._table(offsets[2], n_names + 1)
        self._names_blob = offsets[3]
        self._records_index = self._table(offsets[4], n_names + 1)
        self._records_blob = offsets[5]
        self._standing = self._table(offsets[6], n_paths)
        if self._records_blob + self._records_index[-1] > len(buffer):
            raise ValueError("soname index is truncated")
        self._store_path_cache: dict[int, StorePath] = {}
        self._numbers: dict[str, int] = {}  # store path -> number, for those looked up

    def _table(self, offset: int, count: int) -> memoryview:
        end = offset + 8 * count
        if end > len(self._buf):
            raise ValueError("soname index is truncated")
        table = memoryview(self._buf)[offset:end].cast("Q")
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian
            table = memoryview(bytes(struct.pack(f">{count}Q", *table))).cast("Q")
        return table

    @classmethod
    def open(cls, db_file: Path, *, progress: Callable[[str], None] | None = None,
             rebuild: bool = False) -> SonameIndex:
        """The index of `db_file`, built (and cached) when missing or stale."""
        db_file = Path(db_file)
        identity = db_identity(db_file)
        file = index_file(db_file)
        if not rebuild:
            index = cls._load(file, identity)
            if index is not None:
                return index
        data = build_index(db_file, identity, progress)
        try:
            _write_atomically(file, data)
        except OSError as err:
            # A cache we cannot write only costs time: use it from memory.
            if progress is not None:
                progress(f"warning: cannot write the soname index {safe(file)}: "
                         f"{err.strerror or err}")
            return cls(data)
        return cls._load(file, identity) or cls(data)

    @classmethod
    def _load(cls, file: Path, identity: Identity) -> SonameIndex | None:
        try:
            with open(file, "rb") as stream:
                buffer = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        try:
            index = cls(buffer, file)
        except (ValueError, struct.error):
            return None
        return index if index.identity == identity else None

    def _name(self, i: int) -> bytes:
        start = self._names_blob
        return self._buf[start + self._names_index[i]:start + self._names_index[i + 1]]

    def _find(self, key: bytes) -> int | None:
        lo, hi = 0, self._n_names
        while lo < hi:
            mid = (lo + hi) // 2
            if self._name(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < self._n_names and self._name(lo) == key else None

    def store_path(self, number: int) -> StorePath:
        cached = self._store_path_cache.get(number)
        if cached is None:
            start = self._paths_blob
            raw = self._buf[start + self._paths_index[number]:
                            start + self._paths_index[number + 1]]
            try:
                cached = parse_store_path(raw)
            except ValueError as err:
                raise DatabaseError(f"corrupt soname index {safe(self.file or '?')}: {err} "
                                    f"(run `nixld-hook index --rebuild`)") from None
            self._store_path_cache[number] = cached
            self._numbers[cached.path] = number
        return cached

    def library_count(self, store_path: str | StorePath) -> int:
        """How many library files a store path has (one returned by `lookup`).

        Ranking uses it to tell a library package from one that bundles copies.
        """
        path = store_path.path if isinstance(store_path, StorePath) else store_path
        number = self._numbers.get(path)
        return 0 if number is None else int(self._standing[number]) & _FIELD

    def standing(self, number: int) -> ownership.Standing:
        """The ownership standing of one store path (by its number in the index)."""
        value = int(self._standing[number])
        return _unpack_standing(value, value & _FIELD)

    def _providers(self, soname: str, i: int) -> list[Provider]:
        start = self._records_blob
        blob = self._buf[start + self._records_index[i]:start + self._records_index[i + 1]]
        fields = blob.split(b"\0")
        out: list[Provider] = []
        for j in range(0, len(fields) - 1, 5):
            number, file, target, size, claim = fields[j:j + 5]
            out.append(Provider(
                soname=soname,
                store_path=self.store_path(int(number)),
                file=_decode(file),
                target=_decode(target) if target else None,
                size=int(size) if size else None,
                claim=claim.decode("ascii", "replace"),
                standing=self.standing(int(number)),
            ))
        return out

    def lookup(self, sonames: Iterable[str]) -> dict[str, list[Provider]]:
        """Providers of each soname (an empty list for none), in database order."""
        result: dict[str, list[Provider]] = {}
        for soname in sonames:
            if soname in result:
                continue
            try:
                key = soname.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # no file name encodes to it
                key = b"\0"
            i = self._find(key)
            result[soname] = [] if i is None else self._providers(soname, i)
        return result

    def stats(self) -> dict[str, int]:
        size, mtime_ns, _, _ = self.identity
        return {
            "store_paths": self._store_paths,
            "store_paths_with_libraries": self._with_libs,
            "entries": self._entries,
            "library_files": self._n_providers,
            "sonames": self._n_names,
            "db_size": size,
            "db_mtime": mtime_ns // 1_000_000_000,
            "built_at": self._built_at_ns // 1_000_000_000,
            "build_ms": self._build_ms,
            "index_size": len(self._buf),
        }


# ---------------------------------------------------------------- the baseline


def scan_for_soname(db_file: Path, soname: str) -> list[Provider]:
    """Answer one soname with one full scan of the database, no index.

    This is how nix-locate-based tools answer (one `nix-locate` per soname);
    kept as the benchmark's baseline and as a cross-check of the index.
    """
    wanted = frozenset((soname.encode("utf-8", "surrogateescape"),))
    candidates = {d + n for d in LIB_DIRS for n in wanted}
    out: list[Provider] = []
    for raw_json, raw_entries in iter_raw(Path(db_file)):
        if not any(path in candidates for _, path in raw_entries):
            continue
        try:
            store_path = _root_of(raw_json)[0]
            found = library_files(raw_entries, raw_json, wanted)
        except ValueError as err:
            raise DatabaseError(f"{safe(db_file)}: corrupt nix-index database: {err}") from None
        for _, file, target, size in found:
            out.append(Provider(soname, store_path, _decode(file),
                                None if target is None else _decode(target), size))
    return out


# ---------------------------------------------------------------- library facts


class LibraryFactsCache:
    """JSON-able facts about realised library files, one small file per key.

    A fact is stored with the file's identity (size, mtime, inode, device) and
    only returned while the file still has it, so a changed file is re-read.
    Failures to read or write the cache are not errors: it only saves time.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else cache_dir() / "library-facts"

    def _entry_file(self, file: Path, kind: str) -> Path:
        import hashlib

        digest = hashlib.sha256(f"{kind}\0{os.path.abspath(file)}".encode(
            "utf-8", "surrogateescape")).hexdigest()
        return self.directory / f"{digest[:40]}.json"

    @staticmethod
    def _identity(file: Path) -> list[int] | None:
        try:
            st = os.stat(file)
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]

    def get(self, file: Path, kind: str = "facts") -> Any | None:
        """The facts stored for `file` under `kind`, or None if none are current."""
        identity = self._identity(file)
        if identity is None:
            return None
        try:
            with open(self._entry_file(file, kind), encoding="utf-8") as stream:
                record = json.load(stream)
        except (OSError, ValueError):
            return None
        if (not isinstance(record, dict) or record.get("identity") != identity
                or record.get("path") != os.fsdecode(os.path.abspath(file))
                or record.get("kind") != kind):
            return None
        return record.get("facts")

    def put(self, file: Path, facts: Any, kind: str = "facts") -> None:
        """Remember `facts` (anything json.dumps accepts) for `file` as it is now."""
        identity = self._identity(file)
        if identity is None:
            return
        record = {"path": os.fsdecode(os.path.abspath(file)), "kind": kind,
                  "identity": identity, "facts": facts}
        with contextlib.suppress(OSError):  # a cache: failing to write only costs time
            _write_atomically(self._entry_file(file, kind),
                              json.dumps(record, separators=(",", ":")).encode())
