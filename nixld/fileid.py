"""The one notion of a file's identity: what `stat` says about it.

An entry applies while its binary keeps this identity (shim/FORMAT.md: dev,
ino, size, mtime); caches of parsed facts (ELF facts, library facts, the
soname index of a database) are valid while their file keeps it. Content
identity (a copy or a move of the same bytes) is `sha256_of`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of_file(cls, path: str | os.PathLike[str]) -> Identity:
        """Raises OSError."""
        return cls.of_stat(os.stat(path))

    @classmethod
    def of_stat(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of the file's bytes."""
    import hashlib  # not needed by `run`, which starts programs and should be quick

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
