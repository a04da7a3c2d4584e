"""`nixld-hook list | forget | gc | upgrade`, and the lock, with the real Nix.

Whether a store path is still rooted is asked of Nix's own garbage collector
(`nix-store --gc --print-dead`: the real root analysis, deleting nothing, so
other tests' paths are safe).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from nixld import cli, entries, lock, memory, nix, paths, profile
from nixld.elf import read_build_id
from nixld.entries import Entry, Identity
from nixld.fileid import sha256_of
from nixld.package import Package
from tests.conftest import REPO, need_tool, run_cli
from tests.fixtures.nix_cache import NixCache

pytest_plugins = ("tests.fixtures.nix_cache",)  # the nix_cache fixture


def rooted(store_path: str) -> bool:
    """Ask Nix's gc whether the path is alive (reachable from a root)."""
    res = subprocess.run(["nix-store", "--gc", "--print-dead"], capture_output=True,
                         text=True, check=True)
    return store_path not in res.stdout.split()


def binary(where: Path, content: bytes) -> str:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(content)
    where.chmod(0o755)
    return os.path.realpath(where)


def resolved(path: str, store_paths: Sequence[str]) -> Entry:
    """An installed resolution, as `resolve` leaves it."""
    nix.realise(store_paths, quiet=True)
    profile.install(store_paths)
    entry = Entry(path, Identity.of_file(path), tuple(f"{p}/lib" for p in store_paths),
                  sha256_of(path),
                  tuple(Package(p, p.split("-", 1)[1], "out") for p in store_paths),
                  tuple((f"lib{p.split('-', 1)[1]}.so.1", f"{p}/lib/x") for p in store_paths))
    entries.write_entry(entry)
    memory.remember_choice(entry.sha256, entry.packages, entry.dirs)
    return entry


@pytest.fixture
def world(xdg: Path, nix_cache: NixCache) -> dict[str, str]:
    """Two binaries: `a` uses zlib and ssl, `b` uses zlib and png."""
    names = {n: nix_cache.publish(n) for n in ("zlib", "ssl", "png")}
    a = binary(xdg / "bin" / "a", b"binary a")
    b = binary(xdg / "bin" / "b", b"binary b")
    resolved(a, [names["zlib"], names["ssl"]])
    resolved(b, [names["zlib"], names["png"]])
    return {"a": a, "b": b, **names}


def test_list_shows_entries_libraries_and_validity(world: dict[str, str]) -> None:
    res = run_cli("list")
    assert res.returncode == 0, res.stderr
    assert f"{world['a']}\n" in res.stdout
    assert f"  libssl.so.1 => {world['ssl']}/lib/x\n" in res.stdout
    assert f"  package zlib (out): {world['zlib']}\n" in res.stdout
    Path(world["b"]).write_bytes(b"rebuilt")
    rows = {r["path"]: r for r in json.loads(run_cli("list", "--json").stdout)}
    assert rows[world["a"]]["status"] == "valid" and rows[world["a"]]["valid"] is True
    assert rows[world["b"]]["status"] == "changed" and rows[world["b"]]["valid"] is False
    assert rows[world["a"]]["packages"][1] == {"store_path": world["ssl"], "attr": "ssl",
                                               "output": "out"}
    assert rows[world["a"]]["dirs"] == [f"{world['zlib']}/lib", f"{world['ssl']}/lib"]
    assert "[stale: the file changed" in run_cli("list").stdout


def test_list_of_nothing(xdg: Path) -> None:
    res = run_cli("list")
    assert res.returncode == 0 and res.stdout == ""
    assert "no binaries have resolutions yet" in res.stderr
    assert json.loads(run_cli("list", "--json").stdout) == []


def test_forget_removes_the_entry_and_what_only_it_used(world: dict[str, str]) -> None:
    res = run_cli("forget", world["a"])
    assert res.returncode == 0, res.stderr
    assert f"forgot {world['a']}" in res.stderr
    assert [e.path for _, e in entries.all_entries()] == [world["b"]]
    assert profile.installed() == {world["zlib"], world["png"]}  # zlib: b still uses it
    assert not rooted(world["ssl"])
    assert rooted(world["zlib"]) and rooted(world["png"])
    # forgetting also drops the content memory: the next run asks again
    assert memory.recall_choice(sha256_of(world["a"])) is None
    assert memory.recall_choice(sha256_of(world["b"])) is not None


def test_forget_all(world: dict[str, str]) -> None:
    memory.mark_never(world["a"])
    res = run_cli("forget", "--all")
    assert res.returncode == 0, res.stderr
    assert entries.all_entries() == [] and profile.installed() == set()
    assert not memory.is_never(world["a"])
    assert not any(rooted(world[n]) for n in ("zlib", "ssl", "png"))


def test_forget_undoes_never(xdg: Path) -> None:
    need_tool("nix-env")
    tool = binary(xdg / "tool", b"t")
    memory.mark_never(tool)
    assert run_cli("forget", tool).returncode == 0
    assert not memory.is_never(tool)


def test_forget_bad_command_lines(xdg: Path) -> None:
    res = run_cli("forget", str(xdg / "nothing"))
    assert res.returncode == 3
    assert res.stderr == (f"nixld-hook: error: no resolution for {xdg}/nothing "
                          "(see `nixld-hook list`)\n")
    assert run_cli("forget").returncode == 2
    assert run_cli("forget", "--all", "x").returncode == 2


