# FNV-1a 64 of a string's bytes as 16 lowercase hex digits: the file name key
# of a system-wide entry (shim/FORMAT.md). Pure Nix, evaluated with the system.
#
# Nix integers are signed 64-bit and recent Nix throws on overflow, so the
# hash lives in four 16-bit limbs (lowest first) and every product stays
# below 2^27. Nix has no `ord`, so bytes are looked up in a table of one-byte
# strings cut out of characters' UTF-8 encodings.
let
  inherit (builtins)
    bitAnd bitXor div elemAt filter foldl' fromJSON genList listToAttrs
    stringLength substring unsafeDiscardStringContext
    ;

  hexDigit = n: substring n 1 "0123456789abcdef";
  hex2 = n: hexDigit (div n 16) + hexDigit (bitAnd n 15);
  hex4 = n: hex2 (div n 256) + hex2 (bitAnd n 255);

  # fromJSON decodes a \u escape to the code point's UTF-8 bytes.
  utf8 = code: fromJSON ''"\u${hex4 code}"'';
  # Beyond U+FFFF JSON needs a surrogate pair.
  utf8Astral =
    code:
    let
      c = code - 65536;
    in
    fromJSON ''"\u${hex4 (55296 + div c 1024)}\u${hex4 (56320 + bitAnd c 1023)}"'';

  # A one-byte string holding byte b, taken from a character whose UTF-8
  # encoding contains it: continuation bytes second, lead bytes first.
  # The ranges skip overlong and surrogate code points, which JSON refuses.
  byteString =
    b:
    if b < 128 then
      utf8 b
    else if b < 192 then
      substring 1 1 (utf8 b)
    else if b < 224 then
      substring 0 1 (utf8 ((b - 192) * 64))
    else if b < 240 then
      substring 0 1 (utf8 ((b - 224) * 4096 + (if b == 224 then 2048 else 0)))
    else
      substring 0 1 (utf8Astral ((b - 240) * 262144 + (if b == 240 then 65536 else 0)));

  # Bytes that occur in valid UTF-8 text, i.e. in any path Nix source can hold
  # (no NUL; C0, C1 and F5..FF never occur).
  hashableBytes = filter (b: b != 192 && b != 193) (genList (i: i + 1) 244);
  byteValue = listToAttrs (
    map (b: {
      name = byteString b;
      value = b;
    }) hashableBytes
  );

  byteAt =
    s: i:
    let
      ch = substring i 1 s;
    in
    byteValue.${ch} or (throw "nixld: cannot hash byte ${toString i} of `${s}': not valid UTF-8");

  # h = (h ^ b) * 0x100000001b3 mod 2^64, with 0x100000001b3 = 2^40 + 435:
  # each limb times 435, plus h shifted left by 40 bits (limbs 2 and 3 receive
  # the low 24 bits of h), carries propagated upwards, the last one dropped.
  step =
    h: b:
    let
      l0 = bitXor (elemAt h 0) b;
      l1 = elemAt h 1;
      l2 = elemAt h 2;
      l3 = elemAt h 3;
      t0 = l0 * 435;
      t1 = l1 * 435 + div t0 65536;
      t2 = l2 * 435 + bitAnd l0 255 * 256 + div t1 65536;
      t3 = l3 * 435 + div l0 256 + bitAnd l1 255 * 256 + div t2 65536;
    in
    [
      (bitAnd t0 65535)
      (bitAnd t1 65535)
      (bitAnd t2 65535)
      (bitAnd t3 65535)
    ];

  # 0xcbf29ce484222325
  offsetBasis = [
    8997 # 0x2325
    33826 # 0x8422
    40164 # 0x9ce4
    52210 # 0xcbf2
  ];
in
str:
let
  s = unsafeDiscardStringContext str;
  h = foldl' step offsetBasis (genList (byteAt s) (stringLength s));
in
hex4 (elemAt h 3) + hex4 (elemAt h 2) + hex4 (elemAt h 1) + hex4 (elemAt h 0)
