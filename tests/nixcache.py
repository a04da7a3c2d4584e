"""Real store paths served from a real local binary cache, for tests.

`NixCache.publish(...)` makes store paths with `nix-store --add` (each holding
a small `lib/`), copies them into a `file://` binary cache, and deletes them
from the store again, so that every later realisation is a real substitution.
`env()` is the NIX_CONFIG pointing Nix at that cache (and only at it), with
the key the cache is signed with in `trusted-public-keys`.

Every path gets a fresh nonce, so two tests never share a store path (one
test's profile rooting a path would stop another from deleting it).

Test modules load it with `pytest_plugins = ("tests.nixcache",)` after importing
from it, so it opts out of assert rewriting: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import http.server
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nixld import nix, paths
from nixld.demo.store import build_users_setting
from tests.conftest import REPO, need_tool

# The tests' derivations run the host's /bin/sh, which Nix's build sandbox
# lacks. Where the sandbox cannot be set up Nix builds without it
# (sandbox-fallback), so such a test passed or failed with the machine's
# state (build users present or not): tests that build say so, always.
NO_SANDBOX = "sandbox = false\n"

_KEYS: list[tuple[Path, str]] = []


def signing_key() -> tuple[Path, str]:
    """The test caches' key pair, one per test run: (secret key file, public key)."""
    if not _KEYS:
        where = Path(tempfile.mkdtemp(prefix="nixld-test-key-"))
        public = nix.generate_signing_key("nixld-test-cache-1", where / "key.sec",
                                          where / "key.pub")
        _KEYS.append((where / "key.sec", public))
    return _KEYS[0]


def nix_config(cache_dir: Path, extra: str = "") -> str:
    """Only this cache, its key trusted (as a real cache's is; signatures stay
    required)."""
    return (f"substituters = file://{cache_dir}\ntrusted-public-keys = {signing_key()[1]}\n"
            f"narinfo-cache-negative-ttl = 0\n{NO_SANDBOX}"
            f"{build_users_setting()}{extra}")


@dataclass
class NixCache:
    root: Path  # scratch space for the trees added to the store
    dir: Path  # the file:// binary cache
    published: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment variables that point Nix at this cache."""
        return {"NIX_CONFIG": nix_config(self.dir)}

    def make_tree(self, name: str, files: Mapping[str, bytes] | None = None) -> Path:
        """A directory `name` with `files` (default: lib/lib<name>.so.1) and a nonce."""
        tree = self.root / f"{secrets.token_hex(4)}" / name
        for rel, data in (files or {f"lib/lib{name}.so.1": b"\x7fELF not really\n"}).items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        (tree / "nonce").write_text(secrets.token_hex(16))
        return tree

    def add(self, name: str, files: Mapping[str, bytes] | None = None) -> str:
        """A valid store path (not in the cache)."""
        return nix.add_to_store(self.make_tree(name, files))

    def publish(self, name: str, files: Mapping[str, bytes] | None = None) -> str:
        """A store path that is only in the cache: realising it substitutes it."""
        path = self.add(name, files)
        nix.copy_to_cache([path], self.dir, secret_key=signing_key()[0])
        nix.delete_paths([path])
        assert not nix.is_valid(path)
        self.published.append(path)
        return path


@pytest.fixture
def nix_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NixCache]:
    """A fresh local binary cache, with NIX_CONFIG pointing at it for this test.

    Afterwards the test's profile stops rooting anything: pytest keeps old tmp
    dirs for a while, and their generations would otherwise keep paths alive.
    """
    need_tool("nix-store")
    need_tool("nix-env")
    cache = NixCache(tmp_path / "trees", tmp_path / "binary-cache")
    cache.root.mkdir()
    for key, value in cache.env().items():
        monkeypatch.setenv(key, value)
    yield cache
    drop_profile_roots(tmp_path)


def drop_profile_roots(under: Path) -> None:
    """Remove the nixld profile links (gc roots) of a state dir inside `under`."""
    profile = paths.profile_path()
    if not profile.is_relative_to(under):
        return
    for link in [profile, *nix.profile_generations(profile)]:
        if link.is_symlink():
            link.unlink()


# ---------------------------------------------------------------- a slow cache, for Ctrl-C


class _SlowNarHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the binary cache, but trickles NAR files forever (until stopped)."""

    nar_requested: threading.Event
    stop: threading.Event

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if "/nar/" not in self.path:
            super().do_GET()
            return
        self.nar_requested.set()
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        try:
            while not self.stop.wait(0.2):
                self.wfile.write(b"\0" * 16)
                self.wfile.flush()
        except OSError:
            pass


@pytest.fixture
def slow_cache(nix_cache: NixCache) -> Iterator[tuple[str, threading.Event]]:
    requested, stop = threading.Event(), threading.Event()
    directory = str(nix_cache.dir)

    class Handler(_SlowNarHandler):
        nar_requested = requested

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=directory, **kwargs)  # type: ignore[arg-type]

    Handler.stop = stop
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_cache(nix_cache: NixCache) -> Iterator[str]:
    """The binary cache served over HTTP (as cache.nixos.org is): its URL."""
    directory = str(nix_cache.dir)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=directory, **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- a private store


def private_store_argv(nix_dir: Path, *argv: str, ro_binds: tuple[Path, ...] = ()) -> list[str]:
    """`argv` run with /nix replaced by `nix_dir` (bwrap): a whole store of its own.

    For what must not touch the machine's store: a real `nix-collect-garbage
    -d` would delete other tests' unrooted paths.
    """
    nix_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["bwrap", "--dev-bind", "/", "/", "--bind", os.fspath(nix_dir), "/nix"]
    for path in ro_binds:
        cmd += ["--ro-bind", os.fspath(path), os.fspath(path)]
    return [*cmd, *argv]


def python_argv(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run_python(code: str, *, env: Mapping[str, str], wrap: list[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new Python with this checkout importable."""
    full = dict(env)
    full["PYTHONPATH"] = os.fspath(REPO)
    argv = (wrap or []) + python_argv(code)
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=timeout,
                          check=False)
