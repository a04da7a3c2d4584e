# The stub pkgs, but with builders that really build, with this machine's
# tools, through the real Nix (without sandbox; Debian's nix-bin has none).
# They run the parts of nixpkgs' generic builder our derivations rely on, so
# a test can build nix/shim.nix and nix/package.nix as written and look at the
# result: the source filter, the Makefile, installPhase, the unit tests as the
# sandbox runs them (HOME=/homeless-shelter, no CI) and postFixup's hooks.
{
  python, # absolute path of a Python with the project's dependencies
  path ? "/usr/bin:/bin",
  # bwrap arguments that rebuild the sandbox's view of the machine for the
  # tests (see tests/test_nix_eval.py); [ ] runs them unconfined.
  sandbox ? [ ],
  # false: skip the package's tests (checkPhase), to look at the rest alone.
  doCheck ? true,
}:
let
  lib = import ./lib.nix;
  stub = import ./pkgs.nix { inherit lib; };

  # What nixpkgs keeps out of the build environment.
  plain =
    args:
    removeAttrs args [
      "meta"
      "passthru"
      "build-system"
      "dependencies"
      "nativeCheckInputs"
    ];

  build =
    name: script: args:
    derivation (
      plain args
      // {
        inherit name;
        system = builtins.currentSystem;
        builder = "/bin/bash";
        args = [
          "-euo"
          "pipefail"
          "-c"
          ''
            runHook() { eval "''${!1:-}"; }
            cp -r "$src"/. source
            chmod -R u+w source
            cd source
            ${script}
            eval "''${postFixup:-}"
          ''
        ];
        PATH = path;
      }
    );

  # The build directory is /build inside, as in Nix's sandbox.
  confine = lib.optionalString (sandbox != [ ]) (
    lib.concatMapStringsSep " " (a: "'${a}'") sandbox + " --bind \"$PWD\" /build --chdir /build --"
  );

  mkDerivation =
    args:
    build "${args.pname}-${args.version}" ''
      make -j2 $makeFlags
      eval "$installPhase"
    '' args;

  # setuptools' own install (offline, and no `wheel` needed) instead of the
  # pypa hooks; the console script replaced the way wrapPythonPrograms leaves
  # it: argv[0] the bare name, its own site-packages first.
  buildPythonApplication =
    args:
    build "${args.pname}-${args.version}" ''
      ${python} -c 'import setuptools; setuptools.setup()' -q install \
        --prefix="$out" --root=/ --single-version-externally-managed
      site=$(echo "$out"/lib/python3*/site-packages)
      printf '%s\n' "#!${python}" \
        "import sys; sys.argv[0] = 'nixld-hook'; sys.path.insert(0, '$site')" \
        "from nixld.cli import main" "sys.exit(main())" > "$out/bin/nixld-hook"
      ${lib.optionalString doCheck "${confine} ${python} -m pytest -q -p no:cacheprovider $pytestFlagsArray"}
    '' args;

  pkgs = stub // {
    stdenv = stub.stdenv // {
      inherit mkDerivation;
    };
    python3Packages = stub.python3Packages // {
      inherit buildPythonApplication;
    };
    callPackage =
      fn: overrides:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);
  };
in
pkgs
