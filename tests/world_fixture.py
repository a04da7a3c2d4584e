"""The NixOS-like test world as pytest fixtures (built by nixld.demo).

Registered for every test by tests/conftest.py. Use:

- `world` (session): the `nixld.demo.World`, built once (about 5 s; the
  Debian .deb files are downloaded once and kept) or reused from an earlier
  run. Its paths: `world.ld_so` (NIX_LD), `world.binaries[name]` (unmodified
  Debian binaries: bzip2 jq curl ninja nano zstd pigz), `world.fixtures[name]`
  (foo-tool origin-tool rpath-tool runpath-tool dlopen-tool),
  `world.no_interp[name]` (interpreter missing), `world.shimmed[name]`
  (interpreter = the shim; empty when shim/ was not built), `world.cache_dir`,
  `world.database_file`, `world.items` (every store path in the database).
- `world_env` (per test): the environment to run commands in: the world's
  NIX_LD, NIX_LD_LIBRARY_PATH (an empty dir), NIX_CONFIG (the file:// cache,
  require-sigs = false), NIX_INDEX_DATABASE, and HOME/XDG_* isolated under
  tmp_path. Before each test every substitutable store path is deleted from
  the store again (unless a gc root still holds it), so a realisation in the
  test is a real substitution.
- `world_home_dir` (per test): that isolated HOME.

On a laptop without root, Nix, patchelf, gcc or apt these skip; under CI=true
they fail (see `need`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixld import demo as world_mod
from nixld.errors import NixldError

REPO = Path(__file__).resolve().parent.parent
# Read at import time, before any test's monkeypatching of XDG_CACHE_HOME: the
# world and its .deb downloads must survive between test runs.
WORLD_HOME = world_mod.world_home()
SHIM_DIR = REPO / "shim"
SHIM = SHIM_DIR / "build" / "nixld-shim"


def _built_shim() -> Path | None:
    """shim/build/nixld-shim, made with `make -C shim` where the shim exists."""
    if not (SHIM_DIR / "Makefile").exists() or shutil.which("make") is None:
        return None
    proc = subprocess.run(["make", "-s", "-C", str(SHIM_DIR)], capture_output=True,
                          text=True, check=False)
    return SHIM if proc.returncode == 0 and SHIM.exists() else None


GC_ROOTS_AUTO = Path("/nix/var/nix/gcroots/auto")


def _drop_stale_test_roots(current: Path) -> None:
    """Unlink nixld profile links left in the kept tmp dirs of earlier pytest
    sessions: they are gc roots, and would keep world store paths valid, so a
    realisation would no longer be a real substitution."""
    pytest_root = current.parent
    if not GC_ROOTS_AUTO.is_dir() or not pytest_root.name.startswith("pytest-of-"):
        return
    for root in GC_ROOTS_AUTO.iterdir():
        try:
            target = Path(os.readlink(root))
        except OSError:
            continue
        if (target.is_relative_to(pytest_root) and not target.is_relative_to(current)
                and "nixld" in target.parts and target.is_symlink()):
            target.unlink()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> world_mod.World:
    from tests.conftest import need, need_root, need_tool  # conftest imports this module

    need_root()
    _drop_stale_test_roots(tmp_path_factory.getbasetemp())
    for tool in ("nix-store", "nix", "patchelf", "gcc", "apt-get", "dpkg-deb"):
        need_tool(tool)
    try:
        return world_mod.ensure_world("full", home=WORLD_HOME, shim=_built_shim())
    except NixldError as err:
        need(False, f"cannot build the test world: {err}")
        raise


@pytest.fixture
def world_home_dir(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def world_env(world: world_mod.World, world_home_dir: Path) -> Iterator[dict[str, str]]:
    # Paths an earlier test left rooted (a profile in a kept tmp dir) stay valid.
    world_mod.reset_store(world)
    env = world.env(world_home_dir, os.environ)
    yield env
    # pytest keeps the last tmp dirs: drop this test's profile links (gc roots)
    # so the next test's reset can make every provider a real substitution again.
    state = Path(env["XDG_STATE_HOME"]) / "nixld"
    if state.is_dir():
        for link in state.glob("profile*"):
            if link.is_symlink():
                link.unlink()
