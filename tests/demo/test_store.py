"""The world's store paths and database (nixld/demo/store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixld.demo import store


@pytest.mark.unit
def test_file_entries_in_nix_index_order(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "lib").mkdir(parents=True)
    (root / "lib/libz.so.1.2.13").write_bytes(b"x" * 10)
    (root / "lib/libz.so.1").symlink_to("libz.so.1.2.13")
    (root / "bin").mkdir()
    (root / "bin/tool").write_text("#!")
    (root / "bin/tool").chmod(0o755)
    assert store.file_entries(root) == [
        (b"", "d", 2, None),
        (b"/lib", "d", 2, None),
        (b"/lib/libz.so.1.2.13", "r", 10, None),
        (b"/lib/libz.so.1", "s", None, b"libz.so.1.2.13"),
        (b"/bin", "d", 1, None),
        (b"/bin/tool", "x", 2, None),
    ]
