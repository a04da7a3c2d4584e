"""The one model of the library search: where the loader behind the shim looks, in
which order, and which real loader it hands over to.

Everything that predicts or performs a start (`explain`, `handle`, `resolve`,
`run`, `list`, `doctor`) builds a `Search`; nothing else composes the order.

Contract
--------
`Search.for_binary(path, environ, machine=..., user=True)` reads every entry
that applies to `path` (shim/FORMAT.md): from the per-user directory, then
the system-wide one, in each the path entry if valid, else the build-id entry
matching the file (a copy elsewhere), else the stale path entry, which is
kept in `search.applied` with its state (for reporting) but gives no dirs.
`user=False` (a program run as root under sudo) reads the system-wide entry
only. `Search.from_environ(environ, ...)` is the same without entries (given
directories instead), for tests and callers with no binary.

`search.library_path()` yields `(directory, via)` in the order the shim hands
the loader its library path, empty parts left out:

    user entry (or a plan's dirs) : system entry : LD_LIBRARY_PATH
      : NIX_LD_LIBRARY_PATH_<system> or NIX_LD_LIBRARY_PATH or nix-ld's default

(glibc adds DT_RPATH before and DT_RUNPATH after it: `nixld.loader`).
`search.with_extra_dirs(dirs)` appends a resolution's directories to the
per-user slot, which is where `resolve` writes them.

`search.loader` is the real loader (`RealLoader`): `NIX_LD_<system>`, then
`NIX_LD` (a variable that is set is used as it is, as nix-ld does, and judged
by the loader emulation); else the first of these that reads as a glibc
`ld.so` (`glibc_loader_problem`, from the file's bytes, never by running it):
nix-ld's default `/run/current-system/sw/share/nix-ld/lib/ld.so`, the
PT_INTERP of `/run/current-system/sw/bin/sh` (followed through symlinks) if
it lies in `/nix/store`, the PT_INTERP of the running Python if it lies in
`/nix/store`. Each place tried is recorded with why it was not taken.

`<system>` is the Nix system of the binary's machine (`x86_64_linux`,
`aarch64_linux`, `i686_linux` for EM_386). A 32-bit x86 program on a 64-bit
machine reads only `NIX_LD_i686_linux` (NIX_LD names the 64-bit loader there),
then a 32-bit glibc its entry recorded (or a resolution built: `loader=`), then
the module's 32-bit defaults (`.../share/nix-ld32/lib`); the system's own
programs' interpreters are not tried for it. Extending the model (build-id entries, the i686 search,
stub-ld) means adding a field and its place in `library_path()` or in the
discovery order here, and a row to tests/test_search_agreement.py, which runs
every case through this model and through the real shim.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nixld import entries, paths
from nixld.entries import Entry, Status
from nixld.errors import BadInputError
from nixld.text import safe

Via = Literal["path", "rpath", "entry", "LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH",
              "runpath", "loader-dir", "interpreter", "loaded"]
Scope = Literal["user", "system"]
# Where the real loader came from: a variable's name, or one of these.
LoaderSource = str
DEFAULT_SOURCE = "default"  # nix-ld's default path
SYSTEM_SH_SOURCE = "system-sh"  # the interpreter of the system's own sh
PYTHON_SOURCE = "python"  # the interpreter of the running Python

I686_SYSTEM = "i686_linux"
SYSTEM_SH = "/run/current-system/sw/bin/sh"
NIX_STORE = "/nix/store/"
PT_INTERP = 3

# e_machine -> the Nix system's machine part (nix-ld's variable names).
_MACHINES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i686",
             "EM_RISCV": "riscv64", "EM_PPC64": "powerpc64le", "EM_ARM": "armv7l"}


def nix_system(machine: str | None = None) -> str:
    """The Nix system name as nix-ld spells it in variable names: `x86_64_linux`.

    `machine` is uname's (`x86_64`, `i386`) or an ELF e_machine (`EM_386`)."""
    machine = machine or os.uname().machine
    machine = _MACHINES.get(machine, machine)
    if machine in ("i386", "i486", "i586"):
        machine = "i686"
    if machine in ("amd64",):
        machine = "x86_64"
    if machine in ("arm64",):
        machine = "aarch64"
    return f"{machine}_linux".replace("-", "_")


def split_list(value: str | None) -> tuple[str, ...]:
    """ld.so splits a library path at ':' and ';'. Empty parts (the current
    directory to ld.so) are left out, as the shim leaves them out."""
    if not value:
        return ()
    return tuple(part for part in re.split(r"[:;]", value) if part)


