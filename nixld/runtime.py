"""What a program loads at run time besides its DT_NEEDED closure.

The shim applies one entry per executable, so everything the process will
load must be covered by that entry: the sonames its `.note.dlopen` names, the
ELF objects of its own tree (Qt's `plugins/`, `lib/<app>/`, an AppImage's
`usr/lib/`), the extension modules of a Python environment it runs, and what
`--with` or `trace` added. Each of those is a *root*: analysed as the loader
would load it from that executable (a file by its path: its own RPATH and
RUNPATH, then the executable's entry path; a soname as the executable's
dlopen would search it), and its needs that the process does not already
have loaded are added to the executable's.

Whether a root's needs are installed without asking is its priority:
`required` ones are (a platform plugin a toolkit must load to start, what
trace saw loaded, a note's `required` sonames, extension modules of a Python
environment being resolved); `recommended` ones are offered; `suggested`
ones only listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nixld.errors import BadInputError
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.elf import DlopenHint, ElfInfo
    from nixld.loader import Closure, ElfCache, Needed
    from nixld.search import Search

Source = Literal["note", "plugin", "library", "extension", "with", "trace"]
Priority = Literal["required", "recommended", "suggested"]
PRIORITIES: tuple[Priority, ...] = ("required", "recommended", "suggested")

# The walk of a program's own tree is bounded: a program in a big directory
# must not make explain read thousands of files.
MAX_DEPTH = 6
MAX_FILES = 4000

# Plugins a program must load to start. Qt picks its platform plugin from
# QT_QPA_PLATFORM, and xcb is the default on X11 (and under XWayland).
STARTUP_PLUGINS = (("platforms", "libqxcb.so"),)


@dataclass(frozen=True)
class Root:
    """One thing the process loads at run time."""

    source: Source
    priority: Priority
    path: str | None = None  # a file loaded by path (plugin, library, extension module)
    sonames: tuple[str, ...] = ()  # a dlopen'ed soname and its alternatives
    feature: str | None = None  # from a .note.dlopen

    @property
    def label(self) -> str:
        """The root as reports name it (raw: escape before printing)."""
        return self.path if self.path else " | ".join(self.sonames)

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "priority": self.priority, "path": self.path,
                "sonames": list(self.sonames), "feature": self.feature}


@dataclass
class RootNeeds:
    """A root analysed from the executable: what it would still lack."""

    root: Root
    closure: Closure | None
    missing: list[Needed] = field(default_factory=list)
    satisfied_by: str | None = None  # the alternative of a soname root already found
    error: str | None = None  # the file cannot be read (display text)

    @property
    def missing_sonames(self) -> list[str]:
        return [n.soname for n in self.missing]


# ---------------------------------------------------------------- finding roots


def note_priority(hint: DlopenHint) -> Priority:
    """The spec's priority; an absent or unknown one means `recommended`."""
    value = hint.priority
    for priority in PRIORITIES:
        if value == priority:
            return priority
    return "recommended"


def note_roots(info: ElfInfo) -> list[Root]:
    return [Root("note", note_priority(h), sonames=h.sonames, feature=h.feature)
            for h in info.dlopen if h.sonames]


def soname_roots(sonames: Sequence[str], source: Source) -> list[Root]:
    return [Root(source, "required", sonames=(s,)) for s in dict.fromkeys(sonames)]


def is_startup_plugin(path: str) -> bool:
    p = Path(path)
    return any(p.parent.name == d and p.name == n for d, n in STARTUP_PLUGINS)


