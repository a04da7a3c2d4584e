"""One table of library-search cases, run through the search model
(`nixld.search` + the loader emulation: what it predicts ld.so loads, from
which directory, by which rule) and through the real shim (what really
loaded: each `libwho.so` says which directory it is in), so the two cannot
drift. A new search rule gets a row here.

The shim is built by `make -C shim` with this harness's system entries dir and
default library path compiled in; the model is given the same two values.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nixld import entries, launch, paths
from nixld.analysis import analyse
from nixld.elf import ElfInfo, read_binary
from nixld.entries import Entry, Identity
from nixld.loader import resolve_closure
from nixld.report import to_json
from nixld.search import Search
from tests.conftest import need, need_tool
from tests.fixtures.shim.harness import DEBIAN_LD, ShimHarness, build_harness, compile_c

DEBIAN_LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
EMPTY = "empty"  # a directory without libwho.so


@pytest.fixture(scope="module")
def harness() -> Iterator[ShimHarness]:
    need_tool("gcc")
    need_tool("make")
    need(DEBIAN_LD.exists() and DEBIAN_LIBC.exists(), "needs Debian's x86-64 glibc")
    root = Path(tempfile.mkdtemp(prefix="nixld-search-test-"))
    try:
        w = build_harness(root / "w")
        # glibc's lib/ on NixOS holds libc next to the loader (the emulation's
        # last rule); the default library path gets a libwho of its own.
        shutil.copy(DEBIAN_LIBC, w.ld.parent / "libc.so.6")
        extra = {"default": w.default_library_path, "rpath": root / "w" / "lib-rpath"}
        for name, where in extra.items():
            compile_c(where / "libwho.so", ["who.c"],
                      flags=["-shared", "-fPIC", "-Wl,-soname,libwho.so", f'-DWHO="{name}"'])
        (root / "w" / "lib-empty").mkdir()
        compile_c(w.program("use_who_rpath"), ["use_who.c"],
                  flags=[f"-Wl,--dynamic-linker={w.shim}", f"-L{w.libs['entry']}", "-lwho",
                         f"-Wl,-rpath,{extra['rpath']}", "-Wl,--disable-new-dtags"])
        yield w
    finally:
        shutil.rmtree(root, ignore_errors=True)


def lib_dir(harness: ShimHarness, name: str) -> Path:
    return harness.root / f"lib-{name}"


@dataclass(frozen=True)
class Case:
    name: str
    expect: str | None  # the libwho that loads (its directory's name); None: not found
    via: str | None  # the model's rule for it
    program: str = "use_who"
    user: tuple[str, ...] | None = None  # per-user entry dirs (by name)
    system: tuple[str, ...] | None = None  # system-wide entry dirs
    stale_user: bool = False  # the per-user entry's identity no longer holds
    env: dict[str, str] = field(default_factory=dict)  # values name lib dirs by {name}


CASES = [
    Case("user entry only", "user", "entry", user=("user",)),
    Case("system entry only", "sys", "entry", system=("sys",)),
    Case("both: the user's first", "user", "entry", user=("user",), system=("sys",)),
    Case("both: the user's lacks it", "sys", "entry", user=(EMPTY,), system=("sys",)),
    Case("stale user entry", "sys", "entry", user=("user",), system=("sys",), stale_user=True),
    Case("stale user entry alone", "default", "NIX_LD_LIBRARY_PATH", user=("user",),
         stale_user=True),
    Case("nothing set: nix-ld's default", "default", "NIX_LD_LIBRARY_PATH"),
    Case("LD_LIBRARY_PATH", "nix", "LD_LIBRARY_PATH", env={"LD_LIBRARY_PATH": "{nix}"}),
    Case("entries before LD_LIBRARY_PATH", "sys", "entry", system=("sys",),
         env={"LD_LIBRARY_PATH": "{nix}"}),
    Case("LD_LIBRARY_PATH before NIX_LD_LIBRARY_PATH", "user", "LD_LIBRARY_PATH",
         env={"LD_LIBRARY_PATH": "{empty}:{user}", "NIX_LD_LIBRARY_PATH": "{nix}"}),
    Case("NIX_LD_LIBRARY_PATH", "nix", "NIX_LD_LIBRARY_PATH",
         env={"NIX_LD_LIBRARY_PATH": "{nix}"}),
    Case("NIX_LD_LIBRARY_PATH_x86_64_linux wins", "nixsys", "NIX_LD_LIBRARY_PATH",
         env={"NIX_LD_LIBRARY_PATH": "{nix}", "NIX_LD_LIBRARY_PATH_x86_64_linux": "{nixsys}"}),
    Case("empty NIX_LD_LIBRARY_PATH_x86_64_linux is unset", "nix", "NIX_LD_LIBRARY_PATH",
         env={"NIX_LD_LIBRARY_PATH": "{nix}", "NIX_LD_LIBRARY_PATH_x86_64_linux": ""}),
    Case("empty NIX_LD_LIBRARY_PATH is unset", "default", "NIX_LD_LIBRARY_PATH",
         env={"NIX_LD_LIBRARY_PATH": "", "LD_LIBRARY_PATH": ""}),
    Case("empty parts are left out", "nix", "LD_LIBRARY_PATH",
         env={"LD_LIBRARY_PATH": "::{nix}:"}),
    Case("found nowhere", None, None, env={"NIX_LD_LIBRARY_PATH": "{empty}"}),
    Case("RPATH before entries", "rpath", "rpath", program="use_who_rpath",
         user=("user",)),
    Case("RUNPATH after entries", "user", "entry", program="use_who_runpath",
         user=("user",)),
    Case("RUNPATH after the library path", "nix", "LD_LIBRARY_PATH",
         program="use_who_runpath", env={"LD_LIBRARY_PATH": "{nix}"}),
    Case("RUNPATH alone", "runpath", "runpath", program="use_who_runpath",
         env={"NIX_LD_LIBRARY_PATH": "{empty}"}),
]


@pytest.fixture
def system_entries(harness: ShimHarness, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The model reads the dir and default compiled into this harness's shim."""
    monkeypatch.setattr(paths, "SYSTEM_ENTRIES_DIR", harness.system_entries)
    monkeypatch.setattr(paths, "NIX_LD_LIBRARY_PATH_DEFAULT", str(harness.default_library_path))
    yield harness.system_entries
    for f in harness.system_entries.iterdir():
        f.unlink()


