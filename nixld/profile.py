"""A dedicated, gc-rooted Nix profile holding every installed library package.

The profile (`$XDG_STATE_HOME/nixld/profile`, a nix-env profile) keeps what it
holds alive: `nix-env` registers each generation as an indirect gc root, so
`nix-collect-garbage -d` leaves the packages alone. Entries never name the
merged profile; they name each store path's own `lib/`.

How nix-env -p behaves on Nix 2.8 (each checked, see tests/test_profile.py):
- `-i` replaces an element of the same name (zlib-1.2 by zlib-1.3) unless
  `--preserve-installed`: always passed, so two versions coexist.
- Two elements holding the same file (a bundle beside the real package) make
  the profile build fail unless their priorities differ, and `--set-flag
  priority` selects by name, which two zlib-1.3.1 builds share. So each element
  is installed from a small expression carrying its own unique
  `meta.priority`; the manifest references every element, so even one whose
  files all lost to another stays rooted.
- `-e STORE_PATH` removes exactly that element.
- Old generations keep their paths alive, so they are deleted after each change
  (and before it, in case an earlier run was interrupted in between).
- A new generation appears by an atomic symlink switch, and `builtins.storePath`
  refuses a path that is not valid: a generation never lists absent paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from nixld import nix, paths
from nixld.lock import ensure_dir

FIRST_PRIORITY = 10  # below nix-env's default 5 in precedence; only uniqueness matters


def installed() -> set[str]:
    """The store paths the profile holds."""
    return {e.store_path for e in nix.profile_elements(paths.profile_path())}


def install(store_paths: Sequence[str]) -> None:
    """Add the (already realised) store paths as profile elements; idempotent."""
    wanted = list(dict.fromkeys(nix.check_store_paths(store_paths)))
    profile = paths.profile_path()
    ensure_dir(profile.parent)
    nix.profile_delete_old_generations(profile)
    elements = nix.profile_elements(profile)
    have = {e.store_path for e in elements}
    new = [p for p in wanted if p not in have]
    if not new:
        return
    top = max((e.priority or 0 for e in elements), default=0)
    start = max(top + 1, FIRST_PRIORITY)
    nix.profile_add(profile, [(p, start + i) for i, p in enumerate(new)])
    nix.profile_delete_old_generations(profile)


def remove(store_paths: Sequence[str]) -> None:
    """Remove these store paths' elements (absent ones are ignored); frees them for gc."""
    unwanted = set(nix.check_store_paths(store_paths))
    profile = paths.profile_path()
    present = sorted(unwanted & installed())
    if present:
        ensure_dir(profile.parent)
        nix.profile_remove(profile, present)
    nix.profile_delete_old_generations(profile)
