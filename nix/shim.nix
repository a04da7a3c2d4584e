# The interpreter shim: freestanding C, static-pie, built by the Makefile in
# shim/ into build/nixld-shim. The NixOS module links it as the system ELF
# interpreter, as nix-ld's module links nix-ld.
#
# Called from pkgsi686Linux, it is the i686 shim (installed as
# /lib/ld-linux.so.2), with the NixOS module's 32-bit loader and library
# directory compiled in as its defaults.
{
  lib,
  stdenv,
  # Compiled-in defaults for when NIX_LD_<system> / NIX_LD_LIBRARY_PATH_<system>
  # are unset (null: the Makefile's, nix-ld's /run/current-system/sw/share/nix-ld/lib).
  defaultLoader ? null,
  defaultLibraryPath ? null,
}:
let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
  isi686 = stdenv.hostPlatform.isi686 or false;
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
  makeFlags = [
    "SYSTEM_ENTRIES_DIR=/etc/nixld/entries"
  ]
  # i686 (gcc -m32 is a no-op for pkgsi686Linux's gcc); OUT pinned, since
  # whether uname says i686 in the build depends on the builder's personality.
  ++ lib.optionals isi686 [
    "ARCH=i686"
    "OUT=build/nixld-shim"
  ]
  ++ lib.optional (defaultLoader != null) "DEFAULT_LD=${defaultLoader}"
  ++ lib.optional (defaultLibraryPath != null) "DEFAULT_LIBRARY_PATH=${defaultLibraryPath}";

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
      "i686-linux"
    ];
  };
}
