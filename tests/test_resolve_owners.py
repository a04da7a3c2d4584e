"""The ranking on the NixOS-like world, among its traps (an FHS env, application
and `-bin` bundles, alias attributes, non-top-level copies, dev outputs):
`explain` names the owning package of each directly missing soname, and
`resolve --yes` ends with the owner of every library of each closure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nixld import demo as w
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

OWNERS = ("provider", "fixture")


def owner_paths(world: w.World) -> set[str]:
    return {i.store_path for i in world.items if i.role in OWNERS}


def test_explain_names_the_owner_of_each_missing_soname(world: w.World,
                                                        world_env: dict[str, str]) -> None:
    owners = owner_paths(world)
    right, wrong = 0, []
    for name, binary in sorted(world.binaries.items()):
        result = run_cli("explain", "--json", str(binary), env=world_env)
        assert result.returncode == 0, result.stderr
        for missing in json.loads(result.stdout)["missing"]:
            chosen = missing["chosen"]
            if chosen and chosen["store_path"] in owners:
                right += 1
            else:
                wrong.append(f"{name}: {missing['soname']} -> {chosen and chosen['attr']}")
    assert right and not wrong, wrong


def test_resolve_ends_with_the_owner_for_the_closure(world: w.World, world_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """After `resolve --yes`, every library of the closure (as explain's loader
    emulation resolves it, the entry applied) comes from its owner."""
    owners = owner_paths(world)
    glibc = {i.store_path for i in world.items if i.role == "glibc"}
    right, wrong = 0, []
    for name, binary in sorted(world.binaries.items()):
        env = dict(world_env, XDG_STATE_HOME=str(tmp_path / name))  # each on its own
        try:
            result = run_cli("resolve", "--yes", "--json", str(binary), env=env, timeout=300)
            assert result.returncode == 0, (name, result.stderr)
            explained = run_cli("explain", "--json", str(binary), env=env)
        finally:  # its profile links are gc roots: drop them, as world_env does
            for link in (tmp_path / name / "nixld").glob("profile*"):
                link.unlink()
        doc = json.loads(explained.stdout)
        assert doc["complete"], (name, doc["missing"])
        for need in doc["needed"]:
            store_path = "/".join(need["path"].split("/")[:4])
            if store_path in glibc:
                continue
            if store_path in owners:
                right += 1
            else:
                wrong.append(f"{name}: {need['soname']} -> {store_path}")
    assert not wrong, wrong
    assert right >= 35  # the closures hold that many libraries (curl alone 25)
