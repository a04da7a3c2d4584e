"""The nix-index `files` database: format, round trips, and every kind of bad input."""

from __future__ import annotations

import builtins
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixld import database, frcode
from nixld.database import (
    FileEntry,
    Origin,
    StorePath,
    read_database,
    store_path_json,
    write_database,
)
from nixld.errors import DatabaseError, ExitCode

from .conftest import run_cli

pytestmark = pytest.mark.unit

# Each example writes files: no deadline on a busy machine, tmp_path shared on purpose.
FILE_TESTS: dict[str, Any] = {
    "deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}

ZLIB = StorePath("/nix/store", "0c8ryy4bbbgvc0jxl2k1gjhx4wsidvbp", "zlib-1.3.1",
                 Origin("zlib", "out", True, "x86_64-linux"))
ZLIB_ENTRIES = [
    FileEntry(b"", "d", 1),
    FileEntry(b"/lib", "d", 3),
    FileEntry(b"/lib/libz.so.1.3.1", "x", 123456),
    FileEntry(b"/lib/libz.so.1", "s", None, b"libz.so.1.3.1"),
    FileEntry(b"/lib/libz.so", "s", None, b"libz.so.1.3.1"),
]


def raw_db(payload: bytes, magic: bytes = b"NIXI", version: int = 1) -> bytes:
    """A database file's bytes around an frcode payload, as nix-index lays it out."""
    return magic + struct.pack("<Q", version) + zstandard.ZstdCompressor().compress(payload)


def read_all(file: Path) -> list[tuple[StorePath, list[FileEntry]]]:
    return list(read_database(file))


def expect_error(file: Path, message: str) -> None:
    with pytest.raises(DatabaseError) as err:
        read_all(file)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- format


def test_writes_nix_index_layout_byte_for_byte(tmp_path: Path) -> None:
    db = tmp_path / "files"
    write_database(db, [(ZLIB, ZLIB_ENTRIES)])
    data = db.read_bytes()
    assert data[:12] == b"NIXI\x01\0\0\0\0\0\0\0"
    payload = zstandard.ZstdDecompressor().decompressobj().decompress(data[12:])
    assert payload == (
        b"1d\0\x00\n"
        b"3d\0\x00/lib\n"
        b"123456x\0\x04/libz.so.1.3.1\n"
        b"libz.so.1.3.1s\0\x0a\n"  # shares /lib/libz.so.1: +10, the byte 0x0a
        b"libz.so.1.3.1s\0\xfe\n"
        b'p\0\xf4{"store_dir":"/nix/store","hash":"0c8ryy4bbbgvc0jxl2k1gjhx4wsidvbp",'
        b'"name":"zlib-1.3.1","origin":{"attr":"zlib","output":"out","toplevel":true,'
        b'"system":"x86_64-linux"}}\n'
    )


def test_round_trip_of_a_small_database(tmp_path: Path) -> None:
    db = tmp_path / "files"
    other = StorePath("/nix/store", "1" * 32, "hello-2.12", None)
    write_database(db, [(ZLIB, ZLIB_ENTRIES), (other, [FileEntry(b"", "r", 7)])])
    assert read_all(db) == [(ZLIB, ZLIB_ENTRIES), (other, [FileEntry(b"", "r", 7)])]
    assert ZLIB.path == "/nix/store/0c8ryy4bbbgvc0jxl2k1gjhx4wsidvbp-zlib-1.3.1"


def test_directory_sizes_default_to_their_number_of_children(tmp_path: Path) -> None:
    db = tmp_path / "files"
    entries = [FileEntry(b"", "d"), FileEntry(b"/lib", "d"), FileEntry(b"/lib/a", "r", 1),
               FileEntry(b"/lib/b", "r", 1), FileEntry(b"/bin", "d")]
    write_database(db, [(ZLIB, entries)])
    [(_, back)] = read_all(db)
    assert [(e.path, e.size) for e in back if e.kind == "d"] == [(b"", 2), (b"/lib", 2),
                                                                  (b"/bin", 0)]


@pytest.mark.parametrize("origin_json, origin", [
    (b'{"attr":"a","output":"lib","toplevel":false,"system":null}',
     Origin("a", "lib", False, None)),
    (b'{"attr":"a","output":"out","toplevel":true}', Origin("a", "out", True, None)),
    (b'{"attr":"a","output":"out","toplevel":true,"system":"aarch64-linux"}',
     Origin("a", "out", True, "aarch64-linux")),
])
def test_origin_system_may_be_null_absent_or_a_string(tmp_path: Path, origin_json: bytes,
                                                      origin: Origin) -> None:
    db = tmp_path / "files"
    line = b'{"store_dir":"/nix/store","hash":"h","name":"n","origin":' + origin_json + b"}"
    db.write_bytes(raw_db(b"1r\0\0\n" + b"p\0\0" + line + b"\n"))
    assert read_all(db) == [(StorePath("/nix/store", "h", "n", origin),
                             [FileEntry(b"", "r", 1)])]


@pytest.mark.parametrize("read_size", [1, 7, 0, 1 << 17])
def test_reads_a_stream_of_several_zstd_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               read_size: int) -> None:
    enc = frcode.Encoder()
    first = enc.line(b"1d", b"") + enc.footer(b"p", store_path_json(ZLIB))
    second = enc.line(b"5r", b"") + enc.footer(b"p", store_path_json(ZLIB))
    c = zstandard.ZstdCompressor()
    frames = c.compress(first), c.compress(second)
    # 0: reads that end exactly where the first frame ends
    monkeypatch.setattr(database, "READ_SIZE", read_size or len(frames[0]))
    db = tmp_path / "files"
    db.write_bytes(b"NIXI" + struct.pack("<Q", 1) + b"".join(frames))
    assert [e for _, e in read_all(db)] == [[FileEntry(b"", "d", 1)], [FileEntry(b"", "r", 5)]]


