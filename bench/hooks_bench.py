#!/usr/bin/env python3
"""Cost of the shell hooks when nothing failed, in bash, zsh and fish.

    python3 bench/hooks_bench.py [--cycles 1000] [--loop 20000] [--startup-runs 200]

Three measurements per shell, each against a baseline taken in the same run:

1. prompt cycles: a real interactive shell (driven through a pty) is fed
   CYCLES lines `:` one at a time, each waited for until the next prompt;
   the total wall time with the hook installed and without it, interleaved
   in rounds, gives the cost per prompt. The pty round trip (~1 ms) is noise
   here, so also:
2. the hook itself: inside one shell, the functions the shell calls around a
   command (bash: PROMPT_COMMAND's; zsh: preexec + precmd; fish: the
   fish_postexec handler) are called LOOP times after a successful command,
   timed with the shell's own clock, minus the same loop without them;
3. forks: the interactive shell runs under `strace -f -e trace=clone,clone3,
   fork,vfork` while it is fed the CYCLES lines; every process it creates
   is counted (expected: 0 with the hook, as without).

And the start-up cost of the installed block: hyperfine of `SHELL -i -c exit`
with the block (the static file sourced) versus the same start-up files
without it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nixld import shell as hooks  # noqa: E402

SHELLS = ("bash", "zsh", "fish")
USER_RC = {
    "bash": "PS1='P$((++__c))> '\n",
    "zsh": "setopt promptsubst\nunsetopt promptsp\nPS1='P$((++__c))> '\n",
    "fish": ("set -g fish_greeting\nset -g __c 0\n"
             "function fish_prompt; set -g __c (math $__c + 1); echo -n \"P$__c> \"; end\n"),
}
# The hook's functions, called as the shell calls them around one command.
HOOK_CALLS = {
    "bash": "true; __nixld_prompt",
    "zsh": "__nixld_preexec ':' ':' ':'; true; __nixld_precmd",
    "fish": "true; __nixld_postexec ':'",
}


@dataclass
class Home:
    """An isolated HOME with the user's start-up file, with or without the hook."""

    root: Path
    hooked: bool

    @property
    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.root), "ZDOTDIR": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / ".config"),
            "XDG_STATE_HOME": str(self.root / ".local/state"),
            "XDG_CACHE_HOME": str(self.root / ".cache"),
            "PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8",
        }


def make_home(root: Path, sh: str, hooked: bool) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    home = Home(root, hooked)
    rc = (root / ".config/fish/config.fish" if sh == "fish"
          else root / (".bashrc" if sh == "bash" else ".zshrc"))
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(USER_RC[sh])
    if hooked:
        hooks.install_one(sh, tool="/nonexistent/nixld-hook", environ=home.env)
    return home


def argv(sh: str, home: Home) -> list[str]:
    if sh == "bash":
        return ["bash", "--noprofile", "--rcfile", str(home.root / ".bashrc"), "-i"]
    if sh == "zsh":
        return ["zsh", "-d", "-i"]
    return ["fish", "-i"]


def drive(cmd: list[str], env: dict[str, str], cycles: int, line: str = ":") -> float:
    """Feed `cycles` lines `:` to an interactive shell; seconds for all of them."""
    import pexpect

    child = pexpect.spawn(cmd[0], cmd[1:], env=env, encoding="utf-8", timeout=60)
    child.delaybeforesend = None  # pexpect sleeps 50 ms before each send by default
    child.expect_exact("P1> ")
    start = time.perf_counter()
    for n in range(2, cycles + 2):
        child.send(line + "\r")
        child.expect_exact(f"P{n}> ")
    elapsed = time.perf_counter() - start
    child.sendeof()
    child.close(force=True)
    return elapsed


def prompt_cycles(sh: str, homes: dict[bool, Home], cycles: int, rounds: int) -> dict[str, float]:
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for hooked in (False, True):
            home = homes[hooked]
            times[hooked].append(drive(argv(sh, home), home.env, cycles) / cycles)
    return {"without_ms": statistics.median(times[False]) * 1e3,
            "with_ms": statistics.median(times[True]) * 1e3}


def loop_script(sh: str, calls: str, loop: int) -> str:
    if sh == "bash":
        return (f"s=$EPOCHREALTIME; for ((i=0;i<{loop};i++)); do {calls}; done; "
                "e=$EPOCHREALTIME; echo \"T=$(( (${e/./}-${s/./}) ))\"")
    if sh == "zsh":
        return ("zmodload zsh/datetime; s=$EPOCHREALTIME; "
                f"for ((i=0;i<{loop};i++)); do {calls}; done; "
                "e=$EPOCHREALTIME; echo \"T=$(( (e-s)*1000000 ))\"")
    return (f"set -l s (date +%s%N); for i in (seq {loop}); {calls}; end; "
            "set -l e (date +%s%N); echo T=(math \"($e - $s) / 1000\")")


