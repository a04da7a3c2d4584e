# NixOS module: nixld-hook system-wide. Installs the shim as the system ELF
# interpreter (as programs.nix-ld does, whose NIX_LD / NIX_LD_LIBRARY_PATH it
# keeps), writes declared per-binary entries to /etc/nixld/entries, and
# sources the shell hooks in interactive shells.
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
        ] ++ entries.assertions cfg.binaries;

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

        environment.etc = entries.etcFiles cfg.binaries;
      }

      (lib.mkIf (!nixLdEnabled) installShim)

      (shellIntegration cfg.enableBashIntegration "bash" "source ${hook "bash"}")
      (shellIntegration cfg.enableZshIntegration "zsh" "source ${hook "zsh"}")
      (shellIntegration cfg.enableFishIntegration "fish" "source ${hook "fish"}")
    ]
  );
}