def _first_set(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    # nix-ld and the shim use `${A:-${B:-default}}`: an empty value is unset.
    for name in names:
        value = env.get(name)
        if value:
            return value, name
    return None


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class AppliedEntry:
    """An entry whose `path` is the binary's canonical path."""

    scope: Scope
    file: Path
    entry: Entry
    state: Status  # valid, changed (the file was replaced) or gone

    @property
    def valid(self) -> bool:
        return self.state == "valid"


def user_entries_dir(env: Mapping[str, str]) -> Path | None:
    """FORMAT.md: `$XDG_STATE_HOME` if absolute, else `$HOME/.local/state`, if absolute."""
    state = env.get("XDG_STATE_HOME", "")
    if state.startswith("/"):
        return Path(state) / paths.APP / "entries"
    home = env.get("HOME", "")
    if home.startswith("/"):
        return Path(home) / ".local" / "state" / paths.APP / "entries"
    return None


def applicable(scope: Scope, entry: Entry) -> bool:
    """Whether the shim reads this entry at all (before its identity is checked)."""
    return scope == "system" or entry.identity is not None


def applied_entries(binary: str | os.PathLike[str], env: Mapping[str, str], *,
                    user: bool = True) -> tuple[AppliedEntry, ...]:
    """What the shim applies, per-user directory first, then the system-wide one:
    in each, the path entry if it is valid, else the build-id entry that matches
    the file (FORMAT.md), else the stale path entry (kept for reporting)."""
    target = entries.canonical(binary)
    places: list[tuple[Scope, Path | None]] = [("system", paths.SYSTEM_ENTRIES_DIR)]
    if user:
        places.insert(0, ("user", user_entries_dir(env)))
    found: list[AppliedEntry] = []
    for scope, directory in places:
        if directory is not None:
            applied = _applied_in(scope, directory, target)
            found.extend([applied] if applied else [])
    return tuple(found)


def _applied_in(scope: Scope, directory: Path, target: str) -> AppliedEntry | None:
    path_entry = _path_entry_in(scope, directory, target)
    if path_entry is not None and path_entry.valid:
        return path_entry
    copy = entries.build_id_entry_in(directory, target)
    if copy is not None:
        return AppliedEntry(scope, copy[0], copy[1], "valid")
    return path_entry


def _path_entry_in(scope: Scope, directory: Path, target: str) -> AppliedEntry | None:
    if "\n" in target:
        return None  # FORMAT.md: such a path cannot have an entry
    file = entries.entry_file(target, directory)
    entry = entries.read_entry(file)
    if entry is None or entry.path != target or entry.build_id is not None \
            or not applicable(scope, entry):
        return None  # absent, corrupt, a hash collision, another kind, or ignored
    return AppliedEntry(scope, file, entry, entries.status(entry))


def _valid_dirs(found: Sequence[AppliedEntry], scope: Scope) -> tuple[str, ...]:
    return tuple(d for a in found if a.scope == scope and a.valid for d in a.entry.dirs)


# ---------------------------------------------------------------- the real loader


@dataclass(frozen=True)
class LoaderTry:
    """One place the real loader was looked for."""

    source: LoaderSource
    path: str
    problem: str | None  # None: taken


@dataclass(frozen=True)
class RealLoader:
    """The glibc ld.so the shim (or `run`) hands over to, and where it came from.

    When nothing is found, `path` is nix-ld's default and `source` "default"
    (the shim's compiled-in fallback): the emulation then reports it missing.
    """

    path: str
    source: LoaderSource
    tried: tuple[LoaderTry, ...] = ()
    problem: str | None = None  # it exists but is no glibc ld.so

    @property
    def from_variable(self) -> bool:
        return self.source.startswith("NIX_LD")

    def describe_source(self) -> str:
        """For text output: `from NIX_LD`, `nix-ld's default`, ..."""
        if self.source == DEFAULT_SOURCE:
            return "nix-ld's default"
        if self.source == SYSTEM_SH_SOURCE:
            return f"the interpreter of {SYSTEM_SH}"
        if self.source == PYTHON_SOURCE:
            return "the interpreter of the running Python"
        return f"from {self.source}"


def glibc_loader_problem(path: str) -> str | None:
    """None if `path` reads as a glibc ld.so, else why not (escaped text).

    glibc's loader is a shared object with no PT_INTERP and no DT_NEEDED that
    defines the GLIBC_PRIVATE version (libc.so.6 also defines it, but needs
    the loader). stub-ld, nix-ld and our shim are static programs. Read from
    the program headers, the dynamic section and the version definitions
    alone (a fraction of a millisecond: `run` and the hook pay it); the ELF
    reader says why a file that is no ELF object fails."""
    try:
        with open(path, "rb") as f:
            versions = _loader_versions(f.read(MAX_READ))
    except (OSError, ValueError, IndexError, struct.error):
        return _unreadable(path)
    glibc = versions is not None and "GLIBC_PRIVATE" in versions and any(
        v.startswith("GLIBC_2.") for v in versions)
    return None if glibc else f"{safe(path)}: not a glibc ld.so"


def _unreadable(path: str) -> str:
    """Why `path` is no ELF object, in the ELF reader's words."""
    from nixld.elf import read_library

    try:
        read_library(path, symbols=False)
    except BadInputError as err:
        return str(err)
    return f"{safe(path)}: not a glibc ld.so"


# e_type, program header and dynamic tags read by glibc_loader_problem's fast path.
ET_DYN = 3
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5
DT_VERDEF, DT_VERDEFNUM = 0x6FFFFFFC, 0x6FFFFFFD
VER_FLG_BASE = 1
MAX_READ = 8 << 20  # a glibc ld.so is about 200 KiB


def _loader_versions(data: bytes) -> list[str] | None:
    """The version names an ELF shared object defines, if it is one with no
    PT_INTERP and no DT_NEEDED; None otherwise. Raises struct.error,
    IndexError or ValueError on a malformed file."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2):
        raise ValueError("not ELF")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if struct.unpack_from(order + "H", data, 16)[0] != ET_DYN:
        return None
    phoff = struct.unpack_from(order + ("Q" if wide else "I"), data, 32 if wide else 28)[0]
    size, count = struct.unpack_from(order + "HH", data, 54 if wide else 42)
    loads, dynamic = [], None
    for i in range(min(count, 256)):
        at = phoff + i * size
        kind = struct.unpack_from(order + "I", data, at)[0]
        if kind == PT_INTERP:
            return None
        seg = _segment(data, order, wide, at)  # (offset, vaddr, filesz)
        if kind == PT_LOAD:
            loads.append(seg)
        elif kind == PT_DYNAMIC:
            dynamic = seg
    if dynamic is None:
        return None
    tags = _dynamic_tags(data, order, wide, dynamic)
    if DT_NEEDED in tags or DT_STRTAB not in tags or DT_VERDEF not in tags:
        return None
    strtab, verdef = (_file_offset(loads, tags[t]) for t in (DT_STRTAB, DT_VERDEF))
    return _verdef_names(data, order, strtab, verdef, tags.get(DT_VERDEFNUM, 64))


def _segment(data: bytes, order: str, wide: bool, at: int) -> tuple[int, int, int]:
    if wide:
        offset, vaddr = struct.unpack_from(order + "QQ", data, at + 8)
        return offset, vaddr, struct.unpack_from(order + "Q", data, at + 32)[0]
    offset, vaddr = struct.unpack_from(order + "II", data, at + 4)
    return offset, vaddr, struct.unpack_from(order + "I", data, at + 16)[0]


def _dynamic_tags(data: bytes, order: str, wide: bool,
                  dynamic: tuple[int, int, int]) -> dict[int, int]:
    fmt, step = (order + "qQ", 16) if wide else (order + "iI", 8)
    tags: dict[int, int] = {}
    offset, _, filesz = dynamic
    for at in range(offset, offset + min(filesz, 64 << 10), step):
        tag, value = struct.unpack_from(fmt, data, at)
        if tag == DT_NULL:
            break
        tags.setdefault(tag, value)
    return tags


def _file_offset(loads: list[tuple[int, int, int]], vaddr: int) -> int:
    for offset, start, filesz in loads:
        if start <= vaddr < start + filesz:
            return offset + vaddr - start
    raise ValueError("address outside the file")


def _verdef_names(data: bytes, order: str, strtab: int, verdef: int, count: int) -> list[str]:
    names: list[str] = []
    at = verdef
    for _ in range(min(count, 256)):
        flags, = struct.unpack_from(order + "H", data, at + 2)
        aux, nxt = struct.unpack_from(order + "II", data, at + 12)
        name_at = strtab + struct.unpack_from(order + "I", data, at + aux)[0]
        if not flags & VER_FLG_BASE:
            names.append(data[name_at:data.index(b"\0", name_at)].decode("ascii", "replace"))
        if not nxt:
            break
        at += nxt
    return names


def read_interpreter(path: str) -> str | None:
    """PT_INTERP of the ELF file `path`, read from its program headers only
    (cheap: no section is parsed); None if it has none or is no ELF file."""
    try:
        with open(path, "rb") as f:
            where = _interp_segment(f.read(1 << 16))
            if where is None:
                return None
            f.seek(where[0])
            raw = f.read(min(where[1], 4096)).split(b"\0", 1)[0]
    except (OSError, struct.error):
        return None
    return os.fsdecode(raw) or None


def _interp_segment(head: bytes) -> tuple[int, int] | None:
    """(file offset, size) of PT_INTERP in an ELF file starting with `head`."""
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2):
        return None
    wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
    if wide:
        (phoff,), (size, count) = struct.unpack_from(order + "Q", head, 32), \
            struct.unpack_from(order + "HH", head, 54)
    else:
        (phoff,), (size, count) = struct.unpack_from(order + "I", head, 28), \
            struct.unpack_from(order + "HH", head, 42)
    for i in range(min(count, 256)):
        at = phoff + i * size
        if at + size > len(head) or struct.unpack_from(order + "I", head, at)[0] != PT_INTERP:
            continue
        if wide:
            return struct.unpack_from(order + "Q", head, at + 8)[0], \
                struct.unpack_from(order + "Q", head, at + 32)[0]
        return struct.unpack_from(order + "I", head, at + 4)[0], \
            struct.unpack_from(order + "I", head, at + 16)[0]
    return None


# e_machine numbers -> pyelftools' names (what ElfInfo.machine holds).
_E_MACHINES = {3: "EM_386", 62: "EM_X86_64", 183: "EM_AARCH64", 40: "EM_ARM",
               243: "EM_RISCV", 21: "EM_PPC64"}


def elf_machine(path: str) -> str | None:
    """e_machine of the ELF file `path` (`EM_386`), from its first 20 bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    number = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]
    return _E_MACHINES.get(number)


