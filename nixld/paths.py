"""Where nixld-hook keeps things: every location comes from the XDG rules.

`shim/FORMAT.md` owns the names the shim also reads (the entry directories);
they are mirrored here and tested against that file.
"""

from __future__ import annotations

import os
from pathlib import Path

from xdg_base_dirs import xdg_cache_home, xdg_config_home, xdg_state_home

APP = "nixld"

# The directory the shim has compiled in for system-wide entries (FORMAT.md).
SYSTEM_ENTRIES_DIR = Path("/etc/nixld/entries")

# nix-ld's defaults, used when NIX_LD / NIX_LD_LIBRARY_PATH are unset.
NIX_LD_DEFAULT = Path("/run/current-system/sw/share/nix-ld/lib/ld.so")
NIX_LD_LIBRARY_PATH_DEFAULT = "/run/current-system/sw/share/nix-ld/lib"
# The same for 32-bit x86 programs: the NixOS module links a 32-bit glibc's
# loader and the 32-bit libraries there, and compiles them into the i686 shim.
NIX_LD_I686_DEFAULT = Path("/run/current-system/sw/share/nix-ld32/lib/ld.so")
NIX_LD_LIBRARY_PATH_I686_DEFAULT = "/run/current-system/sw/share/nix-ld32/lib"


def state_dir() -> Path:
    """`$XDG_STATE_HOME/nixld`: entries, the profile, remembered choices."""
    return xdg_state_home() / APP


def entries_dir() -> Path:
    """Per-user entries read by the shim (FORMAT.md)."""
    return state_dir() / "entries"


def profile_path() -> Path:
    """The dedicated Nix profile whose generations root installed libraries."""
    return state_dir() / "profile"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/nixld`: the soname index and other rebuildable caches."""
    return xdg_cache_home() / APP


def config_file() -> Path:
    """`$XDG_CONFIG_HOME/nixld/config.toml`."""
    return xdg_config_home() / APP / "config.toml"


def database_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the nix-index database directory as nix-locate does.

    `--db DIR`, else `$NIX_INDEX_DATABASE`, else `$XDG_CACHE_HOME/nix-index`.
    The database itself is the file `files` inside it.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("NIX_INDEX_DATABASE")
    if env:
        return Path(env)
    return xdg_cache_home() / "nix-index"


def database_file(explicit: str | os.PathLike[str] | None = None) -> Path:
    return database_dir(explicit) / "files"
