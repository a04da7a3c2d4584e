"""`nixld-hook handle`: what the shell hooks call after a command exited 126/127.

The order of the job:
1. Split the command line into simple commands and find the file each ran
   (`nixld.cmdline`), as the shell did: a path, or a name on PATH.
2. Ask the static analysis which of those files could not start (`diagnose`).
   Most 127s are ordinary (`false`, a typo, `exit 127`): then print nothing,
   quickly: no ELF is parsed unless a file was found.
3. For a broken binary: at a terminal (or in auto-accept mode) hand over to
   the resolver, which asks and installs; otherwise print one line with the
   command to run. Never block without a terminal.
"""

from __future__ import annotations

import enum
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from nixld.cmdline import Program, programs
from nixld.errors import NixldError
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.elf import ElfInfo
    from nixld.loader import Closure

# 126/127: the program could not start. 1: what glibc's ld.so exits with when
# a library lacks a required symbol version ("version `GLIBCXX_3.4.30' not
# found"); the hooks hand over a 1 only for lines that start with a path.
HANDLED_STATUSES = (1, 126, 127)
SHIM_ENABLE = "programs.nixld.enable = true;"
# Both nix-ld and our shim read this variable; glibc's ld.so never names it.
SHIM_MARKER = b"NIX_LD_LIBRARY_PATH"
SHIM_MAX_SIZE = 8 << 20


class Problem(enum.Enum):
    INTERPRETER_MISSING = "interpreter-missing"  # PT_INTERP names no file (no shim here)
    # PT_INTERP is neither a glibc ld.so nor a shim: NixOS's stub-ld (no shim here)
    INTERPRETER_NOT_A_LOADER = "interpreter-not-a-loader"
    LOADER_MISSING = "loader-missing"  # the shim is there, the real ld.so it loads is not
    LIBRARIES_MISSING = "libraries-missing"  # sonames not found, or lacking versions
    SCRIPT_INTERPRETER_MISSING = "script-interpreter-missing"  # `#!` names no file
    WRONG_ARCHITECTURE = "wrong-architecture"  # a binary this machine cannot run


# No loader at the binary's interpreter path: only `nixld-hook run` starts it.
NO_SHIM_HERE = (Problem.INTERPRETER_MISSING, Problem.INTERPRETER_NOT_A_LOADER)


@dataclass(frozen=True)
class Request:
    """What the hook hands over: the shell, the status, the line, and where."""

    shell: str
    status: int
    line: str
    cwd: str
    path_env: str | None


@dataclass(frozen=True)
class Finding:
    """One file of the line that could not start, and why."""

    problem: Problem
    program: Program
    interpreter: str | None = None
    missing: tuple[str, ...] = ()  # sonames not found or lacking a version
    glibc_too_old: tuple[str, ...] = ()  # versions no library can provide
    detail: str | None = None  # e.g. what a wrong architecture means here

    @property
    def shown(self) -> str:
        """The program as the user can type it again from the same shell."""
        name = self.program.command.name
        return name if "/" in name else str(self.program.path)


# --- 2. static analysis ---------------------------------------------------------


I686_DETAIL = "32-bit x86"  # a LOADER_MISSING finding's detail for a 32-bit program


def is_shim(path: str) -> bool:
    """True if `path` is nix-ld or our shim rather than a plain glibc loader.

    Only a shim applies NIX_LD / per-binary entries, so only behind one does
    the loader emulation predict what happened."""
    try:
        real = os.path.realpath(path)
        if os.path.getsize(real) > SHIM_MAX_SIZE:
            return False
        with open(real, "rb") as f:
            return SHIM_MARKER in f.read()
    except OSError:
        return False


def is_glibc_loader(path: str) -> bool:
    """Does `path` read as glibc's ld.so (never run to find out)? The search
    model's judgement (nixld.search.glibc_loader_problem)."""
    from nixld.search import glibc_loader_problem

    return glibc_loader_problem(path) is None


def is_not_a_loader(path: str) -> bool:
    """An interpreter that exists but loads nothing: NixOS's stub-ld, which
    only says it cannot run the program, or anything neither glibc's ld.so
    nor a nix-ld-compatible shim."""
    return os.path.exists(path) and not is_shim(path) and not is_glibc_loader(path)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _emulated(interpreter: str, real_loader: str) -> bool:
    """Does the loader emulation model how this binary was started? Behind a
    shim, or when its interpreter is the very loader NIX_LD names."""
    return is_shim(interpreter) or _same_file(interpreter, real_loader)


def _served_as_i686(info: ElfInfo) -> bool:
    """A 32-bit x86 program on x86_64: resolved like a native one (nixld.i686)."""
    from nixld.i686 import is_i686

    return is_i686(info) and os.uname().machine == "x86_64"


def _closure(info: ElfInfo, path: str, environ: Mapping[str, str], *,
             user_entries: bool) -> Closure:
    from nixld.loader import resolve_closure
    from nixld.search import Search

    search = Search.for_binary(path, environ, machine=info.machine, user=user_entries)
    return resolve_closure(info, search)