def tree_dirs(info: ElfInfo, env: Mapping[str, str] | None = None) -> list[str]:
    """The program's own tree: its directory and its $ORIGIN RPATH/RUNPATH dirs.

    The directory of a program that sits in a shared place (a PATH directory,
    $HOME itself, /) is not its own tree: only its $ORIGIN dirs are walked.
    """
    from nixld.loader import expand_dst

    env = os.environ if env is None else env
    exe_dir = os.path.dirname(os.path.realpath(info.path))
    shared = {os.path.abspath(d) for d in env.get("PATH", "").split(":") if d}
    shared |= {"/", os.path.abspath(env.get("HOME", "/"))}
    dirs = [] if exe_dir in shared else [exe_dir]
    for d in (*info.rpath, *info.runpath):
        if "$ORIGIN" not in d and "${ORIGIN}" not in d:
            continue
        expanded = expand_dst(d, exe_dir, None)
        real = os.path.realpath(expanded) if expanded else None
        if real and os.path.isdir(real) and real not in shared:
            dirs.append(real)
    # A directory inside another one in the list is walked with it.
    dirs = sorted(set(dirs))
    return [d for d in dirs if not any(d.startswith(o + "/") for o in dirs if o != d)]


def walk_elf_files(dirs: Sequence[str], *, max_depth: int = MAX_DEPTH,
                   max_files: int = MAX_FILES) -> Iterator[str]:
    """Regular files starting with the ELF magic under `dirs`, bounded."""
    seen = 0
    for top in dirs:
        base_depth = top.rstrip("/").count("/")
        for root, subdirs, files in os.walk(top):
            if root.count("/") - base_depth >= max_depth:
                subdirs.clear()
            subdirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                seen += 1
                if seen > max_files:
                    return
                if not os.path.islink(full) and has_elf_magic(full):
                    yield full


