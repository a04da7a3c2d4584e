# Entry point for tests/test_nix_eval.py: the stub lib and pkgs, and NixOS and
# home-manager evaluations of the real modules on top of them.
{
  system ? "x86_64-linux",
}:
rec {
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit lib system; };
  evalModules = import ./eval-modules.nix { inherit lib; };

  nixos =
    {
      modules,
      withLdso ? true,
    }:
    evalModules {
      modules = [
        (import ./nixos-base.nix { inherit withLdso; })
        ../../nix/nixos-module.nix
      ] ++ modules;
      specialArgs = { inherit pkgs; };
    };

  homeManager =
    {
      modules,
      modern ? true,
    }:
    evalModules {
      modules = [
        (import ./hm-base.nix { inherit modern; })
        ../../nix/home-manager-module.nix
      ] ++ modules;
      specialArgs = { inherit pkgs; };
    };

  # default.nix as `nix-build` sees it, with the stub pkgs.
  top = import ../../default.nix { inherit pkgs; };
}
