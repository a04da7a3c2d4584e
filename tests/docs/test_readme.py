"""The README's test command is what CI runs."""

import re

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = _shell_blocks(quick)
    assert len(blocks) == 2, "the quick start has exactly two commands"
    test_command = blocks[1].strip()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, f".ci/run must run the README's test command: {test_command}"
