"""`nixld-hook install` / `uninstall` / `init`: the start-up files, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nixld import shell
from nixld.config import load_config
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.unit

TOOL = "/opt/nixld hook/bin/nixld-hook"  # a space, to prove the quoting


@pytest.mark.parametrize("original", [
    None,  # no file yet: install creates it, uninstall deletes it
    "",  # an empty file stays an empty file
    "alias ll='ls -l'\n",
    "export A=1",  # no trailing newline: install adds one, uninstall takes it back
    "x=1\n\n\n",
    "# only a comment, then CRLF\r\n",
    "\n",
    "caf\xe9 \udcff bytes\n",  # not UTF-8: kept as it was
])
@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_install_twice_then_uninstall_restores_bytes(
        xdg: Path, sh: str, original: str | None) -> None:
    rc = shell.rc_file(sh)
    if original is not None:
        rc.parent.mkdir(parents=True, exist_ok=True)
        rc.write_bytes(original.encode("utf-8", "surrogateescape"))
    before = rc.read_bytes() if original is not None else None

    assert [c.action for c in shell.install(sh, TOOL)] == ["added"]
    after_once = rc.read_bytes()
    assert [c.action for c in shell.install(sh, TOOL)] == ["unchanged"]
    assert rc.read_bytes() == after_once
    if before is not None:
        assert after_once.startswith(before)
    assert after_once.count(shell.BEGIN.encode()) == 1
    assert shell.installed_shells() == [sh]

    assert [c.action for c in shell.uninstall(sh)] == ["removed"]
    if before is None:
        assert not rc.exists()
    else:
        assert rc.read_bytes() == before
    assert [c.action for c in shell.uninstall(sh)] == ["absent"]
    assert shell.installed_shells() == []


def test_block_in_the_middle_keeps_text_after_it(xdg: Path) -> None:
    rc = shell.rc_file("bash")
    rc.write_text("a=1\n")
    shell.install("bash", TOOL)
    with rc.open("a") as f:
        f.write("b=2\n")
    shell.uninstall("bash")
    assert rc.read_text() == "a=1\nb=2\n"


def test_new_tool_path_updates_the_block_in_place(xdg: Path) -> None:
    rc = shell.rc_file("zsh")
    rc.write_text("before\n")
    shell.install("zsh", TOOL)
    rc.write_text(rc.read_text() + "after\n")
    assert [c.action for c in shell.install("zsh", "/new/nixld-hook")] == ["updated"]
    text = rc.read_text()
    assert "/new/nixld-hook" in text and TOOL not in text
    assert text.startswith("before\n") and text.endswith("after\n")
    shell.uninstall("zsh")
    assert rc.read_text() == "before\nafter\n"


def test_zdotdir_and_xdg_config_home(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zdot = xdg / "zdot"
    monkeypatch.setenv("ZDOTDIR", str(zdot))
    assert shell.rc_file("zsh") == zdot / ".zshrc"
    assert shell.rc_file("fish") == xdg / ".config" / "fish" / "conf.d" / "nixld.fish"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert shell.rc_file("fish") == xdg / ".config" / "fish" / "conf.d" / "nixld.fish"


def test_symlinked_rc_file_stays_a_symlink(xdg: Path) -> None:
    target = xdg / "dotfiles" / "bashrc"
    target.parent.mkdir()
    target.write_text("x=1\n")
    os.symlink(target, xdg / ".bashrc")
    target.chmod(0o600)
    shell.install("bash", TOOL)
    assert (xdg / ".bashrc").is_symlink()
    assert shell.BEGIN in target.read_text()
    assert target.stat().st_mode & 0o777 == 0o600
    shell.uninstall("bash")
    assert target.read_text() == "x=1\n"


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_block_sources_the_static_file_with_the_tool_path(xdg: Path, sh: str) -> None:
    shell.install(sh, TOOL)
    text = shell.rc_file(sh).read_text()
    hook = shell.hook_file(sh)
    assert str(hook) in text
    assert TOOL in text
    assert "nixld-hook init" not in text  # no Python at shell start


def test_hook_file_found_in_this_checkout() -> None:
    for sh in shell.SHELLS:
        assert shell.hook_file(sh).read_text().startswith(f"# nixld-hook for {sh}")


def test_cli_install_uninstall_and_auto_accept(xdg: Path) -> None:
    result = run_cli("install", "--shell", "all", "--auto-accept")
    assert result.returncode == 0, result.stderr
    assert "bash: added" in result.stdout and "auto-accept: turned on" in result.stdout
    assert load_config().auto_accept is True
    assert sorted(shell.installed_shells()) == ["bash", "fish", "zsh"]
    again = run_cli("install", "--auto-accept")
    assert "bash: unchanged" in again.stdout and "auto-accept: already on" in again.stdout
    result = run_cli("uninstall")
    assert result.returncode == 0
    assert shell.installed_shells() == []
    assert not (xdg / ".bashrc").exists()


def test_cli_bad_shell_is_a_usage_error(xdg: Path) -> None:
    result = run_cli("install", "--shell", "tcsh")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_unwritable_rc_file_is_one_clear_line(xdg: Path) -> None:
    if os.geteuid() == 0:
        # root ignores modes; a directory where the file should be fails for all.
        (xdg / ".bashrc").mkdir()
        result = run_cli("install", "--shell", "bash")
        assert result.returncode != 0
        assert result.stderr.startswith("nixld-hook: error: ")
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_init_prints_tool_path_then_hook(xdg: Path, sh: str, tmp_path: Path) -> None:
    # A `nixld-hook` on PATH is what init embeds when run as `python -m nixld`.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "nixld-hook"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} -m nixld \"$@\"\n")
    tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    result = run_cli("init", sh, env=env)
    assert result.returncode == 0
    first, rest = result.stdout.split("\n", 1)
    assert str(tool) in first
    assert rest == shell.hook_file(sh).read_text()


def test_init_is_fast_and_light(tmp_path: Path) -> None:
    code = ("import sys, time; t=time.perf_counter(); from nixld.cli import main; "
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['init', 'bash'])\n"
            "bad = [m for m in ('elftools', 'zstandard', 'nixld.elf', 'nixld.loader') "
            "if m in sys.modules]\n"
            "print(bad, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), check=True).stdout
    bad, seconds = out.rsplit(" ", 1)
    assert bad == "[]"
    assert float(seconds) < 0.2


def test_init_under_eval_is_quick(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = run_cli("init", "zsh")
    assert result.returncode == 0
    assert time.perf_counter() - start < 5

