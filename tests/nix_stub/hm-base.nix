# Declarations of the home-manager options nixld-hook's module sets, as
# home-manager declares them (types simplified). `modern` false is a
# home-manager from before programs.zsh.initContent and home.shell (25.05).
{
  modern ? true,
}:
{ lib, ... }:
let
  inherit (lib) mkOption types;
  lines = mkOption {
    type = types.lines;
    default = "";
  };
  shellDefault = mkOption {
    type = types.bool;
    default = true;
  };
in
{
  options = {
    home = {
      packages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
    } // lib.optionalAttrs modern {
      shell = {
        enableBashIntegration = shellDefault;
        enableZshIntegration = shellDefault;
        enableFishIntegration = shellDefault;
      };
    };
    xdg.configFile = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
      default = { };
    };
    programs = {
      bash.initExtra = lines;
      zsh = {
        initExtra = lines;
      } // lib.optionalAttrs modern { initContent = lines; };
      fish.interactiveShellInit = lines;
    };
  };
}
