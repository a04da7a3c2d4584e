"""`nixld-hook doctor`: is everything in place for the next `./binary` to work?

Each check says what it found and, when something is wrong, the fix: the
hook in the shell start-up files, the shim at the system interpreter path and
the real loader it hands over to (NIX_LD), the nix-index database, Nix, and
on x86_64 whether 32-bit programs can start (the i686 shim at
/lib/ld-linux.so.2 and its 32-bit loader).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nixld import paths
from nixld.text import safe

SYSTEM_INTERPRETER = "/lib64/ld-linux-x86-64.so.2"
# Our shim names itself in every message it prints.
OUR_SHIM_MARKER = b"nixld-shim"
DATABASE_OLD_DAYS = 30
SHIM_FIX = "enable the shim: programs.nixld.enable = true; in your NixOS configuration"
JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


# Where the NixOS and home-manager modules (or a hand-written line) hook a
# shell in, besides the block `nixld-hook install` adds.
SYSTEM_RC_FILES: dict[str, tuple[str, ...]] = {
    "bash": ("/etc/bashrc", "/etc/bash.bashrc"),
    "zsh": ("/etc/zshrc", "/etc/zsh/zshrc"),
    "fish": ("/etc/fish/config.fish",),
}


def _mentions_hook(path: Path, shell: str) -> bool:
    """A start-up file that evals `nixld-hook init SHELL` or sources our hook."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return f"nixld-hook init {shell}" in text or f"nixld.{shell}" in text


def hooked_shells(environ: Mapping[str, str],
                  system_files: Mapping[str, tuple[str, ...]] = SYSTEM_RC_FILES) -> list[str]:
    from nixld.shell import SHELLS, installed_shells, rc_file

    found = set(installed_shells(dict(environ)))
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    for shell in SHELLS:
        candidates = [Path(p) for p in system_files.get(shell, ())]
        candidates.append(rc_file(shell, dict(environ)).parent.parent / "config.fish"
                          if shell == "fish" else rc_file(shell, dict(environ)))
        if shell == "zsh":
            candidates.append(home / ".zshrc")
        if any(_mentions_hook(p, shell) for p in candidates):
            found.add(shell)
    return [s for s in SHELLS if s in found]


def check_hook(environ: Mapping[str, str],
               system_files: Mapping[str, tuple[str, ...]] = SYSTEM_RC_FILES) -> Check:
    shells = hooked_shells(environ, system_files)
    if shells:
        return Check("hook", True, f"installed for {', '.join(shells)}")
    return Check("hook", False, "not installed in any shell's start-up files",
                 "nixld-hook install (or the NixOS/home-manager module's shell integration)")


def _contains(path: str, marker: bytes) -> bool:
    try:
        with open(os.path.realpath(path), "rb") as f:
            return marker in f.read(16 << 20)
    except OSError:
        return False


def check_shim(interpreter: str = SYSTEM_INTERPRETER) -> Check:
    real = os.path.realpath(interpreter)
    shown = safe(interpreter) + (f" -> {safe(real)}" if real != interpreter else "")
    if not os.path.exists(interpreter):
        return Check("shim", False, f"{safe(interpreter)} does not exist: foreign binaries "
                     "cannot start (use `nixld-hook run` meanwhile)", SHIM_FIX)
    if _contains(interpreter, OUR_SHIM_MARKER):
        return Check("shim", True, f"{shown} is the nixld shim")
    from nixld.handle import is_not_a_loader, is_shim

    if is_shim(interpreter):
        return Check("shim", False, f"{shown} is nix-ld: it does not apply per-binary "
                     "resolutions, so each run needs `nixld-hook run`",
                     "replace programs.nix-ld with programs.nixld")
    if is_not_a_loader(interpreter):
        return Check("shim", False, f"{shown} is no loader (NixOS's stub-ld: no shim is "
                     "enabled): foreign binaries cannot start (use `nixld-hook run` meanwhile)",
                     SHIM_FIX)
    return Check("shim", False, f"{shown} is a plain glibc loader, not the shim (normal "
                 "outside NixOS; resolutions then apply only through `nixld-hook run`)", SHIM_FIX)


def check_real_loader(environ: Mapping[str, str]) -> Check:
    from nixld.search import Search

    loader = Search.from_environ(environ).loader
    where = (f"{loader.source}={safe(loader.path)}" if loader.from_variable
             else f"{loader.describe_source()} {safe(loader.path)}")
    if os.path.exists(loader.path) and not loader.problem:
        return Check("real loader", True, f"{where} exists")
    if loader.problem:
        return Check("real loader", False, f"{where}: {loader.problem}",
                     "set NIX_LD to a glibc ld.so (the NixOS module sets it, as nix-ld's does)")
    return Check("real loader", False, f"{where} does not exist",
                 "set NIX_LD to a glibc ld.so (the NixOS module sets it, as nix-ld's does)")


SYSTEM_INTERPRETER_32 = "/lib/ld-linux.so.2"
FIX_32 = ("programs.nixld.enable32Bit = true; (the default on x86_64) with programs.nixld.enable "
          "in your NixOS configuration")


def _interpreter_32(interpreter: str) -> tuple[bool, str]:
    """Whether 32-bit programs start through our shim, and what is there."""
    if not os.path.exists(interpreter):
        return False, f"{safe(interpreter)} does not exist: no 32-bit program can start"
    real = os.path.realpath(interpreter)
    shown = safe(interpreter) + (f" -> {safe(real)}" if real != interpreter else "")
    if _contains(interpreter, OUR_SHIM_MARKER):
        return True, f"{shown} is the nixld i686 shim"
    return False, (f"{shown} is not the nixld shim (a plain loader outside NixOS, or nix-ld): "
                   "resolutions apply only through `nixld-hook run`")


