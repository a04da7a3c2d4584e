"""`nixld-hook explain PATH`: the analysis, printed."""

from __future__ import annotations

import argparse
import json
import sys

from nixld.text import use_colour


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Analyse PATH without running it: its ELF facts, the dependency tree as the NixOS "
        "loader behind the shim would resolve it, what is missing, the packages that provide "
        "each missing library (ranked, with reasons) and the proposed package set.\n\n"
        "Exits 0 whenever the analysis worked, whatever it found."
    )
    parser.add_argument("path", metavar="PATH", help="the binary (or script) to analyse")
    add_common(parser)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (schema: nixld/schema/explain.schema.json)")
    parser.add_argument("--db", metavar="DIR",
                        help="nix-index database directory (default: $NIX_INDEX_DATABASE, "
                        "else $XDG_CACHE_HOME/nix-index)")


def run(args: argparse.Namespace) -> int:
    from nixld.analysis import analyse
    from nixld.report import render_text, to_json

    analysis = analyse(args.path, db=args.db)
    if args.json:
        json.dump(to_json(analysis), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(analysis, colour=use_colour()))
    sys.stdout.flush()
    analysis.raise_database_error()
    return 0
