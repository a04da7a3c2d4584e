"""The Nix files, checked with the real Nix but without nixpkgs.

Every `.nix` file must parse. `default.nix` and both modules are evaluated
with the stub `lib`/`pkgs` and the small module system in tests/fixtures/nix_stub, and
what they would configure is compared with the rest of the project: the entry
file names and text with nixld.entries (the Python side of shim/FORMAT.md),
the dependencies and the test marker with pyproject.toml, the config file with
nixld.config. NIX_PATH is unset, so reaching `<nixpkgs>` is an error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixld import config as nixld_config
from nixld import entries, paths
from tests.conftest import REPO, need_root, need_tool

STUB = REPO / "tests" / "fixtures" / "nix_stub"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SHELLS = ("bash", "zsh", "fish")


def _nix_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NIX_PATH"}
    env["NIX_PATH"] = ""  # not even a default search path: <nixpkgs> must fail
    return env


def nix_eval(expr: str, *, check: bool = True) -> Any:
    """`nix-instantiate --eval --strict --json --expr EXPR`, parsed."""
    need_tool("nix-instantiate")
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr],
        cwd=REPO, env=_nix_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    return proc


def nix_error(expr: str) -> str:
    proc = nix_eval(expr, check=False)
    assert proc.returncode != 0, f"expected an evaluation error, got {proc.stdout}"
    return str(proc.stderr)


STUB_LET = f"let stub = import {STUB} {{}}; inherit (stub) lib pkgs; in "


def nixos(modules: str, select: str, *, with_ldso: bool = True, system: str = "x86_64-linux",
          ) -> Any:
    """Evaluate the NixOS module with the user's `modules` (a Nix list) and
    return `select` (an expression over `config`, `options`, `failed`)."""
    return nix_eval(
        f"let stub = import {STUB} {{ system = \"{system}\"; }}; inherit (stub) lib pkgs;"
        f" r = stub.nixos {{ modules = {modules}; withLdso = {str(with_ldso).lower()}; }};"
        f" inherit (r) config options; failed = r.failedAssertions; in {select}")


def home(modules: str, select: str, *, modern: bool = True) -> Any:
    return nix_eval(
        STUB_LET + f"let r = stub.homeManager {{ modules = {modules};"
        f" modern = {str(modern).lower()}; }}; inherit (r) config options; in {select}")


def nix_string(value: str) -> str:
    """A Nix string literal for `value`."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


# ------------------------------------------------------------------ every file


def nix_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.nix")
                  if ".git" not in p.parts and not p.name.startswith("result"))