def hook_loop(sh: str, homes: dict[bool, Home], loop: int, rounds: int) -> dict[str, float]:
    """Microseconds per call of the hook, by the shell's own clock."""
    hook_file = hooks.hook_file(sh)
    source = "source" if sh == "fish" else "."
    per: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for label, calls in (("without", "true"), ("with", HOOK_CALLS[sh])):
            script = f"{source} {hook_file}; " + loop_script(sh, calls, loop)
            cmd = [sh, "-i", "-c", script] if sh != "bash" else \
                ["bash", "--norc", "--noprofile", "-i", "-c", script]
            if sh == "zsh":
                cmd.insert(1, "-d")
            out = subprocess.run(cmd, env=homes[False].env, capture_output=True, text=True,
                                 timeout=300, check=True).stdout
            found = re.findall(r"T=([\d.]+)", out)
            if not found:
                raise SystemExit(f"{sh}: no timing in {out!r}")
            per[label].append(float(found[-1]) / loop)
    with_us = statistics.median(per["with"])
    without_us = statistics.median(per["without"])
    return {"loop_without_us": without_us, "loop_with_us": with_us,
            "hook_us": with_us - without_us}


def forks(sh: str, home: Home, cycles: int, out_dir: Path, line: str = ":") -> int:
    """Processes the interactive shell created while fed `cycles` lines."""
    trace = out_dir / f"strace-{sh}-{'hook' if home.hooked else 'plain'}-{cycles}.txt"
    cmd = ["strace", "-f", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o", str(trace),
           *argv(sh, home)]
    drive(cmd, home.env, cycles, line)
    time.sleep(0.2)
    lines = trace.read_text().splitlines()
    # A thread (fish has an I/O thread pool) is no fork: count processes only.
    return sum(1 for line in lines if re.search(r"\b(clone3?|v?fork)\(", line)
               and "CLONE_THREAD" not in line and "= -1" not in line
               and "resumed" not in line)


def startup(sh: str, homes: dict[bool, Home], runs: int, out_dir: Path,
            batches: int = 5) -> dict[str, float]:
    """Median start-up ms of `SHELL -i -c exit`, with and without the block.

    hyperfine batches alternate between the two (the machine is shared, its
    load drifts); the figure is the median of the batch medians."""
    medians: dict[bool, list[float]] = {False: [], True: []}
    for batch in range(batches):
        for hooked in (False, True):
            home = homes[hooked]
            cmd = " ".join(argv(sh, home)) + " -c exit"
            export = out_dir / f"startup-{sh}-{hooked}-{batch}.json"
            subprocess.run(["hyperfine", "-N", "--warmup", "10", "--runs",
                            str(max(10, runs // batches)), "--export-json", str(export),
                            "--style", "none", cmd],
                           env=dict(home.env), check=True, capture_output=True)
            data = json.loads(export.read_text())
            medians[hooked].append(data["results"][0]["median"] * 1e3)
    return {"without_ms": statistics.median(medians[False]),
            "with_ms": statistics.median(medians[True])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", type=int, default=20000)
    parser.add_argument("--startup-runs", type=int, default=200)
    parser.add_argument("--shells", default=",".join(SHELLS))
    args = parser.parse_args()
    for tool in ("strace", "hyperfine"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool}")
    report: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="nixld-hooks-bench-") as tmp:
        out_dir = Path(tmp)
        for sh in args.shells.split(","):
            homes = {hooked: make_home(out_dir / f"{sh}-{hooked}", sh, hooked)
                     for hooked in (False, True)}
            row: dict[str, float] = {}
            row.update(prompt_cycles(sh, homes, args.cycles, args.rounds))
            row.update(hook_loop(sh, homes, args.loop, args.rounds))
            row["forks_with"] = forks(sh, homes[True], args.cycles, out_dir)
            row["forks_without"] = forks(sh, homes[False], args.cycles, out_dir)
            # The counter works: 10 external commands are (at least) 10 processes.
            row["forks_control_10_true"] = forks(sh, homes[True], 10, out_dir, "/bin/true")
            row.update({f"startup_{k}": v for k, v in
                        startup(sh, homes, args.startup_runs, out_dir).items()})
            report[sh] = row
            print(f"{sh}: {json.dumps(row)}", file=sys.stderr)
    print(f"hooks bench, {time.strftime('%Y-%m-%d')}, {args.cycles} prompt cycles x "
          f"{args.rounds} rounds, hook loop {args.loop} calls, start-up {args.startup_runs} runs")
    print()
    print("| shell | prompt cycle without / with hook (ms, pty round trip) | hook itself "
          "(us per prompt, loop) | forks in cycles without / with | start-up without / with "
          "(ms, median) | start-up cost |")
    print("|---|---|---|---|---|---|")
    for sh, r in report.items():
        print(f"| {sh} | {r['without_ms']:.3f} / {r['with_ms']:.3f} "
              f"(diff {(r['with_ms'] - r['without_ms']) * 1e3:+.0f} us) | {r['hook_us']:.1f} "
              f"| {r['forks_without']:.0f} / {r['forks_with']:.0f} "
              f"(control: 10 x /bin/true = {r['forks_control_10_true']:.0f}) | "
              f"{r['startup_without_ms']:.2f} / {r['startup_with_ms']:.2f} | "
              f"{r['startup_with_ms'] - r['startup_without_ms']:+.2f} ms "
              f"(x{r['startup_with_ms'] / r['startup_without_ms']:.3f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
