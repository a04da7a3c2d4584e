"""End to end in real bash, zsh and fish on the NixOS-like test world.

A foreign Debian binary whose interpreter is the project's shim fails for a
missing library; the hook catches it, the prompt asks on the terminal (the
test answers as a terminal does, with a carriage return), the real Nix
substitutes the provider from the world's file:// binary cache, and the next
plain run of the binary works with no prompt and no change to the shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from nixld import demo as world_mod
from tests.conftest import need
from tests.fixtures.shell_session import SHELLS, Session, ShellSetup, hook_lines

ASK = "Install and remember for this binary?"
BZIP2_HELP = "bzip2, a block-sorting file compressor"
pytestmark = pytest.mark.slow


def shimmed(world: world_mod.World, name: str = "bzip2") -> Path:
    need(world.shimmed, "the world has no shimmed binaries (shim/ not built)")
    return Path(world.shimmed[name])


@pytest.fixture(params=SHELLS)
def sh(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_session(sh: str, tmp_path: Path, world_env: dict[str, str],
                 setup: ShellSetup | None = None) -> Session:
    """A session on the world; interactive unless `setup` says otherwise."""
    setup = setup or ShellSetup(interactive=True)
    keep = ("NIX_LD", "NIX_LD_LIBRARY_PATH", "NIX_CONFIG", "NIX_INDEX_DATABASE")
    world = {k: world_env[k] for k in keep}
    return Session(sh, tmp_path, replace(setup, env={**world, **setup.env}))


def fail_and_ask(s: Session, line: str) -> str:
    """Type a failing line; return what came before the question."""
    s.child.send(line + "\r")
    s.child.expect_exact(ASK)
    return str(s.child.before)


def answer(s: Session, reply: str, expect: str | None = None) -> str:
    s.child.send(reply + "\r")
    if expect is None:
        s.prompt_no += 1
        s.child.expect_exact(f"P{s.prompt_no}> ")
    else:
        s.child.expect_exact(expect)
    return str(s.child.before)


def assert_runs_plainly(s: Session, tool: Path) -> None:
    out = s.run(f"{tool} --help")
    assert BZIP2_HELP in out, out
    assert ASK not in out and not hook_lines(out), out


def test_yes_then_the_next_plain_run_works(sh: str, tmp_path: Path, world: world_mod.World,
                                           world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        before = fail_and_ask(s, f"{tool} --help")
        assert "error while loading shared libraries: libbz2.so.1.0" in before
        assert "lacks 1 library: libbz2.so.1.0" in before
        out = answer(s, "y", expect="now? [Y/n]")
        assert "now finds every library" in out
        answer(s, "n")
        assert_runs_plainly(s, tool)
        assert s.status() == 0
    finally:
        s.close()


def test_yes_and_run_it_now(sh: str, tmp_path: Path, world: world_mod.World,
                            world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        answer(s, "", expect="now? [Y/n]")  # Enter: yes
        out = answer(s, "")  # Enter: run it now
        assert BZIP2_HELP in out
        assert s.status() != 0 or sh == "fish"  # $? is still the failed run's
    finally:
        s.close()


def test_path_name_in_an_and_list(sh: str, tmp_path: Path, world: world_mod.World,
                                  world_env: dict[str, str]) -> None:
    # `bzip2` found on PATH (the shimmed copy comes first), after a cd and a
    # command that worked: the handler finds the file as the shell did.
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env,
                     ShellSetup(interactive=True, path_dirs=(str(tool.parent),)))
    try:
        joiner = "; and" if sh == "fish" else " &&"
        fail_and_ask(s, f"cd /{joiner} true{joiner} bzip2 --help")
        answer(s, "y", expect="now? [Y/n]")
        answer(s, "n")
        out = s.run("bzip2 --help")
        assert BZIP2_HELP in out and ASK not in out and not hook_lines(out)
    finally:
        s.close()


def test_no_asks_again_next_time(sh: str, tmp_path: Path, world: world_mod.World,
                                 world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        out = answer(s, "n")
        assert "nothing installed" in out and "now?" not in out
        fail_and_ask(s, f"{tool} --help")
        answer(s, "n")
        assert s.status() == 127
    finally:
        s.close()


def test_never_stops_asking(sh: str, tmp_path: Path, world: world_mod.World,
                            world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        assert "will not ask about" in answer(s, "v")
        out = s.run(f"{tool} --help")
        assert "libbz2.so.1.0" in out  # still failing, but nobody asks
        assert ASK not in out and not hook_lines(out)
        assert s.status() == 127
    finally:
        s.close()


def test_choose_then_runs(sh: str, tmp_path: Path, world: world_mod.World,
                          world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        out = answer(s, "c", expect="choice [")
        assert "libbz2.so.1.0:" in out and "1) bzip2" in out
        answer(s, "", expect="now? [Y/n]")
        answer(s, "n")
        assert_runs_plainly(s, tool)
    finally:
        s.close()


def test_always_turns_on_auto_accept(sh: str, tmp_path: Path, world: world_mod.World,
                                     world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    other = shimmed(world, "pigz") if "pigz" in world.shimmed else None
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        out = answer(s, "a")  # auto-accept asks nothing more, not even "run now?"
        assert "auto-accept is on" in out and "now?" not in out
        config = Path(s.env["XDG_CONFIG_HOME"]) / "nixld" / "config.toml"
        assert "auto_accept = true" in config.read_text()
        assert_runs_plainly(s, tool)
        if other is not None:  # the next broken binary is resolved without a question
            out = s.run(f"{other} --version")
            assert ASK not in out and "now finds every library" in out
    finally:
        s.close()


def test_auto_accept_from_environment_reruns_when_opted_in(
        sh: str, tmp_path: Path, world: world_mod.World, world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    config = tmp_path / "home" / ".config" / "nixld" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("rerun = true\n")
    s = open_session(sh, tmp_path, world_env,
                     ShellSetup(interactive=True, env={"NIXLD_AUTO_ACCEPT": "1"}))
    try:
        out = s.run(f"{tool} --help")
        assert ASK not in out
        assert "now finds every library" in out
        assert BZIP2_HELP in out.split("now finds every library", 1)[1]  # re-run
        assert_runs_plainly(s, tool)
    finally:
        s.close()


def test_missing_interpreter_explained_then_nixld_hook_run(
        sh: str, tmp_path: Path, world: world_mod.World, world_env: dict[str, str]) -> None:
    tool = Path(world.no_interp["bzip2"])
    s = open_session(sh, tmp_path, world_env)
    try:
        before = fail_and_ask(s, f"{tool} --help")
        assert "programs.nixld.enable = true;" in before
        answer(s, "y", expect="now? [Y/n]")
        out = answer(s, "y")
        assert BZIP2_HELP in out  # through `nixld-hook run`
        # No shim: a plain run still cannot start; nixld-hook run can.
        out = s.run(f"nixld-hook run {tool} --help")
        assert BZIP2_HELP in out
    finally:
        s.close()


def test_ctrl_c_at_the_prompt_leaves_nothing(sh: str, tmp_path: Path, world: world_mod.World,
                                             world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env)
    try:
        fail_and_ask(s, f"{tool} --help")
        s.child.sendintr()
        s.child.expect(r"P(\d+)> ")
        s.prompt_no = int(s.child.match.group(1))
        assert "Traceback" not in str(s.child.before)
        entries = Path(s.env["XDG_STATE_HOME"]) / "nixld" / "entries"
        assert not entries.exists() or not any(entries.glob("*.entry"))
        assert "still-alive" in s.run("echo still-alive")
        fail_and_ask(s, f"{tool} --help")  # nothing remembered: asked again
        answer(s, "n")
    finally:
        s.close()


def test_without_a_terminal_one_line(sh: str, tmp_path: Path, world: world_mod.World,
                                     world_env: dict[str, str]) -> None:
    tool = shimmed(world)
    s = open_session(sh, tmp_path, world_env, ShellSetup())  # CI=true
    try:
        out = s.run(f"{tool} --help")
        assert hook_lines(out) == [
            f"nixld-hook: {tool} lacks libbz2.so.1.0; run: nixld-hook resolve {tool}"]
        assert s.status() == 127
    finally:
        s.close()


def test_world_binary_fails_before(world: world_mod.World, world_env: dict[str, str]) -> None:
    import subprocess

    tool = shimmed(world)
    result = subprocess.run([str(tool), "--help"], env=world_env, capture_output=True,
                            check=False)
    assert result.returncode == 127
    assert re.search(rb"libbz2\.so\.1\.0", result.stderr)
    assert os.path.exists(world_env["NIX_LD"])


def test_a_library_lacking_a_symbol_version(sh: str, tmp_path: Path, world: world_mod.World,
                                            world_env: dict[str, str]) -> None:
    """The classic "version `GLIBCXX_3.4.30' not found": the shared library path
    (NIX_LD_LIBRARY_PATH) has an older libfoo lacking FOO_1.2; ld.so exits 1.
    The hook still catches it, and the entry puts the newer libfoo first."""
    import shutil
    import subprocess

    need(world.shim is not None, "the world has no shim (shim/ not built)")
    assert world.shim is not None
    tool = tmp_path / "foo-tool"
    shutil.copy2(world.fixtures["foo-tool"], tool)
    subprocess.run(["patchelf", "--set-interpreter", str(world.shim), str(tool)], check=True)
    old = next(i for i in world.items if i.role == "old-version")
    subprocess.run(["nix-store", "--realise", old.store_path], env=world_env, check=True,
                   capture_output=True)
    s = open_session(
        sh, tmp_path, world_env,
        ShellSetup(interactive=True, env={"NIX_LD_LIBRARY_PATH": old.lib_dir}))
    try:
        before = fail_and_ask(s, str(tool))
        assert "version `FOO_1.2' not found" in before
        out = answer(s, "y", expect="now? [Y/n]")
        assert "now finds every library" in out
        out = answer(s, "y")
        assert "foo-tool: ok" in out, out
        out = s.run(str(tool))  # the next plain run: no prompt
        assert "foo-tool: ok" in out and ASK not in out and not hook_lines(out), out
    finally:
        s.close()
