"""Builds the shim and the C fixtures that the shim tests and the benchmark run.

A `World` is one directory holding a shim built with test paths compiled in,
a copy of Debian's ld.so (NIX_LD), one `libwho.so` per directory (each says
which directory it came from) and the fixture programs, all linked with
`--dynamic-linker=<the shim>`. Entries are written by hand per shim/FORMAT.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIM_DIR = REPO / "shim"
FIXTURES = Path(__file__).resolve().parent
DEBIAN_LD = Path("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
LIB_NAMES = ("entry", "sys", "user", "nix", "nixsys", "runpath")


def make_shim(out: Path, *, arch: str | None = None, default_ld: Path | None = None,
              default_library_path: Path | None = None,
              system_entries_dir: Path | None = None) -> Path:
    """`make -C shim` into `out`, with the given paths compiled in."""
    cmd = ["make", "-s", "-C", str(SHIM_DIR), f"OUT={out}"]
    if arch:
        cmd.append(f"ARCH={arch}")
    if default_ld:
        cmd.append(f"DEFAULT_LD={default_ld}")
    if default_library_path:
        cmd.append(f"DEFAULT_LIBRARY_PATH={default_library_path}")
    if system_entries_dir:
        cmd.append(f"SYSTEM_ENTRIES_DIR={system_entries_dir}")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def compile_c(out: Path, sources: Sequence[str], *, cc: str = "gcc",
              flags: Sequence[str] = ()) -> Path:
    """Compile fixture sources (names under tests/shim_fixtures) into `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [str(FIXTURES / s) for s in sources]
    subprocess.run([cc, "-O2", "-o", str(out), *paths, *flags],
                   check=True, capture_output=True, text=True)
    return out


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def entry_name(program: Path) -> str:
    return f"{fnv1a64(os.fsencode(os.path.realpath(program))):016x}.entry"


def entry_text(program: Path, dirs: Iterable[Path | str], *, identity: bool = True,
               extra: Iterable[str] = ()) -> str:
    """An entry for `program` per FORMAT.md (what nixld/entries.py writes)."""
    path = os.path.realpath(program)
    lines = ["nixld-entry 1", f"path {path}"]
    if identity:
        st = os.stat(path)
        lines += [f"dev {st.st_dev}", f"ino {st.st_ino}", f"size {st.st_size}",
                  f"mtime {st.st_mtime_ns // 10**9} {st.st_mtime_ns % 10**9}"]
    lines += [f"dir {d}" for d in dirs]
    lines += [*extra, "end"]
    return "\n".join(lines) + "\n"


def build_id_entry_text(program: Path, dirs: Iterable[Path | str], *,
                        size: int | None = None, path: Path | None = None) -> str:
    """A build-id entry for `program` (FORMAT.md), with the build-id the Python
    side reads (nixld/elf.py): what `resolve` writes beside the path entry."""
    from nixld.elf import read_build_id

    build_id = read_build_id(program)
    assert build_id, f"{program} has no build-id"
    lines = ["nixld-entry 1", f"path {os.path.realpath(path or program)}",
             f"build_id {build_id}", f"size {program.stat().st_size if size is None else size}"]
    lines += [f"dir {d}" for d in dirs]
    return "\n".join([*lines, "end"]) + "\n"


def write_build_id_entry(directory: Path, program: Path, text: str | bytes) -> Path:
    from nixld.elf import read_build_id

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{read_build_id(program)}.build-id"
    target.write_bytes(text.encode() if isinstance(text, str) else text)
    return target


def write_entry(directory: Path, program: Path, text: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / entry_name(program)
    data = text.encode() if isinstance(text, str) else text
    target.write_bytes(data)
    return target


@dataclass(frozen=True)
class World:
    root: Path
    shim: Path
    ld: Path  # NIX_LD: a copy of Debian's ld.so, alone in its directory
    system_entries: Path  # compiled into this shim as the system-wide dir
    default_library_path: Path  # compiled in: NIX_LD_LIBRARY_PATH's default
    libs: Mapping[str, Path]  # name -> directory holding a libwho.so saying name

    def program(self, name: str) -> Path:
        return self.root / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        """A small, fixed environment: NIX_LD set, nothing else of nixld's."""
        env = {"PATH": "/usr/bin:/bin", "NIX_LD": str(self.ld),
               "HOME": str(self.root / "home")}
        env.update(extra)
        return env

    def run(self, program: Path | str, env: Mapping[str, str],
            args: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        path = program if isinstance(program, Path) else self.program(program)
        return subprocess.run([str(path), *args], env=dict(env), capture_output=True,
                              text=True, timeout=60, check=False)


def build_world(root: Path) -> World:
    """Everything under `root` (made world-readable: the setuid test runs as nobody)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    ld_dir = root / "ldso"
    ld_dir.mkdir()
    ld = ld_dir / "ld.so"
    shutil.copy2(DEBIAN_LD, ld)
    system_entries = root / "system-entries"
    system_entries.mkdir()
    default_library_path = root / "lib-default"
    default_library_path.mkdir()
    (root / "home").mkdir()
    shim = make_shim(root / "shim" / "nixld-shim", default_ld=ld,
                     default_library_path=default_library_path,
                     system_entries_dir=system_entries)

    libs = {}
    for name in LIB_NAMES:
        libs[name] = root / f"lib-{name}"
        compile_c(libs[name] / "libwho.so", ["who.c"],
                  flags=["-shared", "-fPIC", "-Wl,-soname,libwho.so", f'-DWHO="{name}"'])
    interp = [f"-Wl,--dynamic-linker={shim}"]
    link_who = [f"-L{libs['entry']}", "-lwho"]
    bin_dir = root / "bin"
    compile_c(bin_dir / "hello", ["hello.c"], flags=interp)
    compile_c(bin_dir / "probe", ["probe.c"], flags=interp)
    compile_c(bin_dir / "use_who", ["use_who.c"], flags=[*interp, *link_who])
    compile_c(bin_dir / "use_who_runpath", ["use_who.c"],
              flags=[*interp, *link_who, f"-Wl,-rpath,{libs['runpath']}",
                     "-Wl,--enable-new-dtags"])
    compile_c(bin_dir / "dlopen_who", ["dlopen_who.c"], flags=interp)
    compile_c(bin_dir / "child", ["child.c"], flags=interp)
    compile_c(bin_dir / "use_who_note8", ["use_who.c", "note8.c"],
              flags=[*interp, *link_who, "-Wl,--build-id=none"])
    compile_c(bin_dir / "use_who_no_build_id", ["use_who.c"],
              flags=[*interp, *link_who, "-Wl,--build-id=none"])
    return World(root=root, shim=shim, ld=ld, system_entries=system_entries,
                  default_library_path=default_library_path, libs=libs)
