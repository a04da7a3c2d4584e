"""nixld.candidate: a local candidate against what the closure needs from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixld.candidate import local_candidate_check

pytestmark = pytest.mark.unit


def test_local_version_check_drops_old_copy(tmp_path: Path) -> None:
    old = tmp_path / "old.so"
    new = tmp_path / "new.so"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    defs = {str(old): ("V1",), str(new): ("V1", "V2")}
    check = local_candidate_check({"libv.so.1": ["V2"]}, {}, lambda p: (defs[p], ()))
    assert check("libv.so.1", str(new)) is None
    assert check("libv.so.1", str(old)) == "lacks required version V2"
    assert check("libv.so.1", str(tmp_path / "not-local.so")) is None


def test_local_symbol_check_only_where_no_version_decides(tmp_path: Path) -> None:
    old = tmp_path / "old.so"
    new = tmp_path / "new.so"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    facts = {str(old): ((), ("q_old",)), str(new): ((), ("q_old", "q_new"))}
    check = local_candidate_check({}, {"libq.so.1": ["q_new", "q_old"]}, lambda p: facts[p])
    assert check("libq.so.1", str(new)) is None
    assert check("libq.so.1", str(old)) == "lacks symbol q_new"
    # Versions, when required, decide alone (ld.so checks those first).
    versioned = local_candidate_check({"libq.so.1": ["Q_1"]}, {"libq.so.1": ["q_new"]},
                                      lambda p: (("Q_1",), facts[p][1]))
    assert versioned("libq.so.1", str(old)) is None
