"""The soname index: what it collects, how it follows symlinks, when it rebuilds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixld.database import FileEntry, Origin, StorePath, write_database
from nixld.errors import DatabaseError, ExitCode
from nixld.index import LibraryFactsCache, Provider, SonameIndex, index_file, scan_for_soname

from .conftest import REPO, run_cli

pytestmark = pytest.mark.unit


def sp(name: str, letter: str, attr: str | None = None, toplevel: bool = True) -> StorePath:
    return StorePath("/nix/store", letter * 32, name, Origin(attr or name, "out", toplevel, None))


def d(path: bytes) -> FileEntry:
    return FileEntry(path, "d")


def r(path: bytes, size: int = 1, kind: str = "r") -> FileEntry:
    return FileEntry(path, kind, size)  # type: ignore[arg-type]


def s(path: bytes, target: bytes) -> FileEntry:
    return FileEntry(path, "s", None, target)


ZLIB = sp("zlib-1.3.1", "a", "zlib")
GLIBC = sp("glibc-2.40", "b", "glibc")
MESA = sp("mesa-24.0", "c", "mesa")
WRAPPER = sp("wrapper", "d")
QLIB = sp("qlib", "f")
ZLIBNG = sp("zlib-ng-compat", "g", "zlib-ng", toplevel=False)
OPENSSL = "/nix/store/" + "h" * 32 + "-openssl-3"

FIXTURE: list[tuple[StorePath, list[FileEntry]]] = [
    (ZLIB, [d(b""), d(b"/share"), d(b"/share/doc"), r(b"/share/doc/README"), d(b"/lib"),
            d(b"/lib/pkgconfig"), r(b"/lib/pkgconfig/zlib.pc"),
            r(b"/lib/libz.so.1.3.1", 100, "x"), s(b"/lib/libz.so.1", b"libz.so.1.3.1"),
            s(b"/lib/libz.so", b"libz.so.1"), r(b"/lib/libz.a", 300)]),
    (GLIBC, [d(b""), d(b"/lib64"), r(b"/lib64/ld-linux-x86-64.so.2", 200, "x"),
             r(b"/lib64/libc.so.6", 2000), d(b"/bin"), r(b"/bin/ldd", 5, "x")]),
    (MESA, [d(b""), d(b"/share"), d(b"/share/mesa"), r(b"/share/mesa/libGL.so.1.7", 50),
            d(b"/lib"), s(b"/lib/libGL.so.1", b"../share/mesa/libGL.so.1.7")]),
    (WRAPPER, [
        d(b""), d(b"/lib"),
        s(b"/lib/libssl.so.3", OPENSSL.encode() + b"/lib/libssl.so.3"),
        s(b"/lib/libself.so.1", WRAPPER.path.encode() + b"/lib/real/libself.so.1.0"),
        d(b"/lib/real"), r(b"/lib/real/libself.so.1.0", 7),
        s(b"/lib/libdangling.so.1", b"nothing.so"),
        s(b"/lib/libloop.so.1", b"libloop.so.2"), s(b"/lib/libloop.so.2", b"libloop.so.1"),
        d(b"/lib/libdir.so"), r(b"/lib/libdir.so/x"), s(b"/lib/libtodir.so", b"real"),
        s(b"/lib/libup.so", b"../../outside.so"),
        d(b"/lib/python3.11"), r(b"/lib/python3.11/_foo.so"),
        d(b"/bin"), r(b"/bin/libfake.so"), r(b"/lib/libnotes.txt"),
    ]),
    (QLIB, [d(b""), d(b"/lib"), s(b"/lib/libq.so.1", b"../alias/libq.so.1"),
            s(b"/alias", b"realdir"), d(b"/realdir"), r(b"/realdir/libq.so.1", 9)]),
    (ZLIBNG, [d(b""), d(b"/lib"), r(b"/lib/libz.so.1", 90)]),
]

IGNORED = ["libz.a", "zlib.pc", "README", "libdangling.so.1", "libloop.so.1", "libloop.so.2",
           "libdir.so", "libtodir.so", "libup.so", "_foo.so", "libfake.so", "libnotes.txt",
           "ldd", "libGL.so.1.7", "libself.so.1.0", "libq.so.2"]


@pytest.fixture
def db(tmp_path: Path, xdg: Path) -> Path:
    file = tmp_path / "nix-index" / "files"
    file.parent.mkdir()
    write_database(file, FIXTURE)
    return file


def open_index(db: Path, rebuild: bool = False) -> tuple[SonameIndex, list[str]]:
    messages: list[str] = []
    return SonameIndex.open(db, progress=messages.append, rebuild=rebuild), messages


def test_looks_up_many_sonames_at_once(db: Path) -> None:
    index, _ = open_index(db)
    result = index.lookup(["libz.so.1", "libc.so.6", "libmissing.so.1", "libz.so.1"])
    assert list(result) == ["libz.so.1", "libc.so.6", "libmissing.so.1"]
    assert result["libz.so.1"] == [
        Provider("libz.so.1", ZLIB, "lib/libz.so.1", "lib/libz.so.1.3.1", 100),
        Provider("libz.so.1", ZLIBNG, "lib/libz.so.1", None, 90),
    ]
    assert result["libc.so.6"] == [Provider("libc.so.6", GLIBC, "lib64/libc.so.6", None, 2000)]
    assert result["libmissing.so.1"] == []
    assert index.lookup(["", "lib/libz.so.1", "\ud800"]) == {"": [], "lib/libz.so.1": [],
                                                              "\ud800": []}


def test_regular_library_files_under_lib_and_lib64(db: Path) -> None:
    index, _ = open_index(db)
    result = index.lookup(["libz.so.1.3.1", "ld-linux-x86-64.so.2"])
    assert result["libz.so.1.3.1"] == [Provider("libz.so.1.3.1", ZLIB, "lib/libz.so.1.3.1",
                                                None, 100)]
    assert result["ld-linux-x86-64.so.2"] == [
        Provider("ld-linux-x86-64.so.2", GLIBC, "lib64/ld-linux-x86-64.so.2", None, 200)]
    assert result["ld-linux-x86-64.so.2"][0].path == GLIBC.path + "/lib64/ld-linux-x86-64.so.2"


def test_follows_symlink_chains_inside_the_store_path(db: Path) -> None:
    index, _ = open_index(db)
    assert index.lookup(["libz.so"])["libz.so"] == [
        Provider("libz.so", ZLIB, "lib/libz.so", "lib/libz.so.1.3.1", 100)]


def test_follows_relative_symlinks_out_of_lib_and_through_directory_links(db: Path) -> None:
    index, _ = open_index(db)
    result = index.lookup(["libGL.so.1", "libq.so.1"])
    assert result["libGL.so.1"] == [
        Provider("libGL.so.1", MESA, "lib/libGL.so.1", "share/mesa/libGL.so.1.7", 50)]
    assert result["libq.so.1"] == [
        Provider("libq.so.1", QLIB, "lib/libq.so.1", "realdir/libq.so.1", 9)]


def test_absolute_symlinks_back_into_or_out_of_the_store_path(db: Path) -> None:
    index, _ = open_index(db)
    result = index.lookup(["libself.so.1", "libssl.so.3"])
    assert result["libself.so.1"] == [
        Provider("libself.so.1", WRAPPER, "lib/libself.so.1", "lib/real/libself.so.1.0", 7)]
    # Into another store path: still a provider (it is in the closure), size unknown.
    assert result["libssl.so.3"] == [
        Provider("libssl.so.3", WRAPPER, "lib/libssl.so.3", OPENSSL + "/lib/libssl.so.3", None)]


def test_ignores_non_libraries_nested_files_dangling_and_looping_links(db: Path) -> None:
    index, _ = open_index(db)
    assert index.lookup(IGNORED) == {name: [] for name in IGNORED}


def test_stats(db: Path) -> None:
    index, _ = open_index(db)
    stats = index.stats()
    assert {k: stats[k] for k in ("store_paths", "store_paths_with_libraries", "entries",
                                  "library_files", "sonames")} == {
        "store_paths": 6, "store_paths_with_libraries": 6,
        "entries": sum(len(e) for _, e in FIXTURE),
        # libz.so.1.3.1 libz.so.1 libz.so | ld-linux libc | libGL | libssl libself | libq | libz
        "library_files": 10, "sonames": 9,
    }
    assert stats["db_size"] == db.stat().st_size


def test_library_count_per_store_path(db: Path) -> None:
    index, _ = open_index(db)
    index.lookup(["libz.so.1", "libssl.so.3"])
    assert index.library_count(ZLIB) == 3
    assert index.library_count(ZLIBNG.path) == 1
    assert index.library_count(WRAPPER.path) == 2  # libssl.so.3 and libself.so.1
    assert index.library_count("/nix/store/unknown") == 0


def test_index_agrees_with_a_full_scan_for_every_soname(db: Path) -> None:
    index, _ = open_index(db)
    names = ["libz.so.1", "libz.so", "libz.so.1.3.1", "libc.so.6", "ld-linux-x86-64.so.2",
             "libGL.so.1", "libssl.so.3", "libself.so.1", "libq.so.1", *IGNORED]
    looked_up = index.lookup(names)
    for name in names:
        assert scan_for_soname(db, name) == looked_up[name], name


def test_built_once_then_reused(db: Path) -> None:
    _, first = open_index(db)
    assert first and first[-1].startswith("indexing: 6 store paths")
    cached = index_file(db)
    assert cached.parent == Path(os.environ["XDG_CACHE_HOME"]) / "nixld"
    stamp = cached.stat().st_mtime_ns
    index, second = open_index(db)
    assert second == []
    assert index.file == cached and cached.stat().st_mtime_ns == stamp


def test_rebuilt_when_the_database_changes(db: Path) -> None:
    index, _ = open_index(db)
    assert index.lookup(["libnew.so.2"])["libnew.so.2"] == []
    new = sp("new", "k")
    write_database(db, [*FIXTURE, (new, [d(b""), d(b"/lib"), r(b"/lib/libnew.so.2", 4)])])
    index, messages = open_index(db)
    assert messages  # rebuilt
    assert index.lookup(["libnew.so.2"])["libnew.so.2"] == [
        Provider("libnew.so.2", new, "lib/libnew.so.2", None, 4)]


def test_rebuilt_when_only_the_mtime_changes(db: Path) -> None:
    open_index(db)
    st = db.stat()
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _, messages = open_index(db)
    assert messages


def test_rebuild_can_be_forced(db: Path) -> None:
    open_index(db)
    _, messages = open_index(db, rebuild=True)
    assert messages


def test_a_damaged_index_file_is_rebuilt(db: Path) -> None:
    open_index(db)
    cached = index_file(db)
    cached.write_bytes(cached.read_bytes()[:100])
    index, messages = open_index(db)
    assert messages
    assert len(index.lookup(["libz.so.1"])["libz.so.1"]) == 2


def test_works_from_memory_when_the_cache_cannot_be_written(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    index, messages = open_index(db)
    assert index.file is None
    assert messages[-1].startswith(f"warning: cannot write the soname index {blocker}/nixld/")
    assert len(index.lookup(["libz.so.1"])["libz.so.1"]) == 2


def test_missing_database(tmp_path: Path, xdg: Path) -> None:
    with pytest.raises(DatabaseError, match=r"^nix-index database not found: "):
        SonameIndex.open(tmp_path / "nope" / "files")


def test_corrupt_database_fails_the_build_and_leaves_no_index(tmp_path: Path,
                                                              xdg: Path) -> None:
    db = tmp_path / "files"
    write_database(db, FIXTURE)
    db.write_bytes(db.read_bytes()[:-30])
    with pytest.raises(DatabaseError) as err:
        SonameIndex.open(db)
    assert str(err.value) == (f"{db}: corrupt nix-index database: the zstd stream ends early "
                              f"(truncated)")
    assert not index_file(db).parent.exists() or list(index_file(db).parent.iterdir()) == []


def test_warm_lookup_imports_no_zstandard_nor_the_codec(db: Path) -> None:
    open_index(db)
    code = ("import sys; from nixld.index import SonameIndex; "
            f"i = SonameIndex.open({str(db)!r}); "
            "assert len(i.lookup(['libz.so.1'])['libz.so.1']) == 2; "
            "assert 'zstandard' not in sys.modules, 'zstandard imported'; "
            "assert 'elftools' not in sys.modules; "
            "assert 'nixld.frcode' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


small_names = st.sampled_from(["libz.so.1", "libz.so", "liba.so.2", "x.txt", "sub"])
small_entries = st.lists(st.one_of(
    st.builds(r, st.sampled_from([b"/lib/", b"/lib64/", b"/"]).flatmap(
        lambda prefix: small_names.map(lambda n: prefix + n.encode()))),
    st.builds(s, small_names.map(lambda n: b"/lib/" + n.encode()),
              st.sampled_from([b"libz.so.1", b"sub/x.txt", b"../lib64/liba.so.2", b"/x"])),
), max_size=8)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(small_entries, min_size=1, max_size=4))
def test_index_agrees_with_a_full_scan_on_random_databases(tmp_path: Path, xdg: Path,
                                                           listings: list[list[FileEntry]]) -> None:
    db = tmp_path / "files"
    write_database(db, [(sp(f"p{i}", "abcd"[i]), entries) for i, entries in enumerate(listings)])
    index = SonameIndex.open(db, rebuild=True)
    names = ["libz.so.1", "libz.so", "liba.so.2", "x.txt", "sub"]
    looked_up = index.lookup(names)
    for name in names:
        assert looked_up[name] == scan_for_soname(db, name)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4))
def test_fuzz_index_build_on_mutated_databases(tmp_path: Path, xdg: Path,
                                               flips: list[tuple[int, int]]) -> None:
    import zstandard

    clean = tmp_path / "clean"
    write_database(clean, FIXTURE[2:4])
    payload = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(
        clean.read_bytes()[12:]))
    for pos, value in flips:
        payload[pos % len(payload)] = value
    db = tmp_path / "files"
    db.write_bytes(clean.read_bytes()[:12] + zstandard.ZstdCompressor().compress(bytes(payload)))
    try:
        index = SonameIndex.open(db, rebuild=True)
    except DatabaseError as err:
        assert "\n" not in str(err)
        return
    for providers in index.lookup(["libGL.so.1", "libself.so.1", "libssl.so.3"]).values():
        assert all(isinstance(p, Provider) for p in providers)


# ---------------------------------------------------------------- the command


def test_cli_prints_stats_as_json(db: Path) -> None:
    result = run_cli("index", "--db", str(db.parent), "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["store_paths"], stats["library_files"], stats["sonames"]) == (6, 10, 9)
    assert stats["database"] == str(db)
    assert 0 <= stats["db_age_seconds"] < 600


def test_cli_prints_stats_for_people(db: Path) -> None:
    result = run_cli("index", "--db", str(db.parent))
    assert result.returncode == ExitCode.OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"database:       {db}"
    assert "store paths:    6" in lines
    assert "sonames:        9" in lines
    assert result.stderr == ""  # no progress line when stderr is not a terminal


def test_cli_shows_progress_on_a_terminal(db: Path) -> None:
    import pexpect

    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = pexpect.spawn(sys.executable, ["-m", "nixld", "index", "--db", str(db.parent)],
                          env=env, timeout=60)
    child.expect(r"\r\x1b\[Kindexing: 6 store paths, 50 entries \([\d,]+ entries/s\)\r\n")
    child.expect("store paths: +6")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_cli_lookup(db: Path) -> None:
    result = run_cli("index", "--db", str(db.parent), "--lookup", "libz.so", "libnope.so.1")
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout == (f"libz.so\tzlib.out\t{ZLIB.path}/lib/libz.so -> lib/libz.so.1.3.1\n"
                             "libnope.so.1\t(no provider)\n")


# ---------------------------------------------------------------- library facts


def test_library_facts_round_trip_and_invalidation(tmp_path: Path, xdg: Path) -> None:
    lib = tmp_path / "libz.so.1"
    lib.write_bytes(b"\x7fELF one")
    cache = LibraryFactsCache()
    assert cache.get(lib) is None
    cache.put(lib, {"versions": ["ZLIB_1.2.9"], "symbols": ["inflate"]})
    cache.put(lib, ["other kind"], kind="symbols")
    assert cache.get(lib) == {"versions": ["ZLIB_1.2.9"], "symbols": ["inflate"]}
    assert cache.get(lib, kind="symbols") == ["other kind"]
    assert LibraryFactsCache().get(lib) is not None  # persisted
    lib.write_bytes(b"\x7fELF two, longer")  # a changed file: the facts no longer hold
    assert cache.get(lib) is None
    lib.unlink()
    assert cache.get(lib) is None
    cache.put(lib, {"x": 1})  # a vanished file: nothing to remember, no error


def test_library_facts_cache_survives_a_damaged_entry(tmp_path: Path, xdg: Path) -> None:
    lib = tmp_path / "libz.so.1"
    lib.write_bytes(b"x")
    cache = LibraryFactsCache(tmp_path / "facts")
    cache.put(lib, [1])
    [entry] = (tmp_path / "facts").iterdir()
    entry.write_text("{broken")
    assert cache.get(lib) is None
    cache.put(lib, [2])
    assert cache.get(lib) == [2]
