"""The non-Nix tools the demo world is built with (apt-get, dpkg-deb, gcc,
patchelf): each failure is one line naming the command. Nix itself runs
through nixld.nix."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from nixld.demo.catalog import Kind
from nixld.errors import ExitCode, NixError, NixldError
from nixld.text import safe


class WorldError(NixldError):
    exit_code = ExitCode.FAILURE


def run_tool(cmd: Sequence[str], *, cwd: Path | None = None,
             env: Mapping[str, str] | None = None) -> str:
    """Run a build step; its failure becomes one line naming the command."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=None if env is None else dict(env),
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise WorldError(f"`{cmd[0]}` is not installed (needed to build the test world)") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        last = (errors or lines or [f"exit status {proc.returncode}"])[0]
        raise WorldError(f"`{' '.join(cmd[:3])} ...` failed: {safe(last)}")
    return proc.stdout


def check_tools(kind: Kind) -> None:
    """Say plainly which tool the world needs and how to get it."""
    tools = [("nix-store", "nix-bin"), ("nix", "nix-bin"), ("dpkg-deb", "dpkg"),
             ("apt-get", "apt")]
    if kind == "full":  # the C fixtures and the no-interpreter copies
        tools += [("gcc", "gcc"), ("patchelf", "patchelf")]
    for tool, package in tools:
        if shutil.which(tool) is None:
            error = NixError if package == "nix-bin" else WorldError
            raise error(f"`{tool}` is not installed: the test world needs it "
                        f"(apt-get install {package})")
