"""nixld.nix against the real Nix: substitution from a real local binary cache,
builds from a real (tiny) nixpkgs, and every failure turned into one line."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nixld import demo as world_mod
from nixld import nix
from nixld.errors import NixError
from tests.conftest import REPO, need_tool, run_cli
from tests.fixtures.nix_cache import NixCache, nix_config, signing_key

pytest_plugins = ("tests.fixtures.nix_cache",)  # nix_cache, slow_cache, http_cache

# ---------------------------------------------------------------- pure parts

DRY_RUN_SAMPLE = """\
these 2 paths will be fetched (1.50 MiB download, 4.25 MiB unpacked):
  /nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-libfoo-1
  /nix/store/8m0z12v0g978ch2a8vd7gar80zi3z493-libfoo-2
don't know how to build these paths:
  /nix/store/aqi5a732325gndx1z2cvbw85isdvhy02-libbar-1
"""


@pytest.mark.unit
def test_parse_dry_run_splits_fetch_and_unavailable() -> None:
    plan = nix.parse_dry_run(DRY_RUN_SAMPLE)
    assert plan.fetch == ["/nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-libfoo-1",
                          "/nix/store/8m0z12v0g978ch2a8vd7gar80zi3z493-libfoo-2"]
    assert plan.unavailable == ["/nix/store/aqi5a732325gndx1z2cvbw85isdvhy02-libbar-1"]
    assert plan.download_bytes == 1572864
    assert plan.unpacked_bytes == round(4.25 * 1024 * 1024)


@pytest.mark.unit
def test_parse_dry_run_of_nothing_to_do() -> None:
    assert nix.parse_dry_run("") == nix.FetchPlan()


@pytest.mark.unit
@pytest.mark.parametrize("path,ok", [
    ("/nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-libfoo-1", True),
    ("/nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-libfoo-1/lib", False),
    ('/nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-a"; builtins.abort "x', False),
    ("/nix/store/eqi5a732325gndx1z2cvbw85isdvhy02-e-is-not-base32", False),
    ("/tmp/x", False),
])
def test_store_path_check(path: str, ok: bool) -> None:
    assert nix.is_store_path(path) is ok


@pytest.mark.unit
def test_error_line_prefers_nix_error_over_noise() -> None:
    stderr = ("copying path 'x'...\n\x1b[31;1merror:\x1b[0m build of 'y' failed\n"
              "warning: whatever\n")
    assert nix._error_line(stderr) == "build of 'y' failed"
    json_line = ('@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m '
                 'cannot connect"}\n')
    assert nix._error_line(json_line) == "cannot connect"


@pytest.mark.unit
def test_error_line_says_how_to_fix_missing_build_users() -> None:
    stderr = ("error: the group 'nixbld' specified in 'build-users-group' does not exist\n")
    line = nix._error_line(stderr)
    assert line.startswith("the group 'nixbld' specified in 'build-users-group' does not exist")
    assert "nix-setup-systemd" in line and "build-users-group =" in line


@pytest.mark.unit
def test_progress_counts_paths_and_bytes_from_internal_json() -> None:
    out = io.StringIO()
    progress = nix.Progress(out, live=True)
    progress.start(nix.FetchPlan(fetch=["a", "b"], download_bytes=2048))
    for line in [
        '@nix {"action":"start","id":7,"level":0,"text":"","type":103}',
        '@nix {"action":"start","id":8,"fields":["http://c/x.narinfo"],"type":101}',
        '@nix {"action":"result","fields":[500,500,0,0],"id":8,"type":105}',
        '@nix {"action":"start","id":9,"fields":["http://c/nar/x.nar.xz"],"type":101}',
        '@nix {"action":"result","fields":[1024,2048,0,0],"id":9,"type":105}',
        '@nix {"action":"result","fields":[1,2,1,0],"id":7,"type":105}',
    ]:
        progress._last_draw = 0.0
        progress.feed(line)
    progress.finish()
    text = out.getvalue()
    assert "fetching 2 store paths (2.0 KiB download)" in text
    assert "fetched 1/2 paths, 1.0 KiB of 2.0 KiB" in text


# ---------------------------------------------------------------- substitution


def test_realise_substitutes_from_the_binary_cache(nix_cache: NixCache,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = nix_cache.publish("foo")
    assert nix.invalid_paths([path]) == [path]
    fetch, _size = nix.query_missing([path])
    assert fetch == [path]
    nix.realise([path], progress=nix.Progress(sys.stderr, live=False))
    assert nix.is_valid(path)
    assert (Path(path) / "lib/libfoo.so.1").read_bytes() == b"\x7fELF not really\n"
    assert "fetching 1 store path" in capsys.readouterr().err


def test_query_missing_reports_the_download_size(nix_cache: NixCache) -> None:
    blob = os.urandom(600 * 1024)  # incompressible: the download is about this big
    path = nix_cache.publish("big", {"lib/libbig.so.1": blob})
    fetch, size = nix.query_missing([path])
    assert fetch == [path]
    assert abs(size - len(blob)) < 64 * 1024


def test_realise_of_present_paths_fetches_nothing(nix_cache: NixCache,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = nix_cache.add("here")
    monkeypatch.setenv("NIX_CONFIG", "substituters =\n")  # nothing could be fetched anyway
    nix.realise([path])
    assert nix.is_valid(path)
    assert nix.query_missing([path]) == ([], 0)
    assert capsys.readouterr().err == ""


def test_realise_quiet_prints_nothing(nix_cache: NixCache,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = nix_cache.publish("quiet")
    nix.realise([path], quiet=True)
    assert nix.is_valid(path)
    assert capsys.readouterr().err == ""


def test_a_substituter_lacking_the_path_is_one_clear_error(nix_cache: NixCache,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = nix_cache.publish("elsewhere")
    other = tmp_path / "empty-cache"
    other.mkdir()
    (other / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    monkeypatch.setenv("NIX_CONFIG", nix_config(other))
    with pytest.raises(nix.NotAvailableError) as info:
        nix.realise([path])
    assert info.value.paths == [path]
    assert "no configured substituter has" in str(info.value)
    assert "\n" not in str(info.value)
    assert not nix.is_valid(path)


def test_missing_nix_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NixError, match=r"^Nix is not installed \(no nix-store on PATH\): "
                                       r"install Nix, see https://nixos.org/download$"):
        nix.realise(["/nix/store/vqi5a732325gndx1z2cvbw85isdvhy02-libfoo-1"])


def test_not_a_store_path_is_refused_before_nix_runs() -> None:
    with pytest.raises(NixError, match="not a store path"):
        nix.realise(["/etc/passwd"])


def test_delete_refuses_a_live_path_and_copy_needs_no_config(nix_cache: NixCache,
                                                             tmp_path: Path) -> None:
    path = nix_cache.add("alive")
    root = tmp_path / "root"
    subprocess.run(["nix-store", "--add-root", str(root), "--indirect", "--realise", path],
                   check=True, capture_output=True)
    with pytest.raises(NixError, match="deleting store paths failed"):
        nix.delete_paths([path])
    assert nix.is_valid(path)
    root.unlink()
    nix.delete_paths([path])
    assert not nix.is_valid(path)


# ---------------------------------------------------------------- building from nixpkgs

FAKE_NIXPKGS = """\
{ ... }: {
  libfoo = derivation { name = "libfoo-1.0"; system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/lib; echo @NONCE@ > $out/lib/libfoo.so.1" ]; };
  broken = derivation { name = "broken-1.0"; system = builtins.currentSystem;
    builder = "/bin/sh"; args = [ "-c" "echo something went wrong >&2; exit 3" ]; };
}
"""

FAKE_FLAKE = """\
{
  outputs = { self }: {
    legacyPackages.x86_64-linux.libfoo = derivation { name = "libfoo-2.0";
      system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "/bin/mkdir -p $out/lib; echo @NONCE@ > $out/lib/libfoo.so.2" ]; };
  };
}
"""


@pytest.fixture
def fake_nixpkgs(tmp_path: Path, nix_cache: NixCache, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "nixpkgs"
    repo.mkdir()
    (repo / "default.nix").write_text(FAKE_NIXPKGS.replace("@NONCE@", os.urandom(8).hex()))
    monkeypatch.setenv("NIX_PATH", f"nixpkgs={repo}")
    return repo


def test_build_attr_builds_from_nixpkgs_in_nix_path(fake_nixpkgs: Path) -> None:
    built = nix.build_attr("libfoo", "out")
    assert nix.is_store_path(built) and built.endswith("-libfoo-1.0")
    assert (Path(built) / "lib/libfoo.so.1").exists()


def test_build_attr_uses_the_flake_registry_without_nix_path(
        tmp_path: Path, nix_cache: NixCache, monkeypatch: pytest.MonkeyPatch) -> None:
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(FAKE_FLAKE.replace("@NONCE@", os.urandom(8).hex()))
    registry = tmp_path / "registry.json"
    registry.write_text('{"version": 2, "flakes": [{"from": {"type": "indirect", "id": '
                        f'"nixpkgs"}}, "to": {{"type": "path", "path": "{flake}"}}}}]}}')
    monkeypatch.setenv("NIX_PATH", "")
    monkeypatch.setenv("NIX_CONFIG", nix_config(nix_cache.dir, f"flake-registry = {registry}"))
    built = nix.build_attr("libfoo", "out")
    assert (Path(built) / "lib/libfoo.so.2").exists()


def test_a_failing_build_is_one_clear_error(fake_nixpkgs: Path) -> None:
    with pytest.raises(NixError) as info:
        nix.build_attr("broken", "out")
    message = str(info.value)
    assert message.startswith("building broken.out from <nixpkgs> failed: builder for")
    assert message.endswith("failed with exit code 3 (last log line: something went wrong)")
    assert "\n" not in message


def test_a_missing_attribute_is_one_clear_error(fake_nixpkgs: Path) -> None:
    with pytest.raises(NixError, match="attribute 'nope'"):
        nix.build_attr("nope", "out")


def test_build_attr_refuses_expression_syntax() -> None:
    with pytest.raises(NixError, match="not a nixpkgs attribute"):
        nix.build_attr('x"; builtins.abort "y', "out")


# ---------------------------------------------------------------- Ctrl-C


REALISE_SCRIPT = """\
import sys
from nixld import nix
try:
    nix.realise(sys.argv[1:], quiet=True)
