"""An ordinary user through the real nix-daemon, end to end on the test world.

The user `nixld-test` (not root, not a trusted user) resolves, runs, lists,
forgets and collects through Debian's nix-daemon, whose nix.conf (see
`.ci/nix-daemon`) has no default substituter, trusts only its own signed
cache and requires signatures. The world's providers are copied into that
cache signed with the daemon's key; each test starts with them absent from
the store, so every realisation is a real substitution by the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest

from nixld import demo as world_mod
from nixld import nix
from tests.conftest import need, need_tool
from tests.daemon_user import (
    DAEMON_DIR,
    DAEMON_SCRIPT,
    DaemonUser,
    daemon_site,
    daemon_user,
    trusted_cache_url,
)
from tests.fixtures.shell_session import USER_RC

__all__ = ["daemon_site", "daemon_user"]  # fixtures, used by name
pytestmark = pytest.mark.slow

BZIP2_HELP = "bzip2, a block-sorting file compressor"
ASK = "Install and remember for this binary?"


@pytest.fixture(scope="session")
def daemon_world(world: world_mod.World) -> world_mod.World:
    """The world's providers, signed with the daemon's key, in its trusted cache."""
    from tests.daemon_user import need_daemon

    need_daemon()
    marker = DAEMON_DIR / "cache" / f".nixld-world-{world.key}"
    if not marker.exists():
        subprocess.run(
            ["nix", *nix.NIX_COMMAND, "copy", "--from", world.substituter, "--to",
             f"{trusted_cache_url()}?secret-key={DAEMON_DIR / 'key.sec'}&compression=zstd",
             *world.substitutable], check=True, capture_output=True)
        marker.touch()
    return world


@pytest.fixture
def user_world(daemon_world: world_mod.World, daemon_user: DaemonUser,
               world_env: dict[str, str]) -> dict[str, str]:
    """The user's environment for the world: its loader and database, the
    daemon's trusted cache (world_env has just emptied the store of providers)."""
    db = daemon_user.copy_in(daemon_world.database_dir, "db")
    libs = daemon_user.root / "empty-lib"
    libs.mkdir()
    daemon_user.give(libs)
    return {"NIX_LD": str(daemon_world.ld_so), "NIX_LD_LIBRARY_PATH": str(libs),
            "NIX_INDEX_DATABASE": str(db)}


def bzip2_provider(world: world_mod.World) -> str:
    return world.providers_of("libbz2.so.1.0")[0].store_path


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_resolve_run_list_forget_gc_as_an_ordinary_user(
        daemon_user: DaemonUser, user_world: dict[str, str], world: world_mod.World) -> None:
    tool = daemon_user.copy_in(world.binaries["bzip2"])
    assert not any(nix.is_valid(i.store_path) for i in world.providers_of("libbz2.so.1.0"))
    r = daemon_user.nixld("resolve", "--yes", str(tool), env=user_world)
    assert r.returncode == 0, r.stderr
    assert "now finds every library" in r.stderr
    entries = daemon_user.home / ".local/state/nixld/entries"
    assert all(f.stat().st_uid == daemon_user.uid for f in entries.iterdir())
    r = daemon_user.nixld("run", str(tool), "--help", env=user_world)
    assert r.returncode == 0 and BZIP2_HELP in r.stderr, r.stderr
    r = daemon_user.nixld("list", env=user_world)
    assert r.returncode == 0 and str(tool) in r.stdout, r.stdout + r.stderr
    r = daemon_user.nixld("forget", str(tool), env=user_world)
    assert r.returncode == 0, r.stderr
    r = daemon_user.nixld("gc", env=user_world)
    assert r.returncode == 0, r.stderr
    r = daemon_user.nixld("list", env=user_world)
    assert str(tool) not in r.stdout
    r = daemon_user.nixld("run", str(tool), "--help", env=user_world)
    assert r.returncode == 127 and "libbz2.so.1.0" in r.stderr


def shimmed_copy(user: DaemonUser, world: world_mod.World) -> Path:
    """bzip2 whose interpreter is a copy of the shim the user can read."""
    need(world.shim is not None, "the world has no shim (shim/ not built)")
    need_tool("patchelf")
    assert world.shim is not None
    shim = user.copy_in(world.shim, "nixld-shim")
    tool = user.copy_in(world.binaries["bzip2"], "bzip2-shimmed")
    subprocess.run(["patchelf", "--set-interpreter", str(shim), str(tool)], check=True)
    return tool


