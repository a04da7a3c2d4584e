"""First contact on NixOS without a shim: the binary's interpreter is stub-ld.

A stub-ld stand-in (tests/fixtures/stub_ld.c: prints NixOS's message, exits
127) is the ELF interpreter of the world's Debian binaries, either patched in
(in a real bash with the hook, at a terminal) or, for unmodified binaries,
bind-mounted at /lib64/ld-linux-x86-64.so.2 in a private mount namespace.
The system's own sh (/run/current-system/sw/bin/sh, on a tmpfs over /run in
the namespace) is a Nix-built sh: Debian's dash in a store path, its
interpreter the world's glibc ld.so in the store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from nixld import demo as world_mod
from nixld import nix
from tests.conftest import REPO, need_root, need_tool, run_cli
from tests.fixtures.build import build_stub_ld
from tests.fixtures.shell_session import USER_RC, tool_dir

pytestmark = pytest.mark.slow

BZIP2_HELP = "bzip2, a block-sorting file compressor"
ASK = "Install and remember for this binary?"
SHIM_HINT = "programs.nixld.enable = true;"
STUB_SAYS = "NixOS cannot run dynamically linked executables intended for generic"
DEBIAN_LD = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"  # the real file, not /lib64's link


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tool("gcc")
    return build_stub_ld(tmp_path_factory.mktemp("stub-ld"))


@pytest.fixture(scope="module")
def nix_sh(world: world_mod.World, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store path holding bin/sh whose PT_INTERP is the world's store ld.so."""
    tree = tmp_path_factory.mktemp("nix-sh") / "dash-nixld-test"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2("/bin/dash", tree / "bin" / "sh")
    subprocess.run(["patchelf", "--set-interpreter", str(world.ld_so), str(tree / "bin/sh")],
                   check=True)
    path = nix.add_to_store(tree)
    out = subprocess.run([f"{path}/bin/sh", "-c", "echo nix-sh"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == "nix-sh\n"
    return path


# Run first inside `unshare -m`: /run/current-system/sw/bin/sh is the Nix-built sh.
NIXOS_RUN = """
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/current-system/sw/bin
ln -s "$NIX_SH/bin/sh" /run/current-system/sw/bin/sh
"""


def stubbed(stub: Path, world: world_mod.World, dest: Path) -> Path:
    tool = dest / "bzip2"
    shutil.copy2(world.binaries["bzip2"], tool)
    subprocess.run(["patchelf", "--set-interpreter", str(stub), str(tool)], check=True)
    return tool


class Shell:
    """bash with the hook, at a terminal, on the NixOS-like /run."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        need_root()
        need_tool("unshare")
        home = Path(env["HOME"])
        rc = home / ".bashrc"
        rc.write_text(USER_RC["bash"])
        self.env = {**env, "PATH": f"{tool_dir(tmp_path)}:/usr/bin:/bin",
                    "PYTHONPATH": str(REPO), "TERM": "dumb", "CI": ""}
        result = run_cli("install", "--shell", "bash", env=self.env)
        assert result.returncode == 0, result.stderr
        script = NIXOS_RUN + f'exec bash --noprofile --rcfile "{rc}" -i'
        self.child = pexpect.spawn("unshare", ["-m", "--propagation", "private", "bash", "-c",
                                               script], env=self.env, cwd=str(tmp_path),
                                   encoding="utf-8", timeout=60, dimensions=(40, 200))
        self.prompt = 1
        self.child.expect_exact("P1> ")

    def type(self, line: str, until: str | None = None) -> str:
        self.child.send(line + "\r")
        if until is None:
            self.prompt += 1
            until = f"P{self.prompt}> "
        self.child.expect_exact(until)
        return str(self.child.before)

    def close(self) -> None:
        self.child.sendeof()
        self.child.close(force=True)


@pytest.fixture
def nixos_env(world_env: dict[str, str], nix_sh: str) -> dict[str, str]:
    """No NIX_LD: the real loader is found as on NixOS, from the system's sh."""
    env = dict(world_env, NIX_SH=nix_sh)
    del env["NIX_LD"]
    return env


@pytest.fixture
def shell(tmp_path: Path, nixos_env: dict[str, str]) -> Iterator[Shell]:
    s = Shell(tmp_path, nixos_env)
    yield s
    s.close()


def test_behind_stub_ld_the_prompt_resolves_then_runs_it_now(
        shell: Shell, stub: Path, world: world_mod.World, tmp_path: Path) -> None:
    stubbed(stub, world, tmp_path)
    before = shell.type("./bzip2 --help", until=ASK)
    assert "Could not start dynamically linked executable: ./bzip2" in before
    assert STUB_SAYS in before
    assert "which is no loader here (NixOS's stub-ld" in before
    assert "libbz2.so.1.0" in before
    installed = shell.type("y", until="now? [Y/n]")
    assert "now finds every library" in installed
    assert installed.endswith("run `nixld-hook run ./bzip2 --help` ")  # through the loader
    ran = shell.type("y")
    assert BZIP2_HELP in ran
    assert (before + installed + ran).count(SHIM_HINT) == 1  # said once

    # Resolved, still behind stub-ld: no second prompt, one line to run it.
    again = shell.type("./bzip2 --help")
    assert STUB_SAYS in again and ASK not in again and "now?" not in again
    hook = [ln for ln in again.splitlines() if ln.startswith("nixld-hook:")]
    assert len(hook) == 1 and "run: nixld-hook run ./bzip2" in hook[0], again
    assert SHIM_HINT in hook[0] and "lacks" not in hook[0]
    assert BZIP2_HELP in shell.type("nixld-hook run ./bzip2 --help")


# In a private mount namespace: the stand-in at /lib64/ld-linux-x86-64.so.2, so
# every program with Debian's interpreter path meets it. Only programs started
# through the real loader explicitly ($LD python3 ...) still run.
LIB64_STUB = NIXOS_RUN + """
set -u
mount -t tmpfs -o mode=0755 tmpfs "$STAGE"
cp "$STUB" "$STAGE/ld-linux-x86-64.so.2"
mount --bind "$STAGE" /lib64
nixld() { "$LD" "$PY" -m nixld "$@"; }
"$TOOL" --help 2>"$OUT/plain.err"; echo $? >"$OUT/plain.rc"
/usr/bin/cat /dev/null 2>"$OUT/cat.err"; echo $? >"$OUT/cat.rc"
nixld handle --shell bash --status 127 --cwd "$OUT" -- "$TOOL --help" 2>"$OUT/handle.err"
nixld doctor --json >"$OUT/doctor.json" || true
if [ -n "${RESOLVED:-}" ]; then
  nixld run "$TOOL" --help 2>"$OUT/run.err"; echo $? >"$OUT/run.rc"
fi
"""


def in_lib64_stub_namespace(stub: Path, env: dict[str, str], tool: Path, out: Path,
                            resolved: bool) -> dict[str, str]:
    stage = out / "stage"
    stage.mkdir(parents=True)
    full = {**env, "STAGE": str(stage), "STUB": str(stub), "LD": DEBIAN_LD,
            "PY": os.path.realpath(sys.executable), "TOOL": str(tool), "OUT": str(out),
            "PYTHONPATH": str(REPO), "RESOLVED": "1" if resolved else ""}
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/bash", "-c",
                        LIB64_STUB], env=full, capture_output=True, text=True, timeout=180,
                       check=False)
    assert r.returncode == 0, r.stderr
    return {f.name: f.read_text() for f in out.iterdir() if f.is_file()}


