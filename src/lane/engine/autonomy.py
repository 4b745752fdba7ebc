"""Autonomy levels: what a call of each effect does at each level (DESIGN.md's table)."""

from __future__ import annotations

from typing import Literal

Gate = Literal["run", "approve", "propose"]

GATES: dict[str, dict[str, Gate]] = {
    "observe": {"read": "run", "write": "propose", "external": "propose"},
    "ask": {"read": "run", "write": "approve", "external": "approve"},
    "guarded": {"read": "run", "write": "run", "external": "approve"},
    "auto": {"read": "run", "write": "run", "external": "run"},
}


def gate(level: str, effect: str) -> Gate:
    """`run` it, wait for a person to `approve` it, or `propose` it without running."""
    return GATES[level][effect]
