# System-wide per-binary entries (shim/FORMAT.md) from the NixOS module's
# `programs.nixld.binaries`: path -> packages. The module only knows the path,
# so the entries carry no identity lines; the shim applies them to whatever
# file has that canonical path.
{ lib }:
let
  fnv1a64 = import ./fnv1a64.nix;

  # FORMAT.md allows at most 64 `dir` lines.
  maxDirs = 64;

  libDir = pkg: "${lib.getLib pkg}/lib";

  # The shim looks entries up by readlink(/proc/self/exe), which is always
  # absolute and free of `.`, `..`, `//` and a trailing `/`.
  isCanonical =
    path:
    let
      parts = lib.splitString "/" path;
    in
    lib.hasPrefix "/" path
    && path != "/"
    && !(lib.hasInfix "\n" path)
    && lib.all (p: p != "" && p != "." && p != "..") (lib.tail parts);
in
rec {
  fileName = path: "nixld/entries/${fnv1a64 path}.entry";

  text = path: packages: ''
    nixld-entry 1
    path ${path}
    ${lib.concatMapStrings (pkg: "dir ${libDir pkg}\n") packages}end
  '';

  # environment.etc attributes: copied (mode 0644, root-owned) rather than
  # linked into the store, as FORMAT.md asks of entry files.
  etcFiles = binaries: lib.mapAttrs' (path: packages: {
    name = fileName path;
    value = {
      text = text path packages;
      mode = "0644";
    };
  }) binaries;

  assertions = binaries: lib.concatLists (lib.mapAttrsToList (path: packages: [
    {
      assertion = isCanonical path;
      message = "programs.nixld.binaries: `${path}' is not a canonical absolute path (the shim matches the executable's real path, with no symlinks, `.', `..' or `//')";
    }
    {
      assertion = lib.length packages <= maxDirs;
      message = "programs.nixld.binaries.\"${path}\": at most ${toString maxDirs} packages (one library directory each)";
    }
  ]) binaries);
}
