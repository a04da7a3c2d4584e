"""nixld.atomic: the one atomic write, and nixld.progress: the one progress line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from nixld import atomic
from nixld.fileid import Identity, sha256_of
from nixld.progress import ProgressLine

pytestmark = pytest.mark.unit


def test_write_bytes_replaces_whole_files_with_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic.write_bytes(target, b"old", 0o600)
    atomic.write_bytes(target, b"new content", 0o644)
    assert target.read_bytes() == b"new content"
    assert target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["f"]  # no temporary file left


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_unlink_says_whether_something_went(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"x")
    assert atomic.unlink(target) is True
    assert atomic.unlink(target) is False


def test_identity_and_content_hash(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    st = f.stat()
    assert Identity.of_file(f) == Identity(st.st_dev, st.st_ino, 3, st.st_mtime_ns)
    assert sha256_of(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    os.utime(f, ns=(0, 1))
    assert Identity.of_file(f) != Identity(st.st_dev, st.st_ino, 3, st.st_mtime_ns)


def test_progress_line_draws_in_place_and_ends_cleanly() -> None:
    out = io.StringIO()
    line = ProgressLine(out, live=True)
    line.show("reading 1/2")
    line.show("reading 2/2 \x1b]0;evil\x07")
    line.end()  # erased: the next output starts on a clean line
    assert out.getvalue() == ("\r\x1b[Kreading 1/2\r\x1b[Kreading 2/2 \\x1b]0;evil\\x07"
                              "\r\x1b[K")
    kept = io.StringIO()
    line = ProgressLine(kept, live=True)
    line.show("built")
    line.end(keep=True)
    assert kept.getvalue() == "\r\x1b[Kbuilt\n"


def test_progress_line_is_silent_off_a_terminal() -> None:
    out = io.StringIO()  # not a tty
    line = ProgressLine(out)
    line.show("anything")
    line.end(keep=True)
    assert out.getvalue() == "" and not line.live
