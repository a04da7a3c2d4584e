"""`nixld-hook demo`: the whole story on the small world, twice, and one line
when the world cannot be built."""

from __future__ import annotations

import os
import shutil

from nixld import demo as w
from tests.conftest import need_tool, run_cli


def test_demo_tells_the_whole_story_and_is_idempotent(world: w.World) -> None:
    home = world.root.parent
    env = dict(os.environ, NIXLD_WORLD_HOME=str(home))
    try:
        first = run_cli("demo", env=env, timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        out = first.stdout
        assert "libjq.so.1: cannot open shared object file" in out
        assert out.index("[exit status 127]") < out.index("$ nixld-hook explain")
        assert "jq (lib)" in out  # the plan explain proposes
        assert "installed jq, oniguruma" in first.stderr  # the chain, in two rounds
        assert out.rstrip().splitlines()[-1].startswith("Run `nixld-hook demo` again")
        assert "jq-1.6\n[exit status 0]" in out
        # The shell chain: bash with the hook, the shim at /lib64.
        chain = out.split("bash with the hook", 1)[1]
        assert chain.index("demo$ ./jq --version\n") < chain.index(
            "libjq.so.1: cannot open shared object file") < chain.index(
            "Install and remember for this binary?") < chain.index("run `./jq --version` now?")
        last = chain.split("# the next plain run: through the shim, no prompt\n", 1)[1]
        assert last.startswith("jq-1.6\ndemo$ "), last
        assert "The plain ./jq started through the shim" in last
        second = run_cli("demo", env=env, timeout=300)
        assert second.returncode == 0, second.stderr
        assert "world (reused)" in second.stdout
        assert "[exit status 127]" in second.stdout  # the story starts afresh
    finally:
        shutil.rmtree(home / "demo-home", ignore_errors=True)
        shutil.rmtree(home / "demo-shell-home", ignore_errors=True)


def test_demo_in_an_unusable_place_says_so_in_one_line() -> None:
    need_tool("nix-store")
    res = run_cli("demo", env=dict(os.environ, NIXLD_WORLD_HOME="/proc/nixld-no-such-dir"))
    assert res.returncode == 1
    assert res.stderr == ("nixld-hook: error: cannot build the test world in "
                          "/proc/nixld-no-such-dir: No such file or directory\n")