def test_every_nix_file_parses() -> None:
    need_tool("nix-instantiate")
    files = nix_files()
    assert REPO / "default.nix" in files and len(files) >= 10
    for path in files:
        proc = subprocess.run(["nix-instantiate", "--parse", str(path)], env=_nix_env(),
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{path.relative_to(REPO)}: {proc.stderr}"


def test_the_stub_evaluator_rejects_what_nixos_rejects() -> None:
    """The stub can fail: a misspelt option, a wrong type, a conflict."""
    assert "`programs.nixld.enabel' does not exist" in nix_error(
        STUB_LET + "(stub.nixos { modules = [ { programs.nixld.enabel = true; } ]; })"
        ".config.programs.nixld.enable")
    assert "not of type `bool'" in nix_error(
        STUB_LET + "(stub.nixos { modules = [ { programs.nixld.enable = \"yes\"; } ]; })"
        ".config.programs.nixld.enable")
    assert "conflicting definitions" in nix_error(
        STUB_LET + "(stub.nixos { modules = [ { programs.nixld.enable = true; } "
        "{ programs.nixld.enable = false; } ]; }).config.programs.nixld.enable")


# ------------------------------------------------------------------ the hash


def format_examples() -> dict[str, str]:
    """`P = ... -> <hash>` pairs quoted in shim/FORMAT.md."""
    text = (REPO / "shim" / "FORMAT.md").read_text()
    found = dict(re.findall(r"`P = (/[^`]*)` -> `([0-9a-f]{16})\.entry`", text))
    found.update(re.findall(r'`P = ""` hashes to `()([0-9a-f]{16})`', text))
    return found


def nix_keys(strings: list[str]) -> list[str]:
    """The Nix hash of each string, handed over as JSON (any character)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as data:
        json.dump(strings, data)
        data.flush()
        return list(nix_eval(
            f"map (import ./nix/fnv1a64.nix) (builtins.fromJSON (builtins.readFile {data.name}))"))


def test_nix_hash_matches_the_format_examples() -> None:
    examples = format_examples()
    assert set(examples) == {"/usr/bin/true", ""}
    assert nix_keys(list(examples)) == list(examples.values())


@settings(max_examples=15, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                        max_size=40), min_size=1, max_size=25))
def test_nix_hash_matches_the_python_side(paths: list[str]) -> None:
    """Every byte valid UTF-8 can hold, multi-byte characters included."""
    assert nix_keys(paths) == [entries.key_for(p) for p in paths]


# ------------------------------------------------------------------ default.nix


def test_default_nix_exposes_packages_and_modules() -> None:
    top = nix_eval(STUB_LET + """{
      names = builtins.attrNames stub.top;
      hook = stub.top.nixld-hook.name; shim = stub.top.nixld-shim.name;
      nixos = toString stub.top.nixosModules.default;
      hm = toString stub.top.homeManagerModules.default; }""")
    assert top["names"] == ["homeManagerModules", "nixld-hook", "nixld-shim", "nixosModules"]
    version = PYPROJECT["project"]["version"]
    assert top["hook"] == f"nixld-hook-{version}" and top["shim"] == f"nixld-shim-{version}"
    assert top["nixos"] == str(REPO / "nix" / "nixos-module.nix")
    assert top["hm"] == str(REPO / "nix" / "home-manager-module.nix")


def test_modules_import_without_nixpkgs() -> None:
    """Only building a package needs pkgs: importing the modules does not."""
    assert nix_eval("builtins.attrNames (import ./default.nix {}).nixosModules") == ["default"]
    assert "nixpkgs" in nix_error("(import ./default.nix {}).nixld-hook.name")


def test_python_package_matches_pyproject() -> None:
    drv = nix_eval(STUB_LET + """let p = stub.top.nixld-hook; in {
      inherit (p) pname version pyproject pytestFlagsArray pythonImportsCheck postFixup;
      build = map (d: d.name) p.build-system;
      deps = map (d: d.name) p.dependencies;
      checks = map (d: d.name) p.nativeCheckInputs;
      main = p.meta.mainProgram; }""")
    project = PYPROJECT["project"]
    assert drv["pyproject"] is True
    assert drv["version"] == project["version"]
    assert drv["build"] == ["python3.12-setuptools-75.1.0"]
    wanted = {re.split(r"[<>=!~ ]", d)[0] for d in project["dependencies"]}
    assert {re.sub(r"^python3\.12-(.*)-[0-9.]+$", r"\1", d) for d in drv["deps"]} == wanted
    test_deps = {re.split(r"[<>=!~ ]", d)[0] for d in project["optional-dependencies"]["test"]}
    assert "pytest-check-hook" in drv["checks"]
    for dep in test_deps - {"pytest"}:
        assert any(dep in c for c in drv["checks"]), dep
    # Only the unit tests run in the sandbox, and `unit` is a declared marker.
    assert drv["pytestFlagsArray"] == ["-m", "unit"]
    assert any(m.startswith("unit:") for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
    assert drv["pythonImportsCheck"] == ["nixld"]
    assert list(project["scripts"]) == [drv["main"]]
    for shell in SHELLS:
        assert shell in drv["postFixup"]
    assert 'init "$shell" > "$hook"' in drv["postFixup"]


def test_shim_derivation_installs_what_the_makefile_builds() -> None:
    drv = nix_eval(STUB_LET + """let p = stub.top.nixld-shim; in {
      inherit (p) installPhase makeFlags hardeningDisable dontPatchELF; }""")
    makefile = (REPO / "shim" / "Makefile").read_text()
    assert re.search(r"^OUT \?= build/nixld-shim$", makefile, re.M)
    assert 'install -D -m 0755 build/nixld-shim "$out/libexec/nixld/nixld-shim"' in drv[
        "installPhase"]
    assert drv["makeFlags"] == [f"SYSTEM_ENTRIES_DIR={paths.SYSTEM_ENTRIES_DIR}"]
    assert "SYSTEM_ENTRIES_DIR" in makefile
    assert drv["hardeningDisable"] == ["all"] and drv["dontPatchELF"] is True


# ------------------------------------------------------------------ NixOS


ENABLED = "[ { programs.nixld.enable = true; } ]"
OPTIONS = ["autoAccept", "binaries", "binaries32", "database", "enable", "enable32Bit",
           "enableBashIntegration", "enableFishIntegration", "enableZshIntegration", "libraries",
           "libraries32", "package", "shim32Package", "shimPackage"]


def test_nixos_options() -> None:
    got = nixos("[ ]", """{
      names = builtins.attrNames options.programs.nixld;
      defaults = { inherit (config.programs.nixld) enable autoAccept enableBashIntegration
                   enableZshIntegration enableFishIntegration binaries; };
      types = builtins.mapAttrs (_: o: o.type.name) options.programs.nixld; }""")
    assert got["names"] == OPTIONS
    assert got["defaults"] == {"enable": False, "autoAccept": False, "binaries": {},
                               "enableBashIntegration": True, "enableZshIntegration": True,
                               "enableFishIntegration": True}
    assert got["types"]["binaries"] == "attribute set of list of package"
    assert got["types"]["libraries"] == "list of package"


def test_nixos_disabled_changes_nothing() -> None:
    got = nixos("[ ]", """{ inherit (config.environment) ldso etc sessionVariables
      systemPackages; inherit (config.systemd.tmpfiles) rules;
      init = map (s: config.programs.${s}.interactiveShellInit) [ "bash" "zsh" "fish" ]; }""")
    assert got == {"ldso": None, "etc": {}, "sessionVariables": {}, "systemPackages": [],
                   "rules": [], "init": ["", "", ""]}


def test_nixos_installs_the_shim_as_the_interpreter() -> None:
    got = nixos(ENABLED, """{ inherit (config.environment) ldso; shim = stub.top.nixld-shim.outPath;
      inherit (config.systemd.tmpfiles) rules; inherit failed; }""")
    assert got["ldso"] == got["shim"] + "/libexec/nixld/nixld-shim"
    assert got["rules"] == [] and got["failed"] == []


@pytest.mark.parametrize(("system", "loader"), [
    ("x86_64-linux", "/lib64/ld-linux-x86-64.so.2"),
    ("aarch64-linux", "/lib/ld-linux-aarch64.so.1"),
])
def test_nixos_without_environment_ldso_uses_tmpfiles(system: str, loader: str) -> None:
    """nixpkgs before environment.ldso: a tmpfiles link, as nix-ld had."""
    got = nixos(ENABLED, "{ inherit (config.systemd.tmpfiles) rules; "
                "shim = config.programs.nixld.shimPackage.outPath; }",
                with_ldso=False, system=system)
    libdir = os.path.dirname(loader)
    assert got["rules"][:2] == [f"d {libdir} 0755 root root - -",
                                f"L+ {loader} - - - - {got['shim']}/libexec/nixld/nixld-shim"]
    # On x86_64 the i686 shim too, where other distributions have the 32-bit loader.
    shim32 = nixos(ENABLED, "config.programs.nixld.shim32Package.outPath", with_ldso=False,
                   system=system) if system == "x86_64-linux" else None
    assert got["rules"][2:] == ([] if shim32 is None else [
        "d /lib 0755 root root - -",
        f"L+ /lib/ld-linux.so.2 - - - - {shim32}/libexec/nixld/nixld-shim"])


def test_nixos_sets_nix_ld_variables_and_libraries() -> None:
    got = nixos(ENABLED, """let env = builtins.elemAt config.environment.systemPackages 1; in {
      vars = config.environment.sessionVariables; inherit (config.environment) pathsToLink;
      packages = map (p: p.name) config.environment.systemPackages;
      env = { inherit (env) extraPrefix pathsToLink postBuild; paths = map toString env.paths; };
      libs = map toString config.programs.nixld.libraries;
      gccLib = pkgs.stdenv.cc.cc.lib.outPath;
      loader = pkgs.stdenv.cc.bintools.dynamicLinker; }""")
    lib_dir = "/run/current-system/sw/share/nix-ld/lib"
    lib32 = str(paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT)
    assert got["vars"] == {"NIX_LD": lib_dir + "/ld.so", "NIX_LD_LIBRARY_PATH": lib_dir,
                           "NIX_LD_i686_linux": str(paths.NIX_LD_I686_DEFAULT),
                           "NIX_LD_LIBRARY_PATH_i686_linux": lib32}
    assert got["pathsToLink"] == ["/share/nix-ld", "/share/nix-ld32"]
    assert got["packages"] == [f"nixld-hook-{PYPROJECT['project']['version']}", "nixld-libraries",
                               "nixld-libraries-i686"]
    # The library env, linked into /run/current-system/sw, provides both paths.
    assert got["env"]["extraPrefix"] == "/share/nix-ld" and got["env"]["pathsToLink"] == ["/lib"]
    assert f"ln -s {got['loader']} $out/share/nix-ld/lib/ld.so" in got["env"]["postBuild"]
    assert len(got["libs"]) == 14 and got["gccLib"] in got["env"]["paths"]


def test_nixos_libraries_add_to_the_default_set() -> None:
    added = nixos("[ { programs.nixld.enable = true; programs.nixld.libraries = [ pkgs.xz ]; } ]",
                  "map (p: p.name) config.programs.nixld.libraries")
    assert len(added) == 15 and added.count("xz-5.6.2") == 2
    forced = nixos("[ { programs.nixld.enable = true;"
                   " programs.nixld.libraries = lib.mkForce [ pkgs.xz ]; } ]",
                   "map (p: p.name) config.programs.nixld.libraries")
    assert forced == ["xz-5.6.2"]


def hook_path(shell: str, package: str) -> str:
    return f"{package}/share/nixld/hooks/nixld.{shell}"


def test_nixos_sources_the_hooks_after_other_prompt_hooks() -> None:
    # The other module comes after ours in the list: mkAfter still puts us last.
    modules = """[ { programs.nixld.enable = true; }
      { programs.bash.interactiveShellInit = "eval \\"$(starship init bash)\\"";
        programs.zsh.interactiveShellInit = "precmd_functions+=(other)";
        programs.fish.interactiveShellInit = "function other --on-event fish_prompt; end"; } ]"""
    got = nixos(modules, """{ pkg = config.programs.nixld.package.outPath;
      init = lib.mapAttrs (_: s: s.interactiveShellInit)
        { inherit (config.programs) bash zsh fish; }; }""")
    for shell in SHELLS:
        lines = got["init"][shell].split("\n")
        assert len(lines) == 2, lines
        assert lines[1] == f"source {hook_path(shell, got['pkg'])}"


def test_nixos_shell_integrations_can_be_turned_off() -> None:
    got = nixos("[ { programs.nixld = { enable = true; enableZshIntegration = false; }; } ]",
                "lib.mapAttrs (_: s: s.interactiveShellInit) "
                "{ inherit (config.programs) bash zsh fish; }")
    assert got["zsh"] == ""
    assert got["bash"].endswith("/share/nixld/hooks/nixld.bash")
    assert got["fish"].endswith("/share/nixld/hooks/nixld.fish")


def test_nixos_auto_accept_sets_the_variable_the_app_reads() -> None:
    got = nixos("[ { programs.nixld = { enable = true; autoAccept = true; }; } ]",
                "config.environment.sessionVariables")
    assert got["NIXLD_AUTO_ACCEPT"] == "1"
    assert nixld_config.auto_accept(nixld_config.Config(), {"NIXLD_AUTO_ACCEPT": "1"})
    assert "NIXLD_AUTO_ACCEPT" not in nixos(ENABLED, "config.environment.sessionVariables")


def test_nixos_database_is_exported_as_nix_locate_expects_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = "/nix/store/0c0jkbs3b0sh0a5x8yb2kzmfmxrm0n1p-index-x86_64-linux"
    got = nixos(f"[ {{ programs.nixld = {{ enable = true; database = {nix_string(db)}; }}; }} ]",
                """let farm = pkgs.linkFarm "nixld-nix-index" [ { name = "files"; path = \"""" + db
                + """\"; } ]; in { var = config.environment.sessionVariables.NIX_INDEX_DATABASE;
                  farm = farm.outPath; inherit (farm) entries; }""")
    # A directory whose `files` is the database, as nixld-hook and nix-locate read it.
    assert got["var"] == got["farm"]
    assert got["entries"] == [{"name": "files", "path": db}]
    monkeypatch.setenv("NIX_INDEX_DATABASE", got["var"])
    assert paths.database_file() == Path(got["var"]) / "files"
    assert "NIX_INDEX_DATABASE" not in nixos(ENABLED, "config.environment.sessionVariables")


def test_nixos_binaries_become_system_entries() -> None:
    tool = "/opt/Vendor Tool/bin/tool"
    got = nixos(
        "[ { programs.nixld.enable = true; programs.nixld.binaries = {"
        f" {nix_string(tool)} = [ pkgs.zlib pkgs.stdenv.cc.cc ];"
        ' "/opt/empty/run" = [ ]; }; } ]',
        "{ inherit (config.environment) etc; zlib = pkgs.zlib.outPath;"
        " gccLib = pkgs.stdenv.cc.cc.lib.outPath; inherit failed; }")
    assert got["failed"] == []
    name = f"nixld/entries/{entries.key_for(tool)}.entry"
    assert entries.entry_file(tool, paths.SYSTEM_ENTRIES_DIR) == Path("/etc") / name
    assert set(got["etc"]) == {name, f"nixld/entries/{entries.key_for('/opt/empty/run')}.entry"}
    entry = got["etc"][name]
    assert entry["mode"] == "0644"  # copied at activation, root-owned, as FORMAT.md asks
    assert entry["text"] == (f"nixld-entry 1\npath {tool}\ndir {got['zlib']}/lib\n"
                             f"dir {got['gccLib']}/lib\nend\n")
    parsed = entries.parse_entry(entry["text"].encode())
    assert parsed is not None and parsed.path == tool and parsed.identity is None
    assert parsed.dirs == (f"{got['zlib']}/lib", f"{got['gccLib']}/lib")
    empty = entries.parse_entry(
        got["etc"][f"nixld/entries/{entries.key_for('/opt/empty/run')}.entry"]["text"].encode())
    assert empty is not None and empty.dirs == ()


@pytest.mark.parametrize("path", ["opt/tool", "/opt//tool", "/opt/./tool", "/opt/../tool",
                                  "/opt/tool/", "/opt/to\nol", "/"])
def test_nixos_refuses_a_binary_path_the_shim_never_sees(path: str) -> None:
    failed = nixos("[ { programs.nixld.enable = true;"
                   f" programs.nixld.binaries.{nix_string(path)} = [ pkgs.zlib ]; }} ]", "failed")
    assert len(failed) == 1 and "not a canonical absolute path" in failed[0]


def test_nixos_refuses_more_dirs_than_the_shim_reads() -> None:
    failed = nixos("[ { programs.nixld.enable = true; programs.nixld.binaries.\"/opt/t\" ="
                   f" builtins.genList (_: pkgs.zlib) {entries.MAX_DIRS + 1}; }} ]", "failed")
    assert len(failed) == 1 and f"at most {entries.MAX_DIRS} packages" in failed[0]


def test_nixos_32_bit_shim_loader_and_libraries() -> None:
    """environment.ldso32 is the i686 shim, built by pkgsi686Linux with the
    32-bit defaults the Python side also assumes (nixld.paths); the 32-bit
    library env holds pkgsi686Linux.glibc's loader where the shim looks."""
    got = nixos("[ { programs.nixld.enable = true;"
                " programs.nixld.libraries32 = [ pkgs.pkgsi686Linux.zlib ]; } ]",
                """let env = builtins.elemAt config.environment.systemPackages 2;
                       shim = config.programs.nixld.shim32Package; in {
      inherit (config.environment) ldso32; shim = shim.outPath; inherit (shim) makeFlags system;
      env = { inherit (env) extraPrefix pathsToLink postBuild; paths = map toString env.paths; };
      zlib32 = pkgs.pkgsi686Linux.zlib.outPath; zlib = pkgs.zlib.outPath;
      glibc32 = pkgs.pkgsi686Linux.glibc.outPath; inherit failed; }""")
    assert got["failed"] == []
    assert got["ldso32"] == got["shim"] + "/libexec/nixld/nixld-shim"
    assert got["system"] == "i686-linux"
    assert got["makeFlags"] == [f"SYSTEM_ENTRIES_DIR={paths.SYSTEM_ENTRIES_DIR}", "ARCH=i686",
                                "OUT=build/nixld-shim", f"DEFAULT_LD={paths.NIX_LD_I686_DEFAULT}",
                                f"DEFAULT_LIBRARY_PATH={paths.NIX_LD_LIBRARY_PATH_I686_DEFAULT}"]
    assert got["env"]["extraPrefix"] == "/share/nix-ld32"
    assert got["env"]["paths"] == [got["zlib32"]] and got["zlib32"] != got["zlib"]
    assert (f"ln -s {got['glibc32']}/lib/ld-linux.so.2 $out/share/nix-ld32/lib/ld.so"
            in got["env"]["postBuild"])


def test_nixos_32_bit_can_be_turned_off_and_is_off_on_aarch64() -> None:
    off = nixos("[ { programs.nixld = { enable = true; enable32Bit = false; }; } ]",
                "{ inherit (config.environment) ldso32 sessionVariables; }")
    assert off["ldso32"] is None and "NIX_LD_i686_linux" not in off["sessionVariables"]
    arm = nixos(ENABLED, "{ inherit (config.environment) ldso32 sessionVariables;"
                " e = config.programs.nixld.enable32Bit; }", system="aarch64-linux")
    assert arm == {"ldso32": None, "e": False, "sessionVariables": arm["sessionVariables"]}
    assert "NIX_LD_i686_linux" not in arm["sessionVariables"]


def test_nixos_binaries32_become_system_entries() -> None:
    game = "/opt/game/bin/game"
    got = nixos("[ { programs.nixld.enable = true; programs.nixld.binaries32 = {"
                f" {nix_string(game)} = [ pkgs.pkgsi686Linux.zlib ]; }}; }} ]",
                "{ inherit (config.environment) etc; z = pkgs.pkgsi686Linux.zlib.outPath;"
                " inherit failed; }")
    assert got["failed"] == []
    entry = got["etc"][f"nixld/entries/{entries.key_for(game)}.entry"]
    parsed = entries.parse_entry(entry["text"].encode())
    assert parsed is not None and parsed.path == game and parsed.dirs == (f"{got['z']}/lib",)
    both = nixos("[ { programs.nixld.enable = true; programs.nixld.binaries.\"/opt/t\" = [ ];"
                 " programs.nixld.binaries32.\"/opt/t\" = [ ]; } ]", "failed")
    assert len(both) == 1 and "both binaries and binaries32" in both[0]


def test_nixos_refuses_to_run_beside_nix_ld() -> None:
    got = nixos("[ { programs.nixld.enable = true; programs.nix-ld.enable = true; } ]",
                "{ inherit failed; inherit (config.environment) ldso; }")
    assert len(got["failed"]) == 1 and "programs.nix-ld" in got["failed"][0]
    # No second interpreter definition: the assertion, not a conflict, explains.
    assert got["ldso"] is None


# ------------------------------------------------------------------ home-manager


HM_OPTIONS = ["autoAccept", "enable", "enableBashIntegration", "enableFishIntegration",
              "enableZshIntegration", "package"]


def test_home_manager_options() -> None:
    got = home("[ ]", """{ names = builtins.attrNames options.programs.nixld;
      defaults = { inherit (config.programs.nixld) enable autoAccept enableBashIntegration
                   enableZshIntegration enableFishIntegration; };
      files = config.xdg.configFile; packages = config.home.packages; }""")
    assert got["names"] == HM_OPTIONS
    assert got["defaults"] == {"enable": False, "autoAccept": False, "enableBashIntegration": True,
                               "enableZshIntegration": True, "enableFishIntegration": True}
    assert got["files"] == {} and got["packages"] == []


@pytest.mark.parametrize("modern", [True, False])
def test_home_manager_sources_the_hooks_last(modern: bool) -> None:
    zsh = "initContent" if modern else "initExtra"
    modules = f"""[ {{ programs.nixld.enable = true; }}
      {{ programs.bash.initExtra = "PROMPT_COMMAND=other";
         programs.zsh.{zsh} = "precmd_functions+=(other)";
         programs.fish.interactiveShellInit = "set -g other 1"; }} ]"""
    got = home(modules, f"""{{ pkg = config.programs.nixld.package.outPath;
      bash = config.programs.bash.initExtra; zsh = config.programs.zsh.{zsh};
      fish = config.programs.fish.interactiveShellInit;
      packages = map (p: p.outPath) config.home.packages; }}""", modern=modern)
    assert got["packages"] == [got["pkg"]]
    for shell in SHELLS:
        lines = got[shell].split("\n")
        assert len(lines) == 2 and lines[1] == f"source {hook_path(shell, got['pkg'])}"


def test_home_manager_integrations_follow_home_shell() -> None:
    got = home("[ { programs.nixld.enable = true; home.shell.enableZshIntegration = false; } ]",
               "{ inherit (config.programs.nixld) enableZshIntegration enableBashIntegration;"
               " zsh = config.programs.zsh.initContent; }")
    assert got == {"enableZshIntegration": False, "enableBashIntegration": True, "zsh": ""}


def test_home_manager_auto_accept_writes_the_config_file(xdg: Path) -> None:
    files = home("[ { programs.nixld = { enable = true; autoAccept = true; }; } ]",
                 "config.xdg.configFile")
    assert list(files) == ["nixld/config.toml"]
    # What home-manager links into $XDG_CONFIG_HOME is what the app reads.
    target = paths.config_file()
    assert target == xdg / ".config" / "nixld" / "config.toml"
    target.parent.mkdir(parents=True)
    target.write_text(files["nixld/config.toml"]["text"])
    assert nixld_config.load_config().auto_accept is True


# ------------------------------------------------------------------ real builds
#
# nix/shim.nix and nix/package.nix as written, built by the real Nix with this
# machine's compiler and Python standing in for nixpkgs' (tests/fixtures/nix_stub/
# host-pkgs.nix): the source filter, the Makefile, installPhase, the unit
# tests as the build sandbox runs them, and postFixup's hooks.


def sandbox_view() -> list[str]:
    """bwrap arguments for a view of this machine like the Nix build sandbox's.

    Nix's sandbox has /nix/store, /bin/sh, the build directory, /tmp, /dev and
    /proc, a PATH of store paths, HOME=/homeless-shelter, and no network.
    Here: the same, plus what this Python and the host tools standing in for
    stdenv need to run (their libraries under /usr/lib, stdenv's PATH as
    /usr/bin bound at /stdenv/bin). Missing, as in Nix: /usr/bin, /bin, /etc,
    /usr/share, $HOME, the network.
    """
    prefix = os.path.realpath(sys.base_prefix)
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--ro-bind", "/nix", "/nix", "--ro-bind", prefix, prefix,
            "--ro-bind", "/usr/lib", "/usr/lib", "--ro-bind", "/usr/bin", "/stdenv/bin",
            "--ro-bind", os.path.realpath("/bin/sh"), "/bin/sh"]
    for libdir in ("/usr/lib64", "/usr/lib32"):
        if os.path.isdir(libdir):
            args += ["--ro-bind", libdir, libdir]
    for alias in ("/lib", "/lib64"):  # merged /usr: the loader's own path
        if os.path.islink(alias):
            args += ["--symlink", os.readlink(alias), alias]
    args += ["--clearenv", "--setenv", "HOME", "/homeless-shelter", "--setenv", "TMPDIR", "/tmp",
             "--setenv", "NIX_BUILD_TOP", "/build", "--setenv", "PATH", "/stdenv/bin"]
    return args


def nix_build(attr: str, *, check: bool = True) -> Path:
    need_root()  # builds as root (no build users), to use this machine's Python
    need_tool("nix-build")
    need_tool("bwrap")
    python = os.path.realpath(sys.executable)
    sandbox = " ".join(nix_string(a) for a in sandbox_view())
    expr = (f"let pkgs = import {STUB}/host-pkgs.nix {{ python = {nix_string(python)};"
            f" sandbox = [ {sandbox} ]; doCheck = {str(check).lower()}; }};"
            f" in pkgs.callPackage ./nix/{attr}.nix {{ }}")
    proc = subprocess.run(
        ["nix-build", "--no-out-link", "--option", "substituters", "",
         "--option", "build-users-group", "", "--expr", expr],
        cwd=REPO, env=_nix_env(), capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built_shim() -> Path:
    need_tool("gcc")
    need_tool("make")
    return nix_build("shim")


@pytest.fixture(scope="module")
def built_package() -> Path:
    """The package without its test run (that has a test of its own below)."""
    return nix_build("package", check=False)


@pytest.mark.slow
def test_shim_builds_where_the_module_expects_it(built_shim: Path) -> None:
    shim = built_shim / "libexec" / "nixld" / "nixld-shim"
    data = shim.read_bytes()
    assert data[:4] == b"\x7fELF" and os.access(shim, os.X_OK)
    assert len(data) <= 65536
    ldso = nixos(f"[ {{ programs.nixld.enable = true; programs.nixld.shimPackage ="
                 f" {nix_string(str(built_shim))}; }} ]", "config.environment.ldso")
    assert ldso == str(shim)


@pytest.mark.slow
def test_package_unit_tests_pass_in_a_sandbox_like_build() -> None:
    """What `nix-build` runs: `pytest -m unit` with no /usr/bin, /etc, HOME or network."""
    built = nix_build("package")
    assert (built / "bin" / "nixld-hook").is_file()


@pytest.mark.slow
def test_package_builds_with_static_hooks(built_package: Path) -> None:
    command = built_package / "bin" / "nixld-hook"
    version = subprocess.run([command, "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert version.strip() == f"nixld-hook {PYPROJECT['project']['version']}"
    for shell in SHELLS:
        hook = built_package / "share" / "nixld" / "hooks" / f"nixld.{shell}"
        assert str(command) in hook.read_text().split("\n", 1)[0]


SHELL_PROBES = {
    "bash": (["bash", "-i", "-c"], 'echo "$__nixld_bin"; echo "${PROMPT_COMMAND[*]}"',
             "__nixld_prompt"),
    "zsh": (["zsh", "-i", "-c"], 'echo "$__nixld_bin"; echo "$precmd_functions"',
            "__nixld_precmd"),
    "fish": (["fish", "-i", "-c"], "echo $__nixld_bin; functions --handlers | string join ' '",
             "__nixld_postexec"),
}


@pytest.mark.slow
@pytest.mark.parametrize("shell", SHELLS)
def test_module_init_line_hooks_a_real_shell(shell: str, built_package: Path,
                                             tmp_path: Path) -> None:
    """The exact line the NixOS module adds, run by the shell: the hook is there."""
    need_tool(shell)
    init = nixos(f"[ {{ programs.nixld.enable = true; programs.nixld.package ="
                 f" {nix_string(str(built_package))}; }} ]",
                 f"config.programs.{shell}.interactiveShellInit")
    argv, probe, registered = SHELL_PROBES[shell]
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "TERM": "dumb",
           "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    proc = subprocess.run([*argv, f"{init}\n{probe}"], env=env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    out = proc.stdout.splitlines()
    assert out[:1] == [str(built_package / "bin" / "nixld-hook")], proc.stderr
    assert registered in out[1], proc.stdout
