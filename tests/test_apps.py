"""Real third-party programs from manylinux wheels, resolved once, run through
the shim on the NixOS-like world (tests/apps_world.py): Qt's designer under
Xvfb with its xcb platform plugin, a foreign Python importing cv2 (which
needs the system's libGL), and a trace finding what Python loads at run time."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixld import demo as world_mod
from nixld.demo import store
from nixld.errors import NixldError
from tests import apps_world
from tests.cmd.test_explain import SCHEMA
from tests.conftest import need, need_tool
from tests.fixtures import schema_check
from tests.fixtures.demo_world import WORLD_HOME


@pytest.fixture(scope="session")
def apps(world: world_mod.World) -> apps_world.Apps:
    need(world.shim is not None, "the shim is not built")
    need_tool("patchelf")
    try:
        return apps_world.ensure_apps(world, WORLD_HOME)
    except NixldError as err:
        need(False, f"cannot build the apps: {err}")
        raise


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    need_tool("Xvfb")
    need_tool("xwininfo")
    need_tool("xwd")
    yield from apps_world.xvfb_display()


@pytest.fixture
def apps_env(world: world_mod.World, apps: apps_world.Apps, world_env: dict[str, str],
             world_home_dir: Path) -> dict[str, str]:
    world_mod.reset_store(world)
    store.delete_unrooted(apps.store_paths)
    return apps.env(world, world_home_dir, world_env)


def nixld(env: dict[str, str], *args: str,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nixld-hook", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=timeout)


def entries_of(env: dict[str, str]) -> list[str]:
    """The paths the written entries are for."""
    found = []
    for entry in (Path(env["XDG_STATE_HOME"]) / "nixld/entries").glob("*.entry"):
        for line in entry.read_text().splitlines():
            if line.startswith("path "):
                found.append(line[5:])
    return sorted(found)


def mapped_window(env: dict[str, str], title: str, timeout: float) -> str | None:
    """The xwininfo line of a mapped top-level window whose name has `title`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True,
                              text=True, check=False).stdout
        for line in tree.splitlines():
            if title in line and "1x1+" not in line:
                info = subprocess.run(["xwininfo", "-id", line.split()[0]], env=env,
                                      capture_output=True, text=True, check=False).stdout
                if "IsViewable" in info:
                    return line.strip()
        time.sleep(0.5)
    return None


def screenshot(env: dict[str, str], dest: Path) -> Path:
    """The whole screen: an X window dump (xwd), kept with a PNG of it."""
    xwd = dest.with_suffix(".xwd")
    with open(xwd, "wb") as out:
        subprocess.run(["xwd", "-root", "-silent"], env=env, stdout=out, check=True)
    return apps_world.xwd_to_png(xwd, dest)


def test_qt_designer_starts_after_one_resolve(apps: apps_world.Apps, apps_env: dict[str, str],
                                              display: str, tmp_path: Path) -> None:
    r = nixld(apps_env, "resolve", "--yes", str(apps.designer))
    assert r.returncode == 0, r.stderr
    assert entries_of(apps_env) == [str(apps.designer)]
    env = {**apps_env, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "QT_DEBUG_PLUGINS": "1",
           # No GPU driver in the world (a NixOS without hardware.graphics): no GLX.
           "QT_XCB_GL_INTEGRATION": "none"}
    log = tmp_path / "designer.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(apps.designer)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            window = mapped_window(env, "Qt Widgets Designer", timeout=60)
            time.sleep(3)  # let it paint its windows
            shot = screenshot(env, tmp_path / "designer.png") if window else None
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    text = log.read_text(errors="replace")
    assert "Could not load the Qt platform plugin" not in text
    assert window is not None, text[-3000:]
    assert alive
    assert 'platforms/libqxcb.so" loaded library' in text
    assert shot is not None and shot.stat().st_size > 20_000  # kept in tmp_path
    print(f"screenshot: {shot}")


def test_foreign_python_imports_cv2_after_resolving_its_venv(
        apps: apps_world.Apps, apps_env: dict[str, str]) -> None:
    python = str(apps.venv / "bin/python")
    code = "import cv2, numpy; print(cv2.__version__)"
    before = subprocess.run([python, "-c", code], env=apps_env, capture_output=True, text=True,
                            check=False)
    assert before.returncode != 0
    assert "cannot open shared object file" in before.stderr
    r = nixld(apps_env, "resolve", "--yes", str(apps.venv))
    assert r.returncode == 0, r.stderr
    # One entry, for the interpreter's real file; none for the extension modules.
    assert entries_of(apps_env) == [os.path.realpath(python)]
    entry_text = next((Path(apps_env["XDG_STATE_HOME"]) / "nixld/entries").glob("*.entry"))
    assert "libglvnd" in entry_text.read_text()  # cv2's bundled Qt needs libGL.so.1
    after = subprocess.run([python, "-c", code], env=apps_env, capture_output=True, text=True,
                           check=False)
    assert after.returncode == 0, after.stderr[-2000:]
    assert after.stdout.strip() == "5.0.0"


def test_trace_finds_what_python_loads_at_run_time(
        apps: apps_world.Apps, apps_env: dict[str, str]) -> None:
    python = str(apps.python)
    code = ["-c", "import sqlite3; print(sqlite3.sqlite_version)"]
    # The interpreter's static facts name no sqlite: resolve finds nothing of it.
    first = nixld(apps_env, "resolve", "--yes", python)
    assert first.returncode == 0, first.stderr
    before = subprocess.run([python, *code], env=apps_env, capture_output=True, text=True,
                            check=False)
    assert "libsqlite3.so.0" in before.stderr
    r = nixld(apps_env, "trace", "--yes", python, *code)
    assert "running" in r.stderr and "not found: libsqlite3.so.0" in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    assert not list(Path(apps_env.get("TMPDIR", "/tmp")).glob("nixld-trace-*"))  # removed
    after = subprocess.run([python, *code], env=apps_env, capture_output=True, text=True,
                           check=False)
    assert after.returncode == 0, after.stderr[-2000:]
    assert after.stdout.startswith("3.")
    explain = nixld(apps_env, "explain", "--json", python)
    doc = json.loads(explain.stdout)
    assert doc["schema_version"] == 2
    traced = [r for r in doc["runtime"] if r["source"] == "trace"]
    by_soname = next(r for r in traced if r["sonames"])
    assert (by_soname["priority"], by_soname["sonames"]) == ("required", ["libsqlite3.so.0"])
    assert any(r["path"] and "_sqlite3" in r["path"] and not r["missing"] for r in traced)
    assert schema_check.errors(doc, SCHEMA) == []
