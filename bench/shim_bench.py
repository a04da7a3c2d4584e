"""Benchmark: exec-to-exit latency of a hello fixture started through the
shim versus the same fixture started directly by the real loader.

    python3 bench/shim_bench.py [--rounds 2000] [--no-check]

Builds the shim (`make -C shim`) and the fixture twice, once with the shim as
its ELF interpreter and once with Debian's /lib64/ld-linux-x86-64.so.2, then
runs a small C spawn loop (bench/shim_bench.c) that interleaves all variants
in one run: a whole-command timer cannot interleave. Each direct baseline is
handed the LD_LIBRARY_PATH the shim would give the loader, so the difference
is the shim alone. Prints medians and ratios; fails if the overhead is over
5% or the shim over 64 KiB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.shim_fixtures.world import (  # noqa: E402
    DEBIAN_LD,
    compile_c,
    entry_text,
    make_shim,
    write_entry,
)

DEBIAN_LIB = "/lib/x86_64-linux-gnu"
MAX_OVERHEAD = 0.05
MAX_SIZE = 64 * 1024


def build(tmp: Path) -> tuple[Path, list[tuple[str, list[str], Path]]]:
    shim = make_shim(tmp / "nixld-shim")
    direct = compile_c(tmp / "hello-direct", ["hello.c"])
    via_shim = compile_c(tmp / "hello-shim", ["hello.c"],
                         flags=[f"-Wl,--dynamic-linker={shim}"])
    with_entry = tmp / "hello-shim-entry"
    with_entry.write_bytes(via_shim.read_bytes())
    with_entry.chmod(0o755)
    store_lib = tmp / "store-lib"  # what an entry's dir would be
    store_lib.mkdir()
    state = tmp / "state"
    write_entry(state / "nixld" / "entries", with_entry, entry_text(with_entry, [store_lib]))
    base = ["PATH=/usr/bin:/bin", f"HOME={tmp}"]
    nix = [f"NIX_LD={DEBIAN_LD}", f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}"]
    variants = [
        ("direct", [*base, f"LD_LIBRARY_PATH={DEBIAN_LIB}"], direct),
        ("shim", [*base, *nix, f"XDG_STATE_HOME={tmp / 'empty-state'}"], via_shim),
        ("direct+entry-path", [*base, f"LD_LIBRARY_PATH={store_lib}:{DEBIAN_LIB}"], direct),
        ("shim+entry", [*base, *nix, f"XDG_STATE_HOME={state}"], with_entry),
        ("direct, no LD_LIBRARY_PATH", base, direct),
    ]
    return shim, variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--no-check", action="store_true",
                        help="report only (a smoke run): exit 0 whatever the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nixld-shim-bench-") as d:
        tmp = Path(d)
        shim, variants = build(tmp)
        spawner = compile_c(tmp / "shim_bench", [], flags=[str(REPO / "bench/shim_bench.c")])
        cmd = [str(spawner), str(args.rounds)]
        for _, env, program in variants:
            cmd += [*env, str(program), "--"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        size = shim.stat().st_size
    samples: dict[int, list[int]] = {i: [] for i in range(len(variants))}
    for line in out.splitlines():
        k, ns = line.split()
        samples[int(k)].append(int(ns))
    medians = {variants[k][0]: statistics.median(v) / 1000 for k, v in samples.items()}
    print(f"{args.rounds} starts each, interleaved; machine: {os.uname().nodename} "
          f"({os.cpu_count()} cores), kernel {os.uname().release}")
    for name, us in medians.items():
        print(f"  {name:28s} median {us:8.1f} us")
    no_entry = medians["shim"] / medians["direct"]
    entry = medians["shim+entry"] / medians["direct+entry-path"]
    print(f"  overhead without entry: {100 * (no_entry - 1):+.1f}% (ratio {no_entry:.3f})")
    print(f"  overhead with entry:    {100 * (entry - 1):+.1f}% (ratio {entry:.3f})")
    print(f"  shim size: {size} bytes")
    ok = no_entry <= 1 + MAX_OVERHEAD and entry <= 1 + MAX_OVERHEAD and size <= MAX_SIZE
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
