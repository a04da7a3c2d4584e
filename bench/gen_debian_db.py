#!/usr/bin/env python3
"""Generate a nixpkgs-scale nix-index database from Debian's file lists.

Every Debian bookworm (main) package becomes one store path
`/nix/store/<nix-base32 hash of the name>-<package>` (origin attr = package,
output "out", toplevel), its files mapped into a Nix-like layout:

    usr/lib/x86_64-linux-gnu/X, lib/x86_64-linux-gnu/X, usr/lib/X  -> /lib/X
    usr/bin/X -> /bin/X        usr/share/X -> /share/X        others kept

plus every implied directory. Debian lists no sizes or file types, so sizes are
derived from a hash of the path (deterministic), files in bin/ or sbin/ are
executable, and a library `lib/libfoo.so.N` becomes a symlink to its longest
sibling `libfoo.so.N.*` when the package has one (as in real packages), so
the index build has symlinks to follow.

    python3 bench/gen_debian_db.py [--out bench/out/nix-index]

The result is written with nixld's own writer to OUT/files (about 60,000 store
paths and 7.5 million entries); it is not part of the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nixld.database import FileEntry, Origin, StorePath, write_database

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CONTENTS = ("debian-bookworm-main-Contents-amd64.lz4", "debian-bookworm-main-Contents-all.lz4")
OUT = Path(__file__).resolve().parent / "out" / "nix-index"

# Order matters: the longest Debian prefix first.
MAPPING = (
    (b"usr/lib/x86_64-linux-gnu/", b"/lib/"),
    (b"lib/x86_64-linux-gnu/", b"/lib/"),
    (b"usr/lib/", b"/lib/"),
    (b"usr/bin/", b"/bin/"),
    (b"usr/share/", b"/share/"),
)
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
VERSIONED_SO = re.compile(rb"^(lib.+\.so\.[^.]+)\.\S+$")

Tree = dict[bytes, "Tree"]


def nix_hash(name: str) -> str:
    """A 32-character nix-base32 hash derived from the package name."""
    value = int.from_bytes(hashlib.sha256(name.encode()).digest()[:20], "big")
    return "".join(NIX_BASE32[(value >> (5 * i)) & 31] for i in range(32))


def map_path(path: bytes) -> bytes:
    for debian, nix in MAPPING:
        if path.startswith(debian):
            return nix + path[len(debian):]
    return b"/" + path


def read_contents(files: list[Path]) -> dict[str, set[bytes]]:
    """package name -> set of mapped file paths, from lz4-compressed Contents files."""
    packages: dict[str, set[bytes]] = {}
    for file in files:
        with subprocess.Popen(["lz4cat", str(file)], stdout=subprocess.PIPE,
                              bufsize=1 << 20) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                parts = line.rstrip(b"\n").rsplit(None, 1)
                if len(parts) != 2:
                    continue
                path = map_path(parts[0].rstrip())
                if b"\n" in path or b"\0" in path:
                    continue
                for qualified in parts[1].split(b","):
                    name = qualified.rsplit(b"/", 1)[-1].decode()
                    packages.setdefault(name, set()).add(path)
        if proc.returncode:
            sys.exit(f"lz4cat {file} failed with exit status {proc.returncode}")
    return packages


def build_tree(paths: set[bytes]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        for part in path.split(b"/")[1:]:
            node = node.setdefault(part, {})
    return root


def symlink_targets(lib: Tree) -> dict[bytes, bytes]:
    """libfoo.so.N -> its longest sibling libfoo.so.N.*, where one exists."""
    targets: dict[bytes, bytes] = {}
    for name, children in lib.items():
        m = VERSIONED_SO.match(name)
        if m and not children and m.group(1) in lib and not lib[m.group(1)]:
            best = targets.get(m.group(1))
            if best is None or len(name) > len(best):
                targets[m.group(1)] = name
    return targets


def entries(tree: Tree) -> Iterator[FileEntry]:
    """nix-index's order: pre-order, children in descending name order."""
    lib_links = symlink_targets(tree.get(b"lib", {}))
    stack: list[tuple[bytes, Tree]] = [(b"", tree)]
    while stack:
        path, node = stack.pop()
        if node or not path:
            yield FileEntry(path, "d", len(node))
            stack.extend((path + b"/" + name, child) for name, child in sorted(node.items()))
        elif path.startswith(b"/lib/") and path[5:] in lib_links:
            yield FileEntry(path, "s", None, lib_links[path[5:]])
        else:
            executable = b"/bin/" in path or b"/sbin/" in path
            size = zlib.crc32(path) % 500_000 + 64
            yield FileEntry(path, "x" if executable else "r", size)


def store_paths(packages: dict[str, set[bytes]], counts: list[int]) -> Iterator[
        tuple[StorePath, list[FileEntry]]]:
    for name in sorted(packages):
        origin = Origin(attr=name, output="out", toplevel=True, system=None)
        listing = list(entries(build_tree(packages[name])))
        counts[0] += 1
        counts[1] += len(listing)
        yield StorePath("/nix/store", nix_hash(name), name, origin), listing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory of the Contents files")
    parser.add_argument("--out", type=Path, default=OUT, help="database directory to write")
    parser.add_argument("--level", type=int, default=3, help="zstd level")
    args = parser.parse_args()
    start = time.monotonic()
    packages = read_contents([args.data / name for name in CONTENTS])
    print(f"read {len(packages)} packages in {time.monotonic() - start:.0f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    counts = [0, 0]
    write_database(args.out / "files", store_paths(packages, counts), level=args.level)
    size = (args.out / "files").stat().st_size
    print(f"wrote {args.out / 'files'}: {counts[0]} store paths, {counts[1]} entries, "
          f"{size / 1e6:.1f} MB, in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