def test_a_binary_through_the_shim_as_an_ordinary_user(
        daemon_user: DaemonUser, user_world: dict[str, str], world: world_mod.World) -> None:
    tool = shimmed_copy(daemon_user, world)
    before = daemon_user.run(str(tool), "--help", env=user_world)
    assert before.returncode == 127 and "libbz2.so.1.0" in before.stderr
    r = daemon_user.nixld("resolve", "--yes", "--quiet", str(tool), env=user_world)
    assert r.returncode == 0, r.stderr
    after = daemon_user.run(str(tool), "--help", env=user_world)
    assert after.returncode == 0 and BZIP2_HELP in after.stderr, after.stderr


def test_an_untrusted_substituter_is_one_line(
        daemon_user: DaemonUser, user_world: dict[str, str], world: world_mod.World) -> None:
    tool = daemon_user.copy_in(world.binaries["bzip2"])
    env = {**user_world, "NIX_CONFIG": f"substituters = {world.substituter}\n"}
    r = daemon_user.nixld("resolve", "--yes", "--quiet", str(tool), env=env)
    assert r.returncode == 5, r.stderr
    assert lines(r.stderr) == [
        f"nixld-hook: error: the Nix daemon ignores the substituter {world.substituter}: "
        "you are not a trusted user; add it to `trusted-substituters` in the daemon's "
        "nix.conf (on NixOS: nix.settings.trusted-substituters), or add yourself to "
        "`trusted-users`"]
    assert not nix.is_valid(bzip2_provider(world))


REALISE = """
import sys
from nixld import nix
from nixld.errors import NixError
try:
    nix.realise(sys.argv[1:], quiet=True)
except NixError as err:
    print(err)
    sys.exit(err.exit_code)
"""


def input_addressed_path(tmp: Path) -> str:
    """A path built here (not `nix-store --add`ed: content-addressed paths
    need no signature), so the cache's lack of one matters."""
    expr = ('derivation { name = "nixld-unsigned"; system = builtins.currentSystem; '
            'builder = "/bin/sh"; args = [ "-c" "echo $nonce > $out" ]; '
            f'nonce = "{os.urandom(8).hex()}"; }}')
    out = subprocess.run(
        ["nix-build", "--no-out-link", "--option", "substituters", "", "--option", "sandbox",
         "false", "--option", "build-users-group", "", "-E", expr],
        check=True, capture_output=True, text=True, cwd=tmp).stdout.strip()
    return out


