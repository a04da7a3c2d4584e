"""The demo's shell chain: the shim at /lib64, a real bash with the hook, a person typing.

In a private mount namespace (root: `unshare -m`), a tmpfs holding the shim
is mounted over /lib64, so from then on every dynamically linked program,
the shell, Python and Nix included, starts through the shim, as on NixOS with
`programs.nixld.enable`. The shim hands over to the world's glibc (NIX_LD),
with the machine's own libraries as NIX_LD_LIBRARY_PATH minus the ones the
demo's tool lacks (nix-ld's library set is not the tool's either).

A bash with the hook runs on a pseudo-terminal driven from here: `./jq`
fails, the hook's prompt appears and the demo answers it as a person would,
and the next plain `./jq` starts through the shim, with no prompt.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from nixld.errors import NixldError
from nixld.text import safe

# The nixld package (this file is in its demo/): the shim's sources ship
# beside it as nixld/shim, or sit beside it in a checkout.
PACKAGE_DIR: Final = Path(__file__).resolve().parents[1]

PROMPT: Final = "demo$ "
ASK: Final = "Install and remember for this binary?"
RUN_NOW: Final = "now? [Y/n]"
TIMEOUT_S: Final = 90.0
SYSTEM_LIB: Final = Path("/lib/x86_64-linux-gnu")

# Runs in the new mount namespace; the shell it starts is the first program
# loaded through the shim.
NAMESPACE_SCRIPT: Final = r"""
set -e
mount -t tmpfs -o mode=0755 tmpfs "$NIXLD_DEMO_STAGE"
cp "$NIXLD_DEMO_SHIM" "$NIXLD_DEMO_STAGE/ld-linux-x86-64.so.2"
mount --bind "$NIXLD_DEMO_STAGE" /lib64
exec bash --noprofile --rcfile "$NIXLD_DEMO_RC" -i
"""


class DemoError(NixldError):
    pass


def unavailable_reason() -> str | None:
    """Why the shell chain cannot run here, or None."""
    if os.geteuid() != 0:
        return "it mounts the shim over /lib64 in a private mount namespace, which needs root"
    for tool in ("unshare", "mount", "bash", "make", "cc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install gcc make util-linux bash)"
    if not Path("/lib64").is_dir():
        return "this machine has no /lib64"
    return None


def shim_source() -> Path | None:
    """The shim's C sources: packaged with nixld, or beside it in a checkout."""
    here = PACKAGE_DIR
    for candidate in (here / "shim", here.parent / "shim"):
        if (candidate / "Makefile").is_file() and (candidate / "nixld-shim.c").is_file():
            return candidate
    return None


def build_shim(dest: Path) -> Path:
    """Compile the shim (its default build, as the NixOS module installs it)."""
    src = shim_source()
    if src is None:
        raise DemoError("the shim's sources are not installed with nixld-hook")
    work = dest / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("build", "__pycache__"))
    out = dest / "nixld-shim"
    proc = subprocess.run(["make", "-s", "-C", str(work), f"OUT={out}"], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"building the shim failed: {safe(last)}")
    return out