def _store_interpreter(program: str) -> tuple[str | None, str | None]:
    """(PT_INTERP of `program`, followed through symlinks) if in /nix/store; else
    (None, why not)."""
    real = os.path.realpath(program)
    interp = read_interpreter(real)
    if interp is None:
        return None, f"{safe(real)}: has no ELF interpreter"
    if not interp.startswith(NIX_STORE):
        return None, f"{safe(real)}: its interpreter {safe(interp)} is not in the store"
    return interp, None


def foreign_i686(system: str) -> bool:
    """A 32-bit x86 program on a machine whose own programs are not."""
    return system == I686_SYSTEM and nix_system() != I686_SYSTEM


def loader_variables(system: str) -> tuple[str, ...]:
    """The variables naming the real loader, first set wins.

    Why a 32-bit program on a 64-bit machine reads only NIX_LD_i686_linux:
    NIX_LD names the machine's own (64-bit) loader there, which cannot load it.
    """
    if foreign_i686(system):
        return (f"NIX_LD_{system}",)
    return (f"NIX_LD_{system}", "NIX_LD")


def defaults(system: str) -> tuple[str, str]:
    """nix-ld's default loader and library path (the NixOS module's 32-bit ones)."""
    if foreign_i686(system):
        return str(paths.NIX_LD_I686_DEFAULT), paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT
    return str(paths.NIX_LD_DEFAULT), paths.NIX_LD_LIBRARY_PATH_DEFAULT


