# A small stand-in for nixpkgs' `lib`, enough to evaluate nixld-hook's Nix
# files in CI, which has Nix but no nixpkgs. What is here follows nixpkgs'
# semantics; what is missing is missing on purpose, so a new dependency on
# lib shows up as an error naming it.
let
  inherit (builtins)
    all
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elemAt
    filter
    foldl'
    head
    isAttrs
    isBool
    isFunction
    isInt
    isList
    isPath
    isString
    length
    listToAttrs
    mapAttrs
    replaceStrings
    sort
    split
    stringLength
    substring
    tail
    zipAttrsWith
    ;

  isDerivation = x: isAttrs x && (x.type or null) == "derivation";

  lib = rec {
    inherit
      all
      attrNames
      concatLists
      concatMap
      concatStringsSep
      filter
      head
      isDerivation
      length
      listToAttrs
      mapAttrs
      tail
      ;
    inherit (builtins) any attrValues elem hasAttr;

    # --- lists, strings, attribute sets -------------------------------------
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: attrs: if cond then attrs else { };
    concatStrings = concatStringsSep "";
    concatMapStrings = f: xs: concatStringsSep "" (map f xs);
    concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
    mapAttrs' = f: attrs: listToAttrs (mapAttrsToList f attrs);
    nameValuePair = name: value: { inherit name value; };
    hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
    hasSuffix =
      suffix: s:
      let
        n = stringLength s;
        m = stringLength suffix;
      in
      n >= m && substring (n - m) m s == suffix;
    escapeRegex =
      let
        special = [ "\\" "[" "{" "(" ")" "^" "$" "?" "*" "+" "|" "." ];
      in
      replaceStrings special (map (c: "\\" + c) special);
    splitString = sep: s: filter isString (split (escapeRegex sep) s);
    hasInfix = infix: s: length (split (escapeRegex infix) s) > 1;
    last = xs: elemAt xs (length xs - 1);

    # --- derivations ----------------------------------------------------------
    getOutput =
      output: pkg:
      if pkg.outputSpecified or false then pkg else pkg.${output} or pkg.out or pkg;
    getLib = getOutput "lib";
    getExe = pkg: "${pkg}/bin/${pkg.meta.mainProgram}";
    licenses.mit = {
      spdxId = "MIT";
      free = true;
    };
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];

    # --- the module system's vocabulary (see eval-modules.nix) ----------------
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = "Whether to enable ${name}.";
      };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkOrder = priority: content: {
      _type = "order";
      inherit priority content;
    };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;

    # One definition (possibly wrapped in mkIf/mkMerge/mkOverride/mkOrder)
    # as a list of { value, priority, order }.
    flattenDefinition =
      loc: def:
      let
        kind = if isAttrs def then def._type or null else null;
      in
      if kind == "if" then
        if !isBool def.condition then
          throw "mkIf in `${loc}': the condition is not a boolean"
        else if def.condition then
          flattenDefinition loc def.content
        else
          [ ]
      else if kind == "merge" then
        concatMap (flattenDefinition loc) def.contents
      else if kind == "override" then
        map (d: d // { priority = def.priority; }) (flattenDefinition loc def.content)
      else if kind == "order" then
        map (d: d // { order = def.priority; }) (flattenDefinition loc def.content)
      else
        [
          {
            value = def;
            priority = 100;
            order = 1000;
          }
        ];

    # The value of an option of `type` at `loc` from its definitions: only
    # those of the highest priority count, sorted by mkOrder (stably), then
    # type-checked and merged.
    mergeDefinitions =
      loc: type: defs:
      let
        flat = concatMap (flattenDefinition loc) defs;
        best = foldl' (p: d: if d.priority < p then d.priority else p) 9999 flat;
        chosen = sort (a: b: a.order < b.order) (filter (d: d.priority == best) flat);
        values = map (d: d.value) chosen;
        bad = filter (v: !type.check v) values;
      in
      if chosen == [ ] then
        throw "The option `${loc}' is used but not defined."
      else if bad != [ ] then
        throw "A definition for option `${loc}' is not of type `${type.name}'."
      else
        type.merge loc values;

    mergeEqual =
      loc: values:
      if all (v: v == head values) values then
        head values
      else
        throw "The option `${loc}' has conflicting definitions.";

    types = rec {
      mkType = name: check: merge: { inherit name check merge; };
      bool = mkType "bool" isBool mergeEqual;
      int = mkType "int" isInt mergeEqual;
      str = mkType "str" isString mergeEqual;
      lines = mkType "lines" isString (_loc: concatStringsSep "\n");
      path = mkType "path" (
        x: isPath x || (isString x && hasPrefix "/" x) || (isDerivation x && hasPrefix "/" x.outPath)
      ) mergeEqual;
      package = mkType "package" (x: isDerivation x || (isString x && hasPrefix "/nix/store/" x)) mergeEqual;
      anything = mkType "anything" (_: true) mergeEqual;
      unspecified = anything;
      attrs = mkType "attrs" isAttrs (_loc: foldl' (a: b: a // b) { });
      enum = values: mkType "one of ${concatStringsSep ", " (map toString values)}" (x: builtins.elem x values) mergeEqual;
      nullOr =
        t:
        mkType "null or ${t.name}" (x: x == null || t.check x) (
          loc: values:
          if all (v: v == null) values then
            null
          else if builtins.any (v: v == null) values then
            throw "The option `${loc}' mixes null and non-null definitions."
          else
            t.merge loc values
        );
      listOf =
        t: mkType "list of ${t.name}" (x: isList x && all t.check x) (_loc: concatLists);
      # Elements may carry their own mkIf/mkDefault/...: merged per name.
      # An element whose definitions are all mkIf false is absent.
      attrsOf =
        t:
        mkType "attribute set of ${t.name}" isAttrs (
          loc: values:
          let
            byName = zipAttrsWith (_name: defs: defs) values;
            live = filter (name: concatMap (flattenDefinition loc) byName.${name} != [ ]) (attrNames byName);
          in
          listToAttrs (
            map (name: {
              inherit name;
              value = mergeDefinitions "${loc}.${name}" t byName.${name};
            }) live
          )
        );
      functionTo = t: mkType "function to ${t.name}" isFunction mergeEqual;
    };
  };
in
lib
