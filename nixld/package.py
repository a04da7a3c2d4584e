"""The one record of a chosen package, from the plan to the entry.

A `Package` is a store path, the attribute and output it is installed as, and
the sonames it was chosen for. The ranking's plan, the rounds of a
resolution, the profile and the entry's `package` lines all carry this one
type; its store path is carried, never recovered from a `lib/` directory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Package:
    store_path: str
    attr: str
    output: str
    sonames: tuple[str, ...] = ()  # what it was chosen for; empty in an entry's record

    @property
    def lib_dir(self) -> str:
        """The directory an entry names for it (FORMAT.md: each store path's own lib/)."""
        return f"{self.store_path}/lib"

    def with_sonames(self, sonames: tuple[str, ...]) -> Package:
        return replace(self, sonames=sonames)

    def record(self) -> Package:
        """As an entry or a remembered choice records it (no sonames)."""
        return replace(self, sonames=())

    def to_json(self) -> dict[str, Any]:
        return {"attr": self.attr, "output": self.output, "store_path": self.store_path,
                "sonames": list(self.sonames)}