Guess = tuple[LoaderSource, str | None, str | None]  # source, candidate, why none


def _guesses(system: str, fallback: tuple[str, str] | None) -> Iterator[Guess]:
    """The places to look when no variable names the loader, in order."""
    if fallback is not None:
        yield fallback[1], fallback[0], None
    yield DEFAULT_SOURCE, defaults(system)[0], None
    if foreign_i686(system):
        return  # the system's own programs have the 64-bit loader
    if os.path.lexists(SYSTEM_SH):
        interp, why = _store_interpreter(SYSTEM_SH)
        yield SYSTEM_SH_SOURCE, interp, why
    else:
        yield SYSTEM_SH_SOURCE, None, f"{SYSTEM_SH}: no such file"
    interp, why = _store_interpreter(sys.executable)
    yield PYTHON_SOURCE, interp, why


def discover_loader(env: Mapping[str, str], system: str,
                    fallback: tuple[str, str] | None = None) -> RealLoader:
    """The real loader as nix-ld finds it, then as NixOS has it (module
    docstring). `fallback` (path, source) is tried before nix-ld's default: a
    32-bit glibc a resolution built or an entry recorded."""
    named = _first_set(env, *loader_variables(system))
    if named is not None:
        value, name = named
        problem = glibc_loader_problem(value) if os.path.exists(value) else None
        return RealLoader(value, name, (LoaderTry(name, value, problem),), problem)
    tried: list[LoaderTry] = []
    for source, candidate, why in _guesses(system, fallback):
        problem = why if candidate is None else glibc_loader_problem(candidate)
        tried.append(LoaderTry(source, candidate or "", problem))
        if candidate is not None and problem is None:
            return RealLoader(candidate, source, tuple(tried))
    default = defaults(system)[0]
    problem = next((t.problem for t in tried if t.source == DEFAULT_SOURCE), None) \
        if os.path.exists(default) else None
    return RealLoader(default, DEFAULT_SOURCE, tuple(tried), problem)


