# A stand-in for the parts of nixpkgs nixld-hook's Nix files use. Builders
# return fake derivations that keep their arguments, so tests can read what
# would be built; store paths are made up but shaped like real ones.
{
  lib,
  system ? "x86_64-linux",
}:
let
  inherit (builtins)
    functionArgs
    hashString
    head
    intersectAttrs
    isFunction
    listToAttrs
    substring
    ;

  # A package with `outputs`; each output is the whole package with its own
  # outPath, as in nixpkgs.
  mkPackage =
    name: attrs: outputs:
    let
      hash = substring 0 32 (hashString "sha256" "${system}:${name}");
      common = attrs // byOutput // {
        type = "derivation";
        inherit name outputs system;
        meta = attrs.meta or { };
      };
      byOutput = listToAttrs (
        map (output: {
          name = output;
          value = common // {
            outPath = "/nix/store/${hash}-${name}${if output == "out" then "" else "-${output}"}";
            outputName = output;
          };
        }) outputs
      );
    in
    byOutput.${head outputs};

  library = name: mkPackage name { } [ "out" ];

  isx86_64 = system == "x86_64-linux";
  isi686 = system == "i686-linux";
  glibc = mkPackage "glibc-2.40" { } [ "out" ];
  loaderName =
    {
      "x86_64-linux" = "ld-linux-x86-64.so.2";
      "aarch64-linux" = "ld-linux-aarch64.so.1";
      "i686-linux" = "ld-linux.so.2";
    }
    .${system};

  stdenv = {
    inherit system isx86_64;
    hostPlatform = {
      inherit system isx86_64 isi686;
      libDir = if isx86_64 then "lib64" else "lib";
    };
    cc = {
      # gcc's runtime libraries (libstdc++, libgcc_s) are its `lib` output.
      cc = mkPackage "gcc-14.2.0" { } [
        "out"
        "lib"
      ];
      bintools.dynamicLinker = "${glibc}/lib/${loaderName}";
    };
    mkDerivation = args: mkPackage "${args.pname}-${args.version}" args [ "out" ];
  };

  python3Packages = {
    python.sitePackages = "lib/python3.12/site-packages";
    buildPythonApplication = args: mkPackage "${args.pname}-${args.version}" args [ "out" ];
    setuptools = library "python3.12-setuptools-75.1.0";
    pyelftools = library "python3.12-pyelftools-0.31";
    xdg-base-dirs = library "python3.12-xdg-base-dirs-6.0.2";
    zstandard = library "python3.12-zstandard-0.23.0";
    pytestCheckHook = library "pytest-check-hook";
    pexpect = library "python3.12-pexpect-4.9.0";
    hypothesis = library "python3.12-hypothesis-6.112.0";
  };

  pkgs = {
    inherit lib stdenv python3Packages system glibc;
    # nixpkgs' 32-bit x86 package set (on x86_64 only, as in nixpkgs).
    pkgsi686Linux =
      if isx86_64 then import ./pkgs.nix { inherit lib; system = "i686-linux"; }
      else throw "pkgsi686Linux exists only on x86_64-linux";
    buildEnv = args: mkPackage args.name args [ "out" ];
    linkFarm = name: entries: mkPackage name { inherit entries; } [ "out" ];
    callPackage =
      fn: overrides:
      let
        f = if isFunction fn then fn else import fn;
      in
      f (intersectAttrs (functionArgs f) pkgs // overrides);

    zlib = library "zlib-1.3.1";
    zstd = library "zstd-1.5.6";
    curl = library "curl-8.9.1";
    openssl = library "openssl-3.0.14";
    attr = library "attr-2.5.2";
    libssh = library "libssh-0.10.6";
    bzip2 = library "bzip2-1.0.8";
    libxml2 = library "libxml2-2.13.3";
    acl = library "acl-2.3.2";
    libsodium = library "libsodium-1.0.20";
    util-linux = library "util-linux-2.39.4";
    xz = library "xz-5.6.2";
    systemd = library "systemd-256.6";
  };
in
pkgs