def test_unmodified_binaries_behind_stub_ld_at_lib64(
        stub: Path, world: world_mod.World, nixos_env: dict[str, str], tmp_path: Path) -> None:
    need_root()
    need_tool("unshare")
    tool = tmp_path / "bzip2"
    shutil.copy2(world.binaries["bzip2"], tool)  # PT_INTERP /lib64/ld-linux-x86-64.so.2
    got = in_lib64_stub_namespace(stub, nixos_env, tool, tmp_path / "before", resolved=False)
    assert got["plain.rc"] == "127\n"
    assert got["plain.err"].startswith(f"Could not start dynamically linked executable: {tool}")
    assert got["cat.rc"] == "127\n" and STUB_SAYS in got["cat.err"]  # Debian's own cat too
    assert got["handle.err"] == (
        f"nixld-hook: {tool} needs the ELF interpreter /lib64/ld-linux-x86-64.so.2, which is "
        "no loader here (NixOS's stub-ld: no shim is enabled): enable the shim (NixOS: "
        f"programs.nixld.enable = true;), or run: nixld-hook run {tool}; it also lacks "
        f"libbz2.so.1.0: first run: nixld-hook resolve {tool}\n")

    doctor = {c["name"]: c for c in json.loads(got["doctor.json"])["checks"]}
    assert not doctor["shim"]["ok"]
    assert "is no loader (NixOS's stub-ld: no shim is enabled)" in doctor["shim"]["detail"]
    assert doctor["real loader"]["ok"]
    assert doctor["real loader"]["detail"] == (
        f"the interpreter of /run/current-system/sw/bin/sh {world.ld_so} exists")

    resolved = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "/bin/bash", "-c",
         NIXOS_RUN + 'exec "$PY" -m nixld resolve --yes --quiet "$TOOL"'],
        env={**nixos_env, "PY": sys.executable, "TOOL": str(tool), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300, check=False)
    assert resolved.returncode == 0, resolved.stderr
    got = in_lib64_stub_namespace(stub, nixos_env, tool, tmp_path / "after", resolved=True)
    assert got["plain.rc"] == "127\n"  # a plain run still meets stub-ld
    assert got["handle.err"] == (
        f"nixld-hook: {tool} needs the ELF interpreter /lib64/ld-linux-x86-64.so.2, which is "
        "no loader here (NixOS's stub-ld: no shim is enabled): enable the shim (NixOS: "
        f"programs.nixld.enable = true;), or run: nixld-hook run {tool}\n")
    assert got["run.rc"] == "0\n" and BZIP2_HELP in got["run.err"], got["run.err"]
