"""`nixld-hook resolve PATH...`: install what the binaries lack and remember it."""

from __future__ import annotations

import argparse
import json
import sys

from nixld.cmd.explain import add_common
from nixld.text import use_colour


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Find the packages that provide what PATH lacks, realise them with Nix (from your "
        "substituters, or built from your nixpkgs), root them in nixld's own profile so "
        "nix-collect-garbage keeps them, and write a per-binary entry that the shim applies: "
        "the next plain run of PATH finds every library.\n\n"
        "PATH may be a directory: every executable in it is resolved as one plan, each entry "
        "covering what the executable loads at run time (its .note.dlopen, its plugins and "
        "libraries under its own tree); a venv or site-packages directory resolves its "
        "interpreters with what its extension modules need. Asks first "
        "(yes/no/choose/always/never) when stdin and stderr are terminals; "
        "otherwise only --yes installs.\n\n"
        "examples:\n"
        "  nixld-hook resolve ./tool              ask, install, remember\n"
        "  nixld-hook resolve --dry-run ./tool    show the plan only\n"
        "  nixld-hook resolve --yes ~/opt/app/    the whole application, no questions\n"
        "  nixld-hook resolve ./game --with libGL.so.1   add a library loaded with dlopen"
    )
    parser.add_argument("paths", metavar="PATH", nargs="+", help="binary or directory")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="take the top-ranked plan without asking (scripts, auto-accept)")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="print the plan that would be installed; change nothing")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress output; errors and the final line only")
    parser.add_argument("--with", dest="with_", action="append", default=[],
                        metavar="SONAME_OR_ATTR",
                        help="also install this (e.g. a library the program loads with "
                        "dlopen: libGL.so.1, or an attribute: vulkan-loader); repeatable")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from nixld.resolve import Options, plan_only, resolve

    opts = Options(assume_yes=args.yes, quiet=args.quiet, with_=args.with_, db=args.db)
    if args.dry_run:
        from nixld.report import render_plan_text, to_json_many

        analyses, ranking = plan_only(args.paths, opts)
        label = args.paths[0] if len(args.paths) == 1 else " ".join(args.paths)
        if args.json:
            json.dump(to_json_many(label, analyses, ranking), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render_plan_text(label, analyses, ranking, colour=use_colour()))
        return 0
    code, outcome = resolve(args.paths, opts)
    if args.json and outcome is not None:
        doc = {
            "schema_version": 1,
            "targets": outcome.targets,
            "installed": [{"attr": p.attr, "output": p.output, "store_path": p.store_path,
                           "sonames": p.sonames} for p in outcome.picked],
            "entries": [str(e) for e in outcome.entries],
            "complete": outcome.complete,
            "still_missing": outcome.still_missing,
            "answer": outcome.answer.value if outcome.answer else None,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return code
