"""nixld.profile with the real nix-env: what it holds, what coexists, what gc keeps."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nixld import nix, paths, profile
from nixld.errors import NixError, StateError
from tests.conftest import REPO, need_tool
from tests.fixtures.nix_cache import NixCache, private_store_argv, signing_key

pytest_plugins = ("tests.fixtures.nix_cache",)  # the nix_cache and slow_cache fixtures


def generations() -> list[Path]:
    state = paths.profile_path().parent
    return sorted(state.glob("profile-*-link"))


def generation_paths(link: Path) -> set[str]:
    out = subprocess.run(["nix-env", "-p", str(link), "-q", "--json", "--out-path"],
                         check=True, capture_output=True, text=True).stdout
    return {p for item in json.loads(out).values() for p in item["outputs"].values()}


def test_install_holds_realised_paths_in_one_generation(xdg: Path, nix_cache: NixCache) -> None:
    a, b = nix_cache.publish("a"), nix_cache.publish("b")
    nix.realise([a, b], quiet=True)
    profile.install([a])
    profile.install([a, b])
    assert profile.installed() == {a, b}
    assert len(generations()) == 1  # old generations are gone, or `forget` frees nothing
    assert generation_paths(generations()[0]) == {a, b}


def test_install_is_idempotent(xdg: Path, nix_cache: NixCache) -> None:
    a = nix_cache.add("same")
    profile.install([a])
    before = generations()
    profile.install([a, a])
    assert generations() == before  # nothing new, no new generation
    assert profile.installed() == {a}


def test_same_names_and_same_files_coexist(xdg: Path, nix_cache: NixCache) -> None:
    # Two builds of one name-version (nix-env -i would replace one by the other)
    # and a bundle holding the same file as the real package (a collision at
    # equal priorities): all three must stay installed.
    lib = {"lib/libz.so.1": b"zlib\n"}
    zlib_a = nix_cache.add("zlib-1.3.1", lib)
    zlib_b = nix_cache.add("zlib-1.3.1", {"lib/libz.so.1": b"zlib rebuilt\n"})
    bundle = nix_cache.add("bundle-1.0", {"lib/libz.so.1": b"bundled\n"})
    profile.install([zlib_a])
    profile.install([zlib_b])
    profile.install([bundle])
    assert profile.installed() == {zlib_a, zlib_b, bundle}
    # the merged profile exists and links one of them; entries never use it
    assert (paths.profile_path() / "lib/libz.so.1").exists()


def test_remove_removes_exactly_those(xdg: Path, nix_cache: NixCache) -> None:
    a, b, c = (nix_cache.add(f"v-{i}", {"lib/libv.so": b"%d" % i}) for i in range(3))
    profile.install([a, b, c])
    profile.remove([b, "/nix/store/aqi5a732325gndx1z2cvbw85isdvhy02-never-installed"])
    assert profile.installed() == {a, c}
    assert len(generations()) == 1
    profile.remove([a, c])
    assert profile.installed() == set()


def test_an_absent_path_is_refused_and_no_generation_appears(
        xdg: Path, nix_cache: NixCache, monkeypatch: pytest.MonkeyPatch) -> None:
    a = nix_cache.add("present")
    profile.install([a])
    before = generations()
    absent = nix_cache.publish("absent")
    monkeypatch.setenv("NIX_CONFIG", "substituters =\n")  # and now nowhere to be had
    with pytest.raises(NixError, match="installing into the profile failed"):
        profile.install([absent])
    assert generations() == before
    assert profile.installed() == {a}


def test_installed_of_no_profile_is_empty(xdg: Path) -> None:
    need_tool("nix-env")
    assert profile.installed() == set()
    profile.remove(["/nix/store/aqi5a732325gndx1z2cvbw85isdvhy02-x"])  # no profile: no-op
    assert not os.path.lexists(paths.profile_path())


# ---------------------------------------------------------------- the roots hold

GC_SCRIPT = """\
import json, sys
from pathlib import Path
from nixld import nix, profile
root = Path(sys.argv[1])
def tree(name, data):
    d = root / name
    (d / "lib").mkdir(parents=True)
    (d / "lib" / ("lib" + name + ".so.1")).write_bytes(data)
    return nix.add_to_store(d)
