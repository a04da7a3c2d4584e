#!/usr/bin/env python3
"""How long the install backend takes, with the real Nix and a local binary cache.

    python3 bench/install_bench.py [--paths 20] [--rounds 5]

Measures, in a throwaway XDG state dir and binary cache (store paths made for
the run, deleted from the store first, so each realisation is a real
substitution):

- realise N paths from a `file://` cache (nix-store --realise), and the same
  call when they are already valid (the common case of a second binary);
- profile.install of N paths into a profile of N others, and profile.remove;
- `nixld-hook run /usr/bin/true` against running `ld.so /usr/bin/true`
  directly and against `python3 -c pass` (hyperfine, whole-process latency:
  what `run` adds, and how much of it is the interpreter starting).

Medians over the rounds; the baseline of each row is named with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nixld import nix, profile  # noqa: E402

LOADER = "/lib64/ld-linux-x86-64.so.2"


def median_ms(fn: Callable[[], object], rounds: int, setup: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        setup()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def make_paths(root: Path, n: int, tag: str) -> list[str]:
    out = []
    for i in range(n):
        d = root / f"{tag}-{i}" / f"lib{tag}{i}-1.0"
        (d / "lib").mkdir(parents=True)
        (d / "lib" / f"lib{tag}{i}.so.1").write_bytes(os.urandom(64 * 1024))
        out.append(nix.add_to_store(d))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nixld-install-bench-") as tmp:
        root = Path(tmp)
        os.environ["XDG_STATE_HOME"] = str(root / "state")
        cache = root / "cache"
        os.environ["NIX_CONFIG"] = f"substituters = file://{cache}\nrequire-sigs = false\n"
        paths = make_paths(root / "trees", args.paths, "a")
        others = make_paths(root / "trees", args.paths, "b")
        nix.copy_to_cache(paths, cache)

        def evict() -> None:
            profile.remove(paths + others)
            nix.delete_paths(paths)

        rows: dict[str, float] = {}
        rows["realise (substitute)"] = median_ms(
            lambda: nix.realise(paths, quiet=True), args.rounds, evict)
        rows["realise (already valid)"] = median_ms(
            lambda: nix.realise(paths, quiet=True), args.rounds, lambda: None)
        profile.install(others)
        rows["profile.install"] = median_ms(
            lambda: profile.install(paths), args.rounds, lambda: profile.remove(paths))
        rows["profile.remove"] = median_ms(
            lambda: profile.remove(paths), args.rounds, lambda: profile.install(paths))
        profile.remove(paths + others)
        hyper = hyperfine(root)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Nix {nix_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"{args.paths} store paths of 64 KiB, median of {args.rounds} rounds")
    for name, ms in rows.items():
        print(f"  {name:28} {ms:8.1f} ms")
    if hyper:
        base, python, run = hyper
        print(f"  {'ld.so /usr/bin/true':28} {base:8.1f} ms   (baseline)")
        print(f"  {'python3 -c pass':28} {python:8.1f} ms   (the interpreter alone)")
        print(f"  {'nixld-hook run /usr/bin/true':28} {run:8.1f} ms   ({run / base:.0f}x the "
              f"loader, {run / python:.1f}x the interpreter)")
    return 0


def nix_version() -> str:
    out = subprocess.run(["nix-store", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def hyperfine(root: Path) -> tuple[float, float, float] | None:
    if not shutil.which("hyperfine") or not os.path.exists(LOADER):
        return None
    out = root / "hyperfine.json"
    env = dict(os.environ, NIX_LD=LOADER, PYTHONPATH=str(REPO))
    subprocess.run(["hyperfine", "-N", "--warmup", "3", "--export-json", str(out),
                    f"{LOADER} /usr/bin/true", f"{sys.executable} -c pass",
                    f"{sys.executable} -m nixld run /usr/bin/true"],
                   env=env, check=True, capture_output=True)
    results = json.loads(out.read_text())["results"]
    base, python, run = (r["median"] * 1000 for r in results)
    return base, python, run


if __name__ == "__main__":
    sys.exit(main())
