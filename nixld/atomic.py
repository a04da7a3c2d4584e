"""The one atomic write: a temporary file beside the target, fsync, rename.

A reader (the shim, another shell, another nixld-hook) sees the old file or
the new one, never a part of one; Ctrl-C (and TERM, HUP) is held for the
moment of the rename, and an interrupted write leaves no temporary file
behind (`.tmp-*`; `nixld-hook gc` removes those a SIGKILL left).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and TERM, HUP) for a few milliseconds; delivered after."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def replacing(target: Path, mode: int = 0o644, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Write the new content of `target` into the yielded file; on a clean exit
    it replaces `target` atomically, on an error it is removed. Raises OSError.

    `durable`: fsync the file and the directory (state the shim reads); a
    rebuildable cache passes False (still atomic for readers, not paid per write).
    """
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fchmod(out.fileno(), mode)
            if durable:
                os.fsync(out.fileno())
        with signals_deferred():
            os.replace(tmp, target)
            tmp = ""
            if durable:
                fsync_dir(directory)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes(target: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """`data` as the new content of `target` (signals held for the whole write:
    it is small). Raises OSError."""
    with signals_deferred(), replacing(target, mode, durable=durable) as out:
        out.write(data)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink(path: Path) -> bool:
    """Remove `path` (signals held), syncing its directory; False if it was not there."""
    try:
        with signals_deferred():
            os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True
