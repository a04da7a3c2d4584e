"""A NixOS-like world on a plain Debian machine: the ground every end-to-end
test (and `nixld-hook demo`) stands on. Not part of the product's job; the
product never imports it (only `nixld-hook demo` does).

What it holds, all real, one module per part:

- `nixos_loader`: a glibc store path made from Debian's libc6 whose ld.so
  searches only its own lib/, used as NIX_LD;
- `binaries`: unmodified foreign binaries from Debian packages
  (`catalog.FOREIGN` says why each), and copies whose interpreter does not
  exist or is the project's shim (the failures the hooks catch);
- `fixtures`: C fixtures (sources in `sources/`) compiled on the spot for the
  loader's corner cases;
- `providers`: nixpkgs-like providers, store paths made from Debian library
  packages (`debian`), named as nixpkgs names them, with the traps of the
  real database (an FHS env holding copies of almost everything, applications
  bundling copies, non-top-level copies, an older soname lacking a symbol
  version);
- `store`: those store paths added with `nix-store --add`, copied into a local
  file:// binary cache and deleted from the store, so every realisation is a
  real substitution, and a nix-index database describing them, store paths in
  no particular order;
- `world`: the assembly, built once and reused (`ensure_world`).
"""

from nixld.demo.binaries import MISSING_INTERPRETER
from nixld.demo.catalog import FOREIGN, PROVIDERS, Foreign, Kind, Provider
from nixld.demo.fixtures import FIXTURE_WHY
from nixld.demo.store import StoreItem
from nixld.demo.tools import WorldError
from nixld.demo.world import World, ensure_world, reset_store, world_home

__all__ = [
    "FIXTURE_WHY",
    "FOREIGN",
    "MISSING_INTERPRETER",
    "PROVIDERS",
    "Foreign",
    "Kind",
    "Provider",
    "StoreItem",
    "World",
    "WorldError",
    "ensure_world",
    "reset_store",
    "world_home",
]
