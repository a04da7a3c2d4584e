"""`nixld-hook handle`: which file of a failed command line could not start.

Real ELF files compiled here with gcc: one whose interpreter does not exist,
one whose library is not found by the loader it starts with (a copy of
Debian's ld.so named by NIX_LD, as the shim would hand over to it), one whose
library lacks a required symbol version, and a script whose `#!` interpreter
does not exist. Each is first run for real, to prove it fails as the hook sees
it fail (exit 127). The builders are shared with the hook tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, need_tool, run_cli
from tests.fixtures.broken import MISSING_INTERPRETER, Broken, build_broken


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    return build_broken(tmp_path_factory.mktemp("broken"))


def handle(broken: Broken, line: str, *, status: int = 127, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `nixld-hook handle` as the hook does, with no terminal (stdin /dev/null)."""
    full = env or broken.env()
    full["PYTHONPATH"] = str(REPO)
    where = cwd or broken.dir
    return subprocess.run(
        [sys.executable, "-m", "nixld", "handle", "--shell", "bash", "--status", str(status),
         "--cwd", str(where), "--", line],
        env=full, cwd=where, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, check=False)


def test_fixtures_really_fail_with_127(broken: Broken) -> None:
    # Run by a shell, as the user does: a missing interpreter fails in execve
    # itself and the shell reports 127; a missing library makes ld.so exit 127.
    env = broken.env()
    for binary in (broken.bad_interp, broken.needs_lib, broken.bad_script, broken.good_script):
        result = subprocess.run(["bash", "-c", str(binary)], env=env, capture_output=True,
                                check=False)
        assert result.returncode == 127, (binary, result.stderr)
    assert b"libnixldfix.so.1" in subprocess.run(
        [str(broken.needs_lib)], env=env, capture_output=True, check=False).stderr
    # glibc's ld.so exits 1, not 127, for a missing symbol version: a hook that
    # only wakes up for 126/127 does not see this one (handle still judges it).
    version = subprocess.run([str(broken.needs_version)], env=env, capture_output=True,
                             check=False)
    assert (version.returncode, b"version `NIXLDFIX_2' not found" in version.stderr) == (1, True)


def test_missing_interpreter_says_how_to_enable_the_shim(broken: Broken) -> None:
    result = handle(broken, "./bad-interp --flag")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "./bad-interp needs the ELF interpreter " + MISSING_INTERPRETER in lines[0]
    assert "programs.nixld.enable = true;" in lines[0]
    assert "run: nixld-hook run ./bad-interp" in lines[0]
    assert result.stdout == ""


def test_missing_library_one_line_without_a_terminal(broken: Broken) -> None:
    result = handle(broken, "cd . && ./needs-lib")
    assert result.returncode == 0
    assert result.stderr == ("nixld-hook: ./needs-lib lacks libnixldfix.so.1; "
                             "run: nixld-hook resolve ./needs-lib\n")


def test_missing_version_counts_as_missing(broken: Broken) -> None:
    result = handle(broken, "make -q nothing; ./needs-version")
    assert result.stderr == ("nixld-hook: ./needs-version lacks libnixldver.so.1 version "
                             "NIXLDFIX_2; run: nixld-hook resolve ./needs-version\n")


def test_several_broken_files_each_get_a_line(broken: Broken) -> None:
    result = handle(broken, "./needs-lib | ./bad-interp")
    lines = result.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["./needs-lib", "./bad-interp"]


def test_script_with_missing_interpreter(broken: Broken) -> None:
    result = handle(broken, "./bad-script")
    assert result.stderr == (
        "nixld-hook: ./bad-script: its #! interpreter /nonexistent-nixld-test/bin/sh does not "
        "exist; use `#!/usr/bin/env sh`, or run: sh ./bad-script\n")


def test_path_name_resolved_on_the_shells_path(broken: Broken) -> None:
    result = handle(broken, "FOO=1 nohup nixld-broken-tool arg")
    tool = broken.path_dir / "nixld-broken-tool"
    assert f"nixld-hook: {tool} needs the ELF interpreter" in result.stderr
    assert f"run: nixld-hook run {tool}" in result.stderr


