"""The `nixld-hook` command line: argument parsing and the error edge only.

Each subcommand lives in `nixld/cmd/<name>.py` with two functions,
`add_arguments(parser)` and `run(args) -> int`. Only the module of the command
being run is imported, so `nixld-hook init bash` (run at every shell start by
`eval`) pays for argparse and nothing else; pyelftools and zstandard are
imported by the commands that need them, when they need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nixld import __version__
from nixld.errors import ExitCode, NixldError

PROG = "nixld-hook"

# name -> (module under nixld.cmd, one-line help). Order is the --help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "explain": ("explain", "analyse a binary: what it needs, what is missing, who provides it"),
    "resolve": ("resolve", "install what a binary lacks and remember it for the next run"),
    "run": ("run", "run a binary with its resolved libraries through the real loader"),
    "trace": ("trace", "run a program once to see what it loads at run time, and resolve it"),
    "list": ("manage", "list binaries with remembered resolutions"),
    "forget": ("manage", "remove a binary's resolution and the libraries only it used"),
    "upgrade": ("manage", "re-resolve entries against the current database"),
    "gc": ("manage", "drop entries of binaries that are gone or changed"),
    "index": ("index", "build or inspect the soname index of the nix-index database"),
    "init": ("shell", "print the shell hook, for eval in an rc file"),
    "install": ("shell", "add the hook to your shell start-up files"),
    "uninstall": ("shell", "remove exactly what install added"),
    "handle": ("shell", "called by the shell hooks after a command failed (internal)"),
    "doctor": ("doctor", "check that the hook, the shim, the database and Nix are in place"),
    "demo": ("demo", "build a small NixOS-like world here and show the whole job on it"),
}

EPILOG = """\
exit codes:
  0    the command did its job (explain: the analysis worked, whatever it found)
  1    the job ran but did not succeed (e.g. libraries are still missing)
  2    bad command line
  3    the file cannot be analysed (missing, unreadable, not ELF, corrupt)
  4    the nix-index database is missing or unreadable
  5    Nix is missing or failed
  6    the state directory cannot be written
  130  interrupted (Ctrl-C); nothing is left half-written

Run `nixld-hook COMMAND --help` for the options of each command.
"""


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make foreign binaries just work on NixOS: find the nixpkgs packages that "
        "provide the libraries a binary lacks, install them as gc-rooted profile entries, and "
        "remember them per binary so the next run just works.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == command:
            module = importlib.import_module(f"nixld.cmd.{module_name}")
            module.add_arguments(sp, name)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # before a command started (a slow start on a busy machine)
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _main(argv: list[str]) -> int:
    command = _chosen_command(argv)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitCode.USAGE
    module = importlib.import_module(f"nixld.cmd.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args))
    except NixldError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `nixld-hook explain x | head`: the reader went away; not an error.
        sys.stderr.close()
        return ExitCode.OK
