# A small module system in the image of nixpkgs' lib.evalModules: modules are
# functions of { config, options, lib, pkgs, ... } (or attribute sets);
# `config` is the fixed point of all their definitions. mkIf/mkMerge/
# mkOverride/mkOrder are pushed down to the options without evaluating their
# conditions, so a module may test its own options in mkIf, as in NixOS.
# Defining an option nobody declared is an error, as in NixOS.
{ lib }:
{
  modules,
  specialArgs ? { },
}:
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    filter
    foldl'
    isAttrs
    isFunction
    mapAttrs
    ;

  isOption = v: isAttrs v && (v._type or null) == "option";
  kindOf = v: if isAttrs v then v._type or null else null;

  called = map (
    m:
    let
      module = if isFunction m then m else if isAttrs m then (_: m) else import m;
      result = module (specialArgs // { inherit config options lib; });
    in
    if result ? options || result ? config then
      {
        options = result.options or { };
        config = result.config or { };
      }
    else
      {
        options = { };
        config = result;
      }
  ) modules;

  mergeDeclarations =
    loc: a: b:
    a
    // mapAttrs (
      name: decl:
      if !(a ? ${name}) then
        decl
      else if isOption decl || isOption a.${name} then
        throw "The option `${concatStringsSep "." (loc ++ [ name ])}' is declared twice."
      else
        mergeDeclarations (loc ++ [ name ]) a.${name} decl
    ) b;

  options = foldl' (mergeDeclarations [ ]) { } (map (m: m.options) called);

  # The definitions of attribute `name` inside one definition of its parent,
  # with the parent's mkIf/mkMerge/mkOverride/mkOrder moved inwards.
  childDefinitions =
    loc: name: def:
    let
      kind = kindOf def;
      wrap = content: def // { inherit content; };
    in
    if kind == "if" || kind == "override" || kind == "order" then
      map wrap (childDefinitions loc name def.content)
    else if kind == "merge" then
      concatMap (childDefinitions loc name) def.contents
    else if isAttrs def then
      if def ? ${name} then [ def.${name} ] else [ ]
    else
      throw "A definition of `${loc}' is not an attribute set.";

  # Attribute names a definition defines, without evaluating any condition.
  definedNames =
    def:
    let
      kind = kindOf def;
    in
    if kind == "if" || kind == "override" || kind == "order" then
      definedNames def.content
    else if kind == "merge" then
      concatMap definedNames def.contents
    else
      attrNames def;

  evalOption =
    loc: decl: defs:
    lib.mergeDefinitions loc decl.type (
      defs ++ lib.optional (decl ? default) (lib.mkOptionDefault decl.default)
    );

  evalTree =
    path: decls: defs:
    let
      loc = concatStringsSep "." path;
      undeclared = filter (name: !(decls ? ${name})) (concatMap definedNames defs);
      here = name: concatStringsSep "." (path ++ [ name ]);
    in
    if undeclared != [ ] then
      throw "The option `${here (builtins.head undeclared)}' does not exist."
    else
      mapAttrs (
        name: decl:
        let
          sub = concatMap (childDefinitions loc name) defs;
        in
        if isOption decl then evalOption (here name) decl sub else evalTree (path ++ [ name ]) decl sub
      ) decls;

  config = evalTree [ ] options (map (m: m.config) called);

  # What NixOS does with `assertions` when it builds the system.
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) (config.assertions or [ ]));
in
{
  inherit config options failedAssertions;
}
