"""Tests of the Nix expressions (nix/): the package, the shim and the modules."""