def test_relative_path_resolved_against_the_shells_cwd(broken: Broken, tmp_path: Path) -> None:
    # --cwd is the shell's $PWD; the handler may run anywhere.
    env = broken.env()
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "nixld", "handle", "--shell", "zsh", "--status", "127",
         "--cwd", str(broken.dir), "--", "./needs-lib"],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False)
    assert "./needs-lib lacks libnixldfix.so.1" in result.stderr


def test_sudo_says_root_does_not_see_user_entries(broken: Broken) -> None:
    result = handle(broken, "sudo -E ./needs-lib")
    assert "root, which does not see your per-user resolutions" in result.stderr
    assert f'programs.nixld.binaries."{broken.needs_lib}"' in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("line", [
    "false", "nixld-no-such-command --x", "(exit 127)", "exit 127", "./good-script",
    "./does-not-exist", "/usr/bin/env true", 'echo "unclosed', "", "sh -c 'exit 127'",
])
def test_ordinary_failures_print_nothing(broken: Broken, line: str) -> None:
    start = time.monotonic()
    result = handle(broken, line)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert time.monotonic() - start < 5


def test_foreign_architecture_126(broken: Broken, tmp_path: Path) -> None:
    cc = need_tool("aarch64-linux-gnu-gcc")
    arm = tmp_path / "arm-tool"
    src = tmp_path / "arm.c"
    src.write_text("int main(void) { return 0; }\n")
    subprocess.run([cc, "-o", str(arm), str(src)], check=True)
    # Without binfmt emulation the shell says 126 ("cannot execute binary file");
    # the handler is judged on that status whatever this machine does.
    result = handle(broken, "./arm-tool", status=126, cwd=tmp_path)
    assert result.stderr.startswith("nixld-hook: ./arm-tool: aarch64 binary")
    assert len(result.stderr.splitlines()) == 1


def test_other_statuses_are_ignored(broken: Broken) -> None:
    for status in (0, 2, 130):
        result = handle(broken, "./needs-lib", status=status)
        assert (result.returncode, result.stderr) == (0, ""), status


def test_status_1_judges_only_what_makes_the_loader_exit_1(broken: Broken) -> None:
    # ld.so exits 1 for a missing symbol version: that is reported.
    result = handle(broken, "./needs-version", status=1)
    assert result.stderr == ("nixld-hook: ./needs-version lacks libnixldver.so.1 version "
                             "NIXLDFIX_2; run: nixld-hook resolve ./needs-version\n")
    # A missing interpreter or #! interpreter never gives 1: not why this failed.
    for line in ("./bad-interp", "./bad-script", "./good-script"):
        result = handle(broken, line, status=1)
        assert (result.returncode, result.stderr) == (0, ""), line


def test_plain_loader_not_named_by_nix_ld_is_not_judged(broken: Broken) -> None:
    # Without NIX_LD naming its loader (and no shim), the emulation says
    # nothing about how the binary started: stay silent rather than guess.
    env = broken.env()
    del env["NIX_LD"]
    result = handle(broken, "./needs-lib", env=env)
    assert result.stderr == ""


def test_hostile_names_are_escaped(broken: Broken, tmp_path: Path) -> None:
    evil = tmp_path / "evil\x1b[31mname"
    shutil.copy2(broken.bad_interp, evil)
    result = handle(broken, f"'./{evil.name}'", cwd=tmp_path)
    assert "\x1b" not in result.stderr
    assert "evil\\x1b[31mname" in result.stderr


def test_behind_the_real_shim(broken: Broken, tmp_path: Path) -> None:
    """A binary started by the shim (as on NixOS), its library missing: the
    shim's loader exits 127 and the handler names the library."""
    need_tool("make")
    shim = tmp_path / "nixld-shim"
    subprocess.run(["make", "-s", "-C", str(REPO / "shim"), f"OUT={shim}"], check=True)
    tool = tmp_path / "tool"
    shutil.copy2(broken.needs_lib, tool)
    subprocess.run(["patchelf", "--set-interpreter", str(shim), str(tool)], check=True)
    env = broken.env()
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    ran = subprocess.run([str(tool)], env=env, capture_output=True, check=False)
    assert ran.returncode == 127 and b"libnixldfix.so.1" in ran.stderr
    result = handle(broken, "./tool", env=env, cwd=tmp_path)
    assert result.stderr == ("nixld-hook: ./tool lacks libnixldfix.so.1; "
                             "run: nixld-hook resolve ./tool\n")
    # With the library where the shim's loader looks, nothing is wrong.
    env["NIX_LD_LIBRARY_PATH"] = str(broken.dir / "build")
    assert subprocess.run([str(tool)], env=env, check=False).returncode == 0
    assert handle(broken, "./tool", env=env, cwd=tmp_path).stderr == ""