def _missing(closure: Closure) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # A library found but lacking a version is named with the version: that is
    # what the user searches for ("libstdc++.so.6 version GLIBCXX_3.4.30").
    missing = tuple(
        f"{n.soname} version {', '.join(dict.fromkeys(p.version for p in n.version_problems))}"
        if n.path is not None and n.version_problems else n.soname
        for n in closure.missing)
    too_old = tuple(dict.fromkeys(p.version for p in closure.glibc_problems))
    return missing, too_old


def diagnose(program: Program, environ: Mapping[str, str]) -> Finding | None:
    """Why `program` could not start, or None if nothing is wrong with it."""
    from nixld.elf import ScriptInfo, host_compat, read_binary

    try:
        info = read_binary(str(program.path))
    except NixldError:
        return None  # not a program we can read: not ours to explain
    if isinstance(info, ScriptInfo):
        if info.interpreter_exists:
            return None
        return Finding(Problem.SCRIPT_INTERPRETER_MISSING, program, info.interpreter)
    compat = host_compat(info)
    if compat is not None and not _served_as_i686(info):
        return Finding(Problem.WRONG_ARCHITECTURE, program, info.interpreter, detail=compat)
    if info.is_static or not info.interpreter:
        return None
    return _diagnose_dynamic(program, info, info.interpreter, environ)


def _diagnose_dynamic(program: Program, info: ElfInfo, interpreter: str,
                      environ: Mapping[str, str]) -> Finding | None:
    """A dynamic binary: its closure under the search the shim would set up."""
    # Root (sudo) reads the system-wide entries only, never the user's.
    closure = _closure(info, str(program.path), environ, user_entries=not program.command.sudo)
    missing, too_old = _missing(closure)
    if not os.path.exists(interpreter):
        return Finding(Problem.INTERPRETER_MISSING, program, interpreter, missing, too_old)
    real_loader = closure.search.loader.path
    if not _emulated(interpreter, real_loader):
        if is_not_a_loader(interpreter):
            return Finding(Problem.INTERPRETER_NOT_A_LOADER, program, interpreter,
                           missing, too_old)
        return None
    if not closure.real_loader_exists:
        return Finding(Problem.LOADER_MISSING, program, real_loader, missing, too_old,
                       detail=I686_DETAIL if _served_as_i686(info) else None)
    if missing or too_old:
        return Finding(Problem.LIBRARIES_MISSING, program, interpreter, missing, too_old)
    return None


