# NixOS module: nixld-hook system-wide. Installs the shim as the system ELF
# interpreter (as programs.nix-ld does, whose NIX_LD / NIX_LD_LIBRARY_PATH it
# keeps), and on x86_64 the i686 shim as the 32-bit one (environment.ldso32,
# NIX_LD_i686_linux); writes declared per-binary entries to
# /etc/nixld/entries, and sources the shell hooks in interactive shells.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  cfg = config.programs.nixld;
  entries = import ./entries.nix { inherit lib; };

  shim = "${cfg.shimPackage}/libexec/nixld/nixld-shim";
  hook = shell: "${cfg.package}/share/nixld/hooks/nixld.${shell}";

  # nix-ld's layout, so the shim's compiled-in defaults and anything written
  # for nix-ld find the loader and the libraries where they expect them.
  nixLdDir = "/run/current-system/sw/share/nix-ld/lib";
  libraryEnv = pkgs.buildEnv {
    name = "nixld-libraries";
    paths = map lib.getLib cfg.libraries;
    pathsToLink = [ "/lib" ];
    extraPrefix = "/share/nix-ld";
    ignoreCollisions = true;
    postBuild = ''
      ln -s ${pkgs.stdenv.cc.bintools.dynamicLinker} $out/share/nix-ld/lib/ld.so
    '';
  };

  # Where the loader lives on other distributions, e.g. /lib64/ld-linux-x86-64.so.2;
  # only needed on nixpkgs without the environment.ldso option.
  ldsoPath = "/${pkgs.stdenv.hostPlatform.libDir}/${baseNameOf pkgs.stdenv.cc.bintools.dynamicLinker}";
  installShim =
    if options.environment ? ldso then
      { environment.ldso = shim; }
    else
      {
        systemd.tmpfiles.rules = [
          "d /${pkgs.stdenv.hostPlatform.libDir} 0755 root root - -"
          "L+ ${ldsoPath} - - - - ${shim}"
        ];
      };

  # The same for 32-bit x86 programs: the loader of pkgsi686Linux.glibc (the
  # same nixpkgs as the system) and the 32-bit libraries, at the place the
  # i686 shim has compiled in, and named by nix-ld's i686 variables.
  nixLd32Dir = "/run/current-system/sw/share/nix-ld32/lib";
  loader32 = "${pkgs.pkgsi686Linux.glibc}/lib/ld-linux.so.2";
  libraryEnv32 = pkgs.buildEnv {
    name = "nixld-libraries-i686";
    paths = map lib.getLib cfg.libraries32;
    pathsToLink = [ "/lib" ];
    extraPrefix = "/share/nix-ld32";
    ignoreCollisions = true;
    postBuild = ''
      mkdir -p $out/share/nix-ld32/lib
      ln -s ${loader32} $out/share/nix-ld32/lib/ld.so
    '';
  };
  shim32 = "${cfg.shim32Package}/libexec/nixld/nixld-shim";
  installShim32 =
    if options.environment ? ldso32 then
      { environment.ldso32 = shim32; }
    else
      {
        systemd.tmpfiles.rules = [
          "d /lib 0755 root root - -"
          "L+ /lib/ld-linux.so.2 - - - - ${shim32}"
        ];
      };
  enable32 = cfg.enable32Bit && pkgs.stdenv.hostPlatform.isx86_64;

  nixLdEnabled = config.programs.nix-ld.enable or false;

  # After the rest of the interactive init, so that prompt hooks added there
  # already exist when ours registers beside them.
  shellIntegration = enabled: shell: line: lib.mkIf enabled {
    programs.${shell}.interactiveShellInit = lib.mkAfter line;
  };
