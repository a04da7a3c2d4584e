"""nix-index's `files` database: reader and writer for its real on-disk format.

Layout (nix-index `src/database.rs`): the magic `NIXI`, a little-endian u64
format version (1), then one zstd stream of frcode lines (see nixld.frcode).
Each store path is a block: its file entries first, in nix-index's order
(pre-order, children in descending name order, the store path itself first
with the empty path), then a footer line with meta `p` whose path is the store
path as JSON: `{"store_dir","hash","name","origin":{"attr","output","toplevel",
"system"}}` (`system` may be null or absent). File entry metadata
(`src/files.rs`): `<size>r` regular, `<size>x` executable, `<children>d`
directory (number of direct entries), `<target>s` symlink (target bytes, as
stored, relative or absolute).

Every problem with the file is a DatabaseError whose one line names the file.
zstandard and the frcode codec are imported only when the stream is actually
read or written: the soname index's warm path uses only the data types here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nixld.errors import DatabaseError
from nixld.text import safe

if TYPE_CHECKING:
    from typing import IO

    from nixld import frcode

MAGIC = b"NIXI"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sQ")
PACKAGE_META = b"p"
# Compressed bytes fed to zstd at a time; keeps each decompressed chunk small.
READ_SIZE = 1 << 17

Kind = Literal["r", "x", "d", "s"]
KINDS: frozenset[str] = frozenset("rxds")


@dataclass(frozen=True, slots=True)
class Origin:
    """How nix-index reached a store path: the nixpkgs attribute and output."""

    attr: str
    output: str
    toplevel: bool
    system: str | None = None


@dataclass(frozen=True, slots=True)
class StorePath:
    store_dir: str
    hash: str
    name: str
    origin: Origin | None

    @property
    def path(self) -> str:
        return f"{self.store_dir}/{self.hash}-{self.name}"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One entry of a store path's file tree.

    `path` is relative to the store path and starts with b"/"; the store path
    itself is the entry with the empty path. `size` is the byte size of a
    regular file (r/x) or the number of direct entries of a directory (d);
    `target` is a symlink's target (s).
    """

    path: bytes
    kind: Kind
    size: int | None = None
    target: bytes | None = None


# ---------------------------------------------------------------- reading


def missing_database_message(file: Path) -> str:
    return (f"nix-index database not found: {safe(file)} (build one with `nix-index`, "
            f"or download a prebuilt `files` from nix-community/nix-index-database)")


def check_header(file: Path, header: bytes) -> None:
    """Raise DatabaseError unless `header` is nix-index's magic and version 1."""
    if len(header) < HEADER.size:
        raise DatabaseError(f"{safe(file)}: not a nix-index database: truncated header "
                            f"({len(header)} of {HEADER.size} bytes)")
    magic, version = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise DatabaseError(f"{safe(file)}: not a nix-index database: wrong magic "
                            f"{magic!r} (expected b'NIXI')")  # repr: printable ASCII
    if version != FORMAT_VERSION:
        raise DatabaseError(f"{safe(file)}: unsupported nix-index database version "
                            f"{version} (this tool reads version {FORMAT_VERSION})")


def open_database(file: Path) -> IO[bytes]:
    """Open the database file, turning OS errors into one-line DatabaseErrors."""
    try:
        return open(file, "rb")  # the caller closes it
    except FileNotFoundError:
        raise DatabaseError(missing_database_message(file)) from None
    except IsADirectoryError:
        raise DatabaseError(f"{safe(file)}: is a directory, not a nix-index database "
                            f"file") from None
    except OSError as err:
        raise DatabaseError(f"cannot read the nix-index database {safe(file)}: "
                            f"{err.strerror or err}") from None


def _corrupt(file: Path, problem: str) -> DatabaseError:
    return DatabaseError(f"{safe(file)}: corrupt nix-index database: {problem}")


def decompressed_chunks(file: Path) -> Iterator[bytes]:
    """Yield the decompressed frcode stream in chunks, checking header and zstd."""
    import zstandard

    with open_database(file) as stream:
        try:
            check_header(file, stream.read(HEADER.size))
            decompressor = zstandard.ZstdDecompressor()
            obj = decompressor.decompressobj()
            seen_data = False
            while True:
                data = stream.read(READ_SIZE)
                if not data:
                    break
                seen_data = True
                while data:
                    if obj.eof:  # a stream may hold several frames
                        obj = decompressor.decompressobj()
                    chunk = obj.decompress(data)
                    if chunk:
                        yield chunk
                    data = obj.unused_data if obj.eof else b""
            if not seen_data:
                raise _corrupt(file, "no data after the header (truncated)")
            if not obj.eof:
                raise _corrupt(file, "the zstd stream ends early (truncated)")
        except zstandard.ZstdError as err:
            raise _corrupt(file, f"zstd: {err}") from None
        except OSError as err:
            raise DatabaseError(f"cannot read the nix-index database {safe(file)}: "
                                f"{err.strerror or err}") from None


RawBlock = tuple[bytes, list[tuple[bytes, bytes]]]


