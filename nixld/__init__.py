"""nixld-hook: make foreign binaries just work on NixOS."""

__version__ = "0.1.0"
