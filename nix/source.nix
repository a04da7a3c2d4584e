# The repository (or a part of it) as a build source, without version control
# data, build outputs, caches and `nix-build` result links, so a local build
# or test run does not change the derivation.
root:
builtins.path {
  path = root;
  name = "nixld-hook-source";
  filter =
    path: type:
    let
      name = baseNameOf path;
    in
    !(
      builtins.elem name [
        ".git"
        "build"
        "dist"
        "__pycache__"
        ".pytest_cache"
        ".mypy_cache"
        ".ruff_cache"
        ".hypothesis"
        ".venv"
      ]
      || builtins.match "result(-.*)?" name != null
      || builtins.match ".*\\.(egg-info|pyc)" name != null
    );
}