def test_a_path_lacking_a_trusted_signature_is_its_own_line(
        daemon_user: DaemonUser, tmp_path: Path) -> None:
    path = input_addressed_path(tmp_path)
    subprocess.run(["nix", *nix.NIX_COMMAND, "copy", "--to", trusted_cache_url(), path],
                   check=True, capture_output=True)  # unsigned
    drv = subprocess.run(["nix-store", "-q", "--deriver", path], capture_output=True,
                         text=True, check=True).stdout.strip()
    nix.delete_paths([path])
    if nix.is_store_path(drv) and nix.is_valid(drv):
        nix.delete_paths([drv])
    r = daemon_user.run(daemon_user.python, "-c", REALISE, path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert r.stdout == (
        f"{path} from {trusted_cache_url()} is not signed by any key in "
        "`trusted-public-keys`: add the cache's public key there (on NixOS: "
        "nix.settings.trusted-public-keys), or use a signed cache\n")


def test_a_path_no_substituter_has_names_the_path_and_the_substituters(
        daemon_user: DaemonUser, tmp_path: Path) -> None:
    tree = tmp_path / "nowhere"
    tree.mkdir()
    (tree / "nonce").write_text(os.urandom(8).hex())
    path = nix.add_to_store(tree)
    nix.delete_paths([path])
    r = daemon_user.run(daemon_user.python, "-c", REALISE, path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert r.stdout.startswith(
        f"no configured substituter has {path} (asked {trusted_cache_url()}; "), r.stdout


def test_a_hook_session_as_an_ordinary_user(
        daemon_user: DaemonUser, user_world: dict[str, str], world: world_mod.World) -> None:
    need_tool("bash")
    tool = shimmed_copy(daemon_user, world)
    env = daemon_user.env({**user_world, "CI": ""})  # a person at the terminal
    rc = daemon_user.home / ".bashrc"
    rc.write_text(USER_RC["bash"])
    daemon_user.give(rc)
    r = daemon_user.nixld("install", "--shell", "bash", env=env)
    assert r.returncode == 0, r.stderr
    child = pexpect.spawn(
        daemon_user.argv("/bin/bash", "--noprofile", "--rcfile", str(rc), "-i")[0],
        daemon_user.argv("/bin/bash", "--noprofile", "--rcfile", str(rc), "-i")[1:],
        env=env, cwd=str(daemon_user.home), encoding="utf-8", timeout=60,
        dimensions=(40, 200))
    try:
        child.expect_exact("P1> ")
        child.send(f"{tool} --help\r")
        child.expect_exact(ASK)
        assert "libbz2.so.1.0" in str(child.before)
        child.send("\r")  # yes
        child.expect_exact("now? [Y/n]")
        child.send("\r")  # run it now
        child.expect_exact("P2> ")
        assert BZIP2_HELP in str(child.before)
        child.send(f"{tool} --help\r")  # the next plain run: no prompt
        child.expect_exact("P3> ")
        assert BZIP2_HELP in str(child.before) and ASK not in str(child.before)
        child.send("id -un\r")
        child.expect_exact("P4> ")
        assert daemon_user.name in str(child.before)
    finally:
        child.sendeof()
        child.close(force=True)


GC_SCRIPT = r"""
set -eu
rm -f "$DAEMON_DIR/pid"  # the copied pid is the daemon outside
"$DAEMON_SCRIPT" start >/dev/null
trap '"$DAEMON_SCRIPT" stop >/dev/null' EXIT
as_user() { setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups -- "$@"; }
as_user env NIX_REMOTE=daemon "$PYTHON" -m nixld resolve --yes --quiet "$TOOL"
unrooted=$(nix-store --add "$SPARE")
nix-collect-garbage -d >/dev/null 2>&1
if nix-store --check-validity "$unrooted" 2>/dev/null; then echo "gc did not run"; exit 1; fi
nix-store --check-validity "$PROVIDER"
as_user env NIX_REMOTE=daemon "$PYTHON" -m nixld run "$TOOL" --help
"""


def test_root_gc_keeps_the_users_libraries(
        daemon_user: DaemonUser, user_world: dict[str, str], world: world_mod.World,
        tmp_path: Path) -> None:
    """In a copy of /nix (bwrap, with a daemon of its own), so this real
    `nix-collect-garbage -d` cannot delete other tests' paths."""
    need_tool("bwrap")
    need_tool("nix-collect-garbage")
    tool = daemon_user.copy_in(world.binaries["bzip2"])
    spare = tmp_path / "spare"
    spare.mkdir()
    (spare / "nonce").write_text(os.urandom(8).hex())
    private = tmp_path / "nix"
    subprocess.run(["cp", "-a", "/nix/.", str(private)], check=True)
    env = daemon_user.env({**user_world, "DAEMON_SCRIPT": str(DAEMON_SCRIPT),
                           "DAEMON_DIR": str(DAEMON_DIR),
                           "USER_UID": str(daemon_user.uid), "USER_GID": str(daemon_user.gid),
                           "PYTHON": daemon_user.python, "TOOL": str(tool),
                           "SPARE": str(spare), "PROVIDER": bzip2_provider(world)})
    env["PATH"] = os.environ["PATH"]
    argv = ["bwrap", "--dev-bind", "/", "/", "--bind", str(private), "/nix", "--unshare-pid",
            "--proc", "/proc", "--die-with-parent", "/bin/bash", "-c", GC_SCRIPT]
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                           check=False, cwd=daemon_user.root, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"timed out: {err.stdout!r} {err.stderr!r}")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert BZIP2_HELP in r.stderr
    assert "nixld-hook: error" not in r.stderr


def test_the_daemon_script_reports_its_state() -> None:
    from tests.daemon_user import need_daemon

    need_daemon()
    r = subprocess.run([str(DAEMON_SCRIPT), "status"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and r.stdout.startswith("running (pid "), r.stdout
    r = subprocess.run([str(DAEMON_SCRIPT), "bogus"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and "usage" in r.stderr


def doctor_checks(user: DaemonUser,
                  env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    r = user.nixld("doctor", "--json", env=env)
    assert r.returncode in (0, 1), r.stderr
    return {c["name"]: c for c in json.loads(r.stdout)["checks"]}


def test_doctor_says_through_the_daemon_and_whether_it_trusts_the_substituters(
        daemon_user: DaemonUser, world: world_mod.World) -> None:
    checks = doctor_checks(daemon_user)
    assert checks["nix store"]["ok"] and "through nix-daemon" in str(checks["nix store"]["detail"])
    assert checks["substituters"]["ok"]
    untrusted = {"NIX_CONFIG": f"substituters = {trusted_cache_url()} {world.substituter}\n"}
    checks = doctor_checks(daemon_user, untrusted)
    sub = checks["substituters"]
    assert not sub["ok"]
    assert sub["detail"] == (f"the daemon ignores {world.substituter}: this user is not trusted "
                             "to use them")
    assert "trusted-substituters" in str(sub["fix"]) and "trusted-users" in str(sub["fix"])
    r = daemon_user.nixld("doctor", env=untrusted)
    assert r.returncode == 1
    assert f"the daemon ignores {world.substituter}" in r.stdout
    assert "fix: add them to `trusted-substituters`" in r.stdout
