# home-manager module: nixld-hook for one user. The shell hooks and the
# auto-accept setting; the interpreter shim is system-wide and comes from the
# NixOS module (or `nixld-hook run` without it).
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  cfg = config.programs.nixld;
  hook = shell: "${cfg.package}/share/nixld/hooks/nixld.${shell}";

  # Follows home.shell.enable<Shell>Integration where home-manager has it.
  integrationOption =
    shell:
    lib.mkOption {
      type = lib.types.bool;
      default = config.home.shell."enable${shell}Integration" or true;
      defaultText = lib.literalExpression "config.home.shell.enable${shell}Integration";
      description = "Whether to source the nixld-hook ${shell} hook in interactive ${shell}.";
    };

  # home-manager renamed programs.zsh.initExtra to initContent.
  zshInit =
    value:
    if options.programs.zsh ? initContent then
      { programs.zsh.initContent = value; }
    else
      { programs.zsh.initExtra = value; };
in
{
  options.programs.nixld = {
    enable = lib.mkEnableOption "nixld-hook, which makes foreign binaries that fail to start work";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The nixld-hook package (the command and its shell hooks).";
    };

    autoAccept = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Install the top-ranked libraries for a failed binary without asking
        (writes auto_accept = true to $XDG_CONFIG_HOME/nixld/config.toml).
      '';
    };

    enableBashIntegration = integrationOption "Bash";
    enableZshIntegration = integrationOption "Zsh";
    enableFishIntegration = integrationOption "Fish";
  };

  # The hooks go after the rest of the shell init (mkAfter), so that prompt
  # hooks added there already exist when ours registers beside them.
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      { home.packages = [ cfg.package ]; }

      (lib.mkIf cfg.autoAccept {
        xdg.configFile."nixld/config.toml".text = ''
          auto_accept = true
        '';
      })

      (lib.mkIf cfg.enableBashIntegration {
        programs.bash.initExtra = lib.mkAfter "source ${hook "bash"}";
      })
      (lib.mkIf cfg.enableZshIntegration (zshInit (lib.mkAfter "source ${hook "zsh"}")))
      (lib.mkIf cfg.enableFishIntegration {
        programs.fish.interactiveShellInit = lib.mkAfter "source ${hook "fish"}";
      })
    ]
  );
}
