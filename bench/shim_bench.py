"""Benchmark: exec-to-exit latency of a hello fixture started through the
shim, through nix-ld's original C version, and directly by the real loader.

    python3 bench/shim_bench.py [--rounds 3000] [--no-check]

Builds the shim (`make -C shim`), nix-ld's C version from a copy of
../shared/anchors/nix-ld-c/ (as its README says; the folder is read-only) and
the fixture three times, with each as its ELF interpreter (Debian's
/lib64/ld-linux-x86-64.so.2 for the direct one). A small C spawn loop
(bench/shim_bench.c) interleaves all variants in one run: a whole-command
timer cannot interleave. The direct loader gets no LD_LIBRARY_PATH; nix-ld and
the shim get NIX_LD and NIX_LD_LIBRARY_PATH (for nix-ld "with entry", the
entry's directory first in it, which is how nix-ld users get it). The shim
without an entry is measured twice: with no per-user entries directory, and
with one holding other binaries' entries (both miss the path and the build-id
lookups, per-user and system-wide). Prints
medians and ratios against the direct loader; fails unless the shim's median
is at most nix-ld's in each pair (without an entry, both ways; with a path
entry; with a build-id entry, a copy at a new path), and the shim is at most
64 KiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.shim.harness import (  # noqa: E402
    DEBIAN_LD,
    build_id_entry_text,
    compile_c,
    entry_text,
    make_shim,
    write_build_id_entry,
    write_entry,
)

DEBIAN_LIB = "/lib/x86_64-linux-gnu"
ANCHOR = Path("shared") / "anchors" / "nix-ld-c"
MAX_SIZE = 64 * 1024


@dataclass(frozen=True)
class Variant:
    name: str
    env: list[str]
    program: Path


def nix_ld_c_source() -> Path:
    """../shared/anchors/nix-ld-c beside the checkout (or beside a worktree's parent)."""
    for up in REPO.parents:
        if (up / ANCHOR / "src" / "nix-ld.c").is_file():
            return up / ANCHOR
    return REPO.parent / ANCHOR


def build_nix_ld_c(tmp: Path, source: Path) -> Path:
    """nix-ld's C version, built in a copy of `source` as its README says."""
    copy = tmp / "nix-ld-c-src"
    shutil.copytree(source, copy)
    for p in [copy, *copy.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    (copy / "src" / "config.h").write_text('#pragma once\n#define NIX_SYSTEM "x86_64_linux"\n')
    out = tmp / "nix-ld-c"
    subprocess.run(["gcc", "-Os", "-fno-asynchronous-unwind-tables", "-fno-ident",
                    "-ffreestanding", "-static-pie", "-fPIE", "-nostdlib",
                    "-fno-stack-protector", "-DPTR_SIZE=8", f"-I{copy / 'vendor/nolibc'}",
                    f"-I{copy / 'src'}", "-o", str(out), str(copy / "src/nix-ld.c")],
                   check=True, capture_output=True, text=True)
    return out


def linked_with(tmp: Path, name: str, interpreter: Path) -> Path:
    return compile_c(tmp / name, ["hello.c"], flags=[f"-Wl,--dynamic-linker={interpreter}"])


def build(tmp: Path, nix_ld_source: Path) -> tuple[Path, list[Variant]]:
    shim = make_shim(tmp / "nixld-shim")
    nix_ld = build_nix_ld_c(tmp, nix_ld_source)
    direct = compile_c(tmp / "hello-direct", ["hello.c"])
    via_nix_ld = linked_with(tmp, "hello-nix-ld", nix_ld)
    via_shim = linked_with(tmp, "hello-shim", shim)
    with_entry = tmp / "hello-shim-entry"
    shutil.copy2(via_shim, with_entry)
    store_lib = tmp / "store-lib"  # what an entry's dir would be
    store_lib.mkdir()
    state = tmp / "state"
    # What `resolve` writes: the path entry and, beside it, the build-id entry.
    write_entry(state / "nixld" / "entries", with_entry, entry_text(with_entry, [store_lib]))
    write_build_id_entry(state / "nixld" / "entries", with_entry,
                         build_id_entry_text(with_entry, [store_lib]))
    # Another binary's entries (another build-id): the no-entry lookups miss in an
    # existing per-user directory.
    others = tmp / "others-state"
    write_entry(others / "nixld" / "entries", direct, entry_text(direct, [store_lib]))
    write_build_id_entry(others / "nixld" / "entries", direct,
                         build_id_entry_text(direct, [store_lib]))
    moved = tmp / "moved" / "hello-shim-copy"  # a copy at a new path: its build-id entry
    moved.parent.mkdir()
    shutil.copy2(via_shim, moved)
    base = ["PATH=/usr/bin:/bin", f"HOME={tmp}"]
    ld = f"NIX_LD={DEBIAN_LD}"
    no_state = f"XDG_STATE_HOME={tmp / 'empty-state'}"
    variants = [
        Variant("direct, no LD_LIBRARY_PATH", base, direct),
        Variant("nix-ld", [*base, ld, f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}"], via_nix_ld),
        Variant("nix-ld, entry dir in NIX_LD_LIBRARY_PATH",
                [*base, ld, f"NIX_LD_LIBRARY_PATH={store_lib}:{DEBIAN_LIB}"], via_nix_ld),
        Variant("shim, no entry", [*base, ld, f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}", no_state],
                via_shim),
        Variant("shim, no entry, others' entries",
                [*base, ld, f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}", f"XDG_STATE_HOME={others}"],
                via_shim),
        Variant("shim, path entry",
                [*base, ld, f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}", f"XDG_STATE_HOME={state}"],
                with_entry),
        Variant("shim, build-id entry (a copy)",
                [*base, ld, f"NIX_LD_LIBRARY_PATH={DEBIAN_LIB}", f"XDG_STATE_HOME={state}"],
                moved),
    ]
    return shim, variants


@dataclass(frozen=True)
class Medians:
    wall: dict[str, float]  # spawn to reap, us
    cpu: dict[str, float]  # the child's user + system time, us


def run(tmp: Path, variants: list[Variant], rounds: int) -> Medians:
    spawner = compile_c(tmp / "shim_bench", [], flags=[str(REPO / "bench/shim_bench.c")])
    cmd = [str(spawner), str(rounds)]
    for v in variants:
        cmd += [*v.env, str(v.program), "--"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall: dict[int, list[int]] = {i: [] for i in range(len(variants))}
    cpu: dict[int, list[int]] = {i: [] for i in range(len(variants))}
    for line in out.splitlines():
        k, ns, cpu_ns = line.split()
        wall[int(k)].append(int(ns))
        cpu[int(k)].append(int(cpu_ns))
    return Medians({variants[k].name: statistics.median(v) / 1000 for k, v in wall.items()},
                   {variants[k].name: statistics.median(v) / 1000 for k, v in cpu.items()})


def report(medians: Medians, rounds: int, size: int) -> bool:
    """Prints the table; true if the shim is at most nix-ld in each pair."""
    wall, cpu = medians.wall, medians.cpu
    direct = wall["direct, no LD_LIBRARY_PATH"]
    cpu_direct = cpu["direct, no LD_LIBRARY_PATH"]
    print(f"{rounds} starts each, interleaved; machine: {os.uname().nodename} "
          f"({os.cpu_count()} cores), kernel {os.uname().release}")
    print(f"  {'variant':42s} {'median':>9s} {'over direct':>11s} {'ratio':>6s}"
          f"  {'cpu median':>10s} {'over':>7s}")
    for name, us in wall.items():
        print(f"  {name:42s} {us:7.1f}us {us - direct:+9.1f}us {us / direct:6.3f}"
              f"  {cpu[name]:8.1f}us {cpu[name] - cpu_direct:+6.1f}us")
    entry_nix_ld = "nix-ld, entry dir in NIX_LD_LIBRARY_PATH"
    pairs = [("without entry", "shim, no entry", "nix-ld"),
             ("others' entries", "shim, no entry, others' entries", "nix-ld"),
             ("with entry", "shim, path entry", entry_nix_ld),
             ("build-id entry", "shim, build-id entry (a copy)", entry_nix_ld)]
    ok = size <= MAX_SIZE
    for label, shim, nix_ld in pairs:
        d = wall[shim] - wall[nix_ld]
        print(f"  shim vs nix-ld {label + ':':17s} {d:+.1f} us (ratio "
              f"{wall[shim] / wall[nix_ld]:.3f}); cpu {cpu[shim] - cpu[nix_ld]:+.1f} us")
        ok = ok and d <= 0
    print(f"  shim size: {size} bytes")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--nix-ld-source", type=Path, default=nix_ld_c_source(),
                        help="nix-ld's C source (default: %(default)s)")
    parser.add_argument("--no-check", action="store_true",
                        help="report only (a smoke run): exit 0 whatever the figures")
    args = parser.parse_args()
    if not (args.nix_ld_source / "src" / "nix-ld.c").is_file():
        print(f"shim_bench: no nix-ld C source in {args.nix_ld_source}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nixld-shim-bench-") as d:
        tmp = Path(d)
        shim, variants = build(tmp, args.nix_ld_source)
        medians = run(tmp, variants, args.rounds)
        ok = report(medians, args.rounds, shim.stat().st_size)
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