def test_empty_database_has_no_store_paths(tmp_path: Path) -> None:
    db = tmp_path / "files"
    write_database(db, [])
    assert read_all(db) == []


def test_writer_is_atomic_when_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "files"
    write_database(db, [(ZLIB, ZLIB_ENTRIES)])
    before = db.read_bytes()

    def items() -> Any:
        yield ZLIB, ZLIB_ENTRIES
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_database(db, items())
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files"]


def test_writer_rejects_paths_the_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NUL or newline"):
        write_database(tmp_path / "files", [(ZLIB, [FileEntry(b"/a\nb", "r", 1)])])
    with pytest.raises(ValueError, match="newline in it"):
        write_database(tmp_path / "files", [(ZLIB, [FileEntry(b"/a", "s", None, b"x\ny")])])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- round trips

names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
origins = st.none() | st.builds(Origin, names, names, st.booleans(), st.none() | names)
store_paths = st.builds(StorePath, names, names, names, origins)
path_bytes = st.binary(max_size=60).filter(lambda b: b"\0" not in b and b"\n" not in b)
entry_paths = path_bytes.map(lambda b: b"/" + b) | st.just(b"")
sizes = st.integers(min_value=0, max_value=2**64)
entries = st.one_of(
    st.builds(FileEntry, entry_paths, st.sampled_from(["r", "x", "d"]), sizes),
    st.builds(FileEntry, entry_paths, st.just("s"), st.none(), path_bytes),
)
databases = st.lists(st.tuples(store_paths, st.lists(entries, max_size=12)), max_size=8)


@settings(max_examples=150, **FILE_TESTS)
@given(databases)
def test_round_trip(tmp_path: Path, items: list[tuple[StorePath, list[FileEntry]]]) -> None:
    db = tmp_path / "files"
    write_database(db, items, level=1)
    assert read_all(db) == items


# ---------------------------------------------------------------- bad input


def test_missing_database(tmp_path: Path) -> None:
    db = tmp_path / "nix-index" / "files"
    expect_error(db, f"nix-index database not found: {db} (build one with `nix-index`, or "
                     f"download a prebuilt `files` from nix-community/nix-index-database)")


