"""nixld.elf on real ELF files: system binaries and C fixtures built by gcc."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixld.elf import (
    DlopenHint,
    ElfInfo,
    ScriptInfo,
    VersionNeed,
    exported_symbols,
    host_compat,
    read_binary,
    read_library,
)
from nixld.errors import BadInputError
from tests.conftest import need
from tests.fixtures.build import Fixtures

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
# A small real ELF present wherever Python runs: the interpreter itself.
PYTHON_ELF = os.path.realpath(sys.executable)


def elf(path: str | Path) -> ElfInfo:
    info = read_binary(path)
    assert isinstance(info, ElfInfo)
    return info


def system_file(path: str) -> str:
    need(os.path.exists(path), f"needs {path} (a Debian system file)")
    return path


# --- system binaries -------------------------------------------------------------


def test_ls_is_a_dynamic_pie_with_versioned_libc_needs() -> None:
    info = elf(system_file("/bin/ls"))
    assert (info.elf_class, info.machine, info.type) == (64, "EM_X86_64", "ET_DYN")
    assert info.describe_arch() == "x86-64, 64-bit"
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in info.needed
    assert info.is_pie and not info.is_static
    libc_need = next(v for v in info.version_needs if v.library == "libc.so.6")
    assert "GLIBC_2.2.5" in libc_need.versions
    assert "malloc" in info.undefined_symbols
    assert info.version_defs == ()
    assert host_compat(info, "x86_64") is None


def test_python_is_a_non_pie_executable() -> None:
    info = elf(system_file("/usr/bin/python3.11"))
    assert info.type == "ET_EXEC"
    assert not info.is_pie
    assert {"libm.so.6", "libz.so.1", "libexpat.so.1", "libc.so.6"} <= set(info.needed)
    assert VersionNeed("libz.so.1", ("ZLIB_1.2.0",)) in info.version_needs


def test_libc_defines_versions_and_exports_symbols() -> None:
    info = read_library(system_file(LIBC))
    assert info.soname == "libc.so.6"
    assert {"GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE"} <= set(info.version_defs)
    assert "libc.so.6" not in info.version_defs  # the base entry is the file, not a version
    assert {"printf", "malloc", "memcpy"} <= info.exported_symbols
    assert "_dl_argv" not in info.exported_symbols  # libc only imports it from ld.so
    assert "_dl_argv" in info.undefined_symbols
    assert exported_symbols(LIBC) == info.exported_symbols


def test_read_library_without_symbols_skips_symbol_tables() -> None:
    info = read_library(system_file(LIBC), symbols=False)
    assert info.exported_symbols == frozenset()
    assert info.undefined_symbols == ()
    assert "GLIBC_2.2.5" in info.version_defs


def test_static_pie_system_binary_needs_no_loader() -> None:
    info = elf(system_file("/sbin/ldconfig"))
    assert info.is_static
    assert info.interpreter is None and info.needed == ()


# --- fixtures --------------------------------------------------------------------


def test_rpath_and_runpath_are_told_apart(fx: Fixtures) -> None:
    rpath = elf(fx.needs_a_rpath)
    assert (rpath.rpath, rpath.runpath) == (("$ORIGIN/../lib",), ())
    runpath = elf(fx.needs_a_runpath)
    assert (runpath.rpath, runpath.runpath) == ((), ("$ORIGIN/../lib",))
    liba = read_library(fx.lib / "liba.so.1")
    assert liba.soname == "liba.so.1" and liba.needed == ("libb.so.1",)
    assert liba.exported_symbols == {"a_func"}


def test_version_requirements_and_definitions(fx: Fixtures) -> None:
    info = elf(fx.needs_v2)
    need_v = next(v for v in info.version_needs if v.library == "libv.so.1")
    assert sorted(need_v.versions) == ["V1", "V2"]
    assert read_library(fx.libv_v2 / "libv.so.1").version_defs == ("V1", "V2")
    assert read_library(fx.libv_v1 / "libv.so.1").version_defs == ("V1",)


def test_static_and_static_pie_fixtures(fx: Fixtures) -> None:
    static = elf(fx.static)
    assert static.is_static and static.type == "ET_EXEC" and not static.is_pie
    static_pie = elf(fx.static_pie)
    assert static_pie.is_static and static_pie.type == "ET_DYN" and static_pie.is_pie
    assert static_pie.interpreter is None


def test_dlopen_note_is_read(fx: Fixtures) -> None:
    info = elf(fx.dlopen_note)
    assert info.dlopen == (
        DlopenHint(("libfoo-dl.so.1", "libfoo-dl.so.0"), "foo", "Foo support", "recommended"),
        DlopenHint(("libbar-dl.so.2",), None, None, None),
    )
    assert elf(fx.needs_a).dlopen == ()


def test_32bit_binary_is_analysed_and_explained(fx: Fixtures) -> None:
    need(fx.hello32, "needs gcc -m32 (gcc-multilib)")
    assert fx.hello32 is not None
    info = elf(fx.hello32)
    assert (info.elf_class, info.machine) == (32, "EM_386")
    assert info.interpreter == "/lib/ld-linux.so.2"
    assert info.describe_arch() == "x86, 32-bit"
    assert host_compat(info, "x86_64") == (
        "32-bit x86 binary: needs a 32-bit loader and 32-bit libraries (pkgsi686Linux); "
        "this x86-64 system cannot use 64-bit libraries for it")
    assert host_compat(info, "i686") is None


def test_static_32bit_binary_runs_natively(fx: Fixtures) -> None:
    """The kernel runs a static 32-bit x86 program itself: no loader to find."""
    need(fx.hello32_static, "needs gcc -m32 -static (gcc-multilib)")
    assert fx.hello32_static is not None
    info = elf(fx.hello32_static)
    assert (info.elf_class, info.is_static) == (32, True)
    assert host_compat(info, "x86_64") is None


def test_non_linux_binary_is_explained(fx: Fixtures, tmp_path: Path) -> None:
    data = bytearray(fx.static.read_bytes())
    data[7] = 9  # EI_OSABI: FreeBSD
    path = tmp_path / "bsd"
    path.write_bytes(bytes(data))
    info = elf(path)
    assert info.osabi == "ELFOSABI_FREEBSD"
    assert host_compat(info, "x86_64") == (
        "FreeBSD binary: not a Linux program, it cannot run on this system")


def test_aarch64_binary_is_analysed_and_explained(fx: Fixtures) -> None:
    need(fx.hello_arm64, "needs aarch64-linux-gnu-gcc")
    assert fx.hello_arm64 is not None
    info = elf(fx.hello_arm64)
    assert (info.elf_class, info.machine) == (64, "EM_AARCH64")
    assert info.interpreter == "/lib/ld-linux-aarch64.so.1"
    assert info.describe_arch() == "aarch64, 64-bit"
    assert host_compat(info, "x86_64") == (
        "aarch64 binary: cannot run on this x86-64 machine without emulation (binfmt/qemu)")
    assert host_compat(info, "aarch64") is None
    x86 = elf(fx.needs_a)
    assert host_compat(x86, "aarch64") == (
        "x86-64 binary: cannot run on this aarch64 machine without emulation (binfmt/qemu)")


# --- scripts ---------------------------------------------------------------------

def write(path: Path, data: bytes, mode: int = 0o755) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.unit
@pytest.mark.parametrize(("line", "interpreter", "argument", "exists"), [
    (b"#!/bin/sh\necho hi\n", "/bin/sh", None, True),
    # exists only where /usr/bin/env does (not in the Nix build sandbox)
    (b"#! /usr/bin/env python3\n", "/usr/bin/env", "python3", os.path.exists("/usr/bin/env")),
    (b"#!/nonexistent/python -u -X dev\n", "/nonexistent/python", "-u -X dev", False),
    (b"#!/nonexistent/perl", "/nonexistent/perl", None, False),
])
def test_script_interpreter(tmp_path: Path, line: bytes, interpreter: str,
                            argument: str | None, exists: bool) -> None:
    script = write(tmp_path / "tool", line)
    info = read_binary(script)
    assert info == ScriptInfo(str(script), interpreter, argument, exists)


# --- bad input -------------------------------------------------------------------


def message(path: str | Path) -> str:
    with pytest.raises(BadInputError) as caught:
        read_binary(path)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.mark.unit
def test_missing_file(tmp_path: Path) -> None:
    assert message(tmp_path / "nope") == f"{tmp_path}/nope: no such file"
    assert message(tmp_path / "nope" / "x") == f"{tmp_path}/nope/x: no such file"


@pytest.mark.unit
def test_path_through_a_file(tmp_path: Path) -> None:
    write(tmp_path / "f", b"x")
    assert message(tmp_path / "f" / "x") == (
        f"{tmp_path}/f/x: no such file (part of the path is a file)")


@pytest.mark.unit
def test_directory(tmp_path: Path) -> None:
    assert message(tmp_path) == f"{tmp_path}: is a directory, not a binary"


@pytest.mark.unit
def test_fifo_and_device_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert message(tmp_path / "fifo") == (
        f"{tmp_path}/fifo: not a regular file (a device, FIFO or socket)")
    assert message("/dev/null") == "/dev/null: not a regular file (a device, FIFO or socket)"


@pytest.mark.unit
def test_empty_file(tmp_path: Path) -> None:
    assert message(write(tmp_path / "empty", b"")) == f"{tmp_path}/empty: empty file, not a binary"


@pytest.mark.unit
def test_not_elf(tmp_path: Path) -> None:
    path = write(tmp_path / "doc", b"PK\x03\x04 a zip file, not a program")
    assert message(path) == f"{tmp_path}/doc: not an ELF binary or a #! script"


@pytest.mark.unit
def test_empty_shebang(tmp_path: Path) -> None:
    path = write(tmp_path / "s", b"#!   \nexit 0\n")
    assert message(path) == f"{tmp_path}/s: the #! line names no interpreter"


@pytest.mark.unit
def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    assert message(tmp_path / "a\x1b[2Jb") == f"{tmp_path}/a\\x1b[2Jb: no such file"


@pytest.mark.unit
@pytest.mark.parametrize("size", [4, 20, 63, 64, 200])
def test_truncated_elf(tmp_path: Path, size: int) -> None:
    data = Path(PYTHON_ELF).read_bytes()[:size]
    path = write(tmp_path / "cut", data)
    assert message(path) == (
        f"{tmp_path}/cut: truncated or corrupt ELF file "
        "(a header or table runs past the end of the file)")


@pytest.mark.unit
def test_corrupt_elf_header_sizes(tmp_path: Path) -> None:
    data = bytearray(Path(PYTHON_ELF).read_bytes())
    data[0x3A:0x3C] = b"\x00\x00"  # e_shentsize = 0: every section header the same one
    data[0x3C:0x3E] = b"\xff\xff"  # e_shnum = 65535
    path = write(tmp_path / "bad", bytes(data))
    assert message(path) == (
        f"{tmp_path}/bad: truncated or corrupt ELF file (bad section header size 0)")


@pytest.mark.unit
def test_corrupt_elf_class(tmp_path: Path) -> None:
    data = bytearray(Path(PYTHON_ELF).read_bytes())
    data[4] = 7  # EI_CLASS neither 32 nor 64
    path = write(tmp_path / "bad", bytes(data))
    assert message(path) == (
        f"{tmp_path}/bad: truncated or corrupt ELF file (Invalid EI_CLASS b'\\\\x07')")


@pytest.mark.unit
def test_library_that_is_not_elf(tmp_path: Path) -> None:
    path = write(tmp_path / "libx.so.1", b"/* GNU ld script */\nGROUP ( libx.so.1.2 )\n")
    with pytest.raises(BadInputError, match=r"^.*/libx\.so\.1: not an ELF file$"):
        read_library(path)


def test_unreadable_file_as_an_unprivileged_user(tmp_path: Path) -> None:
    """Root reads everything, so the check runs in a child that drops to nobody."""
    need(os.geteuid() == 0, "needs root to switch to the nobody user")
    tmp_path.chmod(0o755)
    path = write(tmp_path / "secret", Path(PYTHON_ELF).read_bytes(), mode=0o000)
    code = textwrap.dedent(f"""
        import os
        from nixld.elf import read_binary  # imported first: nobody cannot read /root
        from nixld.errors import BadInputError
        import elftools.elf.elffile
        os.setgid(65534); os.setuid(65534)
        try:
            read_binary({str(path)!r})
        except BadInputError as err:
            print(err)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=False, timeout=60)
    assert out.stderr == ""
    assert out.stdout == f"{path}: cannot read: permission denied\n"


