"""Forms generated from JSON Schema: the start-a-run form from a runbook's `inputs`, and the inbox's edit form from a
tool's arguments or a step's output schema, filled with the value proposed.

The browser checks what the schema's keywords say before it sends a form (required, enum, minimum and maximum,
minLength and maxLength, pattern; console.js parses the JSON fields); the server checks the whole schema again.
"""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()


def schema_fields(schema: Any, value: Any = None) -> list[dict[str, Any]]:
    """A field per property of `schema` (in its order), then per other key of `value`; each filled from `value`."""
    schema = schema if isinstance(schema, dict) else {}
    props = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    required = set(schema["required"]) if isinstance(schema.get("required"), list) else set()
    given = value if isinstance(value, dict) else {}
    names = [*props, *(key for key in given if key not in props)]
    return [_field(name, _prop(props, name), name in required, given.get(name, _MISSING)) for name in names]


def _prop(props: dict[str, Any], name: str) -> dict[str, Any]:
    prop = props.get(name)
    return prop if isinstance(prop, dict) else {}


def _field(name: str, prop: dict[str, Any], required: bool, current: Any) -> dict[str, Any]:
    kind = _kind(prop, current)
    present = current is not _MISSING
    if not present:
        current = prop.get("default", _MISSING)
    if current is _MISSING:
        text = ""
    elif kind in ("string", "text") and isinstance(current, str):
        text = current
    elif kind == "boolean" and isinstance(current, bool):
        text = "true" if current else "false"
    else:
        text = json.dumps(current, ensure_ascii=False, indent=2 if kind == "json" else None)
    if kind == "string" and ("\n" in text or len(text) > 100):
        kind = "text"
    attrs: dict[str, str] = {}
    if required and not (kind in ("string", "text") and present and text == ""):  # the browser refuses an empty required field
        attrs["required"] = ""
    if kind in ("integer", "number"):
        attrs["step"] = "1" if kind == "integer" else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if isinstance(prop.get(key), (int, float)) and not isinstance(prop.get(key), bool):
                attrs[attr] = json.dumps(prop[key])
    if kind in ("string", "text"):
        for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(prop.get(key), int) and not isinstance(prop.get(key), bool):
                attrs[attr] = str(prop[key])
        if kind == "string" and isinstance(prop.get("pattern"), str):
            attrs["pattern"] = f".*(?:{prop['pattern']}).*"  # a schema's pattern matches anywhere; HTML's the whole value
    choices = [{"value": json.dumps(c, ensure_ascii=False), "label": c if isinstance(c, str) else json.dumps(c, ensure_ascii=False),
                "selected": present and c == current} for c in prop["enum"]] if kind == "choice" else []
    return {"name": name, "kind": kind, "text": text, "present": present, "attrs": attrs, "choices": choices,
            "required": required, "description": str(prop.get("description") or prop.get("title") or ""),
            "rows": min(20, text.count("\n") + 2 + len(text) // 90)}


def _kind(prop: dict[str, Any], current: Any) -> str:
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return "choice"
    declared = prop.get("type")
    if isinstance(declared, list):
        plain = [t for t in declared if t != "null"]
        declared = plain[0] if len(plain) == 1 else None
    if declared is None and current is not _MISSING:
        declared = ("boolean" if isinstance(current, bool) else "integer" if isinstance(current, int) else
                    "number" if isinstance(current, float) else "string" if isinstance(current, str) else None)
    return declared if declared in ("string", "integer", "number", "boolean") else "json"


def form_value(form: Any, prefix: str) -> dict[str, Any]:
    """The object a form of `schema_fields` gives back: field `PREFIXNAME` per property, with hidden `_kind.PREFIXNAME`,
    `_had.PREFIXNAME` (the value held it) and `_fields.PREFIX` (the names). A field left empty that the value did not
    hold is left out."""
    try:
        names = json.loads(str(form.get(f"_fields.{prefix}") or "[]"))
    except (ValueError, RecursionError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("the form is damaged: reload the page")
    out: dict[str, Any] = {}
    for name in names:
        kind, text = str(form.get(f"_kind.{prefix}{name}") or "string"), str(form.get(f"{prefix}{name}") or "")
        if text == "":
            if kind in ("string", "text") and form.get(f"_had.{prefix}{name}") == "1":
                out[name] = ""  # a string the value held, emptied
            continue  # otherwise a field left empty is not given
        if kind in ("string", "text"):
            out[name] = text.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
        elif kind == "boolean":
            out[name] = text == "true"
        else:
            try:
                out[name] = json.loads(text)
            except (ValueError, RecursionError):
                what = {"integer": "a whole number", "number": "a number", "choice": "one of the choices"}.get(kind, "JSON")
                raise ValueError(f"the field {name!r} must be {what}: {text[:40]!r}") from None
            if kind == "integer" and isinstance(out[name], float) and out[name].is_integer():
                out[name] = int(out[name])
    return out
