"""A deterministic instance of a JSON schema: tool arguments and structured outputs.

The fake model has no real understanding of a schema, but clients parse what it returns
(``chat.completions.parse``, Pydantic models, ``jsonschema``), so the value must validate:
required properties are filled with simple values of the right type, ``$ref`` and ``$defs``
are followed, an enum takes its first value and a union its first non-null branch.
"""

from __future__ import annotations

import math
from typing import Any

# Past this nesting depth, optional branches are cut short so recursive schemas terminate.
_MAX_DEPTH = 8
_STRING_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_DEFAULT_STRING = "example"


def example_value(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (``root`` resolves ``#/...`` references)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return _DEFAULT_STRING  # ``true`` or a malformed schema: anything goes
    if isinstance(schema.get("$ref"), str):
        target = _resolve(root, schema["$ref"])
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        return example_value({**target, **siblings}, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _first_branch(schema[key], root, depth)
    if isinstance(schema.get("allOf"), list):
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            merged = _merge(merged, _resolve(root, part["$ref"]) if "$ref" in part else part)
        return example_value(merged, root, depth)
    return _typed_value(schema, _type_of(schema), root, depth)


def _first_branch(branches: list[Any], root: Any, depth: int) -> Any:
    nulls = [branch for branch in branches if _is_null(branch)]
    if nulls and depth >= _MAX_DEPTH:
        return None
    chosen = next((branch for branch in branches if not _is_null(branch)), branches[0])
    return example_value(chosen, root, depth + 1)


def _typed_value(schema: dict[str, Any], kind: str | None, root: Any, depth: int) -> Any:
    if kind == "object":
        return _object_value(schema, root, depth)
    if kind == "array":
        return _array_value(schema, root, depth)
    if kind in ("integer", "number"):
        return _number_value(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_value(schema)


def _object_value(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    extra = schema.get("additionalProperties")
    value = {}
    for name in schema.get("required") or []:
        sub = properties.get(name, extra if isinstance(extra, dict) else {})
        value[str(name)] = example_value(sub, root, depth + 1)
    return value


def _array_value(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    minimum = int(schema.get("minItems") or 0)
    count = max(minimum, 1) if depth < _MAX_DEPTH else minimum
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    prefix: list[Any] = schema["prefixItems"] if isinstance(schema.get("prefixItems"), list) else []
    items = schema.get("items", {})
    values = [example_value(prefix[i] if i < len(prefix) else items, root, depth + 1) for i in range(count)]
    if schema.get("uniqueItems") and all(isinstance(v, str) for v in values):
        values = [v if i == 0 else f"{v}{i}" for i, v in enumerate(values)]
    return values


def _number_value(schema: dict[str, Any], *, integer: bool) -> int | float:
    low, high = _bound(schema, "minimum", "exclusiveMinimum", 1), _bound(schema, "maximum", "exclusiveMaximum", -1)
    value: float = 1
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
        value = step * math.ceil(value / step)
    if integer or float(value).is_integer():
        return math.ceil(value)
    return value


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, nudge: int) -> float | None:
    values = []
    if _is_number(schema.get(inclusive)):
        # Draft 4 writes an exclusive bound as a boolean next to the inclusive one.
        values.append(schema[inclusive] + (nudge if schema.get(exclusive) is True else 0))
    if _is_number(schema.get(exclusive)):
        values.append(schema[exclusive] + nudge)
    if not values:
        return None
    return float(max(values) if nudge > 0 else min(values))


def _string_value(schema: dict[str, Any]) -> str:
    value = _STRING_FORMATS.get(str(schema.get("format")), _DEFAULT_STRING)
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        value += "x" * (schema["minLength"] - len(value))
    if isinstance(schema.get("maxLength"), int):
        value = value[: schema["maxLength"]]
    return value


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "null" if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and (schema.get("type") == "null" or schema.get("const", 0) is None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        merged["properties"] = {**base["properties"], **extra["properties"]}
    merged["required"] = [*(base.get("required") or []), *(extra.get("required") or [])]
    return merged


def _resolve(root: Any, ref: str) -> dict[str, Any]:
    """The schema a local ``#/a/b`` reference points to; an unresolvable one accepts anything."""
    if not ref.startswith("#"):
        return {}
    node = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}
