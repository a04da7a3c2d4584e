"""`nixld-hook trace PATH [ARGS...]`: run the program once and see what it loads."""

from __future__ import annotations

import argparse
import sys

from nixld.cmd.run import split_command
from nixld.errors import ExitCode
from nixld.text import safe


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.usage = "%(prog)s [-h] [--yes] [--timeout SECONDS] PATH [ARGS...]"
    parser.description = (
        "RUN the program (the only nixld-hook command that runs it) as it runs for you: "
        "by its own path, through the shim, with glibc's LD_DEBUG=libs,files reporting every "
        "library each of its processes searches and loads. The libraries no process found "
        "(a dlopen by a computed name, a module's needs) are remembered for PATH and offered "
        "for resolution into its entry.")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="resolve what the trace found without asking")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="stop the program after this long (default 10; GUI programs "
                        "do not exit by themselves)")
    parser.add_argument("--db", metavar="DIR", help="the nix-index database directory")
    parser.add_argument("argv", metavar="PATH [ARGS...]", nargs=argparse.REMAINDER,
                        help="the program to run, and its arguments")


def run(args: argparse.Namespace) -> int:
    from nixld import trace
    from nixld.resolve import Options, resolve

    path, program_args = split_command(args.argv)
    print(f"nixld-hook: running {safe(path)} to see what it loads (stopped after "
          f"{args.timeout:g} s)", file=sys.stderr)
    result = trace.run_trace(path, program_args, timeout=args.timeout)
    trace.save(result)
    ended = ("stopped after the timeout" if result.returncode is None
             else f"exit status {result.returncode}")
    print(f"nixld-hook: traced {result.processes} process"
          f"{'es' if result.processes != 1 else ''} ({ended}), "
          f"{len(result.dlopened)} file{'s' if len(result.dlopened) != 1 else ''} "
          "loaded at run time", file=sys.stderr)
    if not result.not_found:
        print("nixld-hook: every library the program asked for was found", file=sys.stderr)
    else:
        print(f"nixld-hook: not found: {', '.join(safe(s) for s in result.not_found)}",
              file=sys.stderr)
    code, _ = resolve([path], Options(assume_yes=args.yes, db=args.db))
    return code if result.not_found or code != ExitCode.OK else ExitCode.OK