def recorded_loader(found: Sequence[AppliedEntry], system: str) -> tuple[str, str] | None:
    """The 32-bit glibc a valid entry recorded as a package (nixld.i686)."""
    if not foreign_i686(system):
        return None
    from nixld import i686

    for applied in found:
        recorded = i686.recorded_loader(applied.entry.packages) if applied.valid else None
        if recorded:
            return recorded
    return None


# ---------------------------------------------------------------- the search


@dataclass(frozen=True)
class Search:
    """Everything outside the binary that decides where ld.so looks."""

    system: str  # x86_64_linux, i686_linux, ...
    loader: RealLoader
    user_dirs: tuple[str, ...] = ()  # the valid per-user entry's dirs, then a plan's
    system_dirs: tuple[str, ...] = ()  # the valid system-wide entry's dirs
    ld_library_path: tuple[str, ...] = ()
    nix_ld_library_path: tuple[str, ...] = ()  # NIX_LD_LIBRARY_PATH[_<system>] or the default
    nix_ld_library_path_source: str = DEFAULT_SOURCE
    applied: tuple[AppliedEntry, ...] = field(default=(), compare=False)  # stale ones too

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None, *,
                     machine: str | None = None, user_dirs: Sequence[str] = (),
                     loader: tuple[str, str] | None = None) -> Search:
        """Read the variables as nix-ld and the shim do (shim/FORMAT.md), with
        `user_dirs` in the per-user slot and no entry read. `loader` (path,
        source): see discover_loader's fallback."""
        env = os.environ if env is None else env
        return cls.of(env, nix_system(machine), (), loader).with_extra_dirs(user_dirs)

    @classmethod
    def for_binary(cls, binary: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                   *, machine: str | None = None, user: bool = True,
                   loader: tuple[str, str] | None = None) -> Search:
        """The search the shim sets up for `binary` today (module docstring)."""
        env = os.environ if env is None else env
        return cls.of(env, nix_system(machine), applied_entries(binary, env, user=user), loader)

    @classmethod
    def of(cls, env: Mapping[str, str], system: str, found: tuple[AppliedEntry, ...],
           loader: tuple[str, str] | None) -> Search:
        """The search for these applied entries under `env` on `system`."""
        libpath = _first_set(env, f"NIX_LD_LIBRARY_PATH_{system}", "NIX_LD_LIBRARY_PATH")
        return cls(
            system=system,
            loader=discover_loader(env, system, loader or recorded_loader(found, system)),
            user_dirs=_valid_dirs(found, "user"),
            system_dirs=_valid_dirs(found, "system"),
            ld_library_path=split_list(env.get("LD_LIBRARY_PATH")),
            nix_ld_library_path=split_list(libpath[0] if libpath else defaults(system)[1]),
            nix_ld_library_path_source=libpath[1] if libpath else DEFAULT_SOURCE,
            applied=found,
        )

    def with_extra_dirs(self, dirs: Sequence[str]) -> Search:
        """These dirs appended to the per-user slot, once (a resolution's plan)."""
        new = tuple(d for d in dict.fromkeys(dirs) if d not in self.user_dirs)
        return replace(self, user_dirs=self.user_dirs + new)

    @property
    def entry_dirs(self) -> tuple[str, ...]:
        return self.user_dirs + self.system_dirs

    @property
    def stale(self) -> tuple[AppliedEntry, ...]:
        """Entries that match the path but no longer the file."""
        return tuple(a for a in self.applied if not a.valid)

    def user_entry(self) -> AppliedEntry | None:
        return next((a for a in self.applied if a.scope == "user"), None)

    def library_path(self) -> Iterator[tuple[str, Via]]:
        """The list the shim hands the loader, in order, with each part's rule."""
        for d in self.entry_dirs:
            yield d, "entry"
        for d in self.ld_library_path:
            yield d, "LD_LIBRARY_PATH"
        for d in self.nix_ld_library_path:
            yield d, "NIX_LD_LIBRARY_PATH"

    def library_path_string(self) -> str:
        """The same as one `--library-path` value."""
        return ":".join(d for d, _ in self.library_path())
