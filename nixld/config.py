"""The user's settings: `$XDG_CONFIG_HOME/nixld/config.toml`.

    auto_accept = true   # install the top-ranked plan without asking
    rerun = true         # after an auto-accepted install, run the command again

Read with tomllib. Written by `nixld-hook install --auto-accept` (and the
prompt's "always") by changing or adding one `key = value` line, so the
user's comments and other keys stay as they were.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nixld import paths
from nixld.errors import NixldError
from nixld.text import safe

SETTINGS = ("auto_accept", "rerun")


class ConfigError(NixldError):
    """The config file exists but cannot be read or written."""


@dataclass(frozen=True)
class Config:
    auto_accept: bool = False
    rerun: bool = False


def load_config(path: Path | None = None) -> Config:
    """The settings; defaults when the file does not exist."""
    file = path or paths.config_file()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{safe(file)}: cannot read the config file: {err}") from None
    values: dict[str, bool] = {}
    for key in SETTINGS:
        if key in data:
            value = data[key]
            if not isinstance(value, bool):
                raise ConfigError(f"{safe(file)}: `{key}` must be true or false")
            values[key] = value
    return Config(**values)


def auto_accept(config: Config, environ: Mapping[str, str] | None = None) -> bool:
    """Auto-accept is on in the config file or with NIXLD_AUTO_ACCEPT=1."""
    env = os.environ if environ is None else environ
    return config.auto_accept or env.get("NIXLD_AUTO_ACCEPT", "") in ("1", "true", "yes")


def set_setting(key: str, value: bool, path: Path | None = None) -> bool:
    """Set `key = value` in the config file; True if the file changed."""
    if key not in SETTINGS:
        raise ConfigError(f"unknown setting `{safe(key)}`")
    file = path or paths.config_file()
    try:
        with file.open(encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{safe(file)}: cannot read the config file: {err}") from None
    load_config(file)  # refuse to edit a file that does not parse
    line = f"{key} = {'true' if value else 'false'}"
    # Top-level keys live before the first [table]; a key added after it
    # would belong to that table.
    table = re.search(r"^[ \t]*\[", text, re.MULTILINE)
    head, tail = (text[:table.start()], text[table.start():]) if table else (text, "")
    pattern = re.compile(rf"^[ \t]*{key}[ \t]*=.*$", re.MULTILINE)
    if pattern.search(head):
        head = pattern.sub(line, head, count=1)
    else:
        head = head + ("" if not head or head.endswith("\n") else "\n") + line + "\n"
    new = head + tail
    if new == text:
        return False
    write_atomic(file, new)
    return True


def write_atomic(file: Path, text: str) -> None:
    """Write `text` to `file` with nixld.atomic, keeping the mode of an existing
    file; a symlink is followed, not replaced."""
    from nixld import atomic

    target = Path(os.path.realpath(file))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
        atomic.write_bytes(target, text.encode("utf-8", "surrogateescape"), mode)
    except OSError as err:
        raise ConfigError(f"{safe(file)}: cannot write: {err.strerror or err}") from None