def has_elf_magic(path: str) -> bool:
    """A cheap pre-filter so a large application tree does not parse every
    data file with pyelftools; pyelftools still reads every real ELF."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


PT_INTERP = 3
ET_DYN = 3


def is_shared_object(path: str) -> bool:
    """ET_DYN without PT_INTERP, from the ELF and program headers alone: the
    walk skips executables without paying for pyelftools (explain's hot path)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2):
                return False
            end = "<" if head[5] == 1 else ">"
            wide = head[4] == 2
            e_type = struct.unpack_from(end + "H", head, 16)[0]
            if e_type != ET_DYN:
                return False
            phoff, phentsize, phnum = (
                struct.unpack_from(end + "Q", head, 32)[0] if wide
                else struct.unpack_from(end + "I", head, 28)[0],
                *struct.unpack_from(end + "HH", head, 54 if wide else 42))
            f.seek(phoff)
            table = f.read(phentsize * min(phnum, 256))
    except (OSError, struct.error):
        return False
    types = (struct.unpack_from(end + "I", table, i)[0]
             for i in range(0, len(table) - 3, phentsize or 1))
    return PT_INTERP not in types


def tree_roots(info: ElfInfo, closure: Closure, cache: ElfCache,
               env: Mapping[str, str] | None = None) -> list[Root]:
    """Shared objects of the program's tree that its closure does not load."""
    loaded = {os.path.realpath(n.path) for n in closure.needed if n.path}
    loaded.add(os.path.realpath(info.path))
    roots = []
    for path in walk_elf_files(tree_dirs(info, env)):
        if os.path.realpath(path) in loaded or not is_shared_object(path):
            continue
        try:
            obj = cache.library(path)
        except BadInputError:
            continue
        if obj.type != "ET_DYN" or obj.interpreter is not None:
            continue  # an executable of its own, with its own entry
        if (obj.elf_class, obj.machine) != (info.elf_class, info.machine):
            continue
        startup = is_startup_plugin(path)
        source: Source = "plugin" if "plugins" in Path(path).parts or startup else "library"
        roots.append(Root(source, "required" if startup else "recommended", path=path))
    return roots


def extension_roots(site_packages: str) -> list[Root]:
    """Extension modules of a Python environment (not the copies in `*.libs`)."""
    roots = []
    for path in walk_elf_files([site_packages], max_depth=8, max_files=MAX_FILES * 4):
        parts = Path(path).relative_to(site_packages).parts
        if ".so" in Path(path).name and not any(p.endswith(".libs") for p in parts[:-1]):
            roots.append(Root("extension", "required", path=path))
    return roots


# ---------------------------------------------------------------- Python environments


@dataclass(frozen=True)
class PythonEnv:
    site_packages: str
    interpreters: tuple[str, ...]  # real files


def python_env(path: str) -> PythonEnv | None:
    """A venv or a `lib/pythonX.Y/site-packages` directory, with its interpreters."""
    p = Path(os.path.realpath(path))
    if (p / "pyvenv.cfg").is_file():
        sites = sorted(p.glob("lib/python3*/site-packages"))
        if not sites:
            return None
        return PythonEnv(str(sites[0]), _interpreters(p / "bin"))
    if p.name not in ("site-packages", "dist-packages") or not p.parent.name.startswith("python"):
        return None
    prefix = p.parent.parent.parent
    bindir = prefix / "bin"
    found = _interpreters(bindir, p.parent.name)
    return PythonEnv(str(p), found) if found else None


def _interpreters(bindir: Path, version: str = "python") -> tuple[str, ...]:
    if not bindir.is_dir():
        return ()
    found: list[str] = []
    for name in sorted(os.listdir(bindir)):
        if not name.startswith(version) and not name.startswith("python"):
            continue
        real = os.path.realpath(bindir / name)
        if real not in found and os.path.isfile(real) and has_elf_magic(real):
            found.append(real)
    return tuple(found)


# ---------------------------------------------------------------- analysing roots


def _process_sonames(closure: Closure) -> set[str]:
    """Sonames the process has loaded once the executable's closure is in."""
    have = {n.soname for n in closure.needed if n.path is not None}
    if closure.binary.soname:
        have.add(closure.binary.soname)
    return have


def analyse_root(root: Root, exe: ElfInfo, closure: Closure, env: Search,
                 cache: ElfCache) -> RootNeeds:
    """`root` as the executable's process would load it."""
    from nixld.loader import resolve_closure
    from nixld.rank import is_driver_library

    have = _process_sonames(closure)
    if root.path is None:
        found = next((s for s in root.sonames if s in have), None)
        if found:
            return RootNeeds(root, None, satisfied_by=found)
        driver = next((s for s in root.sonames if is_driver_library(s)), None)
        if driver:  # never a package's: the system's graphics driver has it, or nothing
            return RootNeeds(root, None, satisfied_by=f"{driver} (the system's driver)")
        info = replace(exe, needed=root.sonames, dlopen=())  # every alternative searched
    else:
        try:
            info = cache.library(root.path)
        except BadInputError as err:
            return RootNeeds(root, None, error=str(err))
    sub = resolve_closure(info, env, cache=cache)
    if root.path is None and len(root.sonames) > 1:
        for alternative in root.sonames:  # one alternative found is enough
            if any(n.soname == alternative and n.path for n in sub.needed):
                return RootNeeds(root, sub, satisfied_by=alternative)
    # None found: the first alternative is the one to provide.
    others = set(root.sonames[1:]) if root.path is None else set()
    missing = [n for n in sub.missing if n.soname not in have and n.soname not in others]
    return RootNeeds(root, sub, missing)


def analyse_roots(roots: Sequence[Root], exe: ElfInfo, closure: Closure, env: Search,
                  cache: ElfCache) -> list[RootNeeds]:
    return [analyse_root(r, exe, closure, env, cache) for r in roots]


def describe(needs: RootNeeds) -> str:
    """One line for reports: the root, and what it lacks."""
    root = needs.root
    where = safe(root.label)
    if needs.error:
        return f"{where}: {needs.error}"
    if needs.satisfied_by:
        return f"{where}: {safe(needs.satisfied_by)} found"
    if not needs.missing:
        return f"{where}: nothing missing"
    return f"{where}: lacks {', '.join(safe(s) for s in needs.missing_sonames)}"
