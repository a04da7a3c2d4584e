"""The NixOS and home-manager modules evaluated by the real nixpkgs `lib`
(`lib.evalModules`, `lib.types`: ../shared/data/nixpkgs-lib-26.11.tar.gz,
unpacked here), not only by the stand-in of tests/fixtures/nix_stub. The options the
modules set are declared as NixOS and home-manager declare them (only those);
packages come from the stub pkgs. NIX_PATH is empty: nothing reaches nixpkgs.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from nixld import entries, paths
from tests.conftest import REPO, need, need_tool

# ../shared beside the checkout (CI, /work/main), or beside a worktree's parent.
LIB_TARBALL = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared")
                    if p.is_dir()), REPO.parent / "shared") / "data" / "nixpkgs-lib-26.11.tar.gz"
STUB_PKGS = REPO / "tests" / "fixtures" / "nix_stub" / "pkgs.nix"

# nixos/modules: config/system-path.nix, config/shells-environment.nix,
# system/etc/etc.nix, config/ldso.nix, system/boot/systemd/tmpfiles.nix,
# programs/bash, zsh, fish, misc/assertions.nix (types as declared there).
NIXOS_DECLARATIONS = """{ lib, ... }: with lib; {
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; };
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
    environment.pathsToLink = mkOption { type = types.listOf types.str; default = [ ]; };
    environment.sessionVariables = mkOption {
      type = with types; attrsOf (oneOf [ (listOf (oneOf [ int str path ])) int str path ]);
      default = { }; };
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule {
        options.text = mkOption { type = types.nullOr types.lines; default = null; };
        options.mode = mkOption { type = types.str; default = "symlink"; };
      });
      default = { }; };
    systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
    programs.bash.interactiveShellInit = mkOption { type = types.lines; default = ""; };
    programs.zsh.interactiveShellInit = mkOption { type = types.lines; default = ""; };
    programs.fish.interactiveShellInit = mkOption { type = types.lines; default = ""; };
    programs.nix-ld.enable = mkEnableOption "nix-ld";
  };
}) ({ lib, ... }: with lib; {
  # nixpkgs from 24.05 on (config/ldso.nix); without them: an older nixpkgs.
  options = optionalAttrs WITH_LDSO {
    environment.ldso = mkOption { type = types.nullOr types.path; default = null; };
    environment.ldso32 = mkOption { type = types.nullOr types.path; default = null; };
  };
}"""

# home-manager: modules/home-environment.nix, misc/xdg.nix, programs/bash,
# zsh, fish, home.shell (types as declared there, file types simplified).
HM_DECLARATIONS = """{ lib, ... }: with lib; {
  options = {
    home.packages = mkOption { type = types.listOf types.package; default = [ ]; };
    home.shell.enableBashIntegration = mkEnableOption "" // { default = true; };
    home.shell.enableZshIntegration = mkEnableOption "" // { default = true; };
    home.shell.enableFishIntegration = mkEnableOption "" // { default = true; };
    xdg.configFile = mkOption {
      type = types.attrsOf (types.submodule {
        options.text = mkOption { type = types.nullOr types.lines; default = null; };
      });
      default = { }; };
    programs.bash.initExtra = mkOption { type = types.lines; default = ""; };
    programs.zsh.initContent = mkOption { type = types.lines; default = ""; };
    programs.fish.interactiveShellInit = mkOption { type = types.lines; default = ""; };
  };
}"""


@pytest.fixture(scope="module")
def real_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need(LIB_TARBALL.is_file(), f"needs {LIB_TARBALL}")
    dest = tmp_path_factory.mktemp("nixpkgs-lib")
    with tarfile.open(LIB_TARBALL) as tar:
        tar.extractall(dest, filter="data")
    lib = dest / "nixpkgs-lib" / "lib"
    assert (lib / "default.nix").is_file()
    return lib


def expression(lib: Path, module: str, user: str, select: str, *,
               with_ldso: bool = True) -> str:
    """`lib.evalModules` of the declarations, `module` and the user's module
    list, then `select` of it."""
    declarations = (NIXOS_DECLARATIONS.replace("WITH_LDSO", str(with_ldso).lower())
                    if module == "nixos" else HM_DECLARATIONS)
    file = "nixos-module.nix" if module == "nixos" else "home-manager-module.nix"
    return f"""let
      lib = import {lib};
      pkgs = import {STUB_PKGS} {{ inherit lib; system = "x86_64-linux"; }};
      eval = lib.evalModules {{ modules = [ ({declarations}) {REPO}/nix/{file}
        {{ _module.args.pkgs = pkgs; }} ] ++ {user}; }};
      inherit (eval) config options;
      failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions or [ ]);
    in {select}"""


def instantiate(expr: str) -> subprocess.CompletedProcess[str]:
    need_tool("nix-instantiate")
    return subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr],
                          env={"NIX_PATH": "", "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=300, check=False)


def evaluate(lib: Path, module: str, user: str, select: str, *,
             with_ldso: bool = True) -> Any:
    """The value of `select` (see `expression`), which must evaluate."""
    proc = instantiate(expression(lib, module, user, select, with_ldso=with_ldso))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


ENABLED = "[ { programs.nixld.enable = true; } ]"


def test_real_lib_the_module_sets_ldso32_and_the_32_bit_variables(real_lib: Path) -> None:
    got = evaluate(real_lib, "nixos", ENABLED, """{
      inherit (config.environment) ldso ldso32 sessionVariables pathsToLink;
      shim = config.programs.nixld.shimPackage.outPath;
      shim32 = config.programs.nixld.shim32Package.outPath;
      system32 = config.programs.nixld.shim32Package.system;
      rules = config.systemd.tmpfiles.rules; inherit failed;
      types = builtins.mapAttrs (_: o: o.type.description) options.programs.nixld; }""")
    assert got["failed"] == [] and got["rules"] == []
    assert got["ldso"] == got["shim"] + "/libexec/nixld/nixld-shim"
    assert got["ldso32"] == got["shim32"] + "/libexec/nixld/nixld-shim"
    assert got["shim32"] != got["shim"] and got["system32"] == "i686-linux"
    assert got["sessionVariables"]["NIX_LD_i686_linux"] == str(paths.NIX_LD_I686_DEFAULT)
    assert got["sessionVariables"]["NIX_LD_LIBRARY_PATH_i686_linux"] == \
        paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT
    assert got["pathsToLink"] == ["/share/nix-ld", "/share/nix-ld32"]
    # NixOS's own type names, from the real lib.types.
    assert got["types"]["binaries32"] == "attribute set of list of package"
    assert got["types"]["libraries32"] == "list of package"
    assert got["types"]["enable32Bit"] == "boolean"


def test_real_lib_binaries32_and_a_wrong_definition(real_lib: Path) -> None:
    game = "/opt/game/bin/game"
    got = evaluate(real_lib, "nixos", "[ { programs.nixld.enable = true;"
                   f' programs.nixld.binaries32."{game}" = [ pkgs.pkgsi686Linux.zlib ]; }} ]',
                   "{ etc = config.environment.etc; z = pkgs.pkgsi686Linux.zlib.outPath; }")
    text = got["etc"][f"nixld/entries/{entries.key_for(game)}.entry"]["text"]
    parsed = entries.parse_entry(text.encode())
    assert parsed is not None and parsed.dirs == (f"{got['z']}/lib",)
    wrong = instantiate(expression(real_lib, "nixos", "[ { programs.nixld.enable = true;"
                                   ' programs.nixld.enable32Bit = "yes"; } ]',
                                   "config.programs.nixld.enable32Bit"))
    assert wrong.returncode != 0 and "is not of type `boolean'" in wrong.stderr
    typo = instantiate(expression(real_lib, "nixos", "[ { programs.nixld.binaries31 = { }; } ]",
                                  "config.programs.nixld.enable"))
    assert typo.returncode != 0 and "programs.nixld.binaries31' does not exist" in typo.stderr


def test_real_lib_nixpkgs_without_ldso_options_uses_tmpfiles(real_lib: Path) -> None:
    got = evaluate(real_lib, "nixos", ENABLED,
                   "{ rules = config.systemd.tmpfiles.rules;"
                   " shim32 = config.programs.nixld.shim32Package.outPath; }", with_ldso=False)
    assert got["rules"][2:] == ["d /lib 0755 root root - -",
                                f"L+ /lib/ld-linux.so.2 - - - - {got['shim32']}"
                                "/libexec/nixld/nixld-shim"]


def test_real_lib_home_manager_module_unchanged_in_use(real_lib: Path) -> None:
    got = evaluate(real_lib, "hm", "[ { programs.nixld = { enable = true; autoAccept = true; };"
                   " home.shell.enableZshIntegration = false; } ]", """{
      packages = map (p: p.name) config.home.packages;
      files = builtins.attrNames config.xdg.configFile;
      bash = config.programs.bash.initExtra; zsh = config.programs.zsh.initContent;
      names = builtins.attrNames options.programs.nixld; }""")
    assert got["names"] == ["autoAccept", "enable", "enableBashIntegration",
                            "enableFishIntegration", "enableZshIntegration", "package"]
    assert got["files"] == ["nixld/config.toml"] and got["zsh"] == ""
    assert got["bash"].startswith("source /nix/store/") and len(got["packages"]) == 1
