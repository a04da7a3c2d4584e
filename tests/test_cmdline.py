"""Splitting a command line into the programs it ran, and finding their files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nixld.cmdline import SimpleCommand, programs, resolve_program, split_commands

pytestmark = pytest.mark.unit


def names(line: str, shell: str = "bash") -> list[str]:
    return [c.name for c in split_commands(line, shell)]


@pytest.mark.parametrize(("line", "expected"), [
    ("./tool", ["./tool"]),
    ("cd x && ./tool a b", ["cd", "./tool"]),
    ("make && ./a.out", ["make", "./a.out"]),
    ("./a | grep x | sort -u", ["./a", "grep", "sort"]),
    ("a; b || c & d", ["a", "b", "c", "d"]),
    ("(cd sub; ./tool)", ["cd", "./tool"]),
    ("FOO=1 BAR='a b' ./tool", ["./tool"]),
    ("env -i -u HOME X=1 ./tool", ["./tool"]),
    ("command ./tool", ["./tool"]),
    ("exec -a name ./tool", ["./tool"]),
    ("nohup ./tool &", ["./tool"]),
    ("time -p ./tool", ["./tool"]),
    ("nice -n 5 ./tool", ["./tool"]),
    ("./tool > out.txt 2>&1 < in", ["./tool"]),
    ("2>/dev/null ./tool", ["./tool"]),
    ("if ./tool; then ./other; fi", ["./tool", "./other", "fi"]),
    ("true | (\n\texit 127\n) | true", ["true", "exit", "true"]),
    ("./tool # a comment", ["./tool"]),
    ("'./my tool' --x", ["./my tool"]),
    ("echo $(./inner)", ["echo", "./inner"]),
    ("line one\n./two", ["line", "./two"]),
])
def test_split(line: str, expected: list[str]) -> None:
    assert names(line) == expected


def test_arguments_are_kept() -> None:
    assert split_commands("FOO=1 ./tool --flag 'two words'") == [
        SimpleCommand("./tool", ("--flag", "two words"))]


def test_sudo_is_flagged_and_its_options_skipped() -> None:
    assert split_commands("sudo -u alice -E ./tool x") == [
        SimpleCommand("./tool", ("x",), sudo=True)]
    assert split_commands("sudo -- ./tool") == [SimpleCommand("./tool", (), sudo=True)]


@pytest.mark.parametrize("line", ["command -v ./tool", "sudo -l", "env", "FOO=1", "sudo"])
def test_lines_that_run_no_program(line: str) -> None:
    assert split_commands(line) == []


def test_fish_keywords() -> None:
    assert names("and ./tool; or not ./other", "fish") == ["./tool", "./other"]
    assert names("begin; ./tool; end", "fish") == ["./tool", "end"]


def test_unclosed_quote_gives_nothing() -> None:
    assert split_commands("./tool 'unclosed") == []


@given(st.text(max_size=200))
def test_never_raises(line: str) -> None:
    for command in split_commands(line):
        assert command.name


def test_resolve_relative_to_the_shells_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    tool = tmp_path / "sub" / "tool"
    tool.write_text("")
    assert resolve_program("./sub/tool", tmp_path, None) == tmp_path / "./sub/tool"
    assert resolve_program("sub/tool", tmp_path, None) == tmp_path / "sub/tool"
    assert resolve_program(str(tool), "/", None) == tool
    assert resolve_program("./nope", tmp_path, None) is None
    assert resolve_program("./sub", tmp_path, None) is None  # a directory runs nothing


def test_resolve_on_path_first_executable_wins(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "tool").write_text("")  # not executable: skipped, as the shell skips it
    (b / "tool").write_text("")
    (b / "tool").chmod(0o755)
    (c / "tool").write_text("")
    (c / "tool").chmod(0o755)
    path = os.pathsep.join(map(str, (a, b, c)))
    assert resolve_program("tool", "/", path) == b / "tool"
    assert resolve_program("nope", "/", path) is None
    assert resolve_program("tool", "/", None) is None


def test_empty_path_entry_is_the_cwd(tmp_path: Path) -> None:
    (tmp_path / "tool").write_text("")
    (tmp_path / "tool").chmod(0o755)
    assert resolve_program("tool", tmp_path, ":/nonexistent") == tmp_path / "tool"


def test_programs_skip_builtins_and_duplicates(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("false", "tool"):
        (bindir / name).write_text("")
        (bindir / name).chmod(0o755)
    found = programs("false; tool && tool | ./tool", shell="bash", cwd=bindir,
                     path_env=str(bindir))
    assert [p.path for p in found] == [bindir / "tool"]
    assert [p.command.name for p in found] == ["tool"]
