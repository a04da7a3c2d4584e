"""ELF facts, read with pyelftools; the file is never executed (no `ldd`).

Each fact is a small function whose comment says why it is computed that way.
`read_binary` is the entry point for the file the user names (an ELF file or a
`#!` script); `read_library` reads a library candidate. Every problem with the
file becomes one `BadInputError` line naming it; pyelftools' own exceptions
never escape.

pyelftools is imported inside the functions that parse: importing it costs
~30 ms, which the shell-hook path must not pay.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

from nixld.errors import BadInputError
from nixld.text import safe

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

T = TypeVar("T")

ELF_MAGIC = b"\x7fELF"
ELF32_HEADER_SIZE = 52
CUT_SHORT = "a header or table runs past the end of the file"

# systemd's ELF dlopen metadata (https://systemd.io/ELF_DLOPEN_METADATA/):
# an SHT_NOTE in `.note.dlopen`, owner "FDO", this type, a JSON array payload.
DLOPEN_NOTE_OWNER = "FDO"
DLOPEN_NOTE_TYPE = 0x407C0C0A

DF_1_NODEFLIB = 0x00000800
DF_1_PIE = 0x08000000
VER_FLG_BASE = 0x1
VER_FLG_WEAK = 0x2

# Linux reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
SHEBANG_MAX = 256

# Upper bounds on table walks: a corrupt count with a zero "next" offset would
# otherwise make pyelftools re-read one entry billions of times.
MAX_ENTRIES = 65536
MAX_HEADERS = 65535

# Plain-word architecture names for messages (e_machine -> words).
ARCH_NAMES: dict[str, str] = {
    "EM_X86_64": "x86-64",
    "EM_386": "x86",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "ARM",
    "EM_RISCV": "RISC-V",
    "EM_PPC64": "PowerPC64",
    "EM_PPC": "PowerPC",
    "EM_S390": "s390x",
    "EM_MIPS": "MIPS",
    "EM_LOONGARCH": "LoongArch",
    "EM_SPARCV9": "SPARC64",
}

# os.uname().machine -> the e_machine and class that run natively there.
HOST_MACHINES: dict[str, tuple[str, int]] = {
    "x86_64": ("EM_X86_64", 64),
    "aarch64": ("EM_AARCH64", 64),
    "i686": ("EM_386", 32),
    "i386": ("EM_386", 32),
    "riscv64": ("EM_RISCV", 64),
    "ppc64le": ("EM_PPC64", 64),
    "s390x": ("EM_S390", 64),
}

# A 64-bit kernel runs 32-bit programs of its own family (IA32 / AArch32
# emulation in the kernel) when given a 32-bit loader and 32-bit libraries.
COMPAT_32: dict[str, tuple[str, str]] = {
    "EM_X86_64": ("EM_386", "pkgsi686Linux"),
    "EM_AARCH64": ("EM_ARM", "pkgsCross.armv7l-hf-multiplatform"),
}

# OS ABIs that mean "a Linux program": SYSV is the generic base ABI most Linux
# binaries carry; GNU (= LINUX) is set by binaries using GNU extensions
# (IFUNC, unique symbols).
LINUX_OSABIS = frozenset({"ELFOSABI_SYSV", "ELFOSABI_LINUX", "ELFOSABI_GNU"})
OSABI_NAMES: dict[str, str] = {
    "ELFOSABI_FREEBSD": "FreeBSD", "ELFOSABI_NETBSD": "NetBSD", "ELFOSABI_OPENBSD": "OpenBSD",
    "ELFOSABI_SOLARIS": "Solaris", "ELFOSABI_HPUX": "HP-UX", "ELFOSABI_AIX": "AIX",
    "ELFOSABI_IRIX": "IRIX", "ELFOSABI_CLOUDABI": "CloudABI",
}


@dataclass(frozen=True)
class VersionNeed:
    """`library` must define each of `versions` (from `.gnu.version_r`),
    e.g. `libstdc++.so.6` needs `GLIBCXX_3.4.30`."""

    library: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class DlopenHint:
    """One entry of a `.note.dlopen` note: libraries the program may dlopen."""

    sonames: tuple[str, ...]
    feature: str | None
    description: str | None
    priority: str | None


@dataclass(frozen=True)
class ElfInfo:
    path: str
    elf_class: int  # 32 or 64
    machine: str  # e_machine, e.g. "EM_X86_64"
    osabi: str  # e.g. "ELFOSABI_SYSV"
    type: str  # "ET_EXEC", "ET_DYN", ...
    interpreter: str | None  # PT_INTERP
    needed: tuple[str, ...]  # DT_NEEDED, in order
    rpath: tuple[str, ...]  # DT_RPATH, unexpanded (ignored by ld.so if DT_RUNPATH is set)
    runpath: tuple[str, ...]  # DT_RUNPATH, unexpanded
    soname: str | None  # DT_SONAME
    version_needs: tuple[VersionNeed, ...]  # non-weak requirements only
    version_defs: tuple[str, ...]  # defined versions, without the base (soname) entry
    undefined_symbols: tuple[str, ...]  # non-weak undefined dynamic symbols
    dlopen: tuple[DlopenHint, ...]
    is_static: bool  # needs no loader at all (static, static-pie)
    is_pie: bool
    nodeflib: bool = False  # DF_1_NODEFLIB: ld.so skips its default directory for it
    exported_symbols: frozenset[str] = field(default_factory=frozenset)  # read_library only

    def describe_arch(self) -> str:
        """Plain words: "x86-64, 64-bit"."""
        return f"{arch_name(self.machine)}, {self.elf_class}-bit"


@dataclass(frozen=True)
class ScriptInfo:
    path: str
    interpreter: str  # the `#!` program
    argument: str | None  # the single optional argument Linux passes after it
    interpreter_exists: bool


def arch_name(machine: str) -> str:
    return ARCH_NAMES.get(machine, machine.removeprefix("EM_").lower())


# --- opening the file -------------------------------------------------------


def _open_regular(path: str) -> IO[bytes]:
    """Open `path` for reading, refusing anything but a regular file.

    Why O_NONBLOCK: a FIFO would otherwise block the open forever; the fstat on
    the open descriptor then decides (no race between a stat and the open).
    """
    shown = safe(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInputError(f"{shown}: no such file") from None
    except NotADirectoryError:
        raise BadInputError(f"{shown}: no such file (part of the path is a file)") from None
    except IsADirectoryError:
        raise BadInputError(f"{shown}: is a directory, not a binary") from None
    except PermissionError:
        raise BadInputError(f"{shown}: cannot read: permission denied") from None
    except OSError as err:
        raise BadInputError(f"{shown}: cannot open: {_os_reason(err)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadInputError(f"{shown}: is a directory, not a binary")
        if not stat.S_ISREG(mode):
            raise BadInputError(f"{shown}: not a regular file (a device, FIFO or socket)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _os_reason(err: OSError) -> str:
    if err.errno == errno.EISDIR:
        return "is a directory"
    return (err.strerror or type(err).__name__).lower()


def _read_head(stream: IO[bytes], path: str) -> bytes:
    try:
        return stream.read(SHEBANG_MAX)
    except IsADirectoryError:
        raise BadInputError(f"{safe(path)}: is a directory, not a binary") from None
    except OSError as err:
        raise BadInputError(f"{safe(path)}: cannot read: {_os_reason(err)}") from None


# --- reading ------------------------------------------------------------------


def read_binary(path: str | Path) -> ElfInfo | ScriptInfo:
    """Read the program the user named: an ELF file or a `#!` script.

    Raises BadInputError (one line naming the file) for a missing file, a
    directory, an unreadable or special file, something that is neither ELF
    nor a script, and a truncated or corrupt ELF file.
    """
    name = os.fspath(path)
    with _open_regular(name) as stream:
        head = _read_head(stream, name)
        if head.startswith(ELF_MAGIC):
            return _parse_elf(stream, name, symbols="undefined")
        if head.startswith(b"#!"):
            return _parse_script(head, name)
        if not head:
            raise BadInputError(f"{safe(name)}: empty file, not a binary")
        raise BadInputError(f"{safe(name)}: not an ELF binary or a #! script")


def read_library(path: str | Path, *, symbols: bool = True) -> ElfInfo:
    """Read a library candidate; with `symbols`, also its exported symbols.

    The loader emulation passes `symbols=False`: it only needs the dynamic
    section and the version tables, and symbol tables are the slow part.
    """
    name = os.fspath(path)
    with _open_regular(name) as stream:
        head = _read_head(stream, name)
        if not head:
            raise BadInputError(f"{safe(name)}: empty file, not a library")
        if not head.startswith(ELF_MAGIC):
            raise BadInputError(f"{safe(name)}: not an ELF file")
        return _parse_elf(stream, name, symbols="both" if symbols else "none")


def exported_symbols(path: str | Path) -> frozenset[str]:
    """The dynamic symbols `path` defines: what it offers to others."""
    return read_library(path).exported_symbols


def _parse_elf(stream: IO[bytes], path: str, symbols: str) -> ElfInfo:
    """Parse with pyelftools, turning any failure into one BadInputError line.

    Why catch Exception: on hostile input pyelftools raises ELFError,
    ELFParseError, its construct errors, struct.error, ValueError, IndexError,
    KeyError, AssertionError, UnicodeDecodeError and more; every one of them
    means the same thing to the user. OSError (a read failing) is kept apart.
    """
    try:
        return _elf_info(stream, path, symbols)
    except BadInputError:
        raise
    except OSError as err:
        raise BadInputError(f"{safe(path)}: cannot read: {_os_reason(err)}") from None
    except Exception as err:
        # Shorter than the smallest ELF header (32-bit): whatever pyelftools
        # complains about, the file was cut short.
        short = os.fstat(stream.fileno()).st_size < ELF32_HEADER_SIZE
        reason = CUT_SHORT if short else _short_reason(err)
        raise BadInputError(f"{safe(path)}: truncated or corrupt ELF file ({reason})") from None


# pyelftools' ways of saying "the data stopped before the structure did".
_CUT_SHORT_ERRORS = re.compile(r"expected \d+, found \d+|past EOF|missing terminator|[Ss]tream")


def _short_reason(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if _CUT_SHORT_ERRORS.search(text):
        return CUT_SHORT
    if len(text) > 80:
        text = text[:77] + "..."
    return safe(text)


def _elf_info(stream: IO[bytes], path: str, symbols: str) -> ElfInfo:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(stream)
    check_header_sanity(elf)
    segments = _wanted_segments(elf)
    sections = _wanted_sections(elf)
    interpreter = get_interpreter(elf, segments)
    tags = get_dynamic_tags(elf, sections, segments)
    flags_1 = _flags_1(tags)
    needed = tuple(v for k, v in tags if k == "DT_NEEDED")
    undefined: tuple[str, ...] = ()
    exported: frozenset[str] = frozenset()
    if symbols != "none":
        undefined, exported = get_dynamic_symbols(sections, want_defined=symbols == "both")
    return ElfInfo(
        path=path,
        elf_class=int(elf.elfclass),
        machine=str(elf.header["e_machine"]),
        osabi=str(elf.header["e_ident"]["EI_OSABI"]),
        type=str(elf.header["e_type"]),
        interpreter=interpreter,
        needed=needed,
        rpath=_search_list(tags, "DT_RPATH"),
        runpath=_search_list(tags, "DT_RUNPATH"),
        soname=next((str(v) for k, v in tags if k == "DT_SONAME"), None),
        version_needs=get_version_needs(sections),
        version_defs=get_version_defs(sections),
        undefined_symbols=undefined,
        dlopen=get_dlopen_hints(sections),
        is_static=is_static(interpreter, needed),
        is_pie=is_pie(str(elf.header["e_type"]), interpreter, flags_1),
        nodeflib=bool(flags_1 & DF_1_NODEFLIB),
        exported_symbols=exported,
    )


def check_header_sanity(elf: ELFFile) -> None:
    """Refuse header tables pyelftools would walk forever.

    Why: with an entry size of 0 every "next" header is the same valid one, so
    a huge count never runs into the end of the file.
    """
    from elftools.common.exceptions import ELFError

    header = elf.header
    if header["e_phnum"] and header["e_phentsize"] != elf.structs.Elf_Phdr.sizeof():
        raise ELFError(f"bad program header size {header['e_phentsize']}")
    if header["e_shnum"] and header["e_shentsize"] != elf.structs.Elf_Shdr.sizeof():
        raise ELFError(f"bad section header size {header['e_shentsize']}")
    if elf.num_sections() > MAX_HEADERS:
        raise ELFError(f"{elf.num_sections()} section headers")


def _bounded(items: Iterable[T], what: str) -> Iterator[T]:
    from elftools.common.exceptions import ELFError

    for n, item in enumerate(items):
        if n >= MAX_ENTRIES:
            raise ELFError(f"more than {MAX_ENTRIES} {what}")
        yield item


# Only these are turned into pyelftools objects: building every section and
# segment object costs more than reading the facts (a PT_DYNAMIC segment object
# alone re-reads every section header to find its string table).
WANTED_SECTIONS = frozenset({"SHT_DYNAMIC", "SHT_GNU_verneed", "SHT_GNU_verdef",
                             "SHT_DYNSYM", "SHT_NOTE"})
WANTED_SEGMENTS = frozenset({"PT_INTERP", "PT_DYNAMIC"})


def _wanted_sections(elf: ELFFile) -> list[Any]:
    # _get_section_header is pyelftools-internal (stable since 0.2x); it reads
    # the header only, so unwanted sections cost one small parse each.
    out = []
    for index in range(elf.num_sections()):
        if elf._get_section_header(index)["sh_type"] in WANTED_SECTIONS:
            out.append(elf.get_section(index))
    return out


def _wanted_segments(elf: ELFFile) -> list[tuple[str, int]]:
    """(p_type, index) of the program headers we use; objects made on demand."""
    out = []
    for index in _bounded(range(elf.num_segments()), "program headers"):
        p_type = elf._get_segment_header(index)["p_type"]
        if p_type in WANTED_SEGMENTS:
            out.append((str(p_type), index))
    return out


def get_interpreter(elf: ELFFile, segments: list[tuple[str, int]]) -> str | None:
    # PT_INTERP (not the .interp section) is what the kernel reads.
    from elftools.elf.segments import InterpSegment

    for p_type, index in segments:
        segment = elf.get_segment(index) if p_type == "PT_INTERP" else None
        if isinstance(segment, InterpSegment):
            return str(segment.get_interp_name())
    return None


def get_dynamic_tags(
    elf: ELFFile, sections: list[Any], segments: list[tuple[str, int]]
) -> list[tuple[str, Any]]:
    """(tag, value) pairs: strings for the name tags, ints otherwise.

    Why the `.dynamic` section first: it names its string table directly. A
    file whose section headers are stripped still has PT_DYNAMIC, which is all
    ld.so reads, so that is the fallback.
    """
    from elftools.elf.dynamic import DynamicSection, DynamicSegment

    dynamic: Any = next((s for s in sections if isinstance(s, DynamicSection)), None)
    if dynamic is None:
        index = next((i for p_type, i in segments if p_type == "PT_DYNAMIC"), None)
        dynamic = elf.get_segment(index) if index is not None else None
        if not isinstance(dynamic, DynamicSegment):
            return []
    string_tags = {"DT_NEEDED": "needed", "DT_RPATH": "rpath",
                   "DT_RUNPATH": "runpath", "DT_SONAME": "soname"}
    out: list[tuple[str, Any]] = []
    for tag in _bounded(dynamic.iter_tags(), "dynamic tags"):
        kind = str(tag.entry.d_tag)
        if kind in string_tags:
            out.append((kind, str(getattr(tag, string_tags[kind]))))
        elif kind == "DT_FLAGS_1":
            out.append((kind, int(tag.entry.d_val)))
    return out


def _flags_1(tags: list[tuple[str, Any]]) -> int:
    return next((int(v) for k, v in tags if k == "DT_FLAGS_1"), 0)


def _search_list(tags: list[tuple[str, Any]], kind: str) -> tuple[str, ...]:
    # Why keep empty parts out: ld.so would read them as the current
    # directory, which no real binary means to say.
    return tuple(part for k, v in tags if k == kind for part in str(v).split(":") if part)


def is_static(interpreter: str | None, needed: tuple[str, ...]) -> bool:
    # No PT_INTERP and nothing DT_NEEDED: nothing for a loader to do. This also
    # covers static-pie, which has a PT_DYNAMIC (for its own relocations) but
    # relocates itself.
    return interpreter is None and not needed


def is_pie(elf_type: str, interpreter: str | None, flags_1: int) -> bool:
    # PIE executables are ET_DYN like shared libraries; linkers mark them with
    # DF_1_PIE, and older ones are told apart by their interpreter.
    return elf_type == "ET_DYN" and (bool(flags_1 & DF_1_PIE) or interpreter is not None)


def get_version_needs(sections: list[Any]) -> tuple[VersionNeed, ...]:
    """`.gnu.version_r`: which library must define which version.

    Why weak needs are left out: ld.so does not fail when a weak version
    requirement is unmet, so they are no reason to install anything.
    """
    from elftools.elf.gnuversions import GNUVerNeedSection

    needs: list[VersionNeed] = []
    for section in sections:
        if not isinstance(section, GNUVerNeedSection):
            continue
        for verneed, auxes in _bounded(section.iter_versions(), "version needs"):
            versions = tuple(
                str(aux.name) for aux in _bounded(auxes, "version needs")
                if not aux["vna_flags"] & VER_FLG_WEAK
            )
            if versions:
                needs.append(VersionNeed(str(verneed.name), versions))
    return tuple(needs)


def get_version_defs(sections: list[Any]) -> tuple[str, ...]:
    """`.gnu.version_d`: the versions this library defines.

    Why skip VER_FLG_BASE: that entry names the file itself (its soname), not a
    version anyone can require.
    """
    from elftools.elf.gnuversions import GNUVerDefSection

    defs: list[str] = []
    for section in sections:
        if not isinstance(section, GNUVerDefSection):
            continue
        for verdef, auxes in _bounded(section.iter_versions(), "version definitions"):
            if verdef["vd_flags"] & VER_FLG_BASE:
                continue
            first = next(iter(auxes), None)  # the first aux names the version
            if first is not None:
                defs.append(str(first.name))
    return tuple(dict.fromkeys(defs))


def get_dynamic_symbols(
    sections: list[Any], *, want_defined: bool
) -> tuple[tuple[str, ...], frozenset[str]]:
    """(undefined, defined) names in `.dynsym`.

    Undefined: only non-weak ones, since an unresolved weak reference is
    simply null at run time. Defined: global, weak and unique symbols with a
    section, the ones ld.so binds other objects' references to.
    """
    undefined: dict[str, None] = {}
    defined: set[str] = set()
    for section in sections:
        if section["sh_type"] != "SHT_DYNSYM":
            continue
        for symbol in _bounded(section.iter_symbols(), "symbols"):
            name = str(symbol.name)
            if not name:
                continue
            bind = symbol["st_info"]["bind"]
            if symbol["st_shndx"] == "SHN_UNDEF":
                if bind == "STB_GLOBAL":
                    undefined[name] = None
            elif want_defined and bind != "STB_LOCAL" and symbol["st_info"]["type"] not in (
                "STT_SECTION", "STT_FILE"
            ):
                defined.add(name)
    return tuple(undefined), frozenset(defined)


def get_dlopen_hints(sections: list[Any]) -> tuple[DlopenHint, ...]:
    """`.note.dlopen` entries (systemd's ELF dlopen metadata spec).

    Why lenient: the note is advice, not a requirement; a malformed payload is
    ignored rather than making the whole binary unreadable.
    """
    from elftools.elf.sections import NoteSection

    hints: list[DlopenHint] = []
    for section in sections:
        if not isinstance(section, NoteSection) or section.name != ".note.dlopen":
            continue
        for note in _bounded(section.iter_notes(), "notes"):
            # pyelftools has no name for this type: it is the raw number.
            n_type: object = note["n_type"]
            if n_type != DLOPEN_NOTE_TYPE or note["n_name"] != DLOPEN_NOTE_OWNER:
                continue
            hints.extend(_parse_dlopen_payload(bytes(note["n_descdata"])))
    return tuple(hints)


def _parse_dlopen_payload(payload: bytes) -> list[DlopenHint]:
    import json

    try:
        entries = json.loads(payload.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    hints = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        sonames = entry.get("soname")
        if not isinstance(sonames, list) or not all(isinstance(s, str) for s in sonames):
            continue
        hints.append(DlopenHint(
            sonames=tuple(sonames),
            feature=_opt_str(entry.get("feature")),
            description=_opt_str(entry.get("description")),
            priority=_opt_str(entry.get("priority")),
        ))
    return hints


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


# --- scripts -------------------------------------------------------------------


def _parse_script(head: bytes, path: str) -> ScriptInfo:
    """The `#!` line as Linux reads it: the interpreter, then at most one
    argument (everything after the first blank, trimmed)."""
    line = head[2:].split(b"\n", 1)[0].strip(b" \t")
    if not line:
        raise BadInputError(f"{safe(path)}: the #! line names no interpreter")
    parts = line.split(None, 1)
    interpreter = os.fsdecode(parts[0])
    argument = os.fsdecode(parts[1].strip(b" \t")) if len(parts) > 1 else None
    return ScriptInfo(
        path=path,
        interpreter=interpreter,
        argument=argument or None,
        interpreter_exists=os.path.exists(interpreter),
    )


# --- what it means here ----------------------------------------------------------


def host_compat(info: ElfInfo, host_machine: str | None = None) -> str | None:
    """None if `info` can run natively on this machine, else a plain sentence
    saying what it needs."""
    host = host_machine or os.uname().machine
    native = HOST_MACHINES.get(host)
    if info.osabi not in LINUX_OSABIS:
        osabi = OSABI_NAMES.get(info.osabi, info.osabi.removeprefix("ELFOSABI_"))
        return f"{osabi} binary: not a Linux program, it cannot run on this system"
    if native is None or (info.machine, info.elf_class) == native:
        return None
    host_words = arch_name(native[0])
    compat = COMPAT_32.get(native[0])
    if compat and info.machine == compat[0] and info.elf_class == 32:
        if info.is_static:
            return None  # the kernel runs it; there is no loader or library to find
        return (
            f"32-bit {arch_name(info.machine)} binary: needs a 32-bit loader and 32-bit libraries "
            f"({compat[1]}); this {host_words} system cannot use 64-bit libraries for it"
        )
    if info.machine == native[0]:
        return (
            f"{info.elf_class}-bit {arch_name(info.machine)} binary (unusual ABI): "
            f"needs a matching loader and libraries, which this system does not have"
        )
    return (
        f"{arch_name(info.machine)} binary: cannot run on this {host_words} machine "
        f"without emulation (binfmt/qemu)"
    )


# --- the build-id (shim/FORMAT.md, "The second key") ---------------------------

NT_GNU_BUILD_ID = 3
BUILD_ID_MAX = 64  # bytes, as the shim accepts


def read_build_id(path: str | Path) -> str | None:
    """The program's GNU build-id as lowercase hex, exactly as the shim finds it.

    Why the shim's rules and not every note: the shim reads the note from the
    program's headers in memory, so it needs PT_PHDR (for the load bias), a
    PT_NOTE aligned to 4 or 8 and inside a readable PT_LOAD. A build-id it
    cannot see would make an entry that never applies. None when there is no
    such note, or the file cannot be read as ELF.
    """
    name = os.fspath(path)
    try:
        with _open_regular(name) as stream:
            if not _read_head(stream, name).startswith(ELF_MAGIC):
                return None
            return _build_id(stream)
    except BadInputError:
        return None
    except Exception:  # pyelftools on a corrupt file: no usable build-id
        return None


def _build_id(stream: IO[bytes]) -> str | None:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(stream)
    check_header_sanity(elf)
    headers = [elf._get_segment_header(i)
               for i in _bounded(range(elf.num_segments()), "program headers")]
    if not any(h["p_type"] == "PT_PHDR" for h in headers):
        return None
    little = elf.little_endian
    for h in headers:
        if h["p_type"] != "PT_NOTE" or h["p_align"] not in (4, 8) or not _mapped(headers, h):
            continue
        stream.seek(h["p_offset"])
        found = note_build_id(stream.read(h["p_filesz"]), h["p_align"], little)
        if found:
            return found
    return None


def _mapped(headers: list[Any], note: Any) -> bool:
    """Inside a readable PT_LOAD's file-backed part, where the shim can read it."""
    start, size = note["p_vaddr"], note["p_filesz"]
    return any(h["p_type"] == "PT_LOAD" and h["p_flags"] & 4 and h["p_vaddr"] <= start
               and start + size <= h["p_vaddr"] + h["p_filesz"] for h in headers)


def note_build_id(notes: bytes, align: int, little_endian: bool = True) -> str | None:
    """The NT_GNU_BUILD_ID descriptor in one PT_NOTE's bytes (aligned to
    `align`); None if there is none."""
    order: Literal["little", "big"] = "little" if little_endian else "big"
    off = 0
    while len(notes) - off >= 12:
        namesz, descsz, kind = (int.from_bytes(notes[off + i:off + i + 4], order)
                                for i in (0, 4, 8))
        # As glibc: the descriptor at the aligned end of header and name, the
        # next note at the aligned end of the descriptor.
        desc = off + _align_up(12 + namesz, align)
        if off + 12 + namesz > len(notes) or desc + descsz > len(notes):
            return None
        if kind == NT_GNU_BUILD_ID and notes[off + 12:off + 12 + namesz] == b"GNU\0" \
                and 1 <= descsz <= BUILD_ID_MAX:
            return notes[desc:desc + descsz].hex()
        off = _align_up(desc + descsz, align)
    return None


def _align_up(n: int, align: int) -> int:
    return -(-n // align) * align
