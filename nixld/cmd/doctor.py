"""`nixld-hook doctor [--json]`: each check, what it found, and the fix."""

from __future__ import annotations

import argparse
import json
import sys

from nixld.errors import ExitCode


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    from nixld.doctor import as_json, run_checks
    from nixld.text import use_colour

    checks = run_checks()
    if args.json:
        json.dump(as_json(checks), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        colour = use_colour(sys.stdout)
        width = max(len(c.name) for c in checks)
        for check in checks:
            mark = "ok  " if check.ok else "FIX "
            if colour:
                mark = ("\033[32m" if check.ok else "\033[31m") + mark + "\033[0m"
            print(f"{mark}{check.name:<{width}}  {check.detail}")
            if check.fix and not check.ok:
                print(f"    {'':<{width}}  fix: {check.fix}")
    return ExitCode.OK if all(c.ok for c in checks) else ExitCode.FAILURE
