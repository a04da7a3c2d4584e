"""`nixld-hook upgrade`: re-resolve entries against the current database, as if new.

Each target's per-user entry is removed and the target resolved again without
its remembered choice; if the user declines, the old entry is written back
(what worked before is kept). Packages only the old resolution used leave the
profile.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from nixld.errors import ExitCode
from nixld.prompt import Answer


def upgrade_entries(paths: Sequence[str], *, assume_yes: bool = False) -> int:
    from nixld import entries

    targets = [os.path.realpath(p) for p in paths] if paths else [
        e.path for _, e in entries.all_entries()]
    if not targets:
        print("nixld-hook: no entries to upgrade", file=sys.stderr)
        return ExitCode.OK
    return max(upgrade_one(target, assume_yes=assume_yes) for target in targets)


def upgrade_one(target: str, *, assume_yes: bool) -> int:
    from nixld import entries, lock, profile
    from nixld.resolve import Options, resolve
    from nixld.search import Search

    applied = Search.for_binary(target).user_entry()  # only the user's is ours to redo
    found = applied.entry if applied else None
    old = {p.store_path for p in found.packages} if found else set()
    if found:
        entries.remove_entry(target)
    code, outcome = resolve([target], Options(assume_yes=assume_yes, remembered=False))
    if outcome is None or outcome.answer in (Answer.NO, Answer.NEVER):
        if found:  # keep what worked before
            entries.write_entry(found)
        return code
    stale = old - {p.store_path for p in outcome.picked} - _store_paths_in_use()
    if stale:
        with lock.state_lock():
            profile.remove(sorted(stale))
    return code


def _store_paths_in_use() -> set[str]:
    from nixld import entries

    return {p.store_path for _, e in entries.all_entries() for p in e.packages}