def _loader_32(environ: Mapping[str, str]) -> tuple[bool, str]:
    """The 32-bit real loader the shim hands over to: there and 32-bit x86."""
    from nixld.elf import read_library

    named = environ.get("NIX_LD_i686_linux", "")
    path = named or str(paths.NIX_LD_I686_DEFAULT)
    where = f"NIX_LD_i686_linux={safe(path)}" if named else f"default {safe(path)}"
    if not os.path.exists(path):
        return False, (f"{where} does not exist (`nixld-hook resolve` builds pkgsi686Linux.glibc "
                       "for `nixld-hook run`, but the shim needs one here)")
    try:
        info = read_library(path, symbols=False)
    except Exception as err:  # any unreadable file is the same finding
        return False, f"{where}: {safe(str(err))}"
    if (info.machine, info.elf_class) != ("EM_386", 32):
        return False, f"{where} is {info.describe_arch()}, not a 32-bit x86 loader"
    return True, f"{where} is a 32-bit loader"


def check_32bit(environ: Mapping[str, str], interpreter: str = SYSTEM_INTERPRETER_32,
                machine: str | None = None) -> Check | None:
    """Whether 32-bit x86 programs can start here (x86_64 machines only)."""
    if (machine or os.uname().machine) != "x86_64":
        return None
    shim_ok, shim = _interpreter_32(interpreter)
    loader_ok, loader = _loader_32(environ)
    if shim_ok and loader_ok:
        return Check("32-bit", True, f"32-bit programs can start: {shim}; {loader}")
    return Check("32-bit", False, f"32-bit programs cannot start through the shim: {shim}; "
                 f"{loader}", FIX_32)


def check_database(environ: Mapping[str, str], now: float | None = None) -> Check:
    from nixld.analysis import HOW_TO_GET_DATABASE

    db = paths.database_dir(environ.get("NIX_INDEX_DATABASE") or None) / "files"
    try:
        mtime = db.stat().st_mtime
    except OSError:
        return Check("database", False, f"no nix-index database at {safe(db)}",
                     HOW_TO_GET_DATABASE)
    if os.path.realpath(db).startswith("/nix/store/"):
        # Store files all have mtime 1: the age is unknowable, and the file is
        # refreshed with the configuration that put it there.
        return Check("database", True, f"{safe(db)}, in the Nix store (from nix-index-database "
                     "or a module; updated with your configuration)")
    days = max(0.0, ((now or time.time()) - mtime) / 86400)
    detail = f"{safe(db)}, {days:.0f} days old"
    if days > DATABASE_OLD_DAYS:
        return Check("database", False, detail + " (store paths it names may be gone from "
                     "the binary cache)", "refresh it: " + HOW_TO_GET_DATABASE)
    return Check("database", True, detail)


def check_nix(environ: Mapping[str, str]) -> Check:
    nix_store = shutil.which("nix-store", path=environ.get("PATH"))
    if nix_store is None:
        return Check("nix", False, "nix-store is not on PATH",
                     "install Nix (https://nixos.org/download) or add it to PATH")
    try:
        out = subprocess.run([nix_store, "--version"], capture_output=True, text=True,
                             timeout=10, check=False)
        version = out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("nix", False, f"{safe(nix_store)} does not run: {safe(str(err))}",
                     "repair the Nix installation")
    if out.returncode != 0:
        return Check("nix", False, f"{safe(nix_store)} --version failed: {safe(version)}",
                     "repair the Nix installation")
    return Check("nix", True, f"{safe(nix_store)} ({safe(version)})")


DAEMON_TRUST_FIX = ("add them to `trusted-substituters` in the daemon's nix.conf (on NixOS: "
                    "nix.settings.trusted-substituters), or add yourself to `trusted-users`")


def check_store(environ: Mapping[str, str]) -> list[Check]:
    """Single-user or through nix-daemon; through the daemon, whether it
    uses the substituters this user configured."""
    from nixld import nix
    from nixld.errors import NixError

    if not nix.uses_daemon(environ):
        return [Check("nix store", True, "single-user: this user writes /nix/store itself; "
                      "every configured substituter is used")]
    store = Check("nix store", True, f"through nix-daemon ({nix.DAEMON_SOCKET})")
    try:
        ignored = nix.daemon_ignored_substituters()
    except NixError as err:
        return [Check("nix store", False, f"through nix-daemon, which does not answer: {err}",
                      "start it (NixOS and systemd: systemctl start nix-daemon)")]
    if ignored:
        names = ", ".join(safe(s) for s in ignored)
        return [store, Check("substituters", False, f"the daemon ignores {names}: this user is "
                             "not trusted to use them", DAEMON_TRUST_FIX)]
    return [store, Check("substituters", True, "the daemon uses every configured substituter")]


def run_checks(environ: Mapping[str, str] | None = None,
               interpreter: str = SYSTEM_INTERPRETER) -> list[Check]:
    env = os.environ if environ is None else environ
    nix = check_nix(env)
    checks = [check_hook(env), check_shim(interpreter), check_real_loader(env),
              check_database(env), nix, *(check_store(env) if nix.ok else [])]
    bits32 = check_32bit(env)
    return [*checks, bits32] if bits32 is not None else checks


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"schema_version": JSON_SCHEMA_VERSION, "ok": all(c.ok for c in checks),
            "checks": [asdict(c) for c in checks]}


