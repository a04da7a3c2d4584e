"""The one prompt: asked by `nixld-hook resolve` and by the shell hooks.

It is asked on `/dev/tty`, only when stdin and stderr are terminals, with the
terminal put in cooked mode for the question and restored afterwards: fish
runs its event handlers with the terminal raw, where a typed Enter arrives as
a carriage return and nothing is echoed.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixld.text import human_size, safe

if TYPE_CHECKING:
    from nixld.package import Package
    from nixld.rank import Candidate, Choice


class Answer(enum.Enum):
    YES = "yes"  # install the plan; covers every later round for this binary
    NO = "no"
    CHOOSE = "choose"  # pick a candidate per library
    ALWAYS = "always"  # yes, and turn on auto-accept from now on
    NEVER = "never"  # no, and never ask for this binary again


_ANSWERS = {
    "": Answer.YES, "y": Answer.YES, "yes": Answer.YES,
    "n": Answer.NO, "no": Answer.NO,
    "c": Answer.CHOOSE, "choose": Answer.CHOOSE,
    "a": Answer.ALWAYS, "always": Answer.ALWAYS,
    "v": Answer.NEVER, "never": Answer.NEVER,
}


def can_prompt() -> bool:
    """A question may be asked only of a person at a terminal, never in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (ValueError, AttributeError):  # closed or replaced streams
        return False


class Tty:
    """Line I/O on the terminal's file descriptor (a tty is not seekable, so
    no read-write text file object; cooked mode hands over whole lines)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(self.fd, 1024)
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith((b"\n", b"\r")):
                break
        return b"".join(chunks).decode("utf-8", "replace")


@contextlib.contextmanager
def cooked_tty() -> Iterator[Tty]:
    """Open /dev/tty in cooked mode (echo, line editing, CR -> NL); restore after."""
    import termios

    fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    saved = None
    try:
        with contextlib.suppress(termios.error):
            saved = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[0] |= termios.ICRNL  # iflag: Enter (CR) ends the line
            mode[3] |= termios.ICANON | termios.ECHO | termios.ISIG  # lflag
            mode[6][termios.VMIN] = 1
            termios.tcsetattr(fd, termios.TCSANOW, mode)
        yield Tty(fd)
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSANOW, saved)
        os.close(fd)


def _ask(tty: Tty, question: str) -> str:
    tty.write(question)
    tty.flush()
    line = tty.readline()
    if not line:  # end of input (Ctrl-D): the safe answer
        raise EOFError
    return line.strip().lower()


def format_size(size: int | None) -> str:
    return "size unknown" if size is None else human_size(size)


@dataclass(frozen=True)
class PlanSummary:
    """What the prompt shows: the binary, what it lacks, what would come."""

    binary: str
    missing: Sequence[str]
    plan: Sequence[Package]
    download: int | None
    to_fetch: int
    dlopen: Sequence[str] = ()  # sonames the binary may load at run time (.note.dlopen)


def describe_plan(summary: PlanSummary) -> str:
    lines = []
    n = len(summary.missing)
    names = ", ".join(safe(s) for s in summary.missing[:6])
    more = f" and {n - 6} more" if n > 6 else ""
    lines.append(f"nixld-hook: {safe(summary.binary)} lacks {n} librar{'y' if n == 1 else 'ies'}: "
                 f"{names}{more}")
    if summary.plan:
        lines.append("  proposed packages:")
        width = max(len(safe(p.attr)) + len(p.output) + 3 for p in summary.plan)
        for item in summary.plan:
            label = f"{safe(item.attr)} ({item.output})"
            provides = ", ".join(safe(s) for s in item.sonames)
            lines.append(f"    {label:<{width}}  for {provides}")
        if any(not item.store_path for item in summary.plan):
            lines.append("  to build from your nixpkgs (32-bit x86 packages, pkgsi686Linux)")
        elif summary.to_fetch:
            lines.append(f"  to download: {summary.to_fetch} store path"
                         f"{'s' if summary.to_fetch != 1 else ''}, "
                         f"{format_size(summary.download)}")
        else:
            lines.append("  everything is already in the Nix store")
    if summary.dlopen:
        names = ", ".join(safe(s) for s in summary.dlopen)
        lines.append(f"  it may also load at run time: {names} "
                     "(not included; add with --with SONAME)")
    return "\n".join(lines) + "\n"


def ask_plan(summary: PlanSummary) -> Answer:
    """Show the plan and ask what to do; an unknown answer asks again."""
    with cooked_tty() as tty:
        tty.write(describe_plan(summary))
        while True:
            try:
                reply = _ask(tty, "Install and remember for this binary? "
                                  "[Y]es/[n]o/[c]hoose/[a]lways/ne[v]er: ")
            except EOFError:
                tty.write("\n")
                return Answer.NO
            if reply in _ANSWERS:
                return _ANSWERS[reply]
            tty.write("  please answer y, n, c, a or v\n")


def choose_candidates(choices: Sequence[Choice]) -> dict[str, Candidate | None]:
    """Per missing library, pick one of the ranked candidates (Enter: the first)."""
    picked: dict[str, Candidate | None] = {}
    with cooked_tty() as tty:
        for choice in choices:
            cands = [c for c in choice.candidates if not c.dropped][:9]
            if not cands:
                picked[choice.soname] = None
                continue
            tty.write(f"{safe(choice.soname)}:\n")
            default = 1
            for i, cand in enumerate(cands, 1):
                if choice.chosen and cand.store_path == choice.chosen.store_path:
                    default = i
                why = "; ".join(safe(r) for r in cand.reasons[:2])
                tty.write(f"  {i}) {safe(cand.attr)} ({cand.output})  {why}\n")
            tty.write("  0) skip this library\n")
            while True:
                try:
                    reply = _ask(tty, f"  choice [{default}]: ")
                except EOFError:
                    reply = "0"
                if reply == "":
                    picked[choice.soname] = cands[default - 1]
                    break
                if reply.isdigit() and 0 <= int(reply) <= len(cands):
                    picked[choice.soname] = cands[int(reply) - 1] if int(reply) else None
                    break
                tty.write(f"  please answer a number from 0 to {len(cands)}\n")
    return picked


def confirm(question: str, *, default: bool = True) -> bool:
    """A yes/no question (e.g. "run it again now?")."""
    hint = "[Y/n]" if default else "[y/N]"
    with cooked_tty() as tty:
        try:
            reply = _ask(tty, f"{question} {hint} ")
        except EOFError:
            tty.write("\n")
            return False
    if reply == "":
        return default
    return reply in ("y", "yes")