def test_handle_usage_error_is_one_line() -> None:
    result = run_cli("handle", "--status", "127")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --- behind NixOS's stub-ld ------------------------------------------------------

STUB_MESSAGE = ("NixOS cannot run dynamically linked executables intended for generic\n"
                "linux environments out of the box. For more information, see:\n"
                "https://nix.dev/permalink/stub-ld\n")


@pytest.fixture(scope="module")
def stub_ld(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.build import build_stub_ld

    need_tool("gcc")
    # Not at /lib64, and under another name: it is judged by what it is.
    return build_stub_ld(tmp_path_factory.mktemp("stub"), name="some-interpreter")


def behind(interpreter: Path, binary: Path, dest: Path) -> Path:
    shutil.copy2(binary, dest)
    subprocess.run(["patchelf", "--set-interpreter", str(interpreter), str(dest)], check=True)
    return dest


def test_the_stub_ld_stand_in_behaves_like_the_real_one(broken: Broken, stub_ld: Path) -> None:
    tool = behind(stub_ld, broken.needs_lib, broken.dir / "stubbed-needs-lib")
    run = subprocess.run(["./stubbed-needs-lib", "--version"], cwd=broken.dir,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 127
    assert run.stderr == ("Could not start dynamically linked executable: ./stubbed-needs-lib\n"
                          + STUB_MESSAGE)
    assert tool.exists()


def test_behind_stub_ld_one_line_names_the_missing_libraries(broken: Broken,
                                                              stub_ld: Path) -> None:
    behind(stub_ld, broken.needs_lib, broken.dir / "stubbed-needs-lib")
    result = handle(broken, "./stubbed-needs-lib --version")
    assert result.stderr == (
        f"nixld-hook: ./stubbed-needs-lib needs the ELF interpreter {stub_ld}, which is no "
        "loader here (NixOS's stub-ld: no shim is enabled): enable the shim (NixOS: "
        "programs.nixld.enable = true;), or run: nixld-hook run ./stubbed-needs-lib; it also "
        "lacks libnixldfix.so.1: first run: nixld-hook resolve ./stubbed-needs-lib\n")


def test_behind_stub_ld_with_every_library_one_line_to_run_it(broken: Broken,
                                                               stub_ld: Path) -> None:
    hello = behind(stub_ld, broken.bad_interp, broken.dir / "stubbed-hello")
    result = handle(broken, "./stubbed-hello")
    assert result.stderr.splitlines() == [
        f"nixld-hook: ./stubbed-hello needs the ELF interpreter {stub_ld}, which is no loader "
        "here (NixOS's stub-ld: no shim is enabled): enable the shim (NixOS: "
        "programs.nixld.enable = true;), or run: nixld-hook run ./stubbed-hello"]
    assert hello.exists()


def test_what_an_interpreter_is_comes_from_its_bytes(broken: Broken, stub_ld: Path,
                                                     tmp_path: Path) -> None:
    from nixld.handle import is_glibc_loader, is_not_a_loader

    assert is_glibc_loader(str(broken.loader)) and not is_not_a_loader(str(broken.loader))
    assert not is_glibc_loader(str(stub_ld)) and is_not_a_loader(str(stub_ld))
    libc = "/lib/x86_64-linux-gnu/libc.so.6"  # defines GLIBC_PRIVATE, needs the loader
    assert not is_glibc_loader(libc) and is_not_a_loader(libc)
    # glibc's loader renamed at a path named like stub-ld is still a loader:
    # a plain loader not named by NIX_LD is not judged.
    odd = tmp_path / "stub-ld"
    shutil.copy2(broken.loader, odd)
    assert is_glibc_loader(str(odd))
    behind(odd, broken.bad_interp, broken.dir / "odd-hello")
    assert handle(broken, "./odd-hello").stderr == ""
    assert not is_not_a_loader(str(tmp_path / "nothing-here"))
