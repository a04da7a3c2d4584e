"""Shared test helpers.

`need(condition, reason)` skips a test that lacks root, Nix, a compiler or a
download on a developer's laptop, but under `CI=true` it fails instead: CI must
run every test for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.build import Fixtures, build_fixtures

# The NixOS-like test world (tests/fixtures/demo_world.py), for every test module.
from tests.fixtures.demo_world import world, world_env, world_home_dir  # noqa: F401

# Every test: no gc root left behind (tests/fixtures/gc_roots.py).
from tests.fixtures.gc_roots import (  # noqa: F401
    drop_profile_links,
    no_new_gc_roots,
    no_new_gc_roots_at_the_end,
)

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: object, reason: str) -> None:
    """Skip (laptop) or fail (CI) unless `condition` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but this test cannot run: {reason}")
    pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path, f"needs `{name}` on PATH")
    assert path is not None
    return path


def need_root() -> None:
    need(os.geteuid() == 0, "needs root")


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate HOME and every XDG dir under tmp_path; the profiles made there
    are dropped afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.delenv("NIX_INDEX_DATABASE", raising=False)
    yield home
    drop_profile_links(tmp_path)


def run_cli(*args: str, env: dict[str, str] | None = None,
            input: str | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `nixld-hook ARGS` as a separate process, from this checkout."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    return subprocess.run(
        [sys.executable, "-m", "nixld", *args],
        env=full_env, input=input, cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """The C fixtures of tests/fixtures/, compiled once per session."""
    need_tool("gcc")
    return build_fixtures(tmp_path_factory.getbasetemp() / "elf-fixtures")
