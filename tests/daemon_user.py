"""An ordinary user talking to the real nix-daemon, for tests.

`.ci/nix-daemon start` (run by `.ci/run`, or by hand inside `/work/bin/iso`)
makes the unprivileged user `nixld-test` (in nix-users), a signing key and a
signed binary cache directory the daemon lists in `trusted-substituters`, and
starts Debian's nix-daemon with that nix.conf. Here:

- `daemon_user` (per test): a `DaemonUser`, whose `run` runs a command as that
  user (setpriv) with NIX_REMOTE=daemon, in a HOME of its own under a
  world-readable directory, with a copy of this checkout and its Python
  dependencies (root's Python environment may be out of the user's reach).
- `trusted_cache_url()`: the daemon's trusted cache; what goes in is signed
  with the daemon's key (`DAEMON_DIR/key.sec`).

Under CI=true a missing daemon, user or tool fails the test (`need`).

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, need, need_root, need_tool

DAEMON_DIR = Path(os.environ.get("NIXLD_DAEMON_DIR", "/nix/var/nixld-test-daemon"))
USER = os.environ.get("NIXLD_TEST_USER", "nixld-test")
SOCKET = Path("/nix/var/nix/daemon-socket/socket")
DAEMON_SCRIPT = REPO / ".ci" / "nix-daemon"
# World-readable (the user must reach its HOME); each test gets a directory inside.
BASE = Path("/tmp/nixld-daemon-tests")
PACKAGES = ("elftools", "xdg_base_dirs", "zstandard")


def as_user_argv(uid: int, gid: int, *argv: str) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *argv]


def trusted_cache_url(daemon_dir: Path = DAEMON_DIR) -> str:
    return f"file://{daemon_dir}/cache"


def _copy_package(name: str, site: Path) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, name
    shutil.copytree(next(iter(spec.submodule_search_locations)), site / name,
                    ignore=shutil.ignore_patterns("__pycache__"))


def user_site(dest: Path) -> Path:
    """This checkout's package (its hooks where the installed package has them)
    and its dependencies, readable by anyone."""
    site = dest / "site"
    if site.exists():
        shutil.rmtree(site)
    shutil.copytree(REPO / "nixld", site / "nixld",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "hooks", site / "nixld" / "hooks")
    (site / "nixld" / "hooks" / "__init__.py").touch()
    for name in PACKAGES:
        _copy_package(name, site)
    return site


@dataclass
class DaemonUser:
    name: str
    uid: int
    gid: int
    root: Path  # this test's directory, owned by the user
    python: str  # a Python the user can run
    site: Path  # PYTHONPATH: the checkout's copy

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        home = self.home
        env = {
            "HOME": str(home), "USER": self.name, "LOGNAME": self.name,
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "PATH": f"{self.bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(self.site),
            "LANG": "C.UTF-8", "TERM": "dumb", "CI": "true",
            "NIX_REMOTE": "daemon",
            "NIX_CONFIG": f"substituters = {trusted_cache_url()}\n"
                          "narinfo-cache-negative-ttl = 0\n",
        }
        env.update(extra or {})
        return env

    def argv(self, *argv: str) -> list[str]:
        return as_user_argv(self.uid, self.gid, *argv)

    def run(self, *argv: str, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), env=self.env(env), cwd=cwd or self.root,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def nixld(self, *args: str, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "nixld", *args, env=env, cwd=cwd)

    def give(self, path: Path) -> Path:
        """Hand a file or directory the test made to the user."""
        for dirpath, _, files in os.walk(path):
            os.chown(dirpath, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), self.uid, self.gid, follow_symlinks=False)
        if path.is_file():
            os.chown(path, self.uid, self.gid)
        return path

    def copy_in(self, src: Path, name: str | None = None) -> Path:
        dest = self.root / (name or src.name)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True)
        else:
            shutil.copy2(src, dest)
        return self.give(dest)


def _user_python(uid: int, gid: int, site: Path) -> str | None:
    """The first Python the user can run that imports the checkout's copy."""
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        # Through a shell, as the hook's wrapper runs it (a direct exec from
        # setpriv can reach an interpreter a shell's exec cannot).
        probe = subprocess.run(as_user_argv(uid, gid, "/bin/sh", "-c",
                                            'exec "$0" -c "import nixld.cli, zstandard"',
                                            python),
                               env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, check=False, cwd="/")
        if probe.returncode == 0:
            return python
    return None


def need_daemon() -> pwd.struct_passwd:
    need_root()
    for tool in ("nix-daemon", "setpriv", "nix"):
        need_tool(tool)
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        need(False, f"no user {USER}: run `.ci/nix-daemon start` as root")
        raise
    need(SOCKET.is_socket() and (DAEMON_DIR / "key.sec").is_file(),
         f"no nix-daemon serving {SOCKET}: run `.ci/nix-daemon start` as root")
    return account


@pytest.fixture(scope="session")
def daemon_site() -> Iterator[tuple[Path, str]]:
    account = need_daemon()
    BASE.mkdir(mode=0o755, exist_ok=True)
    os.chmod(BASE, 0o755)
    shared = BASE / f"site-{secrets.token_hex(4)}"
    shared.mkdir(mode=0o755)
    site = user_site(shared)
    python = _user_python(account.pw_uid, account.pw_gid, site)
    need(python, f"no Python that {USER} can run with this checkout")
    assert python is not None
    yield site, python
    shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture
def daemon_user(daemon_site: tuple[Path, str]) -> Iterator[DaemonUser]:
    account = need_daemon()
    root = BASE / secrets.token_hex(6)
    root.mkdir(mode=0o755)
    user = DaemonUser(account.pw_name, account.pw_uid, account.pw_gid, root,
                      daemon_site[1], daemon_site[0])
    for d in (user.home, user.bin_dir):
        d.mkdir()
    tool = user.bin_dir / "nixld-hook"
    tool.write_text(f"#!/bin/sh\nexec {user.python} -m nixld \"$@\"\n")
    tool.chmod(0o755)
    user.give(root)
    yield user
    # The profile's links are gc roots (registered by the daemon): drop them.
    state = user.home / ".local/state/nixld"
    for link in state.glob("profile*") if state.is_dir() else ():
        if link.is_symlink():
            link.unlink()
    shutil.rmtree(root, ignore_errors=True)