def test_gc_drops_gone_and_changed_entries_and_unused_packages(world: dict[str, str],
                                                               xdg: Path,
                                                               nix_cache: NixCache) -> None:
    Path(world["a"]).unlink()  # gone
    c = binary(xdg / "bin" / "c", b"binary c")
    extra = nix_cache.publish("extra")
    resolved(c, [extra])
    Path(c).write_bytes(b"replaced")  # changed
    (paths.entries_dir() / ".tmp-leftover").write_bytes(b"half")  # a SIGKILLed writer
    res = run_cli("gc")
    assert res.returncode == 0, res.stderr
    assert [e.path for _, e in entries.all_entries()] == [world["b"]]
    assert profile.installed() == {world["zlib"], world["png"]}
    assert not rooted(world["ssl"]) and not rooted(extra)
    assert rooted(world["zlib"])
    assert not (paths.entries_dir() / ".tmp-leftover").exists()
    # the content memory stays: a moved copy of `a` would be resolved with no question
    assert memory.recall_choice(sha256_of(world["b"])) is not None
    assert "nothing to collect" in run_cli("gc").stderr


def test_build_id_entries_in_list_forget_and_gc(xdg: Path, nix_cache: NixCache) -> None:
    """Real ELF files (copies of /usr/bin/true, which has a build-id)."""
    zlib, ssl = nix_cache.publish("zlib"), nix_cache.publish("ssl")
    tool, other = xdg / "bin" / "tool", xdg / "bin" / "other"
    tool.parent.mkdir()
    shutil.copy2("/usr/bin/true", tool)
    build_id = read_build_id(tool)
    assert build_id
    entries.write_build_id_entry(resolved(str(tool), [zlib]), build_id)
    rows = json.loads(run_cli("list", "--json").stdout)
    assert [(r["path"], r["build_id"]) for r in rows] == [(str(tool), None), (str(tool), build_id)]
    assert rows[1]["size"] == tool.stat().st_size and rows[1]["status"] == "valid"
    assert f"(build-id {build_id}: also any copy of" in run_cli("list").stdout
    # gc keeps a build-id entry while its file has that build-id and size ...
    assert "nothing to collect" in run_cli("gc").stderr
    # ... and the packages only it names stay rooted.
    (paths.entries_dir() / (entries.key_for(str(tool)) + ".entry")).unlink()
    assert run_cli("gc").returncode == 0 and rooted(zlib)
    with tool.open("ab") as f:
        f.write(b"\0")  # changed: the build-id entry is stale
    assert run_cli("gc").returncode == 0
    assert entries.build_id_entries() == [] and not rooted(zlib)
    # forget removes the build-id entry with the path entry that wrote it.
    shutil.copy2("/usr/bin/true", other)
    entries.write_build_id_entry(resolved(str(other), [ssl]), build_id)
    res = run_cli("forget", str(other))
    assert res.returncode == 0, res.stderr
    assert entries.all_entries() == [] and entries.build_id_entries() == []
    assert not rooted(ssl)


def test_no_nix_on_path_is_one_clear_error(world: dict[str, str], tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    res = run_cli("forget", world["a"], env=env)
    assert res.returncode == 5
    assert res.stderr == ("nixld-hook: error: Nix is not installed (no nix-env on PATH): "
                          "install Nix, see https://nixos.org/download\n")


def test_a_read_only_state_dir_is_one_clear_error(world: dict[str, str]) -> None:
    need_tool("bwrap")
    state = paths.state_dir()
    before = sorted(p.name for p in state.rglob("*"))
    argv = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(state), str(state),
            sys.executable, "-m", "nixld", "gc"]
    res = subprocess.run(argv, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 6
    assert res.stderr.startswith("nixld-hook: error: cannot write ")
    assert res.stderr.count("\n") == 1
    assert sorted(p.name for p in state.rglob("*")) == before


# ---------------------------------------------------------------- upgrade (the lead's)


@pytest.mark.unit
def test_upgrade_parses_and_delegates(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nixld import upgrade

    calls: list[tuple[list[str], bool]] = []

    def fake(paths: list[str], *, assume_yes: bool = False) -> int:
        calls.append((paths, assume_yes))
        return 0

    monkeypatch.setattr(upgrade, "upgrade_entries", fake)
    assert cli.main(["upgrade", "--yes", "/a", "/b"]) == 0
    assert cli.main(["upgrade"]) == 0
    assert calls == [(["/a", "/b"], True), ([], False)]


# ---------------------------------------------------------------- the lock

HOLDER = """\
import sys
from nixld import lock
with lock.state_lock():
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_two_lockers_serialise_and_the_second_says_whom_it_waits_for(
        world: dict[str, str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == "locked\n"
    waiter = subprocess.Popen([sys.executable, "-m", "nixld", "forget", world["a"]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert waiter.poll() is None  # it waits ...
        assert {e.path for _, e in entries.all_entries()} == {world["a"], world["b"]}
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        _, err = waiter.communicate(timeout=60)
    finally:
        for child in (holder, waiter):
            if child.poll() is None:
                child.kill()
    assert waiter.returncode == 0, err
    assert err.startswith(f"nixld-hook: waiting for another nixld-hook (pid {holder.pid}) "
                          "to finish ...\n")
    assert [e.path for _, e in entries.all_entries()] == [world["b"]]


@pytest.mark.unit
def test_the_lock_is_reentrant_in_one_process(xdg: Path) -> None:
    with lock.state_lock(), lock.state_lock():
        assert lock.lock_file().read_text() == f"{os.getpid()}\n"
