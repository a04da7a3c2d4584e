"""Check a document against the subset of JSON Schema our schema uses.

The schema file is the contract for `--json`; this checker covers exactly the
keywords it uses (type, enum, required, properties, additionalProperties,
items, $ref, oneOf) and fails loudly on any other, so the subset cannot drift.
"""

from __future__ import annotations

from typing import Any

KNOWN = {"$schema", "$id", "title", "description", "type", "enum", "required", "properties",
         "additionalProperties", "items", "$ref", "oneOf", "$defs"}
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _is(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[name])


def errors(doc: Any, schema: dict[str, Any], root: dict[str, Any] | None = None,
           where: str = "$") -> list[str]:
    root = root or schema
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) not supported by the checker: {unknown}")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return errors(doc, root["$defs"][name], root, where)
    out: list[str] = []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(doc, s, root, where)]
        if len(matches) != 1:
            out.append(f"{where}: matches {len(matches)} of oneOf, not exactly 1")
        return out
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(doc, t) for t in types):
            return [f"{where}: {type(doc).__name__} is not {types}"]
    if "enum" in schema and doc not in schema["enum"]:
        out.append(f"{where}: {doc!r} not in {schema['enum']}")
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                out.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in doc.items():
            if key in props:
                out += errors(value, props[key], root, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                out += errors(value, extra, root, f"{where}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            out += errors(item, schema["items"], root, f"{where}[{i}]")
    return out
