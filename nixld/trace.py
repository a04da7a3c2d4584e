"""`nixld-hook trace`: what a program loads when it really runs.

No static fact shows a library a program `dlopen`s by a name it computes, or
the needs of a module it loads by path from a directory outside its tree
(Python's lib-dynload). The trace runs the program as it will run for the
user: exec'd by its own path through the shim (`/proc/self/exe` and the
program's own plugin lookups stay its own), in a private mount namespace
with the shim at /lib64 when the shim is not the system interpreter; never
as an argument of ld.so. glibc reports through LD_DEBUG=libs,files into
LD_DEBUG_OUTPUT=<private dir>/ld, one `ld.<pid>` per process: a soname counts
as not found when a process has its `find library=` and no matching
`file=... generating link map`.

What the trace learned is recorded per executable (`$XDG_STATE_HOME/nixld/
trace/`), and becomes `required` roots of its analysis (nixld.runtime).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nixld import paths
from nixld.errors import BadInputError, NixldError
from nixld.runtime import Root
from nixld.text import safe

SHIM_MARKER = b"nixld-shim"
SYSTEM_INTERPRETER = "/lib64/ld-linux-x86-64.so.2"
DEFAULT_TIMEOUT = 10.0

_FIND = re.compile(r"^\s*\d+:\s+find library=(\S+) \[\d+\]; searching")
_MAPPED = re.compile(r"^\s*\d+:\s+file=(\S+) \[\d+\];\s+generating link map")
_DLOPENED = re.compile(r"^\s*\d+:\s+file=(\S+) \[\d+\];\s+dynamically loaded by")


@dataclass
class ProcessTrace:
    """What one process (one ld.<pid> file) asked for and got."""

    searched: list[str] = field(default_factory=list)  # find library=
    mapped: list[str] = field(default_factory=list)  # generating link map
    dlopened: list[str] = field(default_factory=list)  # dynamically loaded by

    @property
    def not_found(self) -> list[str]:
        got = set(self.mapped)
        return [s for s in dict.fromkeys(self.searched) if s not in got]


def parse_debug_output(text: str) -> ProcessTrace:
    trace = ProcessTrace()
    for line in text.splitlines():
        for pattern, into in ((_FIND, trace.searched), (_MAPPED, trace.mapped),
                              (_DLOPENED, trace.dlopened)):
            m = pattern.match(line)
            if m:
                into.append(m.group(1))
    return trace


@dataclass(frozen=True)
class TraceResult:
    path: str  # the executable, real path
    returncode: int | None  # None: stopped after the timeout
    not_found: tuple[str, ...]  # sonames some process could not find
    dlopened: tuple[str, ...]  # files loaded by path at run time (plugins, modules)
    processes: int

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "returncode": self.returncode,
                "not_found": list(self.not_found), "dlopened": list(self.dlopened),
                "processes": self.processes}


def _contains_marker(path: str) -> bool:
    try:
        with open(os.path.realpath(path), "rb") as f:
            return SHIM_MARKER in f.read(16 << 20)
    except OSError:
        return False


def find_shim(environ: Mapping[str, str]) -> str | None:
    """The shim to mount at /lib64: NIXLD_SHIM, else the system interpreter if it is one."""
    candidate = environ.get("NIXLD_SHIM")
    if candidate and _contains_marker(candidate):
        return candidate
    return SYSTEM_INTERPRETER if _contains_marker(SYSTEM_INTERPRETER) else None


# Mounts the shim over /lib64 in a private mount namespace, then execs the program.
_NAMESPACE_SCRIPT = r"""
set -e
stage=$(mktemp -d)
mount -t tmpfs -o mode=0755 tmpfs "$stage"
cp "$NIXLD_TRACE_SHIM" "$stage/ld-linux-x86-64.so.2"
mount --bind "$stage" /lib64
unset NIXLD_TRACE_SHIM
exec "$@"
"""


def command(path: str, args: Sequence[str], environ: Mapping[str, str]) -> tuple[list[str],
                                                                                  dict[str, str]]:
    """argv and extra environment that run `path` through the shim by its own path."""
    from nixld.elf import ScriptInfo, read_binary

    info = read_binary(path)
    if isinstance(info, ScriptInfo) or info.interpreter is None:
        raise BadInputError(f"{safe(path)}: not a dynamically linked program; nothing to trace")
    own = path if "/" in path else f"./{path}"
    if _contains_marker(info.interpreter):
        return [own, *args], {}
    if info.interpreter != SYSTEM_INTERPRETER:
        raise NixldError(f"{safe(path)}: its interpreter {safe(info.interpreter)} is not the "
                         "shim; trace runs programs only as the shim starts them")
    shim = find_shim(environ)
    if shim is None or shutil.which("unshare") is None:
        raise NixldError("no shim to run the program through: set NIXLD_SHIM to the built shim "
                         "(shim/build/nixld-shim), and have unshare (util-linux)")
    script = ["unshare", "-m", "--propagation", "private", "sh", "-c", _NAMESPACE_SCRIPT,
              "nixld-trace", own, *args]
    return script, {"NIXLD_TRACE_SHIM": shim}


def run_trace(path: str, args: Sequence[str], environ: Mapping[str, str] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> TraceResult:
    """Run the program once with LD_DEBUG; read and remove every ld.<pid>."""
    import tempfile

    environ = dict(os.environ if environ is None else environ)
    argv, extra = command(path, args, environ)
    out_dir = tempfile.mkdtemp(prefix="nixld-trace-")
    try:
        env = {**environ, **extra, "LD_DEBUG": "libs,files",
               "LD_DEBUG_OUTPUT": os.path.join(out_dir, "ld")}
        returncode = _run(argv, env, timeout)
        traces = [parse_debug_output(f.read_text(errors="replace"))
                  for f in sorted(Path(out_dir).glob("ld.*"))]
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    not_found = [s for t in traces for s in t.not_found]
    dlopened = [f for t in traces for f in t.dlopened if "/" in f]
    return TraceResult(os.path.realpath(path), returncode, tuple(dict.fromkeys(not_found)),
                       tuple(dict.fromkeys(dlopened)), len(traces))


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> int | None:
    import subprocess  # explain imports this module for the record only

    try:
        proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as err:
        raise NixldError(f"cannot run {safe(argv[0])}: {err.strerror}") from None
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)  # the program's whole process group, ours alone
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        return None


# ---------------------------------------------------------------- the record


def _record_file(path: str) -> Path:
    # The record holds the path, checked on reading: a plain checksum will do.
    import zlib

    real = os.fsencode(os.path.realpath(path))
    return paths.state_dir() / "trace" / f"{zlib.crc32(real):08x}-{len(real):x}.json"


def save(result: TraceResult) -> Path:
    """Remember what the trace found for this executable (atomically)."""
    file = _record_file(result.path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=1))
    os.replace(tmp, file)
    return file


def recorded(path: str) -> TraceResult | None:
    file = _record_file(path)
    try:
        data = json.loads(file.read_text())
        return TraceResult(str(data["path"]), data["returncode"],
                           tuple(data["not_found"]), tuple(data["dlopened"]),
                           int(data["processes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(path: str) -> None:
    _record_file(path).unlink(missing_ok=True)


def recorded_roots(path: str) -> list[Root]:
    """The recorded trace as required roots: files it saw loaded, sonames not found."""
    result = recorded(path)
    if result is None or result.path != os.path.realpath(path):
        return []
    roots = [Root("trace", "required", path=f) for f in result.dlopened if os.path.isfile(f)]
    roots += [Root("trace", "required", sonames=(s,)) for s in result.not_found
              if "/" not in s]
    return roots
