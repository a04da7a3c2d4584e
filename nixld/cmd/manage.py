"""`nixld-hook list | forget | gc | upgrade`: what was installed, and its removal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TypedDict

from nixld import entries, manage
from nixld.entries import Entry
from nixld.errors import ExitCode, NixldError
from nixld.text import safe


class UsageError(NixldError):
    exit_code = ExitCode.USAGE


class PackageJson(TypedDict):
    store_path: str
    attr: str
    output: str


class EntryJson(TypedDict):
    """One element of `nixld-hook list --json`."""

    path: str
    status: str  # "valid", "changed" (file replaced) or "gone"
    valid: bool
    system: bool  # from the system-wide directory (the NixOS module), read-only here
    entry_file: str
    dirs: list[str]
    sha256: str | None
    packages: list[PackageJson]
    libraries: dict[str, str]  # soname -> the file it resolves to
    build_id: str | None  # a build-id entry: for any copy with this build-id ...
    size: int | None  # ... and this size (path: the file it was resolved from)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "list":
        parser.add_argument("--json", action="store_true", help="print JSON")
    elif name == "forget":
        parser.add_argument("paths", metavar="PATH", nargs="*", help="binaries to forget")
        parser.add_argument("--all", action="store_true",
                            help="forget every binary and remove every installed package")
    elif name == "upgrade":
        parser.add_argument("paths", metavar="PATH", nargs="*",
                            help="binaries to re-resolve (default: all)")
        parser.add_argument("--yes", "-y", action="store_true",
                            help="take the top-ranked plan without asking")


def run(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list(args.json)
    if args.command == "forget":
        return _forget(args.paths, args.all)
    if args.command == "gc":
        return _gc()
    if args.command == "upgrade":
        return _upgrade(args.paths, args.yes)
    raise AssertionError(args.command)


def _as_json(file: str, entry: Entry, system: bool) -> EntryJson:
    state = entries.status(entry)
    return EntryJson(
        path=entry.path, status=state, valid=state == "valid", system=system, entry_file=file,
        dirs=list(entry.dirs), sha256=entry.sha256,
        packages=[PackageJson(store_path=p.store_path, attr=p.attr, output=p.output)
                  for p in entry.packages],
        libraries=dict(entry.sonames), build_id=entry.build_id, size=entry.size)


def _list(as_json: bool) -> int:
    rows = [_as_json(str(f), e, False)
            for f, e in entries.all_entries() + entries.build_id_entries()]
    rows += [_as_json(str(f), e, True)
             for f, e in entries.system_entries() + entries.system_build_id_entries()]
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return ExitCode.OK
    if not rows:
        print("no binaries have resolutions yet (nixld-hook resolve PATH)", file=sys.stderr)
    for row in rows:
        state = {"valid": "", "changed": "  [stale: the file changed; nixld-hook gc drops it]",
                 "gone": "  [stale: the file is gone; nixld-hook gc drops it]"}[row["status"]]
        origin = "  (system-wide)" if row["system"] else ""
        print(f"{safe(row['path'])}{origin}{_copies(row)}{state}")
        for soname, file in row["libraries"].items():
            print(f"  {safe(soname)} => {safe(file)}")
        for pkg in row["packages"]:
            print(f"  package {safe(pkg['attr'])} ({safe(pkg['output'])}): "
                  f"{safe(pkg['store_path'])}")
        if not row["libraries"] and not row["packages"]:
            for d in row["dirs"]:
                print(f"  dir {safe(d)}")
    return ExitCode.OK


def _copies(row: EntryJson) -> str:
    """A build-id entry applies to copies of the file elsewhere."""
    if row["build_id"] is None:
        return ""
    return f"  (build-id {row['build_id']}: also any copy of {row['size']} bytes)"


def _report(released: manage.Released) -> None:
    for entry in released.entries:
        print(f"forgot {safe(entry.path)}", file=sys.stderr)
    n = len(released.store_paths)
    if n:
        print(f"removed {n} package{'s' if n != 1 else ''} from the profile (freed for "
              "nix-collect-garbage): " + ", ".join(safe(p) for p in released.store_paths),
              file=sys.stderr)


def _forget(path_list: list[str], everything: bool) -> int:
    if everything == bool(path_list):
        raise UsageError("forget: give PATH... or --all (not both)")
    released = manage.forget_all() if everything else manage.forget(path_list)
    _report(released)
    return ExitCode.OK


def _gc() -> int:
    released = manage.collect()
    _report(released)
    if not released.entries and not released.store_paths:
        print("nothing to collect", file=sys.stderr)
    return ExitCode.OK


def _upgrade(path_list: list[str], assume_yes: bool) -> int:
    from nixld import upgrade

    return upgrade.upgrade_entries(path_list, assume_yes=assume_yes)
