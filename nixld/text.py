"""Text that reaches a terminal: file names and sonames come from untrusted
binaries and directories, so control characters are escaped before printing."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def safe(text: str | bytes | os.PathLike[str]) -> str:
    """Return `text` with control characters and invalid bytes escaped.

    Printable characters (including non-ASCII letters) pass through; C0/C1
    controls, DEL and undecodable bytes become visible escapes such as `\\x1b`,
    so a hostile name cannot move the cursor or change the terminal.
    """
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


def use_colour(stream: TextIO = sys.stdout) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def human_size(n: int) -> str:
    """Bytes in binary units, as Nix prints them: `512 B`, `61.4 KiB`, `2.3 MiB`."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
