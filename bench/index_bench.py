#!/usr/bin/env python3
"""Benchmark the soname index against one full database scan per soname.

    python3 bench/index_bench.py [--db bench/out/nix-index] [--warm-command CMD]

Measures, on the database made by bench/gen_debian_db.py (generated first if
missing):

(a) index build: `nixld-hook index --rebuild` as a child process, 3 runs; wall
    time and the child's peak RSS (getrusage);
(b) warm whole-process latency with hyperfine, of `nixld-hook index --lookup`
    of 40 sonames and of `nixld-hook explain` of a binary that lacks exactly
    those 40 (built here with gcc: stub libraries linked, then deleted). The
    explain command can be replaced with `--warm-command`, where {python},
    {db}, {binary} and {sonames} are substituted;
(c) the baseline, answered the way nix-locate-based tools answer: one full
    scan of the database per soname (nixld.index.scan_for_soname), timed 3
    times in this run and multiplied by 40.

Prints a Markdown table of medians (and fastest runs, and the CPU time, which
a loaded machine inflates less than the wall time) and the ratio of the
medians (target: >= 50x). The index cache goes to bench/out/cache, never the
user's own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from nixld.index import scan_for_soname  # noqa: E402

# What a typical GTK application lacks on a bare NixOS: 40 sonames.
SONAMES = [
    "libz.so.1", "libssl.so.3", "libcrypto.so.3", "libX11.so.6", "libgtk-3.so.0",
    "libglib-2.0.so.0", "libgobject-2.0.so.0", "libgio-2.0.so.0", "libcairo.so.2",
    "libpango-1.0.so.0", "libpangocairo-1.0.so.0", "libgdk_pixbuf-2.0.so.0", "libatk-1.0.so.0",
    "libfontconfig.so.1", "libfreetype.so.6", "libharfbuzz.so.0", "libpng16.so.16",
    "libjpeg.so.62", "libxml2.so.2", "libcurl.so.4", "libsqlite3.so.0", "libstdc++.so.6",
    "libgcc_s.so.1", "libdbus-1.so.3", "libasound.so.2", "libpulse.so.0", "libGL.so.1",
    "libEGL.so.1", "libdrm.so.2", "libgbm.so.1", "libxcb.so.1", "libXext.so.6", "libXrandr.so.2",
    "libXi.so.6", "libXcursor.so.1", "libXdamage.so.1", "libXfixes.so.3", "libXcomposite.so.1",
    "libnss3.so", "libnspr4.so",
]
LOOKUP = "{python} -m nixld index --db {db} --lookup {sonames}"
EXPLAIN = "{python} -m nixld explain --db {db} {binary}"


def child_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(REPO))
    env.pop("NIX_INDEX_DATABASE", None)
    return env


def measure_build(db_dir: Path, env: dict[str, str],
                  runs: int) -> tuple[list[float], list[float], int]:
    """Wall and CPU (user + system) times of `index --rebuild`, and the largest
    peak RSS (bytes) among the runs."""
    times, cpu, peak = [], [], 0
    for _ in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "nixld", "index", "--db", str(db_dir),
                                 "--rebuild"], env=env, stdout=subprocess.DEVNULL)
        # wait4 gives this child's own rusage; ru_maxrss is in KiB on Linux.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        times.append(time.monotonic() - start)
        cpu.append(usage.ru_utime + usage.ru_stime)
        if proc.returncode:
            sys.exit(f"index build failed with exit status {proc.returncode}")
        peak = max(peak, usage.ru_maxrss * 1024)
    return times, cpu, peak


def build_binary(out: Path) -> Path:
    """A binary whose DT_NEEDED are exactly SONAMES (no libc), never to be run."""
    binary = out / "needs-40"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, soname in enumerate(SONAMES):
            (work / f"s{i}.c").write_text(f"void f{i}(void) {{}}\n")
            subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(work / soname),
                            str(work / f"s{i}.c"), f"-Wl,-soname,{soname}"], check=True)
        calls = " ".join(f"f{i}();" for i in range(len(SONAMES)))
        decls = " ".join(f"void f{i}(void);" for i in range(len(SONAMES)))
        (work / "main.c").write_text(f"{decls}\nvoid _start(void) {{ {calls} for (;;); }}\n")
        subprocess.run(["gcc", "-nostdlib", "-o", str(binary), str(work / "main.c"),
                        *(str(work / soname) for soname in SONAMES)], check=True)
    return binary


def measure_warm(commands: list[str], env: dict[str, str],
                 runs: int) -> list[tuple[float, float, float]]:
    """(median, fastest, mean CPU) in seconds of the commands, then of bare
    interpreter start-up."""
    floor = f"{shlex.quote(sys.executable)} -c pass"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(runs),
                        "--export-json", out.name, *commands, floor],
                       env=env, check=True, stdout=sys.stderr)
        results = json.loads(Path(out.name).read_text())["results"]
    return [(result["median"], result["min"], result["user"] + result["system"])
            for result in results]


def measure_scans(db_file: Path, soname: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.monotonic()
        found = scan_for_soname(db_file, soname)
        times.append(time.monotonic() - start)
        assert found, f"{soname} not in the database: the baseline would scan for nothing"
    return times


def count_entries(db_dir: Path, env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-m", "nixld", "index", "--db", str(db_dir), "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    stats: dict[str, int] = json.loads(out)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=BENCH / "out" / "nix-index",
                        help="database directory (generated there if missing)")
    parser.add_argument("--warm-command", default=EXPLAIN,
                        help="whole-process command to time with hyperfine; {python}, {db}, "
                             "{binary} and {sonames} are substituted (default: %(default)s)")
    parser.add_argument("--build-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=30)
    args = parser.parse_args()

    db_file = args.db / "files"
    if not db_file.exists():
        subprocess.run([sys.executable, str(BENCH / "gen_debian_db.py"), "--out", str(args.db)],
                       check=True)
    cache = BENCH / "out" / "cache"
    env = child_env(cache)

    build_times, build_cpu, peak = measure_build(args.db, env, args.build_runs)
    stats = count_entries(args.db, env)
    binary = build_binary(BENCH / "out")
    fields = {"python": shlex.quote(sys.executable), "db": shlex.quote(str(args.db)),
              "binary": shlex.quote(str(binary)), "sonames": " ".join(SONAMES)}
    command = args.warm_command.format(**fields)
    lookup, warm, floor = measure_warm([LOOKUP.format(**fields), command], env, args.warm_runs)
    scans = measure_scans(db_file, SONAMES[0], 3)

    build = statistics.median(build_times)
    scan = statistics.median(scans)
    short = "nixld-hook explain" if args.warm_command == EXPLAIN else "custom command"
    baseline = scan * len(SONAMES)
    print(f"database: {stats['store_paths']:,} store paths, {stats['entries']:,} entries, "
          f"{stats['db_size'] / 1e6:.1f} MB; index: {stats['sonames']:,} sonames, "
          f"{stats['library_files']:,} library files, {stats['index_size'] / 1e6:.1f} MB")
    print(f"timed with hyperfine ({args.warm_runs} runs after 3 warm-ups): {command}\n")
    def ms(triple: tuple[float, float, float]) -> tuple[str, str, str]:
        return tuple(f"{t * 1000:.1f} ms" for t in triple)  # type: ignore[return-value]

    n = len(SONAMES)
    rows = [
        ("measurement", "median", "fastest", "CPU (user+sys)", "target"),
        ("---", "---:", "---:", "---:", "---:"),
        (f"index build ({args.build_runs} runs)", f"{build:.1f} s", f"{min(build_times):.1f} s",
         f"{statistics.median(build_cpu):.1f} s", "<= 15 s"),
        ("index build peak RSS (largest of the runs)", f"{peak / 1e6:.0f} MB", "", "",
         "<= 500 MB"),
        (f"`nixld-hook index --lookup` of {n} sonames, whole process", *ms(lookup), ""),
        (f"`{short}` of a binary lacking {n} sonames, whole process", *ms(warm), "<= 150 ms"),
        ("`python3 -c pass` (interpreter start-up alone)", *ms(floor), ""),
        ("one full scan for one soname (3 timed scans)", f"{scan:.2f} s",
         f"{min(scans):.2f} s", "", ""),
        (f"baseline: {n} x one full scan (nix-locate style), extrapolated from 3 timed scans",
         f"{baseline:.0f} s", "", "", ""),
        (f"ratio baseline / `{short}` (medians)", f"{baseline / warm[0]:,.0f}x", "", "",
         ">= 50x"),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
