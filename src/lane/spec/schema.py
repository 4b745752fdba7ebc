"""Checking values against JSON Schemas: handoffs, human edits, run inputs."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema loads on the first check, not with lane
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

PREVIEW = 200  # characters of a value shown in a message: a 10 MB input is not echoed back
MAX_ERRORS = 20  # messages for one value: a list of a million wrong items is not listed whole

# Schemas come from loaded project files and live as long as the project: one
# validator each, keyed by identity (the schema is kept alive with it).
_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    found = _VALIDATORS.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_VALIDATORS) > 1024:  # schemas from journal events are one-offs: keep the cache bounded
            _VALIDATORS.clear()
        from jsonschema import Draft202012Validator

        found = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    return found[1]


def schema_errors(schema: dict[str, Any] | None, value: Any, *, root: str = "output") -> list[str]:
    """Every way `value` misses `schema`, as `path: message` (at most MAX_ERRORS); empty when it fits."""
    if schema is None:
        return []
    check = validator(schema)
    if check.is_valid(value):
        return []
    found = list(itertools.islice(check.iter_errors(value), MAX_ERRORS + 1))
    errors = sorted(found[:MAX_ERRORS], key=lambda e: [str(p) for p in e.absolute_path])
    lines = [f"{'.'.join(preview(str(p), quoted=False) for p in e.absolute_path) or root}: {_message(e)}" for e in errors]
    if len(found) > MAX_ERRORS:
        lines.append(f"{root}: more problems than these {MAX_ERRORS}; fix them and check again")
    return lines


def _message(error: ValidationError) -> str:
    """jsonschema's message, with the value it shows cut to a preview."""
    message = error.message
    if isinstance(error.instance, (str, list, dict)) and len(error.instance) > 8:  # short values are shown whole anyway
        message = message.replace(repr(error.instance), preview(error.instance))
    return message if len(message) <= 2 * PREVIEW else preview(message, quoted=False)


def preview(value: Any, *, quoted: bool = True) -> str:
    """`value` as a message shows it: its repr, or the start of it and how long it is."""
    text = repr(value) if quoted else str(value)
    if len(text) <= PREVIEW:
        return text
    count, unit = (len(value), "character") if isinstance(value, str) else (len(value), "item") if isinstance(value, (list, dict)) else (len(text), "character")
    return f"{text[:PREVIEW]}… ({count} {unit}{'s' if count != 1 else ''})"
