"""`nixld-hook resolve` end to end on the NixOS-like world: real Nix, real
substitution from a file:// binary cache, real gc roots, a real terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from nixld import demo as w
from tests.conftest import REPO, run_cli
from tests.fixtures.nix_cache import NO_SANDBOX

pytestmark = pytest.mark.slow


def state(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "nixld"


def entry_files(env: dict[str, str], suffix: str = ".entry") -> list[Path]:
    d = state(env) / "entries"
    return sorted(p for p in d.iterdir() if p.name.endswith(suffix)) if d.is_dir() else []


def explain(path: str | Path, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    result = run_cli("explain", "--json", str(path), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def valid(store_path: str) -> bool:
    return subprocess.run(["nix-store", "--check-validity", store_path],
                          capture_output=True, check=False).returncode == 0


def profile_paths(env: dict[str, str]) -> list[str]:
    profile = state(env) / "profile"
    if not profile.exists():
        return []
    out = subprocess.run(["nix-env", "-p", str(profile), "-q", "--out-path"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def spawn(args: list[str], env: dict[str, str]) -> pexpect.spawn:
    env = dict(env, PYTHONPATH=str(REPO), TERM="dumb")
    env.pop("CI", None)  # a person at a terminal: CI never prompts
    return pexpect.spawn(sys.executable, ["-m", "nixld", *args], env=env,
                         encoding="utf-8", timeout=120)


def test_resolve_chain_survives_garbage_collection(world: w.World,
                                                    world_env: dict[str, str]) -> None:
    jq = world.binaries["jq"]
    before = explain(jq, world_env)
    assert not before["complete"]
    result = run_cli("resolve", "--yes", "--json", str(jq), env=world_env, timeout=300)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    installed = [p["store_path"] for p in doc["installed"]]
    assert len(installed) >= 2, "jq needs libjq, which needs oniguruma: two rounds"
    assert "round 2" in result.stderr
    assert doc["complete"] and doc["still_missing"] == []
    after = explain(jq, world_env)
    assert after["complete"] and after["missing"] == []
    assert {n["via"] for n in after["needed"] if n["soname"] == "libjq.so.1"} == {"entry"}

    subprocess.run(["nix-collect-garbage", "-d"], env=world_env, capture_output=True,
                   check=True)
    assert all(valid(p) for p in installed), "the profile roots every installed path"
    assert set(installed) <= set(profile_paths(world_env))
    ran = run_cli("run", str(jq), "--version", env=world_env)
    assert ran.returncode == 0 and ran.stdout.startswith("jq-"), ran.stderr


def test_entry_lists_each_store_paths_own_lib(world: w.World,
                                              world_env: dict[str, str]) -> None:
    zstd = world.binaries["zstd"]
    assert run_cli("resolve", "--yes", "--quiet", str(zstd), env=world_env,
                   timeout=300).returncode == 0
    [entry] = entry_files(world_env)
    text = entry.read_text()
    assert f"path {os.path.realpath(zstd)}\n" in text
    dirs = [line[4:] for line in text.splitlines() if line.startswith("dir ")]
    assert dirs and all(d.startswith("/nix/store/") and d.endswith("/lib") for d in dirs)
    assert not any("profile" in d for d in dirs), "never the merged profile"
    # Beside it, the build-id entry with the same dirs, for copies elsewhere.
    [copies] = entry_files(world_env, ".build-id")
    copy_text = copies.read_text()
    assert f"path {os.path.realpath(zstd)}\n" in copy_text
    assert f"\nsize {os.path.getsize(zstd)}\n" in copy_text
    assert [line[4:] for line in copy_text.splitlines() if line.startswith("dir ")] == dirs


def test_without_a_terminal_nothing_is_installed(world: w.World,
                                                 world_env: dict[str, str]) -> None:
    result = run_cli("resolve", str(world.binaries["jq"]), env=world_env)
    assert result.returncode == 1
    assert "nixld-hook resolve --yes" in result.stderr
    assert entry_files(world_env) == [] and profile_paths(world_env) == []


def test_a_copy_with_known_content_needs_no_question(world: w.World, world_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    jq = world.binaries["jq"]
    assert run_cli("resolve", "--yes", "--quiet", str(jq), env=world_env,
                   timeout=300).returncode == 0
    copy = tmp_path / "elsewhere" / "jq-copy"
    copy.parent.mkdir()
    shutil.copy2(jq, copy)
    # No terminal and no --yes: only the remembered choice can resolve it.
    result = run_cli("resolve", str(copy), env=world_env)
    assert result.returncode == 0, result.stderr
    assert explain(copy, world_env)["complete"]
    assert len(entry_files(world_env)) == 2


def test_directory_is_one_plan(world: w.World, world_env: dict[str, str],
                               tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    (app / "libexec").mkdir()
    shutil.copy2(world.binaries["bzip2"], app / "bin" / "bzip2")
    shutil.copy2(world.binaries["zstd"], app / "libexec" / "zstd-helper")
    (app / "share.txt").write_text("data")
    result = run_cli("resolve", "--yes", "--json", str(app), env=world_env, timeout=300)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sorted(Path(t).name for t in doc["targets"]) == ["bzip2", "zstd-helper"]
    assert len(entry_files(world_env)) == 2
    for binary in (app / "bin" / "bzip2", app / "libexec" / "zstd-helper"):
        assert explain(binary, world_env)["complete"]


QUESTION = r"\[Y\]es/\[n\]o/\[c\]hoose/\[a\]lways/ne\[v\]er: "


def answer_prompt(binary: Path, reply: str, expect: str, env: dict[str, str]) -> int:
    """Run `resolve BINARY` on a terminal, answer `reply` + Enter (a carriage
    return, as a real terminal sends), wait for `expect`; the exit status."""
    child = spawn(["resolve", str(binary)], env)
    child.expect("lacks")
    child.expect(QUESTION)
    child.send(reply + "\r")
    child.expect(expect)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None
    return int(child.exitstatus)


def test_prompt_yes_with_enter(world: w.World, world_env: dict[str, str]) -> None:
    zstd = world.binaries["zstd"]
    assert answer_prompt(zstd, "", "now finds every library", world_env) == 0
    assert explain(zstd, world_env)["complete"]


def test_prompt_no_installs_nothing(world: w.World, world_env: dict[str, str]) -> None:
    assert answer_prompt(world.binaries["zstd"], "n", "nothing installed", world_env) == 1
    assert entry_files(world_env) == [] and profile_paths(world_env) == []


def test_prompt_never_is_remembered(world: w.World, world_env: dict[str, str]) -> None:
    zstd = world.binaries["zstd"]
    assert answer_prompt(zstd, "v", "will not ask", world_env) == 0
    code = f"from nixld.memory import is_never; print(is_never({str(zstd)!r}))"
    check = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(world_env, PYTHONPATH=str(REPO)), capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "True"
    assert entry_files(world_env) == []


def test_prompt_always_turns_on_auto_accept(world: w.World, world_env: dict[str, str]) -> None:
    assert answer_prompt(world.binaries["zstd"], "a", "auto-accept is on", world_env) == 0
    config = Path(world_env["XDG_CONFIG_HOME"]) / "nixld" / "config.toml"
    assert "auto_accept = true" in config.read_text()
    # From now on no question, even without a terminal.
    result = run_cli("resolve", str(world.binaries["bzip2"]), env=world_env, timeout=300)
    assert result.returncode == 0, result.stderr


def test_prompt_choose_per_library(world: w.World, world_env: dict[str, str]) -> None:
    zstd = world.binaries["zstd"]
    child = spawn(["resolve", str(zstd)], world_env)
    child.expect(QUESTION)
    child.send("c\r")
    picked_any = False
    while True:
        index = child.expect([r"choice \[(\d)\]: ", "now finds every library", pexpect.EOF])
        if index == 0:
            child.send("\r")  # the default, which is the ranked choice
            picked_any = True
        else:
            break
    if index == 1:
        child.expect(pexpect.EOF)
    child.close()
    assert picked_any
    assert child.exitstatus == 0
    assert explain(zstd, world_env)["complete"]


def test_ctrl_c_at_any_moment_leaves_a_consistent_state(world: w.World,
                                                       world_env: dict[str, str]) -> None:
    curl = world.binaries["curl"]  # the large closure: the longest resolution
    env = dict(world_env, PYTHONPATH=str(REPO))
    interrupted = 0
    for delay in (0.3, 0.8, 1.5, 2.5):
        proc = subprocess.Popen([sys.executable, "-m", "nixld", "resolve", "--yes", str(curl)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        assert proc.returncode in (0, 130), err
        interrupted += proc.returncode == 130
        # No half-written entry: every file is a complete entry, no temporary left.
        for f in entry_files(world_env):
            assert f.suffix == ".entry", f"left behind: {f.name}"
            assert f.read_text().endswith("\nend\n")
        # No profile generation listing paths that are not there.
        assert all(valid(p) for p in profile_paths(world_env))
    assert interrupted, "at least one SIGINT landed mid-resolution"
    result = run_cli("resolve", "--yes", "--quiet", str(curl), env=world_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert explain(curl, world_env)["complete"]


def test_two_resolvers_at_once(world: w.World, world_env: dict[str, str]) -> None:
    env = dict(world_env, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-m", "nixld", "resolve", "--yes",
                          str(world.binaries[b])],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for b in ("jq", "nano")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert len(entry_files(world_env)) == 2
    for b in ("jq", "nano"):
        assert explain(world.binaries[b], world_env)["complete"]


def test_fallback_builds_the_attribute_from_nixpkgs(world: w.World, world_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    from nixld.database import FileEntry, Origin, StorePath, write_database

    # A database newer than the substituters: it names a zlib no cache has.
    db = tmp_path / "db"
    db.mkdir()
    gone = StorePath("/nix/store", "0" * 32, "zlib-9.9.9", Origin("zlib", "out", True, None))
    write_database(db / "files", [(gone, [FileEntry(b"", "d"), FileEntry(b"/lib", "d"),
                                          FileEntry(b"/lib/libz.so.1", "r", 100_000)])])
    zlib = world.providers_of("libz.so.1")
    real = next(i for i in zlib if i.role == "provider")
    nixpkgs = tmp_path / "nixpkgs"
    nixpkgs.mkdir()
    # The user's nixpkgs: here a tiny one whose zlib is built by a real Nix build.
    (nixpkgs / "default.nix").write_text(
        "{ ... }: { zlib = derivation { name = \"zlib-fallback\"; system = \"x86_64-linux\";\n"
        "  builder = \"/bin/sh\";\n"
        f"  args = [ \"-c\" \"/bin/mkdir -p $out/lib && "
        f"/bin/cp -L {real.lib_dir}/libz.so.1 $out/lib/\" ];\n"
        "}; }\n")
    env = dict(world_env, NIX_INDEX_DATABASE=str(db), NIX_PATH=f"nixpkgs={nixpkgs}",
               NIX_CONFIG=world_env["NIX_CONFIG"] + NO_SANDBOX)
    subprocess.run(["nix-store", "--realise", real.store_path], env=env, check=True,
                   capture_output=True)
    pigz = world.binaries["pigz"]
    result = run_cli("resolve", "--yes", "--json", str(pigz), env=env, timeout=300)
    assert "building zlib.out from your nixpkgs" in result.stderr
    doc = json.loads(result.stdout)
    built = [p["store_path"] for p in doc["installed"] if p["attr"] == "zlib"]
    assert built and built[0].endswith("-zlib-fallback")
    assert result.returncode == 0, result.stderr
    assert explain(pigz, env)["complete"]


def test_nothing_provides_says_what_is_still_missing(world: w.World, world_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    from nixld.database import write_database

    db = tmp_path / "empty-db"
    db.mkdir()
    write_database(db / "files", [])
    env = dict(world_env, NIX_INDEX_DATABASE=str(db))
    result = run_cli("resolve", "--yes", str(world.binaries["zstd"]), env=env)
    assert result.returncode == 1
    assert "still missing" in result.stderr and "libz.so.1" in result.stderr
    assert "no package in the database provides" in result.stderr
    assert entry_files(world_env) == []


def test_upgrade_moves_an_entry_to_the_current_database(world: w.World,
                                                         world_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    from nixld.database import read_database, write_database

    zstd = world.binaries["zstd"]
    assert run_cli("resolve", "--yes", "--quiet", str(zstd), env=world_env,
                   timeout=300).returncode == 0
    [entry] = entry_files(world_env)
    old_dirs = [ln[4:] for ln in entry.read_text().splitlines() if ln.startswith("dir ")]
    # A newer database: the packages chosen before are gone from it, only the
    # FHS env still has copies of every library.
    newer = tmp_path / "newer"
    newer.mkdir()
    keep = [(sp, files) for sp, files in read_database(world.database_file)
            if sp.path not in {d.rsplit("/lib", 1)[0] for d in old_dirs}]
    write_database(newer / "files", keep)
    env = dict(world_env, NIX_INDEX_DATABASE=str(newer))
    result = run_cli("upgrade", "--yes", str(zstd), env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    [entry] = entry_files(world_env)
    new_dirs = [ln[4:] for ln in entry.read_text().splitlines() if ln.startswith("dir ")]
    assert new_dirs and not set(new_dirs) & set(old_dirs)
    assert explain(zstd, env)["complete"]
    installed = set(profile_paths(world_env))
    assert not {d.rsplit("/lib", 1)[0] for d in old_dirs} & installed, \
        "packages no entry uses any more leave the profile"


def test_with_gpu_library_names_the_nixos_driver(world: w.World,
                                                 world_env: dict[str, str]) -> None:
    """A driver library comes only from the system's driver directory, never
    from a package; libGL.so.1 (libglvnd's dispatcher) is an ordinary package."""
    result = run_cli("resolve", "--dry-run", "--with", "libGLX_mesa.so.0",
                     str(world.binaries["bzip2"]), env=world_env)
    assert result.returncode == 0, result.stderr
    assert "libGLX_mesa.so.0: " in result.stderr and "/run/opengl-driver/lib" in result.stderr
    if os.path.isdir("/run/opengl-driver/lib"):
        assert "from the system's graphics driver" in result.stderr
    else:  # not NixOS: still no package
        assert "hardware.graphics.enable" in result.stderr
    assert "libGLX_mesa" not in result.stdout
    dispatcher = run_cli("resolve", "--dry-run", "--with", "libGL.so.1",
                         str(world.binaries["bzip2"]), env=world_env)
    assert "opengl-driver" not in dispatcher.stderr
    assert "no provider for: libGL.so.1" in dispatcher.stdout  # the world has no libglvnd
