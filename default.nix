# nix-build                 # builds nixld-hook and nixld-shim (result, result-2)
# nix-build -A nixld-hook   # only the application
#
# The modules build their default packages with the system's own pkgs; import
# them from here or straight from nix/.
{
  pkgs ? import <nixpkgs> { },
}:
{
  nixld-hook = pkgs.callPackage ./nix/package.nix { };
  nixld-shim = pkgs.callPackage ./nix/shim.nix { };

  nixosModules.default = ./nix/nixos-module.nix;
  homeManagerModules.default = ./nix/home-manager-module.nix;
}
