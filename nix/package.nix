# The nixld-hook application: the Python package, its command and the shell
# hooks, generated at build time so a shell sources a static file and starts
# no Python.
{ lib, python3Packages }:
let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
in
python3Packages.buildPythonApplication {
  pname = "nixld-hook";
  inherit (pyproject.project) version;
  pyproject = true;

  src = import ./source.nix ../.;

  build-system = [ python3Packages.setuptools ];

  dependencies = with python3Packages; [
    pyelftools
    xdg-base-dirs
    zstandard
  ];

  nativeCheckInputs = with python3Packages; [
    pytestCheckHook
    pexpect
    hypothesis
    pytest-randomly
  ];

  # The other tests need root, Nix, a compiler or downloads, none of which
  # the build sandbox has.
  pytestFlagsArray = [
    "-m"
    "unit"
  ];

  pythonImportsCheck = [ "nixld" ];

  # After wrapPythonPrograms (postFixup runs last), so the hooks embed the
  # wrapped command. PATH lets `init` find its own absolute path.
  postFixup = ''
    mkdir -p "$out/share/nixld/hooks"
    for shell in bash zsh fish; do
      hook="$out/share/nixld/hooks/nixld.$shell"
      PATH="$out/bin:$PATH" "$out/bin/nixld-hook" init "$shell" > "$hook"
      if ! grep -qF "$out/bin/nixld-hook" "$hook"; then
        echo "nixld-hook init $shell does not call $out/bin/nixld-hook" >&2
        exit 1
      fi
    done
  '';

  meta = {
    description = pyproject.project.description;
    license = lib.licenses.mit;
    mainProgram = "nixld-hook";
    platforms = lib.platforms.linux;
  };
}