def find_broken(request: Request, environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Every file of the line that could not start."""
    env = os.environ if environ is None else environ
    found = []
    for program in programs(request.line, shell=request.shell, cwd=request.cwd,
                            path_env=request.path_env):
        try:
            finding = diagnose(program, env)
        except (NixldError, OSError):
            finding = None  # cannot tell: stay silent rather than guess
        if finding is not None:
            found.append(finding)
    return found


# --- 3. telling the user --------------------------------------------------------


def _lacks(finding: Finding) -> str:
    if not finding.missing:
        return ""
    first = safe(finding.missing[0])
    more = len(finding.missing) - 1
    return first + (f" (and {more} more)" if more else "")


def _cmd(*words: str) -> str:
    """A command to copy, quoted for the shell, escaped for the terminal."""
    return safe(" ".join(shlex.quote(w) for w in words))


def summary_line(finding: Finding) -> str:
    """The one line printed where nobody can be asked."""
    name = safe(finding.shown)
    resolve = _cmd("nixld-hook", "resolve", finding.shown)
    run = _cmd("nixld-hook", "run", finding.shown)
    interp = safe(finding.interpreter or "")
    problem = finding.problem
    if problem is Problem.SCRIPT_INTERPRETER_MISSING:
        base = os.path.basename(finding.interpreter or "")
        return (f"nixld-hook: {name}: its #! interpreter {interp} does not exist; "
                f"use `#!/usr/bin/env {safe(base)}`, or run: {safe(base)} {safe(finding.shown)}")
    if problem is Problem.WRONG_ARCHITECTURE:
        return f"nixld-hook: {name}: {safe(finding.detail or 'built for another machine')}"
    if problem in NO_SHIM_HERE:
        also = (f"; it also lacks {_lacks(finding)}: first run: {resolve}"
                if finding.missing else "")
        what = ("which does not exist here" if problem is Problem.INTERPRETER_MISSING
                else "which is no loader here (NixOS's stub-ld: no shim is enabled)")
        return (f"nixld-hook: {name} needs the ELF interpreter {interp}, {what}: "
                f"enable the shim (NixOS: {SHIM_ENABLE}), or run: {run}{also}")
    if problem is Problem.LOADER_MISSING:
        variable = "NIX_LD_i686_linux to a 32-bit" if finding.detail == I686_DETAIL \
            else "NIX_LD to a"
        return (f"nixld-hook: {name} started through the shim, but the real loader {interp} "
                f"does not exist: set {variable} glibc ld.so (the NixOS module does)")
    text = f"nixld-hook: {name} lacks {_lacks(finding)}" if finding.missing else \
        f"nixld-hook: {name} needs {', '.join(finding.glibc_too_old)}, newer than this glibc"
    if finding.program.command.sudo:
        return text + "; " + sudo_note(finding)
    return text + f"; run: {resolve}"


def sudo_note(finding: Finding) -> str:
    path = safe(os.path.realpath(finding.program.path))
    return ("under sudo it runs as root, which does not see your per-user resolutions; "
            f"declare it system-wide in the NixOS module: "
            f'programs.nixld.binaries."{path}" = [ ... ];')


def _interactive() -> bool:
    from nixld.prompt import can_prompt

    return can_prompt()


def _auto_accept() -> tuple[bool, bool]:
    from nixld.config import ConfigError, auto_accept, load_config

    try:
        config = load_config()
    except ConfigError as err:
        print(f"nixld-hook: error: {err}", file=sys.stderr)
        return False, False
    return auto_accept(config), config.rerun


def _run(argv: list[str], cwd: str, shown: str) -> int:
    try:
        return subprocess.run(argv, cwd=cwd, check=False).returncode
    except OSError as err:
        print(f"nixld-hook: cannot run {safe(shown)}: {safe(str(err))}", file=sys.stderr)
        return 127


def run_again_argv(finding: Finding) -> list[str]:
    """The program with its arguments; through `nixld-hook run` when no
    interpreter exists to start it plainly."""
    command = finding.program.command
    argv = [str(finding.program.path), *command.args]
    if finding.problem in NO_SHIM_HERE:
        return [sys.executable, "-m", "nixld", "run", *argv]
    return argv


def _offer_to_run(finding: Finding, request: Request, *, auto: bool, rerun: bool) -> None:
    """After a successful resolution: the failure happened at load time (the
    program never started), so running it again repeats nothing it did."""
    argv = run_again_argv(finding)
    if auto and not rerun:
        return  # auto-accept asks nothing; re-runs are a separate opt-in
    if not auto:
        shown = (_cmd("nixld-hook", "run", finding.shown, *finding.program.command.args)
                 if finding.problem in NO_SHIM_HERE
                 else _cmd(finding.shown, *finding.program.command.args))
        from nixld.prompt import confirm

        if not confirm(f"nixld-hook: run `{shown}` now?"):
            return
    _run(argv, request.cwd, finding.shown)


def _resolve_one(finding: Finding, request: Request, err: TextIO) -> None:
    """At a terminal or in auto-accept mode: resolve, then offer to run it."""
    from nixld.resolve import resolve_interactive

    auto, rerun = _auto_accept()
    if not (auto or _interactive()):
        print(summary_line(finding), file=err)
        return
    if finding.problem in NO_SHIM_HERE:
        print(summary_line(finding), file=err)  # how to make a plain run work: once
        if not finding.missing:
            return  # resolved already: the line says `nixld-hook run`, nothing to ask
    if finding.missing and resolve_interactive(str(finding.program.path)) != 0:
        return
    # "no" and "never" return too; only a binary that now resolves is run.
    after = diagnose(finding.program, os.environ)
    if after is not None and (after.problem not in NO_SHIM_HERE or after.missing):
        return
    auto, rerun = _auto_accept()  # "always" at the prompt has just turned it on
    _offer_to_run(finding, request, auto=auto, rerun=rerun)


def report(findings: Sequence[Finding], request: Request, err: TextIO | None = None) -> None:
    out = err or sys.stderr
    for finding in findings:
        if finding.problem in (Problem.LIBRARIES_MISSING, *NO_SHIM_HERE) \
                and not finding.program.command.sudo:
            _resolve_one(finding, request, out)
        else:
            print(summary_line(finding), file=out)


def handle(request: Request, environ: Mapping[str, str] | None = None) -> int:
    """The whole job; always exit 0: the hook's status is the user's command's."""
    # The shell ignores SIGINT while we run (and zsh runs its hooks with it
    # blocked), and a child inherits both; Ctrl-C at our prompt must still
    # interrupt us (the CLI turns it into exit 130).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if request.status not in HANDLED_STATUSES:
        return 0
    findings = find_broken(request, environ)
    if request.status == 1:
        # Only the loader's version failure exits 1 before the program runs;
        # any other finding cannot be why this command (which ran) failed.
        findings = [f for f in findings if f.problem is Problem.LIBRARIES_MISSING]
    if findings:
        report(findings, request)
    return 0


def request_from(shell: str, status: int, line: Sequence[str], cwd: str | None,
                 environ: Mapping[str, str] | None = None) -> Request:
    env = os.environ if environ is None else environ
    return Request(
        shell=shell,
        status=status,
        line=" ".join(line).strip(),
        cwd=cwd or env.get("PWD") or os.getcwd(),
        path_env=env.get("PATH"),
    )
