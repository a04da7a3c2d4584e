"""The one live progress line: rewritten in place on a terminal's stderr.

Nothing is drawn when the stream is not a terminal (scripts, --quiet callers
pass `live=False`). `end()` either keeps the last state on its own line or
erases it, so the next output starts on a clean line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nixld.text import safe

REDRAW_SECONDS = 0.1  # at most ten redraws a second


class ProgressLine:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.shown = False
        self._last = 0.0

    def show(self, text: str, *, force: bool = True) -> None:
        """Draw `text` (escaped here); unless `force`, at most every REDRAW_SECONDS."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last < REDRAW_SECONDS:
            return
        self._last = now
        self.stream.write(f"\r\x1b[K{safe(text)}")
        self.stream.flush()
        self.shown = True

    def end(self, *, keep: bool = False) -> None:
        """Finish the line: keep it (a newline) or erase it."""
        if not self.shown:
            return
        self.stream.write("\n" if keep else "\r\x1b[K")
        self.stream.flush()
        self.shown = False
