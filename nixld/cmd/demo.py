"""`nixld-hook demo`: build a small NixOS-like world here and show the whole job on it.

The world (nixld.demo, kind "small") is built once into
`$XDG_CACHE_HOME/nixld-world` and reused; the demo's own HOME (its profile
and per-binary entries) is wiped at each run, so every run tells the whole
story: the binary fails as on NixOS, `explain` says why, `resolve --yes`
installs what it lacks from the world's binary cache, `run` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from nixld import demo as world_mod
from nixld.text import safe

BINARY = "jq"  # the chain: libjq.so.1, then libonig.so.5 once libjq is there


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--rebuild", action="store_true",
                        help="build the demo world anew instead of reusing it")


def say(text: str = "") -> None:
    print(text, flush=True)


def step(command: str) -> None:
    say()
    say(f"$ {command}")


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run in-process commands with the world's environment, then restore ours."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main_in(env: Mapping[str, str], argv: list[str]) -> int:
    from nixld.cli import main

    with environment(env):
        code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def describe(world: world_mod.World, seconds: float, built: bool) -> None:
    how = f"built in {seconds:.1f} s" if built else "reused"
    substitutable = [i for i in world.items if i.store_path != world.glibc]
    say(f"A small NixOS-like world ({how}): {safe(world.root)}")
    say(f"  loader     NIX_LD={safe(world.ld_so)}")
    say("             Debian's glibc as a store path; its ld.so searches only its own lib/")
    say(f"  binaries   {', '.join(sorted(world.binaries))}: unmodified, from Debian packages")
    say(f"  providers  {len(substitutable)} store paths, only in the binary cache "
        f"{safe(world.substituter)}")
    say(f"  database   {safe(world.database_file)} (nix-index format)")


def run(args: argparse.Namespace) -> int:
    home = world_mod.world_home()
    demo_home = home / "demo-home"
    # The last demo's profile goes first: then its store paths are no longer
    # rooted, and ensure_world deletes them again for a real substitution.
    shutil.rmtree(demo_home, ignore_errors=True)
    shutil.rmtree(home / CHAIN_HOME, ignore_errors=True)
    say(f"nixld-hook demo: building or reusing a NixOS-like world in {safe(home)}")
    start = time.monotonic()
    built: list[str] = []

    def progress(message: str) -> None:
        built.append(message)
        say(f"  {message}")

    world = world_mod.ensure_world("small", home=home, rebuild=args.rebuild, progress=progress)
    describe(world, time.monotonic() - start, bool(built))
    try:
        demo_home.mkdir(parents=True)
    except OSError as err:
        raise world_mod.WorldError(f"cannot create {safe(demo_home)}: {err.strerror}") from None
    env = world.env(demo_home)
    binary = str(world.binaries[BINARY])

    step(f"{BINARY} --version   # through the NixOS-like loader, as on NixOS")
    proc = subprocess.run([str(world.ld_so), binary, "--version"], env=env,
                          capture_output=True, text=True, check=False)
    say((proc.stdout + proc.stderr).rstrip())
    say(f"[exit status {proc.returncode}]")

    step(f"nixld-hook explain {binary}")
    if main_in(env, ["explain", binary]) != 0:
        return 1
    step(f"nixld-hook resolve --yes {binary}")
    if main_in(env, ["resolve", "--yes", binary]) != 0:
        return 1
    step(f"nixld-hook run {binary} --version")
    done = subprocess.run([sys.executable, "-m", "nixld", "run", binary, "--version"],
                          env=env, capture_output=True, text=True, check=False)
    say((done.stdout + done.stderr).rstrip())
    say(f"[exit status {done.returncode}]")
    chained = shell_chain(world, home, binary)

    say()
    say(f"The world is in {safe(world.root)}; the demo's HOME (profile, entries) is "
        f"{safe(demo_home)}.")
    say("Run `nixld-hook demo` again to reuse it, `nixld-hook demo --rebuild` to build it anew.")
    return 0 if done.returncode == 0 and chained else 1


CHAIN_HOME = "demo-shell-home"
# What the demo's tool lacks: kept out of the shell chain's library set.
LACKING = ("libjq.so", "libonig.so")


def shell_chain(world: world_mod.World, home: Path, binary: str) -> bool:
    """A real bash with the hook, behind the shim at /lib64: fail, prompt, run."""
    from nixld.demo import shell_chain as chain_mod

    say()
    say("Now as on NixOS with the shim enabled: the shim at /lib64 (in a private mount "
        "namespace), bash with the hook, a fresh HOME.")
    reason = chain_mod.unavailable_reason()
    if reason is not None:
        say(f"(skipped: {reason})")
        return True
    chain_home = home / CHAIN_HOME
    chain_home.mkdir(parents=True, exist_ok=True)
    ok = chain_mod.chain(world.env(chain_home), chain_home, Path(binary).parent, LACKING)
    say()
    say("The plain ./jq started through the shim, which read the entry the prompt wrote."
        if ok else "The last plain ./jq did not start: see above.")
    return ok
