"""The hooks in real interactive bash, zsh and fish, driven through a pty.

Each session gets an isolated HOME/XDG, the user's own start-up file (a
prompt that counts, so every prompt is told apart), and the block that the
real `nixld-hook install` adds; `nixld-hook` on PATH is this checkout. Lines
are typed as a terminal sends them: text, then a carriage return.

The failures come from real ELF files and scripts (tests/fixtures/broken.py
builds them); here CI=true keeps the handler from asking, so it prints its
line. The whole fail -> prompt -> answer -> next run flow, on the test world,
is in tests/e2e/test_hooks_world.py, with `ShellSetup(interactive=True)`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixld import shell as shell_mod
from tests.conftest import REPO, need_tool
from tests.fixtures.broken import MISSING_INTERPRETER, Broken, build_broken
from tests.fixtures.shell_session import (
    SHELLS,
    SUBSHELL_127,
    TIMEOUT,
    Session,
    ShellSetup,
    hook_lines,
)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    return build_broken(tmp_path_factory.mktemp("broken"))


@pytest.fixture
def session(request: pytest.FixtureRequest, tmp_path: Path,
            broken: Broken) -> Iterator[Session]:
    s = Session(request.param, tmp_path, ShellSetup(broken=broken))
    yield s
    s.close()


all_shells = pytest.mark.parametrize("session", SHELLS, indirect=True)


@all_shells
def test_ordinary_failures_silent_and_status_kept(session: Session) -> None:
    for line, status in (("false", 1), ("nixld-no-such-command", 127),
                         (SUBSHELL_127[session.sh], 127), ("true", 0)):
        out = session.run(line)
        assert "nixld-hook" not in out, (line, out)
        assert session.status() == status, line


@all_shells
def test_missing_interpreter_explained_once(session: Session, broken: Broken) -> None:
    out = session.run(f"cd {broken.dir}")
    out = session.run("./bad-interp --flag")
    lines = hook_lines(out)
    assert len(lines) == 1, out
    assert f"./bad-interp needs the ELF interpreter {MISSING_INTERPRETER}" in lines[0]
    assert "run: nixld-hook run ./bad-interp" in lines[0]
    # An empty Enter after the failure does not fire again; $? is untouched.
    assert hook_lines(session.run("")) == []
    assert hook_lines(session.run("   ")) == []
    assert session.status() == 127


@all_shells
def test_path_name_that_fails_to_exec(session: Session, broken: Broken) -> None:
    out = session.run("nixld-broken-tool arg")
    lines = hook_lines(out)
    assert len(lines) == 1, out
    assert f"{broken.path_dir}/nixld-broken-tool needs the ELF interpreter" in lines[0]
    assert "command not found" not in out
    assert session.status() == 127


@all_shells
def test_and_list_and_cd(session: Session, broken: Broken) -> None:
    joiner = "; and" if session.sh == "fish" else " &&"
    out = session.run(f"cd {broken.dir}{joiner} true{joiner} ./bad-script")
    lines = hook_lines(out)
    assert len(lines) == 1, out
    assert "./bad-script: its #! interpreter /nonexistent-nixld-test/bin/sh" in lines[0]


@all_shells
def test_missing_library_one_line_without_asking(session: Session, broken: Broken) -> None:
    session.run(f"cd {broken.dir}")
    out = session.run("./needs-lib | cat")
    assert hook_lines(out) == [
        "nixld-hook: ./needs-lib lacks libnixldfix.so.1; run: nixld-hook resolve ./needs-lib"]


@all_shells
def test_sourced_twice_fires_once(session: Session, broken: Broken) -> None:
    hook = shell_mod.hook_file(session.sh)
    source = "source" if session.sh == "fish" else "."
    session.run(f"{source} {hook}")
    session.run(f"{source} {hook}")
    out = session.run(f"{broken.bad_interp}")
    assert len(hook_lines(out)) == 1, out
    assert session.status() == 127


@pytest.mark.parametrize("session", ["bash", "zsh"], indirect=True)
def test_nounset(session: Session, broken: Broken) -> None:
    session.run("set -u" if session.sh == "bash" else "setopt nounset")
    session.run(f". {shell_mod.hook_file(session.sh)}")
    for line in ("false", "", str(broken.bad_interp), "", "nixld-no-such-command"):
        out = session.run(line)
        assert "unbound" not in out and "parameter not set" not in out, out
    out = session.run(str(broken.bad_interp))
    assert len(hook_lines(out)) == 1


@pytest.mark.parametrize("form", ["string", "array"])
def test_bash_prompt_command_kept_and_not_doubled(tmp_path: Path, broken: Broken,
                                                  form: str) -> None:
    user = ("user_hook() { __u=$((${__u:-0}+1)); }\n"
            + ("PROMPT_COMMAND=(user_hook)\n" if form == "array"
               else "PROMPT_COMMAND='user_hook'\n"))
    s = Session("bash", tmp_path, ShellSetup(broken=broken, user_rc=user))
    try:
        hook = shell_mod.hook_file("bash")
        s.run(f". {hook}")
        s.run(f". {hook}")
        out = s.run("declare -p PROMPT_COMMAND")
        assert out.count("__nixld_prompt") == 1, out
        assert out.count("user_hook") == 1, out
        assert ("declare -a" in out) == (form == "array")
        before = int(re.findall(r"u=(\d+)", s.run('echo "u=$__u"'))[-1])
        after = int(re.findall(r"u=(\d+)", s.run('echo "u=$__u"'))[-1])
        assert after == before + 1
        assert len(hook_lines(s.run(str(broken.bad_interp)))) == 1
        assert s.status() == 127
    finally:
        s.close()


def test_bash_user_int_trap_restored(tmp_path: Path, broken: Broken) -> None:
    s = Session("bash", tmp_path, ShellSetup(broken=broken, user_rc="trap 'echo user-int' INT\n"))
    try:
        assert len(hook_lines(s.run(str(broken.bad_interp)))) == 1
        assert "trap -- 'echo user-int' SIGINT" in s.run("trap -p INT")
    finally:
        s.close()


def test_zsh_other_hooks_and_previous_not_found_handler_kept(tmp_path: Path,
                                                             broken: Broken) -> None:
    user = ("user_precmd() { __u=$(( ${__u:-0} + 1 )) }\nprecmd_functions+=(user_precmd)\n"
            "command_not_found_handler() { print -r -- \"user-cnf $1\"; return 127 }\n")
    s = Session("zsh", tmp_path, ShellSetup(broken=broken, user_rc=user))
    try:
        s.run(f". {shell_mod.hook_file('zsh')}")
        out = s.run("print -r -- ${(j: :)precmd_functions}")
        assert out.count("__nixld_precmd") == 1 and out.count("user_precmd") == 1, out
        out = s.run("nixld-no-such-command")
        assert "user-cnf nixld-no-such-command" in out
        assert hook_lines(out) == []
        assert s.status() == 127
        out = s.run("nixld-broken-tool")
        assert "user-cnf" not in out
        assert len(hook_lines(out)) == 1
        assert "required file not found: nixld-broken-tool" in out
        first = int(re.findall(r"u=(\d+)", s.run('echo "u=$__u"'))[-1])
        assert int(re.findall(r"u=(\d+)", s.run('echo "u=$__u"'))[-1]) == first + 1
    finally:
        s.close()


def test_fish_other_event_handlers_kept(tmp_path: Path, broken: Broken) -> None:
    user = "function user_post --on-event fish_postexec; echo \"user-post $status\"; end\n"
    s = Session("fish", tmp_path, ShellSetup(broken=broken, user_rc=user))
    try:
        out = s.run(str(broken.bad_interp))
        assert "user-post 127" in out
        assert len(hook_lines(out)) == 1
        assert s.status() == 127
    finally:
        s.close()


@pytest.mark.parametrize("sh", SHELLS)
def test_not_hooked_when_not_interactive(sh: str) -> None:
    need_tool(sh)
    hook = shell_mod.hook_file(sh)
    check = {
        "bash": f'. {hook}; echo "[${{PROMPT_COMMAND-}}]"; type -t __nixld_prompt || echo none',
        "zsh": f'. {hook}; echo "[${{precmd_functions-}}]"; whence -w __nixld_precmd || true',
        "fish": f"source {hook}; functions -q __nixld_postexec; or echo none; echo '[]'",
    }[sh]
    out = subprocess.run([sh, "-c", check], capture_output=True, text=True, check=False,
                         timeout=TIMEOUT).stdout
    assert "[]" in out and "__nixld" not in out.replace("__nixld_precmd: none", ""), out


@all_shells
def test_ctrl_c_at_the_prompt_returns_cleanly(session: Session, broken: Broken) -> None:
    session.run(str(broken.bad_interp))
    session.child.send("sleep 5")
    session.child.expect_exact("sleep 5")
    session.child.sendintr()
    time.sleep(0.5)  # let the line editor take the ^C before the next keys
    # bash and zsh draw a new prompt, fish redraws the old one: read its number.
    session.child.send("echo al''ive\r")
    session.child.expect_exact("alive")
    session.child.expect(r"P(\d+)> ")
    session.prompt_no = int(session.child.match.group(1))
    assert hook_lines(str(session.child.before)) == []
    assert "still-alive" in session.run("echo still-alive")


@all_shells
def test_no_python_at_start_or_after_ordinary_commands(session: Session, broken: Broken) -> None:
    # The block sources the static file: starting a shell runs no nixld-hook,
    # and neither do commands that did not fail with 126/127.
    for line in ("true", "false", "", "echo hi | cat"):
        session.run(line)
    assert not session.calls.exists()
    session.run(str(broken.bad_interp))
    assert session.calls.read_text() == "handle\n"


def test_shells_found() -> None:
    for sh in SHELLS:
        need_tool(sh)
    assert shutil.which("bash")
    assert os.path.isdir(REPO / "hooks")


@all_shells
def test_quiet_when_the_tool_is_gone(session: Session, broken: Broken) -> None:
    tool = Path(session.env["PATH"].split(":")[0]) / "nixld-hook"
    tool.chmod(0o644)  # as if uninstalled: the block remains, the tool does not run
    try:
        out = session.run(str(broken.bad_interp))
        assert "nixld-hook" not in out and "ermission denied" not in out, out
        assert session.status() == 127
    finally:
        tool.chmod(0o755)


@all_shells
def test_pipeline_statuses_kept(session: Session, broken: Broken) -> None:
    # The hook runs before the prompt; the pipeline statuses the user's prompt
    # reads afterwards are those the shell reports without any hook.
    show = {"bash": "echo ps=${PIPESTATUS[*]}", "zsh": "echo ps=$pipestatus",
            "fish": "echo ps=$pipestatus"}[session.sh]
    line = f"true | {broken.bad_interp} | true"
    plain = subprocess.run([session.sh, "-c", f"{line}; {show}"], capture_output=True,
                           text=True, check=False).stdout.strip()
    assert "127" in plain
    session.run(line)
    assert plain in session.run(show)


@pytest.mark.slow
def test_installed_package_ships_the_hooks(tmp_path: Path) -> None:
    """A plain install has the hook files; init and install find them there."""
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([str(target / "bin" / "nixld-hook"), "init", "bash"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"__nixld_bin={target / 'bin' / 'nixld-hook'}\n")
    where = subprocess.run(
        [sys.executable, "-c", "from nixld import shell; print(shell.hook_file('fish'))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(target / "nixld" / "hooks" / "nixld.fish")


@all_shells
def test_missing_symbol_version_exits_1_and_is_still_caught(session: Session,
                                                            broken: Broken) -> None:
    # glibc's ld.so exits 1 (not 127) for "version `NIXLDFIX_2' not found".
    session.run(f"cd {broken.dir}")
    out = session.run("./needs-version")
    assert "version `NIXLDFIX_2' not found" in out
    assert hook_lines(out) == [
        "nixld-hook: ./needs-version lacks libnixldver.so.1 version NIXLDFIX_2; "
        "run: nixld-hook resolve ./needs-version"]
    assert session.status() == 1


@all_shells
def test_status_1_starts_python_only_for_a_path(session: Session, broken: Broken,
                                                 tmp_path: Path) -> None:
    script = tmp_path / "fails-with-1"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    for line in ("false", "grep -q nixld-nothing /dev/null", "echo x | grep -q y"):
        assert hook_lines(session.run(line)) == []
        assert session.status() == 1, line
    assert not session.calls.exists(), "no nixld-hook after an everyday status 1"
    # A program run by path that exits 1 by itself: looked at, nothing said.
    out = session.run(str(script))
    assert hook_lines(out) == []
    assert session.status() == 1
    assert session.calls.read_text() == "handle\n"
