"""The shell hooks: their text for `init`, and the start-up file changes of
`install` / `uninstall`.

`install` adds one marked block to ~/.bashrc and ${ZDOTDIR:-$HOME}/.zshrc and
a drop-in $XDG_CONFIG_HOME/fish/conf.d/nixld.fish. The block only sets the
tool's path and sources the static hook file shipped in the package, so a new
shell starts no Python. `uninstall` removes exactly what `install` added, byte
for byte: the begin marker records whether install created the file or added a
newline to end the user's last line, and both are undone.

Import-light on purpose (`init` runs at every shell start under `eval`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from nixld.config import write_atomic
from nixld.errors import NixldError
from nixld.text import safe

SHELLS = ("bash", "zsh", "fish")

BEGIN = "# >>> nixld-hook >>>"
END = "# <<< nixld-hook <<<"
CREATED_FLAG = " [created the file]"
NEWLINE_FLAG = " [added a newline before]"
_BLOCK = re.compile(
    r"(?P<sep>\n?)^" + re.escape(BEGIN) + r"(?P<flags>[^\n]*)\n(?:.*?\n)??"
    + re.escape(END) + r"\n",
    re.MULTILINE | re.DOTALL,
)


class ShellError(NixldError):
    """An unknown shell, or hook files that cannot be found."""


@dataclass(frozen=True)
class Change:
    """What install/uninstall did to one file."""

    shell: str
    path: Path
    action: str  # "added", "updated", "unchanged", "removed", "absent"


def hook_file(shell: str) -> Path:
    """The static hook file for `shell`, installed or in this checkout."""
    if shell not in SHELLS:
        raise ShellError(f"unknown shell `{safe(shell)}` (choose from {', '.join(SHELLS)})")
    name = f"nixld.{shell}"
    try:
        from importlib.resources import files

        packaged = Path(str(files("nixld.hooks") / name))
        if packaged.is_file():
            return packaged
    except (ImportError, TypeError):
        pass  # not installed: running from a checkout
    import nixld

    checkout = Path(nixld.__file__).resolve().parent.parent / "hooks" / name
    if checkout.is_file():
        return checkout
    raise ShellError(f"the {shell} hook file {name} is missing from this installation")


def tool_path() -> str:
    """The absolute path of the running `nixld-hook`, for the hooks to call.

    Run as `python -m nixld` (a checkout), there is no such file; then the
    `nixld-hook` on PATH, else the bare name (looked up when the hook runs).
    """
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.basename(argv0) == "nixld-hook":
        found = argv0 if "/" in argv0 else shutil.which(argv0)
        if found:
            return os.path.abspath(found)
    return shutil.which("nixld-hook") or "nixld-hook"


def _bin_line(shell: str, tool: str) -> str:
    if shell == "fish":
        return f"set -g __nixld_bin {_fish_quote(tool)}\n"
    return f"__nixld_bin={shlex.quote(tool)}\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def init_text(shell: str, tool: str | None = None) -> str:
    """The hook for `eval "$(nixld-hook init SHELL)"`: the tool's path, then the
    static file's text."""
    body = hook_file(shell).read_text(encoding="utf-8")
    return _bin_line(shell, tool or tool_path()) + body


def rc_file(shell: str, environ: dict[str, str] | None = None) -> Path:
    """The file install changes for `shell`."""
    env = dict(os.environ) if environ is None else environ
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if shell == "bash":
        return home / ".bashrc"
    if shell == "zsh":
        return Path(env.get("ZDOTDIR") or home) / ".zshrc"
    if shell == "fish":
        xdg = env.get("XDG_CONFIG_HOME", "")
        config = Path(xdg) if xdg.startswith("/") else home / ".config"
        return config / "fish" / "conf.d" / "nixld.fish"
    raise ShellError(f"unknown shell `{safe(shell)}` (choose from {', '.join(SHELLS)})")


def source_lines(shell: str, tool: str, hook: Path) -> str:
    """What the block runs: set the tool's path, source the static hook."""
    if shell == "fish":
        quoted = _fish_quote(str(hook))
        return _bin_line(shell, tool) + f"test -f {quoted}; and source {quoted}\n"
    quoted = shlex.quote(str(hook))
    return _bin_line(shell, tool) + f"[ -f {quoted} ] && . {quoted}\n"


def block(shell: str, tool: str, hook: Path, flags: str = "") -> str:
    return (f"{BEGIN}{flags}\n"
            "# Added by `nixld-hook install`; `nixld-hook uninstall` removes it.\n"
            + source_lines(shell, tool, hook) + f"{END}\n")


def _read(path: Path) -> str | None:
    try:
        # newline="": a CRLF the user wrote is theirs, kept byte for byte.
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ShellError(f"{safe(path)}: cannot read: {err.strerror or err}") from None


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def installed_block(text: str) -> re.Match[str] | None:
    return _BLOCK.search(text)


def install_one(shell: str, tool: str | None = None,
                environ: dict[str, str] | None = None) -> Change:
    """Add (or bring up to date) the block for one shell."""
    path = rc_file(shell, environ)
    tool = tool or tool_path()
    hook = hook_file(shell)
    old = _read(path)
    if old is None:
        _write(path, block(shell, tool, hook, CREATED_FLAG))
        return Change(shell, path, "added")
    found = installed_block(old)
    if found:
        flags = found.group("flags")
        new = old[:found.start()] + found.group("sep") + block(shell, tool, hook, flags) \
            + old[found.end():]
        if new == old:
            return Change(shell, path, "unchanged")
        _write(path, new)
        return Change(shell, path, "updated")
    needs_newline = bool(old) and not old.endswith("\n")
    flags = NEWLINE_FLAG if needs_newline else ""
    _write(path, old + ("\n" if needs_newline else "") + block(shell, tool, hook, flags))
    return Change(shell, path, "added")


def uninstall_one(shell: str, environ: dict[str, str] | None = None) -> Change:
    """Remove the block (and what install added around it) for one shell."""
    path = rc_file(shell, environ)
    old = _read(path)
    found = installed_block(old) if old is not None else None
    if old is None or found is None:
        return Change(shell, path, "absent")
    flags = found.group("flags")
    keep_sep = "" if NEWLINE_FLAG in flags else found.group("sep")
    new = old[:found.start()] + keep_sep + old[found.end():]
    if CREATED_FLAG in flags and new == "":
        try:
            path.unlink()
        except OSError as err:
            raise ShellError(f"{safe(path)}: cannot remove: {err.strerror or err}") from None
    else:
        _write(path, new)
    return Change(shell, path, "removed")


def installed_shells(environ: dict[str, str] | None = None) -> list[str]:
    """The shells whose start-up files hold our block."""
    found = []
    for shell in SHELLS:
        text = _read(rc_file(shell, environ))
        if text is not None and installed_block(text):
            found.append(shell)
    return found


def chosen_shells(choice: str) -> tuple[str, ...]:
    if choice == "all":
        return SHELLS
    if choice not in SHELLS:
        raise ShellError(f"unknown shell `{safe(choice)}` (choose from {', '.join(SHELLS)}, all)")
    return (choice,)


def install(choice: str = "all", tool: str | None = None,
            environ: dict[str, str] | None = None) -> list[Change]:
    return [install_one(shell, tool, environ) for shell in chosen_shells(choice)]


def uninstall(choice: str = "all", environ: dict[str, str] | None = None) -> list[Change]:
    return [uninstall_one(shell, environ) for shell in chosen_shells(choice)]
