"""A tool as `lane mcp` describes it, and the checks on its arguments: each bad one a one-line `Refused`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_WAIT = 600.0


class Refused(Exception):
    """The call cannot be made as asked; the message (one line) says why. Answered as a tool error."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # one line: a multi-line lane message joined


@dataclass(frozen=True)
class ToolDef:
    name: str
    title: str
    description: str
    schema: dict[str, Any]
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool


READ = {"read_only": True, "destructive": False, "idempotent": True, "open_world": False}  # a tool that only reads lane's own data


def text(args: dict[str, Any], key: str) -> str:
    """The required text argument `key`."""
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"give {key} as text" + (": a run id, or a unique prefix of one (run_status lists it)" if key == "run_id" else ""))
    return value


def optional_text(args: dict[str, Any], key: str) -> str | None:
    return text(args, key) if args.get(key) is not None else None


def number(args: dict[str, Any], key: str, default: float, *, low: float = 0, high: float = MAX_WAIT) -> float:
    """The number argument `key` (`default` when absent), between `low` and `high`."""
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise Refused(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)