def test_database_is_a_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, f"{tmp_path}: is a directory, not a nix-index database file")


def test_unreadable_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "files"
    write_database(db, [(ZLIB, ZLIB_ENTRIES)])
    db.chmod(0)
    if os.geteuid() == 0:
        # root reads any file regardless of its mode: cause the same EACCES by hand.
        real_open = builtins.open

        def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(file) == db:
                raise PermissionError(13, "Permission denied", str(db))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", deny)
    expect_error(db, f"cannot read the nix-index database {db}: Permission denied")


def test_truncated_header(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"NIXI\x01")
    expect_error(db, f"{db}: not a nix-index database: truncated header (5 of 12 bytes)")


def test_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"")
    expect_error(db, f"{db}: not a nix-index database: truncated header (0 of 12 bytes)")


def test_wrong_magic(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"\x7fELF" + bytes(60))
    expect_error(db, f"{db}: not a nix-index database: wrong magic b'\\x7fELF' "
                     f"(expected b'NIXI')")


def test_wrong_version(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b"", version=2))
    expect_error(db, f"{db}: unsupported nix-index database version 2 "
                     f"(this tool reads version 1)")


def test_nothing_after_the_header(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"NIXI" + struct.pack("<Q", 1))
    expect_error(db, f"{db}: corrupt nix-index database: no data after the header (truncated)")


def test_truncated_zstd_stream(tmp_path: Path) -> None:
    db = tmp_path / "files"
    write_database(db, [(ZLIB, ZLIB_ENTRIES)] * 50)
    db.write_bytes(db.read_bytes()[:-20])
    expect_error(db, f"{db}: corrupt nix-index database: the zstd stream ends early "
                     f"(truncated)")


def test_corrupt_zstd_stream(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"NIXI" + struct.pack("<Q", 1) + b"this is not zstd at all")
    expect_error(db, f"{db}: corrupt nix-index database: zstd: zstd decompressor error: "
                     f"Unknown frame descriptor")


def test_corrupt_frcode_prefix(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b"1d\0\0/ab\n1r\0\x09c\n"))
    expect_error(db, f"{db}: corrupt nix-index database: frcode: line 2: shared prefix "
                     f"length 9 is outside the previous path (length 3)")


def test_incomplete_frcode_line(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b"1d\0\0/ab\n1r\0"))
    expect_error(db, f"{db}: corrupt nix-index database: frcode: line 2: incomplete line at "
                     f"the end of the stream (3 bytes without a final newline)")


def test_entries_without_a_store_path_line(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b"1d\0\0\n3r\0\0/a\n"))
    expect_error(db, f"{db}: corrupt nix-index database: 2 file entries at the end have no "
                     f"store path line (truncated)")


def test_unknown_entry_metadata(tmp_path: Path) -> None:
    db = tmp_path / "files"
    payload = b"12q\0\0/a\np\0\0" + store_path_json(ZLIB) + b"\n"
    db.write_bytes(raw_db(payload))
    expect_error(db, f"{db}: corrupt nix-index database: store path block ending at line 2: "
                     f"unknown entry metadata '12q'")


def test_bad_size_in_metadata(tmp_path: Path) -> None:
    db = tmp_path / "files"
    payload = b"-3r\0\0/a\np\0\0" + store_path_json(ZLIB) + b"\n"
    db.write_bytes(raw_db(payload))
    expect_error(db, f"{db}: corrupt nix-index database: store path block ending at line 2: "
                     f"bad size '-3' in metadata '-3r'")


def test_store_path_line_is_not_json(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b"1r\0\0\np\0\0{not json\n"))
    expect_error(db, f"{db}: corrupt nix-index database: store path block ending at line 2: "
                     f"invalid JSON (Expecting property name enclosed in double quotes: "
                     f"line 1 column 2 (char 1))")