except KeyboardInterrupt:
    sys.exit(130)
print("finished")
"""


def test_sigint_mid_realise_stops_nix_and_leaves_the_path_absent(
        nix_cache: NixCache, slow_cache: tuple[str, threading.Event]) -> None:
    need_tool("nix-store")
    url, requested = slow_cache
    path = nix_cache.publish("interrupted")
    env = dict(os.environ, PYTHONPATH=str(REPO),
               NIX_CONFIG=f"substituters = {url}\ntrusted-public-keys = {signing_key()[1]}\n"
                          "narinfo-cache-negative-ttl = 0\n")
    child = subprocess.Popen([sys.executable, "-c", REALISE_SCRIPT, path], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert requested.wait(60), "Nix never asked for the NAR"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)  # a real signal, to the real process
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "finished" not in out
    assert "Traceback" not in err
    assert not nix.is_valid(path)
    # no nix-store child is left behind
    ps = subprocess.run(["ps", "-eo", "args"], check=True, capture_output=True, text=True).stdout
    assert path not in ps


def test_progress_line_on_a_terminal(nix_cache: NixCache) -> None:
    import pexpect
    blob = os.urandom(200 * 1024)
    path = nix_cache.publish("shown", {"lib/libshown.so.1": blob})
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = pexpect.spawn(sys.executable, ["-c", f"from nixld import nix; nix.realise([{path!r}])"],
                          env=env, encoding="utf-8", timeout=60)
    child.expect_exact("nixld-hook: fetching 1 store path (204.8 KiB download)")
    child.expect_exact("\r\x1b[Kfetched 1/1 paths\r\n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert nix.is_valid(path)


def test_progress_counts_the_bytes_of_an_http_download(nix_cache: NixCache, http_cache: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blob = os.urandom(1024 * 1024)
    path = nix_cache.publish("fetched", {"lib/libfetched.so.1": blob})
    monkeypatch.setenv("NIX_CONFIG", f"substituters = {http_cache}\n"
                       f"trusted-public-keys = {signing_key()[1]}\n")
    out = io.StringIO()
    progress = nix.Progress(out, live=True)
    nix.realise([path], progress=progress)
    assert nix.is_valid(path)
    assert progress.paths_done == 1
    # the NAR's bytes (xz of random data: a little more than the file), nothing else
    assert len(blob) <= sum(progress._transfers.values()) < len(blob) + 64 * 1024
    assert out.getvalue().endswith("fetched 1/1 paths, 1.0 MiB of 1.0 MiB\n")


UNTRUSTED_DRY_RUN = """\
warning: ignoring untrusted substituter 'file:///tmp/other'
warning: ignoring untrusted substituter 'https://cache.example.org'
don't know how to build these paths:
  /nix/store/d3gl1kzxzsk6q9zaz8k7pr14w0dq5qg0-t