def _pythons_own_libraries() -> set[str]:
    """Libraries the running Python finds through its own RUNPATH (a pyenv
    build's libpython): the shim's library path comes before RUNPATH, so the
    set must not hold the machine's copies of them."""
    from nixld.elf import ElfInfo, read_binary

    real = os.path.realpath(sys.executable)
    try:
        info = read_binary(real)
    except NixldError:
        return set()
    dirs = (*info.runpath, *info.rpath) if isinstance(info, ElfInfo) else ()
    origin = os.path.dirname(real)
    names: set[str] = set()
    for d in dirs:
        where = Path(d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
        if where.is_dir():
            names.update(f.name for f in where.iterdir() if ".so" in f.name)
    return names


def library_set(dest: Path, lacking: Sequence[str]) -> Path:
    """NIX_LD_LIBRARY_PATH: links to the machine's libraries, except `lacking`
    (and those the running Python brings itself)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    own = _pythons_own_libraries()
    for lib in SYSTEM_LIB.iterdir():
        if ".so" in lib.name and lib.name not in own and not lib.name.startswith(tuple(lacking)):
            (dest / lib.name).symlink_to(lib)
    return dest


_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _shown(chunk: str, tty: bool) -> str:
    """The shell's output for our stdout: as it is on a terminal, else plain
    lines (progress lines redrawn with CR become lines of their own)."""
    chunk = chunk.replace("\r\n", "\n")
    return chunk if tty else _ANSI_RE.sub("", chunk).replace("\r", "\n")


class Terminal:
    """A program on a pseudo-terminal; what it prints is shown as it comes."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: never returns
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], list(argv), dict(env))
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.buffer = ""

    def expect(self, text: str, timeout: float = TIMEOUT_S) -> str:
        """Everything up to and including `text`."""
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                raise DemoError(f"the demo's shell did not print {text!r} in {timeout:.0f} s")
            try:
                chunk = os.read(self.fd, 4096).decode("utf-8", "replace")
            except OSError:
                chunk = ""
            if not chunk:
                raise DemoError(f"the demo's shell ended before printing {text!r}")
            sys.stdout.write(_shown(chunk, sys.stdout.isatty()))
            sys.stdout.flush()
            self.buffer += chunk
        upto, _, rest = self.buffer.partition(text)
        self.buffer = rest
        return upto + text

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\r").encode())

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGHUP)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _rc_file(home: Path, tool: Path) -> Path:
    rc = home / ".bashrc"
    rc.write_text(f"PS1={shlex.quote(PROMPT)}\n"
                  f'eval "$({shlex.quote(str(tool))} init bash)"\n')
    return rc


def _tool_wrapper(home: Path) -> Path:
    """`nixld-hook` for the hook: this very Python and package."""
    bindir = home / "bin"
    bindir.mkdir(exist_ok=True)
    tool = bindir / "nixld-hook"
    package_parent = PACKAGE_DIR.parent
    tool.write_text("#!/bin/sh\n"
                    f"PYTHONPATH={shlex.quote(str(package_parent))}"
                    '${PYTHONPATH:+:$PYTHONPATH} '
                    f'exec {shlex.quote(sys.executable)} -m nixld "$@"\n')
    tool.chmod(0o755)
    return tool


def chain(env: Mapping[str, str], home: Path, tool_dir: Path, lacking: Sequence[str],
          say: object = print) -> bool:
    """Run the chain in `home` (fresh); True if the last plain run started."""
    work = home / "shell-chain"
    work.mkdir(parents=True, exist_ok=True)
    shim = build_shim(work / "shim")
    stage = work / "stage"
    stage.mkdir(exist_ok=True)
    full = dict(env)
    full.update({
        "NIXLD_DEMO_STAGE": str(stage), "NIXLD_DEMO_SHIM": str(shim),
        "NIXLD_DEMO_RC": str(_rc_file(home, _tool_wrapper(home))),
        "NIX_LD_LIBRARY_PATH": str(library_set(work / "lib", lacking)),
        "TERM": "dumb", "CI": "", "NIXLD_AUTO_ACCEPT": "",
    })
    term = Terminal(["unshare", "-m", "--propagation", "private", "bash", "-c",
                     NAMESPACE_SCRIPT], full, tool_dir)
    try:
        return _drive(term)
    finally:
        term.close()


def _drive(term: Terminal) -> bool:
    term.expect(PROMPT)
    term.send("./jq --version")
    term.expect(ASK)
    term.expect(": ")
    term.send("y")  # the demo answers as a person would
    term.expect(RUN_NOW)
    term.send("n")
    term.expect(PROMPT)
    term.send("./jq --version   # the next plain run: through the shim, no prompt")
    after = term.expect(PROMPT)
    term.send("exit")
    return ASK not in after and "jq-" in after