def test_store_path_json_lacks_fields(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(b'1r\0\0\np\0\0{"store_dir":"/nix/store","hash":"h"}\n'))
    expect_error(db, f"{db}: corrupt nix-index database: store path block ending at line 2: "
                     f"store path JSON lacks string store_dir, hash or name")


def test_store_path_origin_has_wrong_types(tmp_path: Path) -> None:
    db = tmp_path / "files"
    line = b'{"store_dir":"/s","hash":"h","name":"n","origin":{"attr":1,"output":"o"}}'
    db.write_bytes(raw_db(b"1r\0\0\np\0\0" + line + b"\n"))
    expect_error(db, f"{db}: corrupt nix-index database: store path block ending at line 2: "
                     f"origin lacks string attr/output or boolean toplevel")


def test_cli_reports_a_bad_database_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "files").write_bytes(b"GARBAGE-GARBAGE-GARBAGE")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_cli("index", "--db", str(tmp_path), env=env)
    assert result.returncode == ExitCode.DATABASE
    assert result.stdout == ""
    assert result.stderr == (f"nixld-hook: error: {tmp_path}/files: not a nix-index database: "
                             f"wrong magic b'GARB' (expected b'NIXI')\n")


def test_cli_reports_a_missing_database_with_how_to_get_one(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("NIX_INDEX_DATABASE", None)
    result = run_cli("index", env=env)
    assert result.returncode == ExitCode.DATABASE
    assert result.stderr == (
        f"nixld-hook: error: nix-index database not found: {tmp_path}/cache/nix-index/files "
        f"(build one with `nix-index`, or download a prebuilt `files` from "
        f"nix-community/nix-index-database)\n")


# ---------------------------------------------------------------- fuzzing


def _read_or_database_error(file: Path) -> None:
    try:
        for store_path, file_entries in read_database(file):
            assert isinstance(store_path, StorePath)
            assert all(isinstance(e, FileEntry) for e in file_entries)
    except DatabaseError as err:
        assert "\n" not in str(err)


@settings(max_examples=300, **FILE_TESTS)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_after_the_header(tmp_path: Path, data: bytes) -> None:
    db = tmp_path / "files"
    db.write_bytes(b"NIXI" + struct.pack("<Q", 1) + data)
    _read_or_database_error(db)


@settings(max_examples=500, **FILE_TESTS)
@given(st.binary(max_size=300))
def test_fuzz_random_frcode_inside_valid_zstd(tmp_path: Path, payload: bytes) -> None:
    db = tmp_path / "files"
    db.write_bytes(raw_db(payload))
    _read_or_database_error(db)


VALID = raw_db(b"".join([
    b"1d\0\0\n", b"3d\0\0/lib\n", b"123x\0\x04/libz.so.1.3.1\n", b"libz.so.1.3.1s\0\x0a\n",
    b"p\0\xf2" + store_path_json(ZLIB) + b"\n", b"7r\0\0\n",
    b'p\0\0{"store_dir":"/s","hash":"h","name":"n","origin":null}\n',
]))


def test_fuzz_seed_is_a_valid_database(tmp_path: Path) -> None:
    db = tmp_path / "files"
    db.write_bytes(VALID)
    assert [len(e) for _, e in read_all(db)] == [4, 1]
    assert read_all(db)[0][1][3] == FileEntry(b"/lib/libz.so.1", "s", None, b"libz.so.1.3.1")


@settings(max_examples=500, **FILE_TESTS)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6),
       st.integers(min_value=0))
def test_fuzz_mutated_valid_database(tmp_path: Path, flips: list[tuple[int, int]],
                                     cut: int) -> None:
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos % len(data)] = value
    db = tmp_path / "files"
    db.write_bytes(bytes(data[:len(data) - cut % 8]))
    _read_or_database_error(db)


@settings(max_examples=300, **FILE_TESTS)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4))
def test_fuzz_mutated_frcode_payload(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    payload = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(VALID[12:]))
    for pos, value in flips:
        payload[pos % len(payload)] = value
    db = tmp_path / "files"
    db.write_bytes(raw_db(bytes(payload)))
    _read_or_database_error(db)
