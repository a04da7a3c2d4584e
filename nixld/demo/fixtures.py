"""C fixtures compiled on the spot for the loader's corner cases: a symbol
version trap (two releases of libfoo), $ORIGIN, DT_RPATH and DT_RUNPATH
decoys, and a dlopen with a .note.dlopen. Their sources are package data
(nixld/demo/sources/)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from nixld.demo.tools import run_tool

# name -> what it shows, how it is linked
FIXTURE_WHY: dict[str, str] = {
    "foo-tool": "needs foo_new@FOO_1.2 from libfoo.so.1 and libbar.so.1: the top-ranked-"
                "looking libfoo-1.1 (attr libfoo, also has libbar) lacks FOO_1.2",
    "origin-tool": "DT_RUNPATH $ORIGIN/../lib bundles libbar.so.1; libfoo.so.1 is missing",
    "rpath-tool": "DT_RPATH $ORIGIN/../decoy holds an aarch64 libbar.so.1 (skipped as "
                  "ld.so does); libbar.so.1 is missing",
    "runpath-tool": "DT_RUNPATH $ORIGIN/../decoy (same decoy, RUNPATH instead of RPATH)",
    "dlopen-tool": "needs only libc; dlopens libz.so.1 (declared in .note.dlopen)",
}

# Each fixture library: its directory name, soname and gcc arguments.
_LIBS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("libfoo-1.1", "libfoo.so.1", ("foo.c", "-Wl,--version-script=foo-1.1.map")),
    ("libfoo-1.2", "libfoo.so.1", ("-DFOO_NEW", "foo.c", "-Wl,--version-script=foo-1.2.map")),
    ("libbar-1.0", "libbar.so.1", ("bar.c",)),
)


def source_files() -> dict[str, bytes]:
    """The fixtures' C sources and version scripts, by file name."""
    sources = resources.files("nixld.demo") / "sources"
    return {f.name: f.read_bytes() for f in sources.iterdir() if f.is_file()}


def write_sources(dest: Path) -> Path:
    """The sources in a directory of their own (gcc's working directory)."""
    dest.mkdir(parents=True)
    for name, data in source_files().items():
        (dest / name).write_bytes(data)
    return dest


def _gcc(args: Sequence[str], cwd: Path) -> None:
    run_tool(["gcc", "-O1", *args], cwd=cwd)


def build_fixture_libs(src: Path, out: Path) -> dict[str, Path]:
    """libfoo 1.1 (old), libfoo 1.2 (new), libbar; each in its own lib/ dir."""
    libs = {}
    for name, soname, args in _LIBS:
        lib = out / name / "lib"
        lib.mkdir(parents=True)
        _gcc(["-shared", "-fPIC", "-o", str(lib / soname), *args, f"-Wl,-soname,{soname}"], src)
        libs[name] = lib
    return libs


def build_fixtures(src: Path, libs: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    """Compile the fixture binaries into dest/{bin,lib,decoy}."""
    for d in ("bin", "lib", "decoy"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(libs["libbar-1.0"] / "libbar.so.1", dest / "lib/libbar.so.1")
    # Linked by file name: NEEDED comes from each library's SONAME.
    new, bar = str(libs["libfoo-1.2"] / "libfoo.so.1"), str(libs["libbar-1.0"] / "libbar.so.1")
    out = {}

    def link(name: str, source: str, *args: str) -> None:
        _gcc(["-o", str(dest / "bin" / name), source, *args], src)
        out[name] = dest / "bin" / name

    link("foo-tool", "foo-tool.c", new, bar)
    link("origin-tool", "bar-tool.c", "-Wl,--no-as-needed", bar, new,
         "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    link("rpath-tool", "bar-tool.c", bar,
         "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../decoy")
    link("runpath-tool", "bar-tool.c", bar,
         "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../decoy")
    link("dlopen-tool", "dlopen-tool.c")
    _build_decoy(src, dest / "decoy/libbar.so.1")
    return out


def _build_decoy(src: Path, dest: Path) -> None:
    """The wrong-architecture libbar; without a cross compiler the decoy dir stays empty."""
    cross = shutil.which("aarch64-linux-gnu-gcc")
    if cross:
        run_tool([cross, "-shared", "-fPIC", "-o", str(dest), "bar.c",
                  "-Wl,-soname,libbar.so.1"], cwd=src)
