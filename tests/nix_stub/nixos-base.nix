# Declarations of the NixOS options nixld-hook's module sets, as nixpkgs
# declares them (types simplified: submodules are attribute sets). `withLdso`
# false is a nixpkgs from before environment.ldso (24.05), where nix-ld used
# systemd-tmpfiles.
{
  withLdso ? true,
}:
{ lib, ... }:
let
  inherit (lib) mkOption types;
  lines = mkOption {
    type = types.lines;
    default = "";
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    environment = {
      systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      pathsToLink = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      sessionVariables = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      variables = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      etc = mkOption {
        type = types.attrsOf (types.attrsOf types.anything);
        default = { };
      };
    } // lib.optionalAttrs withLdso {
      ldso = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
      ldso32 = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    programs = {
      bash.interactiveShellInit = lines;
      zsh.interactiveShellInit = lines;
      fish.interactiveShellInit = lines;
      nix-ld.enable = lib.mkEnableOption "nix-ld";
    };
  };
}