"""


def test_parse_dry_run_names_the_substituters_the_daemon_ignored() -> None:
    plan = nix.parse_dry_run(UNTRUSTED_DRY_RUN)
    assert plan.unavailable == ["/nix/store/d3gl1kzxzsk6q9zaz8k7pr14w0dq5qg0-t"]
    assert plan.ignored == ["file:///tmp/other", "https://cache.example.org"]
    err = nix.trust_error(UNTRUSTED_DRY_RUN)
    assert isinstance(err, nix.UntrustedSubstituterError) and err.exit_code == 5
    assert str(err).startswith("the Nix daemon ignores the substituters file:///tmp/other, "
                               "https://cache.example.org: you are not a trusted user")
    assert "`trusted-substituters`" in str(err) and "`trusted-users`" in str(err)


def test_an_unsigned_substitute_in_internal_json_is_its_own_error() -> None:
    line = ('@nix {"action":"msg","level":0,"msg":"\\u001b[35;1mwarning:\\u001b[0m the '
            "substitute for '/nix/store/5g0dir7fxmvvh80f1g3k1hwlpmv0qfh7-ia' from "
            "'file:///c' is not signed by any of the keys in 'trusted-public-keys'\"}\n")
    err = nix.trust_error(line)
    assert isinstance(err, nix.UnsignedPathError)
    assert (err.path, err.substituter) == ("/nix/store/5g0dir7fxmvvh80f1g3k1hwlpmv0qfh7-ia",
                                           "file:///c")
    assert nix.trust_error("error: build of '/nix/store/x' failed\n") is None


def test_resolve_quiet_still_says_why_every_candidate_failed(
        world: world_mod.World, world_env: dict[str, str], tmp_path: Path) -> None:
    """--quiet hides progress, never the reason: "see the messages above" has
    messages above it."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    (empty / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    env = dict(world_env, NIX_CONFIG=nix_config(empty))
    r = run_cli("resolve", "--yes", "--quiet", str(world.binaries["bzip2"]), env=env,
                timeout=300)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert lines[-1] == ("nixld-hook: still missing: libbz2.so.1.0 (every candidate failed "
                         "to install; see the messages above)")
    reasons = [ln for ln in lines if ln.startswith("nixld-hook: cannot install ")]
    assert reasons and all(f"(asked file://{empty};" in ln for ln in reasons), r.stderr
