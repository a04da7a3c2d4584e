"""`nixld-hook run PATH [ARGS...]`: run a binary with its resolved libraries."""

from __future__ import annotations

import argparse
import os
import sys

from nixld import launch
from nixld.errors import ExitCode, NixldError
from nixld.text import safe


class UsageError(NixldError):
    exit_code = ExitCode.USAGE


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.usage = "%(prog)s [-h] PATH [ARGS...]"
    # One REMAINDER for PATH and its arguments: a separate PATH positional
    # would let argparse eat a `--` right after it. Everything after PATH,
    # `--version`, `--help` and `--` included, reaches the program untouched.
    parser.add_argument("argv", metavar="PATH [ARGS...]", nargs=argparse.REMAINDER,
                        help="the binary to run, and its arguments, passed as they are")


def split_command(command: list[str]) -> tuple[str, list[str]]:
    """PATH and its arguments; a leading `--` ends nixld-hook's own options."""
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("run: PATH is required (nixld-hook run PATH [ARGS...])")
    return command[0], command[1:]


def run(args: argparse.Namespace) -> int:
    path, program_args = split_command(args.argv)
    plan = launch.prepare(path, program_args, os.environ)
    for applied in plan.stale:
        print(f"nixld-hook: the resolution for {safe(applied.entry.path)} is stale (the file "
              f"changed); ignoring it: run `nixld-hook resolve {safe(path)}`", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(plan.loader, plan.argv)
    except OSError as err:
        raise NixldError(f"cannot run the loader {safe(plan.loader)}: {err.strerror}") from None
    return 0  # not reached