kept, dropped, loose = tree("kept", b"k"), tree("dropped", b"d"), tree("loose", b"l")
cache = root / "cache"
nix.copy_to_cache([kept, dropped], cache)
nix.delete_paths([kept, dropped])
nix.realise([kept, dropped], quiet=True)   # a real substitution
profile.install([kept, dropped])
nix.collect_garbage()                       # the real nix-collect-garbage -d
first = {p: nix.is_valid(p) for p in (kept, dropped, loose)}
profile.remove([dropped])
nix.collect_garbage()
second = {p: nix.is_valid(p) for p in (kept, dropped)}
print(json.dumps({"kept": kept, "dropped": dropped, "loose": loose,
                  "first": first, "second": second}))
"""


def test_roots_hold_under_a_real_nix_collect_garbage(xdg: Path, tmp_path: Path) -> None:
    """In a private /nix (bwrap), so this real gc cannot touch other tests' paths."""
    need_tool("nix-collect-garbage")
    need_tool("bwrap")
    work = tmp_path / "work"
    work.mkdir()
    # Its cache is unsigned: `nix-store --add` paths are content-addressed and
    # need no signature.
    env = dict(os.environ, PYTHONPATH=str(REPO),
               NIX_CONFIG=f"substituters = file://{work}/cache\n")
    argv = private_store_argv(tmp_path / "nix", sys.executable, "-c", GC_SCRIPT, str(work))
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    kept, dropped, loose = out["kept"], out["dropped"], out["loose"]
    # installed paths survive the gc; an unrooted one does not (the gc really ran)
    assert out["first"] == {kept: True, dropped: True, loose: False}
    # removed from the profile: the next gc frees it, old generations included
    assert out["second"] == {kept: True, dropped: False}


# ---------------------------------------------------------------- Ctrl-C and bad state

CHURN_SCRIPT = """\
import sys
import threading
from nixld import profile
a, b = sys.argv[1:3]
print("ready", flush=True)
try:
    while True:
        profile.install([a])
        profile.install([a, b])
        profile.remove([a])
        profile.remove([b])
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_sigint_at_any_moment_leaves_a_usable_profile(xdg: Path, nix_cache: NixCache) -> None:
    a, b = nix_cache.add("churn-a"), nix_cache.add("churn-b")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = random.Random(4)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHURN_SCRIPT, a, b], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.02, 0.4))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "Traceback" not in err
        # whatever moment it hit: the profile reads, and every generation holds
        # only valid paths
        assert profile.installed() <= {a, b}
        for link in generations():
            assert all(nix.is_valid(p) for p in generation_paths(link))
    profile.install([a])  # and the next change tidies any leftover generation
    assert len(generations()) == 1


def test_a_read_only_state_dir_is_one_clear_error(xdg: Path, nix_cache: NixCache) -> None:
    need_tool("bwrap")
    a = nix_cache.add("ro")
    state = paths.state_dir()
    state.mkdir(parents=True)
    code = ("from nixld import profile\nfrom nixld.errors import NixldError\n"
            f"try:\n    profile.install([{a!r}])\nexcept NixldError as e:\n"
            "    print(type(e).__name__, e)\n")
    argv = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(state), str(state),
            sys.executable, "-c", code]
    res = subprocess.run(argv, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"StateError cannot write {state}")
    assert list(state.iterdir()) == []  # nothing half-written


def test_state_error_is_raised_for_an_unusable_state_dir(xdg: Path, nix_cache: NixCache,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = xdg / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    with pytest.raises(StateError, match="cannot create"):
        profile.install([nix_cache.add("x")])


REALISE_INSTALL_SCRIPT = """\
import sys
import threading
from nixld import nix, profile
try:
    nix.realise(sys.argv[1:], quiet=True)
    profile.install(sys.argv[1:])
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_sigint_while_fetching_installs_nothing(
        xdg: Path, nix_cache: NixCache, slow_cache: tuple[str, threading.Event]) -> None:
    url, requested = slow_cache
    before = nix_cache.add("before")
    profile.install([before])
    path = nix_cache.publish("slow")
    env = dict(os.environ, PYTHONPATH=str(REPO),
               NIX_CONFIG=f"substituters = {url}\ntrusted-public-keys = {signing_key()[1]}\n")
    child = subprocess.Popen([sys.executable, "-c", REALISE_INSTALL_SCRIPT, path], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert requested.wait(60), "Nix never asked for the NAR"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert not nix.is_valid(path)
    assert profile.installed() == {before}
    assert [generation_paths(g) for g in generations()] == [{before}]