def iter_raw(file: Path) -> Iterator[RawBlock]:
    """Yield (store path JSON, [(meta, path), ...]) per store path, undecoded.

    The fast path for whole-database passes: no per-entry objects are built.
    """
    from nixld import frcode  # not on the warm path (the soname index needs none of it)

    decoder = frcode.Decoder()
    entries: list[tuple[bytes, bytes]] = []
    try:
        for chunk in decompressed_chunks(file):
            for meta, path in decoder.feed(chunk):
                if meta == PACKAGE_META:
                    yield path, entries
                    entries = []
                else:
                    entries.append((meta, path))
        decoder.finish()
    except frcode.FrcodeError as err:
        raise _corrupt(file, f"frcode: {err}") from None
    if entries:
        raise _corrupt(file, f"{len(entries)} file entries at the end have no store path "
                             f"line (truncated)")


def parse_store_path(raw: bytes) -> StorePath:
    """Parse a `p` line's JSON; ValueError says what is wrong."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"invalid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError("store path JSON is not an object")
    fields = [obj.get(key) for key in ("store_dir", "hash", "name")]
    if not all(isinstance(f, str) for f in fields):
        raise ValueError("store path JSON lacks string store_dir, hash or name")
    store_dir, hash_, name = fields
    return StorePath(str(store_dir), str(hash_), str(name), _parse_origin(obj.get("origin")))


def _parse_origin(obj: object) -> Origin | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError("origin is not an object")
    attr, output, toplevel = obj.get("attr"), obj.get("output"), obj.get("toplevel")
    system = obj.get("system")
    if not (isinstance(attr, str) and isinstance(output, str) and isinstance(toplevel, bool)):
        raise ValueError("origin lacks string attr/output or boolean toplevel")
    if system is not None and not isinstance(system, str):
        raise ValueError("origin system is neither a string nor null")
    return Origin(attr, output, toplevel, system)


def parse_entry(meta: bytes, path: bytes) -> FileEntry:
    """Parse one file line; ValueError says what is wrong."""
    kind = chr(meta[-1]) if meta else ""
    if kind == "s":
        return FileEntry(path, "s", None, meta[:-1])
    if kind in ("r", "x", "d"):
        digits = meta[:-1]
        if not digits.isdigit():  # bytes.isdigit: ASCII 0-9 only, no sign or space
            raise ValueError(f"bad size {safe(digits)!r} in metadata {safe(meta)!r}")
        return FileEntry(path, kind, int(digits), None)  # type: ignore[arg-type]
    raise ValueError(f"unknown entry metadata {safe(meta)!r}")


def read_database(file: Path) -> Iterator[tuple[StorePath, list[FileEntry]]]:
    """Yield every store path with its file entries, in database order."""
    line = 0
    for raw, raw_entries in iter_raw(file):
        line += len(raw_entries) + 1
        try:
            store_path = parse_store_path(raw)
            entries = [parse_entry(meta, path) for meta, path in raw_entries]
        except ValueError as err:
            raise _corrupt(file, f"store path block ending at line {line}: {err}") from None
        yield store_path, entries


# ---------------------------------------------------------------- writing


def store_path_json(store_path: StorePath) -> bytes:
    """The `p` line payload, field for field as nix-index's serde writes it."""
    origin = store_path.origin
    obj = {
        "store_dir": store_path.store_dir,
        "hash": store_path.hash,
        "name": store_path.name,
        "origin": None if origin is None else {
            "attr": origin.attr,
            "output": origin.output,
            "toplevel": origin.toplevel,
            "system": origin.system,
        },
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def entry_meta(entry: FileEntry, children: int = 0) -> bytes:
    if entry.kind == "s":
        # nix-locate searches the decoded stream line by line: no newline inside.
        if entry.target is None or b"\n" in entry.target:
            raise ValueError(f"symlink entry {entry.path!r} has no target, or a newline in it")
        return entry.target + b"s"
    if entry.kind in ("r", "x", "d"):
        size = entry.size
        if size is None:
            if entry.kind != "d":
                raise ValueError(f"{entry.kind} entry {entry.path!r} has no size")
            size = children
        if size < 0:
            raise ValueError(f"entry {entry.path!r} has a negative size")
        return str(size).encode() + entry.kind.encode()
    raise ValueError(f"unknown entry kind {entry.kind!r}")


def _children_counts(entries: list[FileEntry]) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for entry in entries:
        if entry.path:
            parent = entry.path[:entry.path.rindex(b"/")]
            counts[parent] = counts.get(parent, 0) + 1
    return counts


def encode_store_path(encoder: frcode.Encoder, store_path: StorePath,
                      entries: Iterable[FileEntry]) -> bytes:
    """One store path's block: its entries in the given order, then the `p` line."""
    entries = list(entries)
    counts = _children_counts(entries) if any(
        e.kind == "d" and e.size is None for e in entries) else {}
    parts = [encoder.line(entry_meta(e, counts.get(e.path, 0)), e.path) for e in entries]
    parts.append(encoder.footer(PACKAGE_META, store_path_json(store_path)))
    return b"".join(parts)


def write_database(file: Path,
                   items: Iterable[tuple[StorePath, Iterable[FileEntry]]],
                   level: int = 3) -> None:
    """Write a database atomically (a temporary file renamed into place).

    Directory entries without a size get their number of direct children.
    Paths must not contain NUL or newline (nix-index's format cannot hold them).
    """
    import zstandard

    from nixld import atomic, frcode

    encoder = frcode.Encoder()
    compressor = zstandard.ZstdCompressor(level=level, threads=-1)
    with atomic.replacing(Path(file)) as out:
        out.write(HEADER.pack(MAGIC, FORMAT_VERSION))
        with compressor.stream_writer(out, closefd=False) as writer:
            for store_path, entries in items:
                writer.write(encode_store_path(encoder, store_path, entries))
