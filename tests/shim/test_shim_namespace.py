"""The shim as the system's ELF interpreter, in a private mount namespace:
a tmpfs holding the built shim is mounted over /lib64, so from then on every
dynamically linked program, the shell and Python included, starts through it,
unmodified Debian binaries too. NIX_LD is a copy of Debian's ld.so alone in
its directory, NIX_LD_LIBRARY_PATH Debian's library directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import need_root, need_tool
from tests.fixtures.shim.harness import DEBIAN_LD, entry_text, make_shim, write_entry

DEBIAN_LIB = Path("/lib/x86_64-linux-gnu")
CAT = Path("/usr/bin/cat")

SCRIPT = r"""
set -eu
mount -t tmpfs -o mode=0755 tmpfs "$STAGE"
cp "$SHIM" "$STAGE/ld-linux-x86-64.so.2"
mount --bind "$STAGE" /lib64
# From here on every dynamically linked program starts through the shim.
/bin/sh -c 'cat /proc/$$/maps >"$OUT/sh.maps"'
/usr/bin/python3 -c 'print(open("/proc/self/maps").read(), end="")' >"$OUT/python.maps"
/usr/bin/cat /proc/self/maps >"$OUT/cat.maps"
/usr/bin/head -c 10000000 /proc/self/maps >"$OUT/head.maps"
NIX_LD=/nonexistent/ld.so /usr/bin/true 2>"$OUT/true.err" || echo $? >"$OUT/true.rc"
"""


def mapped_files(maps: str) -> set[str]:
    return {line.split(None, 5)[5] for line in maps.splitlines() if len(line.split()) == 6}


def test_unmodified_binaries_run_through_the_shim(tmp_path: Path) -> None:
    need_root()
    need_tool("unshare")
    need_tool("gcc")
    shim = make_shim(tmp_path / "nixld-shim")  # the default build, as installed
    ld = tmp_path / "ldso" / "ld.so"
    ld.parent.mkdir()
    shutil.copy2(DEBIAN_LD, ld)
    # An entry for the unmodified /usr/bin/cat: its libc from a directory of our own.
    own_lib = tmp_path / "cat-lib"
    own_lib.mkdir()
    shutil.copy2(DEBIAN_LIB / "libc.so.6", own_lib / "libc.so.6")
    state = tmp_path / "state"
    write_entry(state / "nixld" / "entries", CAT, entry_text(CAT, [own_lib]))
    out = tmp_path / "out"
    out.mkdir()
    stage = tmp_path / "stage"
    stage.mkdir()
    env = {"PATH": "/usr/bin:/bin", "SHIM": str(shim), "STAGE": str(stage), "OUT": str(out),
           "NIX_LD": str(ld), "NIX_LD_LIBRARY_PATH": str(DEBIAN_LIB),
           "XDG_STATE_HOME": str(state)}
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/bash", "-c", SCRIPT],
                       env=env, capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr

    debian_ld = str(DEBIAN_LD.resolve())
    for name in ("sh", "python", "cat", "head"):
        files = mapped_files((out / f"{name}.maps").read_text())
        assert "/usr/lib64/ld-linux-x86-64.so.2" in files, name  # the shim, from the tmpfs
        assert str(ld) in files, name  # ... which loaded NIX_LD
        assert debian_ld not in files, name
    cat_libs = mapped_files((out / "cat.maps").read_text())
    assert str(own_lib / "libc.so.6") in cat_libs  # cat's entry applied
    assert str(DEBIAN_LIB.resolve() / "libc.so.6") not in cat_libs
    head_libs = mapped_files((out / "head.maps").read_text())
    assert str(DEBIAN_LIB.resolve() / "libc.so.6") in head_libs  # no entry: NIX_LD_LIBRARY_PATH
    assert (out / "true.rc").read_text() == "127\n"
    assert (out / "true.err").read_text() == \
        "nixld-shim: cannot open loader /nonexistent/ld.so: No such file or directory\n"