def set_up(harness: ShimHarness, case: Case, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the case's program with its entries, and the environment."""
    program = tmp_path / "bin" / case.program
    program.parent.mkdir()
    shutil.copy2(harness.program(case.program), program)
    real = os.path.realpath(program)
    dirs = {name: str(lib_dir(harness, name)) for name in
            (*harness.libs, "default", "rpath", EMPTY)}
    env = harness.env(XDG_STATE_HOME=str(tmp_path / "state"))
    env.update({k: v.format(**dirs) for k, v in case.env.items()})
    if case.user is not None:
        identity = Identity.of_file(real)
        if case.stale_user:
            identity = Identity(identity.dev, identity.ino, identity.size + 1, identity.mtime_ns)
        entries.write_entry(Entry(real, identity, tuple(dirs[d] for d in case.user)),
                            directory=tmp_path / "state" / "nixld" / "entries")
    if case.system is not None:
        entries.write_entry(Entry(real, None, tuple(dirs[d] for d in case.system)),
                            directory=harness.system_entries)
    return program, env


def elf(path: Path) -> ElfInfo:
    info = read_binary(path)
    assert isinstance(info, ElfInfo)
    return info


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_model_and_shim_agree(harness: ShimHarness, case: Case, tmp_path: Path,
                              system_entries: Path) -> None:
    program, env = set_up(harness, case, tmp_path)
    search = Search.for_binary(program, env, machine="EM_X86_64")
    closure = resolve_closure(elf(program), search)
    [who] = [n for n in closure.needed if n.soname == "libwho.so"]
    predicted = os.path.basename(os.path.dirname(who.path)).removeprefix("lib-") \
        if who.path else None
    assert (predicted, who.via) == (case.expect, case.via)

    r = harness.run(program, env)
    if case.expect is None:
        assert r.returncode == 127 and "libwho.so" in r.stderr, r.stderr
    else:
        assert (r.returncode, r.stdout, r.stderr) == (0, f"who {case.expect}\n", "")
    # `run` composes the same list from the same model.
    plan = launch.prepare(str(program), [], env)
    done = subprocess.run(plan.argv, env=env, capture_output=True, text=True, check=False,
                          timeout=60)
    assert (done.returncode, done.stdout) == (r.returncode, r.stdout)


ONE_TWO = r"""
#include <stdio.h>
int one(void);
int two(void);
int main(void) { printf("%d\n", one() + two()); return 0; }
"""


def test_explain_run_and_shim_agree_with_a_user_and_a_system_entry(
        harness: ShimHarness, tmp_path: Path, system_entries: Path) -> None:
    """The system-wide entry gives libone, the per-user one libtwo: the shim and
    `run` start the binary, and explain says complete (it once read one entry)."""
    gcc = need_tool("gcc")
    libs = {}
    for name, value in (("one", 1), ("two", 2)):
        libs[name] = tmp_path / f"lib{name}"
        libs[name].mkdir()
        src = tmp_path / f"{name}.c"
        src.write_text(f"int {name}(void) {{ return {value}; }}\n")
        subprocess.run([gcc, "-shared", "-fPIC", f"-Wl,-soname,lib{name}.so", "-o",
                        str(libs[name] / f"lib{name}.so"), str(src)], check=True)
    (tmp_path / "main.c").write_text(ONE_TWO)
    program = tmp_path / "bin" / "one-two"
    program.parent.mkdir()
    subprocess.run([gcc, "-o", str(program), str(tmp_path / "main.c"),
                    f"-Wl,--dynamic-linker={harness.shim}", str(libs["one"] / "libone.so"),
                    str(libs["two"] / "libtwo.so")], check=True)
    real = os.path.realpath(program)
    env = harness.env(XDG_STATE_HOME=str(tmp_path / "state"))
    entries.write_entry(Entry(real, Identity.of_file(real), (str(libs["two"]),)),
                        directory=tmp_path / "state" / "nixld" / "entries")
    entries.write_entry(Entry(real, None, (str(libs["one"]),)), directory=system_entries)

    shim = harness.run(program, env)
    assert (shim.returncode, shim.stdout, shim.stderr) == (0, "3\n", "")
    plan = launch.prepare(str(program), [], env)
    run = subprocess.run(plan.argv, env=env, capture_output=True, text=True, check=False)
    assert (run.returncode, run.stdout) == (0, "3\n")
    doc = to_json(analyse(str(program), env=env))
    assert doc["complete"] is True and doc["missing"] == []
    where = {n["soname"]: (n["via"], n["path"]) for n in doc["needed"]}
    assert where["libone.so"] == ("entry", str(libs["one"] / "libone.so"))
    assert where["libtwo.so"] == ("entry", str(libs["two"] / "libtwo.so"))
    assert [(e["scope"], e["status"]) for e in doc["entries"]] == [
        ("user", "valid"), ("system", "valid")]
    assert doc["search_path"]["entry"] == [str(libs["two"]), str(libs["one"])]
