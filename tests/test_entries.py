"""nixld.entries against shim/FORMAT.md: keys, syntax, validity, atomic writes, memories."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixld import entries, memory, paths, search
from nixld.elf import note_build_id, read_build_id
from nixld.entries import Entry, Identity
from nixld.errors import StateError
from nixld.fileid import sha256_of
from nixld.package import Package
from tests.conftest import REPO

FORMAT_MD = (REPO / "shim" / "FORMAT.md").read_text()
pytestmark = pytest.mark.unit  # files in tmp dirs only: no Nix, no root, no compiler

ZLIB = "/nix/store/0c0jkbs3b0sh0a5x8yb2kzmfmxrm0n1p-zlib-1.3.1"


def format_example() -> bytes:
    """The example entry of FORMAT.md, unindented."""
    block = FORMAT_MD.split("Example of a per-user path entry:", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.startswith("    "):
            lines.append(line[4:])
        elif lines:
            break
    return ("\n".join(lines) + "\n").encode()


def sample(path: str = "/home/alice/bin/tool", **kw: object) -> Entry:
    base: dict[str, object] = dict(
        path=path, identity=Identity(66305, 1234567, 845120, 1764061234_123456789),
        dirs=(f"{ZLIB}/lib",), sha256="9f" * 32,
        packages=(Package(ZLIB, "zlib", "out"),),
        sonames=(("libz.so.1", f"{ZLIB}/lib/libz.so.1"),))
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the contract


def test_key_matches_format_md_examples() -> None:
    assert entries.key_for("/usr/bin/true") == "a7d497c60831a2bb"
    assert entries.key_for("") == "cbf29ce484222325"
    assert "a7d497c60831a2bb.entry" in FORMAT_MD


def test_format_md_example_parses() -> None:
    entry = entries.parse_entry(format_example())
    assert entry is not None
    assert entry.path == "/home/alice/bin/tool"
    assert entry.identity == Identity(66305, 1234567, 845120, 1764061234_123456789)
    assert entry.dirs == (f"{ZLIB}/lib",
                          "/nix/store/a5sq8q1g9bq8vqgbl8jxbmym0kcm1ycz-openssl-3.0.14/lib")
    assert entry.sha256 == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert entry.packages == (Package(ZLIB, "zlib", "out"),)


def test_format_is_what_format_md_shows() -> None:
    entry = entries.parse_entry(format_example())
    assert entry is not None
    # our own writer orders keys as the example does
    assert entries.format_entry(entry) == format_example()


def format_build_id_example() -> bytes:
    block = FORMAT_MD.split("Example of a build-id entry", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.startswith("    "):
            lines.append(line[4:])
        elif lines:
            break
    return ("\n".join(lines) + "\n").encode()


def test_format_md_build_id_example() -> None:
    data = format_build_id_example()
    entry = entries.parse_entry(data)
    assert entry == Entry("/home/alice/bin/tool", None, (f"{ZLIB}/lib",),
                          build_id="27357f878ced56239e928e765c5b65594f7b22ec", size=845120)
    assert entries.format_entry(entry) == data
    assert entries.build_id_file(entry.build_id or "", Path("/d")).name == \
        "27357f878ced56239e928e765c5b65594f7b22ec.build-id"
    # The file-name example, through the note reader the shim mirrors.
    m = re.search(r"^    desc ((?:[0-9a-f]{2} ?)+)\n    -> ([0-9a-f]+)\.build-id$", FORMAT_MD,
                  re.M)
    assert m
    desc = bytes.fromhex(m.group(1))
    note = (4).to_bytes(4, "little") + len(desc).to_bytes(4, "little") + \
        (3).to_bytes(4, "little") + b"GNU\0" + desc
    assert note_build_id(note, 4) == m.group(2) == entry.build_id
    # Aligned to 8: the descriptor starts at the aligned end of header and name.
    assert note_build_id(note + b"\0" * 4, 8) == m.group(2)


@pytest.mark.parametrize("change", [
    lambda d: d.replace(b"size 845120\n", b""),
    lambda d: d.replace(b"size 845120\n", b"size 845120\ndev 1\nino 2\nmtime 3 4\n"),
    lambda d: d.replace(b"build_id 2735", b"build_id 735"),
    lambda d: d.replace(b"build_id 2735", b"build_id 27AB"),
    lambda d: d.replace(b"build_id 2735", b"build_id " + b"ab" * 64 + b"2735"),
    lambda d: d.replace(b"size 845120\n", b"size 845120\nbuild_id ab\n"),
])
def test_build_id_entries_breaking_a_rule_are_ignored(change: object) -> None:
    assert callable(change)
    data = change(format_build_id_example())
    assert data != format_build_id_example()
    assert entries.parse_entry(data) is None


def test_paths_mirror_format_md() -> None:
    assert f"`{paths.SYSTEM_ENTRIES_DIR}/`" in FORMAT_MD
    assert "`$XDG_STATE_HOME/nixld/entries/`" in FORMAT_MD


BAD = {
    "no end": lambda d: d.replace(b"end\n", b""),
    "truncated": lambda d: d[:-5],
    "no final newline": lambda d: d[:-1],
    "bad magic": lambda d: d.replace(b"nixld-entry 1", b"nixld-entry 2"),
    "blank line": lambda d: d.replace(b"\ndev", b"\n\ndev"),
    "carriage return": lambda d: d.replace(b"\n", b"\r\n"),
    "duplicate path": lambda d: d.replace(b"dev ", b"path /x\ndev "),
    "duplicate dev": lambda d: d.replace(b"ino ", b"dev 1\nino "),
    "half identity": lambda d: re.sub(rb"ino \d+\n", b"", d),
    "bad mtime": lambda d: re.sub(rb"mtime \d+ \d+", b"mtime 12", d),
    "huge dev": lambda d: re.sub(rb"dev \d+", b"dev 18446744073709551616", d),
    "relative dir": lambda d: d.replace(b"dir /nix", b"dir nix", 1),
    "colon in dir": lambda d: d.replace(b"/lib\n", b"/lib:/x\n", 1),
    "bad key": lambda d: d.replace(b"sha256 ", b"SHA256 "),
    "no path": lambda d: re.sub(rb"path [^\n]*\n", b"", d),
    "too big": lambda d: d.replace(b"end\n", b"x " + b"y" * 65536 + b"\nend\n"),
    "65 dirs": lambda d: d.replace(b"sha256", b"dir /a\n" * 64 + b"sha256"),
}


@pytest.mark.parametrize("breakage", sorted(BAD))
def test_entries_breaking_a_rule_are_ignored_whole(breakage: str) -> None:
    data = BAD[breakage](format_example())
    assert data != format_example()
    assert entries.parse_entry(data) is None


def test_unknown_keys_are_skipped_and_no_identity_is_allowed() -> None:
    data = b"nixld-entry 1\npath /opt/x\nfuture_key whatever\ndir /a\nend\n"
    entry = entries.parse_entry(data)
    assert entry is not None and entry.identity is None and entry.dirs == ("/a",)


path_bytes = st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b)


@settings(max_examples=200, deadline=None)
@given(name=path_bytes,
       dirs=st.lists(path_bytes.filter(lambda b: b":" not in b), max_size=5),
       ident=st.tuples(*[st.integers(0, 2**64 - 1)] * 3, st.integers(0, 2**63)))
def test_round_trip(name: bytes, dirs: list[bytes], ident: tuple[int, int, int, int]) -> None:
    entry = Entry(path="/" + os.fsdecode(name), identity=Identity(*ident),
                  dirs=tuple("/" + os.fsdecode(d) for d in dirs))
    assert entries.parse_entry(entries.format_entry(entry)) == entry


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises(data: bytes) -> None:
    entries.parse_entry(b"nixld-entry 1\n" + data)


def test_what_the_format_cannot_say_is_refused() -> None:
    with pytest.raises(StateError, match="line break"):
        entries.format_entry(sample(path="/a\nb"))
    with pytest.raises(StateError, match="contains ':'"):
        entries.format_entry(sample(dirs=("/a:b",)))
    with pytest.raises(StateError, match="too many"):
        entries.format_entry(sample(dirs=tuple(f"/d{i}" for i in range(65))))


# ---------------------------------------------------------------- on disk


def make_binary(where: Path, content: bytes = b"\x7fELF fake binary") -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(content)
    where.chmod(0o755)
    return where


def entries_for(binary: str | Path) -> list[tuple[Entry, bool]]:
    """The matching entries, per-user first (through the one search model)."""
    return [(a.entry, a.valid) for a in search.applied_entries(binary, os.environ)]


def entry_for(binary: str | Path) -> tuple[Entry, bool] | None:
    """A valid matching entry first, else a stale one."""
    found = entries_for(binary)
    return next((item for item in found if item[1]), found[0] if found else None)


def entry_for_file(path: Path) -> Entry:
    real = os.path.realpath(path)
    return sample(path=real, identity=Identity.of_file(real), sha256=sha256_of(real))


def test_write_entry_is_atomic_and_named_by_key(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    target = entries.write_entry(entry_for_file(binary))
    assert target == paths.entries_dir() / (entries.key_for(str(binary)) + ".entry")
    assert target.stat().st_mode & 0o777 == 0o644
    assert paths.entries_dir().stat().st_mode & 0o777 == 0o755
    assert [p.name for p in paths.entries_dir().iterdir()] == [target.name]
    assert entries.read_entry(target) == entry_for_file(binary)


def test_per_user_entries_need_the_identity(xdg: Path) -> None:
    with pytest.raises(ValueError, match="identity"):
        entries.write_entry(sample(identity=None))


def test_entry_for_follows_the_file_identity(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    link = xdg / "link-to-tool"
    link.symlink_to(binary)
    entries.write_entry(entry_for_file(binary))
    found = entry_for(link)  # keyed by the canonical path
    assert found is not None and found[1] is True
    os.utime(binary, ns=(0, 12345))  # same bytes, another mtime: replaced
    found = entry_for(binary)
    assert found is not None and found[1] is False
    assert entries.status(found[0]) == "changed"
    binary.unlink()
    assert entries.status(found[0]) == "gone"


def test_corrupt_or_colliding_entries_are_ignored(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    target = entries.write_entry(entry_for_file(binary))
    target.write_bytes(target.read_bytes()[:-4])  # truncated
    assert entry_for(binary) is None
    assert entries.all_entries() == []
    other = entry_for_file(binary)
    target.write_bytes(entries.format_entry(sample(path="/some/other/path",
                                                   identity=other.identity)))
    assert entry_for(binary) is None  # the path line decides


def test_system_entries_are_read_after_per_user_ones(xdg: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "etc-nixld-entries"
    monkeypatch.setattr(paths, "SYSTEM_ENTRIES_DIR", system)
    binary = make_binary(xdg / "bin" / "tool")
    real = os.path.realpath(binary)
    entries.write_entry(Entry(real, None, ("/sys/lib",)), directory=system)
    found = entry_for(binary)
    assert found == (Entry(real, None, ("/sys/lib",)), True)
    entries.write_entry(entry_for_file(binary))
    assert [e.dirs for e, _ in entries_for(binary)] == [(f"{ZLIB}/lib",), ("/sys/lib",)]
    assert [e.path for _, e in entries.system_entries()] == [real]


def test_remove_entry(xdg: Path) -> None:
    a, b = make_binary(xdg / "a"), make_binary(xdg / "b")
    entries.write_entry(entry_for_file(a))
    entries.write_entry(entry_for_file(b))
    assert entries.remove_entry(a) is True
    assert entries.remove_entry(a) is False
    assert [e.path for _, e in entries.all_entries()] == [str(b)]


def test_a_copy_elsewhere_is_found_by_its_build_id(xdg: Path) -> None:
    """Real ELF files: copies of the running Python (it has a build-id, and it is
    there in the build sandbox too, where /usr/bin is not)."""
    original = xdg / "bin" / "true"
    original.parent.mkdir()
    shutil.copy2(os.path.realpath(sys.executable), original)
    build_id = read_build_id(original)
    assert build_id
    entry = entry_for_file(original)
    entries.write_entry(entry)
    target = entries.write_build_id_entry(entry, build_id)
    assert target == paths.entries_dir() / f"{build_id}.build-id"
    copy = xdg / "v2" / "true"
    copy.parent.mkdir()
    shutil.copy2(original, copy)
    [(found, applies)] = entries_for(copy)
    assert applies and found.build_id == build_id and found.dirs == entry.dirs
    assert found.path == str(original) and found.size == original.stat().st_size
    assert entries_for(original) == [(entry, True)]  # its path entry first
    assert [e.path for _, e in entries.build_id_entries()] == [str(original)]
    with copy.open("ab") as f:
        f.write(b"\0")  # same build-id, another size
    assert entries_for(copy) == []
    assert entries.status(found) == "valid"
    assert entries.remove_entry(original)  # the path entry and the build-id entry it wrote
    assert entries.all_entries() == [] and entries.build_id_entries() == []


def test_a_read_only_state_dir_is_one_clear_error(xdg: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = xdg / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    with pytest.raises(StateError, match="cannot create"):
        entries.write_entry(sample())


# ---------------------------------------------------------------- memories


def test_choices_are_remembered_by_content(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    entry = entry_for_file(binary)
    memory.remember_choice(entry.sha256, entry.packages, entry.dirs)
    copy = xdg / "elsewhere" / "renamed"
    copy.parent.mkdir()
    shutil.copy(binary, copy)
    choice = memory.recall_choice(sha256_of(copy))
    assert choice == memory.Choice(entry.packages, entry.dirs)
    make_binary(copy, b"other content")
    assert memory.recall_choice(sha256_of(copy)) is None
    assert memory.forget_choice(sha256_of(binary)) is True
    assert memory.recall_choice(sha256_of(binary)) is None


def test_never_by_path_and_by_content(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    other = make_binary(xdg / "bin" / "other", b"different")
    assert not memory.is_never(binary)
    memory.mark_never(binary)
    memory.mark_never(binary)  # idempotent
    assert memory.is_never(binary)
    assert not memory.is_never(other)
    moved = xdg / "moved"
    binary.rename(moved)
    assert memory.is_never(moved)  # same content
    assert memory.clear_never(xdg / "bin" / "tool", sha256_of(moved))
    assert not memory.is_never(moved)


# ---------------------------------------------------------------- Ctrl-C

WRITER = """\
import os, sys
from nixld import entries
from nixld.entries import Entry, Identity
binary = sys.argv[1]
i = 0
print("ready", flush=True)
try:
    while True:
        i += 1
        dirs = tuple(f"/nix/store/{'a' * 32}-lib{n}/lib" for n in range(i % 60))
        entries.write_entry(Entry(binary, Identity.of_file(binary), dirs, "ab" * 32))
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_sigint_while_writing_leaves_a_whole_entry(xdg: Path) -> None:
    binary = make_binary(xdg / "bin" / "tool")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for delay in (0.05, 0.13, 0.21, 0.34):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(binary)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        assert child.returncode == 130, err
        files = sorted(p.name for p in paths.entries_dir().iterdir())
        assert files == [entries.key_for(str(binary)) + ".entry"]  # no temporary left
        found = entry_for(binary)
        assert found is not None and found[1]
