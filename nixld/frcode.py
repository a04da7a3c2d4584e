"""nix-index's variant of locate's frcode: lines that share a prefix with the one before.

Each line is `META \\0 DIFF SUFFIX \\n`. META is an opaque blob without NUL;
the path is the previous line's path cut to a shared-prefix length, plus SUFFIX.
Only the *change* of the shared length is stored (DIFF): one signed byte, or
the byte 0x80 followed by a big-endian i16 when the change does not fit.

nix-index starts a fresh encoder for every store path and ends it with a footer
line (meta `p`, the store path's JSON as path) whose DIFF brings the shared
length back to 0, so each store path's block decodes on its own terms while the
decoder keeps one running state across the whole stream. Both sides do the
same here.

The decoder is the hot loop of the soname index build (millions of lines), so
it is one compiled regular expression and a few integer operations per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# The one-byte form holds changes with |diff| < 127 (nix-index's rule); 0x80
# announces the three-byte form, so it is never a one-byte change itself.
_ONE_BYTE_LIMIT = 127
_LONG_MARKER = 0x80
MAX_SHARED = 0x7FFF  # the shared length must stay a valid i16
MAX_LINE = 1 << 20  # no real line comes near this; bounds memory on garbage

# META \0 DIFF SUFFIX \n. META has no NUL and SUFFIX no newline, so the match
# is deterministic; DIFF may be any byte (also NUL or newline).
_LINE = re.compile(rb"([^\0]*)\0(\x80[\x00-\xff][\x00-\xff]|[^\x80])([^\n]*)\n")

# Signed value of each one-byte DIFF, indexed by the byte.
_SIGNED = tuple(b - 256 if b > 127 else b for b in range(256))


class FrcodeError(ValueError):
    """The byte stream is not valid frcode (message says what and where)."""


def encode_diff(diff: int) -> bytes:
    if abs(diff) < _ONE_BYTE_LIMIT:
        return bytes((diff & 0xFF,))
    return bytes((_LONG_MARKER,)) + diff.to_bytes(2, "big", signed=True)


class Encoder:
    """Encodes lines; `footer` ends a store path's block and resets the prefix."""

    def __init__(self) -> None:
        self._last = b""
        self._shared = 0

    def line(self, meta: bytes, path: bytes) -> bytes:
        _check_meta(meta)
        _check_path(path)
        shared = _common_prefix(self._last, path)
        out = meta + b"\0" + encode_diff(shared - self._shared) + path[shared:] + b"\n"
        self._last, self._shared = path, shared
        return out

    def footer(self, meta: bytes, path: bytes) -> bytes:
        _check_meta(meta)
        _check_path(path)
        out = meta + b"\0" + encode_diff(-self._shared) + path + b"\n"
        # The next block starts from nothing, as nix-index's fresh encoder does.
        self._last, self._shared = b"", 0
        return out


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b), MAX_SHARED)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _check_meta(meta: bytes) -> None:
    if b"\0" in meta:
        raise ValueError(f"frcode metadata must not contain NUL: {meta!r}")


def _check_path(path: bytes) -> None:
    if b"\0" in path or b"\n" in path:
        raise ValueError(f"frcode path must not contain NUL or newline: {path!r}")


class Decoder:
    """Decodes a stream fed in arbitrary chunks into (meta, path) pairs.

    `feed(chunk)` returns the complete lines so far; `finish()` checks that
    nothing is left over. Errors raise FrcodeError naming the line number.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._prev = b""
        self._shared = 0
        self.lines = 0  # complete lines decoded so far

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        buf = self._tail + chunk if self._tail else chunk
        out: list[tuple[bytes, bytes]] = []
        append = out.append
        prev, shared, pos = self._prev, self._shared, 0
        signed = _SIGNED
        match = _LINE.match
        m = match(buf, pos)
        while m is not None:
            meta, diff, suffix = m.groups()
            if len(diff) == 1:
                shared += signed[diff[0]]
            else:
                shared += int.from_bytes(diff[1:], "big", signed=True)
            if shared < 0 or shared > len(prev):
                raise FrcodeError(
                    f"line {self.lines + len(out) + 1}: shared prefix length {shared} is "
                    f"outside the previous path (length {len(prev)})")
            prev = prev[:shared] + suffix if shared else suffix
            append((meta, prev))
            pos = m.end()
            m = match(buf, pos)
        self._prev, self._shared = prev, shared
        self.lines += len(out)
        self._tail = buf[pos:]
        self._check_tail()
        return out

    def _check_tail(self) -> None:
        # The expression matches any complete line, so what is left is one
        # incomplete line; real lines are short (paths, a store path's JSON).
        if len(self._tail) > MAX_LINE:
            raise FrcodeError(f"line {self.lines + 1}: longer than {MAX_LINE} bytes")

    def finish(self) -> None:
        if self._tail:
            raise FrcodeError(
                f"line {self.lines + 1}: incomplete line at the end of the stream "
                f"({len(self._tail)} bytes without a final newline)")


def decode(data: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a whole frcode byte string (for tests and small inputs)."""
    decoder = Decoder()
    out = decoder.feed(data)
    decoder.finish()
    return out


def decode_chunks(chunks: Iterable[bytes]) -> Iterator[list[tuple[bytes, bytes]]]:
    decoder = Decoder()
    for chunk in chunks:
        lines = decoder.feed(chunk)
        if lines:
            yield lines
    decoder.finish()