in
{
  options.programs.nixld = {
    enable = lib.mkEnableOption ''
      nixld-hook: foreign binaries that fail to start are analysed in the
      shell, their missing libraries installed from nixpkgs and remembered per
      binary, and the interpreter shim applies them on the next run.
      Replaces programs.nix-ld'';

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The nixld-hook package (the command and its shell hooks).";
    };

    shimPackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./shim.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./shim.nix { }";
      description = "The interpreter shim, providing libexec/nixld/nixld-shim.";
    };

    autoAccept = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Install the top-ranked libraries for a failed binary without asking
        (sets NIXLD_AUTO_ACCEPT=1 for every user).
      '';
    };

    enableBashIntegration = lib.mkEnableOption "the bash hook" // {
      default = true;
    };
    enableZshIntegration = lib.mkEnableOption "the zsh hook" // {
      default = true;
    };
    enableFishIntegration = lib.mkEnableOption "the fish hook" // {
      default = true;
    };

    libraries = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.libGL pkgs.glib ]";
      description = ''
        Libraries every foreign binary finds (NIX_LD_LIBRARY_PATH), after its
        own per-binary entry. Definitions add to nix-ld's default set; use
        lib.mkForce to replace it.
      '';
    };

    database = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = lib.literalExpression "nix-index-database.legacyPackages.\${pkgs.system}.database";
      description = ''
        A nix-index database file (what nix-index writes to
        ~/.cache/nix-index/files), for every user: exported as
        NIX_INDEX_DATABASE, a directory holding it as `files`. Without it each
        user needs their own (see the README).
      '';
    };

    enable32Bit = lib.mkOption {
      type = lib.types.bool;
      default = pkgs.stdenv.hostPlatform.isx86_64;
      defaultText = lib.literalExpression "pkgs.stdenv.hostPlatform.isx86_64";
      description = ''
        32-bit x86 programs (Steam games and their tools, old proprietary
        programs): the i686 shim as /lib/ld-linux.so.2 (environment.ldso32),
        pkgsi686Linux.glibc's loader as NIX_LD_i686_linux, the libraries32 as
        NIX_LD_LIBRARY_PATH_i686_linux, and the binaries32 entries. Only on
        x86_64.
      '';
    };

    shim32Package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.pkgsi686Linux.callPackage ./shim.nix {
        defaultLoader = "${nixLd32Dir}/ld.so";
        defaultLibraryPath = nixLd32Dir;
      };
      defaultText = lib.literalExpression "pkgs.pkgsi686Linux.callPackage ./shim.nix { ... }";
      description = "The i686 interpreter shim, providing libexec/nixld/nixld-shim.";
    };

    libraries32 = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "with pkgs.pkgsi686Linux; [ libGL alsa-lib ]";
      description = ''
        32-bit libraries every 32-bit foreign binary finds
        (NIX_LD_LIBRARY_PATH_i686_linux), after its own per-binary entry:
        packages of pkgs.pkgsi686Linux.
      '';
    };

    binaries32 = lib.mkOption {
      type = lib.types.attrsOf (lib.types.listOf lib.types.package);
      default = { };
      example = lib.literalExpression ''
        { "/opt/game/bin/game" = with pkgs.pkgsi686Linux; [ zlib xorg.libX11 ]; }
      '';
      description = ''
        Per-binary resolutions of 32-bit x86 binaries, as `binaries` (the
        canonical path to the packages whose lib/ it is given, first), with
        packages of pkgs.pkgsi686Linux.
      '';
    };

    binaries = lib.mkOption {
      type = lib.types.attrsOf (lib.types.listOf lib.types.package);
      default = { };
      example = lib.literalExpression ''
        { "/opt/vendor/bin/tool" = [ pkgs.zlib pkgs.openssl ]; }
      '';
      description = ''
        Per-binary resolutions for every user: the binary's canonical path
        (no symlinks) to the packages whose lib/ directories it is given,
        first. Written at activation to /etc/nixld/entries, keyed by path.
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = !nixLdEnabled;
            message = "programs.nixld replaces programs.nix-ld (its shim does what nix-ld does, and both would be the system ELF interpreter): disable programs.nix-ld.";
          }
        ] ++ entries.assertions cfg.binaries ++ entries.assertions cfg.binaries32
        ++ map (path: {
          assertion = false;
          message = "programs.nixld: `${path}' is in both binaries and binaries32 (one file is one architecture)";
        }) (lib.attrNames (builtins.intersectAttrs cfg.binaries cfg.binaries32));

        # nix-ld's default set: the libraries of systemd and nix.
        programs.nixld.libraries = with pkgs; [
          zlib
          zstd
          stdenv.cc.cc
          curl
          openssl
          attr
          libssh
          bzip2
          libxml2
          acl
          libsodium
          util-linux
          xz
          systemd
        ];

        environment.systemPackages = [
          cfg.package
          libraryEnv
        ];
        environment.pathsToLink = [ "/share/nix-ld" ];

        environment.sessionVariables = {
          NIX_LD = "${nixLdDir}/ld.so";
          NIX_LD_LIBRARY_PATH = nixLdDir;
        }
        // lib.optionalAttrs cfg.autoAccept { NIXLD_AUTO_ACCEPT = "1"; }
        // lib.optionalAttrs (cfg.database != null) {
          NIX_INDEX_DATABASE = "${pkgs.linkFarm "nixld-nix-index" [
            {
              name = "files";
              path = cfg.database;
            }
          ]}";
        };

        environment.etc = entries.etcFiles (cfg.binaries // cfg.binaries32);
      }

      (lib.mkIf (!nixLdEnabled) installShim)

      (lib.mkIf enable32 {
        environment.systemPackages = [ libraryEnv32 ];
        environment.pathsToLink = [ "/share/nix-ld32" ];
        environment.sessionVariables = {
          NIX_LD_i686_linux = "${nixLd32Dir}/ld.so";
          NIX_LD_LIBRARY_PATH_i686_linux = nixLd32Dir;
        };
      })
      (lib.mkIf (enable32 && !nixLdEnabled) installShim32)

      (shellIntegration cfg.enableBashIntegration "bash" "source ${hook "bash"}")
      (shellIntegration cfg.enableZshIntegration "zsh" "source ${hook "zsh"}")
      (shellIntegration cfg.enableFishIntegration "fish" "source ${hook "fish"}")
    ]
  );
}
