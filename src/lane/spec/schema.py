"""Checking values against JSON Schemas: handoffs, human edits, run inputs."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

# Schemas come from loaded project files and live as long as the project: one
# validator each, keyed by identity (the schema is kept alive with it).
_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    found = _VALIDATORS.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_VALIDATORS) > 1024:  # schemas from journal events are one-offs: keep the cache bounded
            _VALIDATORS.clear()
        found = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    return found[1]


def schema_errors(schema: dict[str, Any] | None, value: Any, *, root: str = "output") -> list[str]:
    """Every way `value` misses `schema`, as `path: message`; empty when it fits."""
    if schema is None:
        return []
    check = validator(schema)
    if check.is_valid(value):
        return []
    errors = sorted(check.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or root}: {e.message}" for e in errors]
