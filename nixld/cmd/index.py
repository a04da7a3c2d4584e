"""`nixld-hook index`: build (if needed) the soname index and show its figures."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from nixld.errors import ExitCode


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--db", metavar="DIR",
                        help="nix-index database directory (default: $NIX_INDEX_DATABASE, "
                             "else $XDG_CACHE_HOME/nix-index)")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild the index even if it is up to date")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--lookup", nargs="+", metavar="SONAME",
                        help="print the store paths that provide these sonames")


def _age(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


def run(args: argparse.Namespace) -> int:
    from nixld.index import SonameIndex
    from nixld.paths import database_file
    from nixld.progress import ProgressLine
    from nixld.text import safe

    db = database_file(args.db)
    progress = ProgressLine()
    try:
        index = SonameIndex.open(db, progress=progress.show if progress.live else None,
                                 rebuild=args.rebuild)
    finally:
        progress.end(keep=True)
    if args.lookup:
        return _print_lookup(index.lookup(args.lookup), args.json, safe)
    stats: dict[str, Any] = dict(index.stats())
    age = max(time.time() - stats["db_mtime"], 0)
    if args.json:
        stats.update(database=str(db), index=str(index.file), db_age_seconds=int(age))
        print(json.dumps(stats, indent=2))
        return ExitCode.OK
    rows = (
        ("database", safe(db)),
        ("database age", _age(age)),
        ("store paths", f"{stats['store_paths']:,}"),
        ("entries", f"{stats['entries']:,}"),
        ("with libraries", f"{stats['store_paths_with_libraries']:,} store paths"),
        ("library files", f"{stats['library_files']:,}"),
        ("sonames", f"{stats['sonames']:,}"),
        ("index", f"{safe(index.file or '(in memory)')} ({stats['index_size'] / 1e6:.1f} MB, "
                  f"built in {stats['build_ms'] / 1000:.1f} s)"),
    )
    for label, value in rows:
        print(f"{label + ':':16}{value}")
    return ExitCode.OK


def _print_lookup(result: dict[str, Any], as_json: bool, safe: Any) -> int:
    if as_json:
        print(json.dumps({soname: [{
            "attr": p.store_path.origin.attr if p.store_path.origin else None,
            "output": p.store_path.origin.output if p.store_path.origin else None,
            "store_path": p.store_path.path, "file": p.file, "target": p.target,
            "size": p.size} for p in providers] for soname, providers in result.items()},
            indent=2))
        return ExitCode.OK
    for soname, providers in result.items():
        if not providers:
            print(f"{safe(soname)}\t(no provider)")
        for p in providers:
            origin = p.store_path.origin
            attr = f"{origin.attr}.{origin.output}" if origin else "?"
            link = f" -> {safe(p.target)}" if p.target else ""
            print(f"{safe(soname)}\t{safe(attr)}\t{safe(p.path)}{link}")
    return ExitCode.OK
