# The interpreter shim: freestanding C, static-pie, built by the Makefile in
# shim/ into build/nixld-shim. The NixOS module links it as the system ELF
# interpreter, as nix-ld's module links nix-ld.
{ lib, stdenv }:
let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
in
stdenv.mkDerivation {
  pname = "nixld-shim";
  inherit (pyproject.project) version;

  src = import ./source.nix ../shim;

  # No libc to provide the stack protector or fortified functions, and a
  # static-pie binary has nothing for patchelf to shrink.
  hardeningDisable = [ "all" ];
  dontPatchELF = true;

  # The directory the NixOS module writes entries to (FORMAT.md); also the
  # Makefile's default, pinned here because the module depends on it.
  makeFlags = [ "SYSTEM_ENTRIES_DIR=/etc/nixld/entries" ];

  enableParallelBuilding = true;

  installPhase = ''
    runHook preInstall
    install -D -m 0755 build/nixld-shim "$out/libexec/nixld/nixld-shim"
    runHook postInstall
  '';

  meta = {
    description = "nix-ld compatible ELF interpreter that applies nixld-hook's per-binary entries";
    license = lib.licenses.mit;
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
