"""One lock that serialises resolvers, `forget` and `gc` across shells.

`flock` on `$XDG_STATE_HOME/nixld/lock`: the kernel drops it when the holder
exits or dies, so a killed nixld-hook never leaves it stuck. The holder writes
its pid into the file so a waiter can say whom it waits for. Re-entrant within
a process (a resolver that calls `forget` does not wait for itself).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from nixld import paths
from nixld.errors import StateError
from nixld.text import safe


class _Held:
    depth = 0  # how many times this process holds the lock (nested `with`s)


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create `path` (and parents) if needed; a clear StateError if it cannot be written."""
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as err:
        raise StateError(f"cannot create {safe(path)}: {err.strerror}: make it writable "
                         "or set XDG_STATE_HOME to a writable directory") from None
    if not os.access(path, os.W_OK):
        raise StateError(f"cannot write {safe(path)} (read-only?): make it writable "
                         "or set XDG_STATE_HOME to a writable directory")
    return path


def lock_file() -> Path:
    return paths.state_dir() / "lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


@contextlib.contextmanager
def state_lock(*, stream: TextIO | None = None) -> Iterator[None]:
    """Hold the state lock; say so on `stream` (stderr) when waiting for another holder."""
    if _Held.depth:
        _Held.depth += 1
        try:
            yield
        finally:
            _Held.depth -= 1
        return
    ensure_dir(paths.state_dir())
    path = lock_file()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise StateError(f"cannot open the lock {safe(path)}: {err.strerror}") from None
    try:
        _acquire(fd, stream if stream is not None else sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _Held.depth = 1
        try:
            yield
        finally:
            _Held.depth = 0
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, stream: TextIO) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StateError(f"cannot lock {safe(lock_file())}: {err.strerror}") from None
    print(f"nixld-hook: waiting for another nixld-hook (pid {_holder(fd)}) to finish ...",
          file=stream, flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)
