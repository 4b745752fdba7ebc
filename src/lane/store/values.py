"""What a store can hold: strict JSON (no NaN or Infinity) of valid Unicode text.

Values reach the journal from tools, models, people and expressions. Two kinds
cannot be stored as they are: text holding lone surrogates (a file name that is
not UTF-8, as `os.listdir` gives it) and numbers JSON has no word for (NaN,
Infinity). The first is escaped, so nothing is lost: the bytes show as `\\xff`.
The second becomes null. `checked` refuses them instead, naming where, for the places that must
not guess (a tool's result, a run's inputs).
"""

from __future__ import annotations

import json
import math
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode(value: Any) -> str:
    """`value` as JSON text a store can keep; what JSON or UTF-8 cannot hold is escaped or nulled first."""
    try:
        text = _dumps(value)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate passes json but not the database
        return text
    except (ValueError, UnicodeEncodeError):
        return _dumps(storable(value))


def storable(value: Any, *, numbers: bool = True) -> Any:
    """`value` with lone surrogates escaped and (unless `numbers` is False) NaN or Infinity made null, at any depth (keys too)."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return value if not numbers or math.isfinite(value) else None
    if isinstance(value, dict):
        return {_text(k) if isinstance(k, str) else k: storable(v, numbers=numbers) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, numbers=numbers) for v in value]
    return value


def _text(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # bytes smuggled in by surrogateescape: show them as the bytes they were
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def checked(value: Any, where: str = "") -> tuple[Any, str | None]:
    """`value` made storable, or None and why not: text is escaped, but a number JSON cannot hold (NaN,
    Infinity) is refused, since null would change what it means."""
    try:
        text = _dumps(value)
    except ValueError:
        return None, _find(value, where) or f"{where or 'the value'} is not JSON data"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return storable(value), None
    return value, None


def _find(value: Any, where: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'the value'} is {value}, which JSON cannot hold"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def too_deep(value: Any, limit: int = 100) -> bool:
    """Whether `value` nests mappings and lists more than `limit` levels deep (counted without recursion)."""
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        node, depth = level.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth > limit:
                return True
            level.extend((item, depth + 1) for item in (node.values() if isinstance(node, dict) else node))
    return False