# --- fuzzing ----------------------------------------------------------------------

REAL_ELF = Path(PYTHON_ELF).read_bytes()


def check_outcome(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzzed"
    path.write_bytes(data)
    try:
        info = read_binary(path)
    except BadInputError as err:
        assert "\n" not in str(err)
        assert str(err).startswith(f"{path}: ")
        return
    assert isinstance(info, ElfInfo | ScriptInfo)
    with contextlib.suppress(BadInputError):
        read_library(path)


FUZZ = settings(max_examples=300, deadline=2000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.unit
@FUZZ
@given(st.integers(min_value=0, max_value=len(REAL_ELF)))
def test_fuzz_truncations(tmp_path: Path, size: int) -> None:
    check_outcome(tmp_path, REAL_ELF[:size])


@pytest.mark.unit
@FUZZ
@given(st.lists(
    st.tuples(
        st.one_of(st.integers(0, 4095), st.integers(0, len(REAL_ELF) - 1)),
        st.integers(0, 255)),
    min_size=1, max_size=12))
def test_fuzz_byte_changes(tmp_path: Path, changes: list[tuple[int, int]]) -> None:
    data = bytearray(REAL_ELF)
    for offset, value in changes:
        data[offset] = value
    check_outcome(tmp_path, bytes(data))
