"""One error type, turned into one clear line at the CLI edge.

Every failure the user can cause or meet (bad input, a broken database, Nix
failing) is raised as a `NixldError` subclass carrying its exit code; the CLI
prints `nixld-hook: <message>` and exits with that code. Nothing else prints
errors, so no traceback ever reaches the user.
"""

from __future__ import annotations

from typing import ClassVar


class ExitCode:
    """Documented exit codes (also in the README and `--help`)."""

    OK = 0
    FAILURE = 1  # the job ran but did not succeed (e.g. libraries still missing)
    USAGE = 2  # bad command line (argparse)
    BAD_INPUT = 3  # the file cannot be analysed: missing, unreadable, not ELF, corrupt
    DATABASE = 4  # the nix-index database is missing or unreadable
    NIX = 5  # Nix is missing or failed
    STATE = 6  # the state dir (entries, profile) cannot be written
    INTERRUPTED = 130  # Ctrl-C


class NixldError(Exception):
    """An error with a message meant for the user, and an exit code."""

    exit_code: ClassVar[int] = ExitCode.FAILURE

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class BadInputError(NixldError):
    exit_code = ExitCode.BAD_INPUT


class DatabaseError(NixldError):
    exit_code = ExitCode.DATABASE


class NixError(NixldError):
    exit_code = ExitCode.NIX


class StateError(NixldError):
    exit_code = ExitCode.STATE
