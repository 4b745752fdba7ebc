"""A span as lane builds it from a run's journal, and the ids that make one run one trace.

A run may pause, wait days for a person and resume in another process, so its
spans are made from committed events, not timed in memory: every id is a hash
of the run id and the journal position that opened the span, and every time is
an event's `at`. Whichever process records a part of the run, its spans land in
the same trace, under the same parents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def trace_id(run_id: str) -> int:
    """The run's trace: 128 bits of a hash of its id (never 0, which OpenTelemetry reads as no trace)."""
    return int.from_bytes(hashlib.sha256(f"lane trace {run_id}".encode()).digest()[:16], "big") or 1


def span_id(run_id: str, *key: object) -> int:
    """A span of the run, named by what opened it (`"step", "draft", 12`): 64 bits of a hash, never 0."""
    named = "/".join(str(part) for part in (run_id, *key))
    return int.from_bytes(hashlib.sha256(f"lane span {named}".encode()).digest()[:8], "big") or 1


@dataclass
class Span:
    name: str
    span_id: int
    parent_id: int | None  # None: the run's own span, the root of its part of the trace
    start: str  # ISO 8601, an event's `at`
    end: str = ""
    client: bool = False  # a request to a model (kind CLIENT); everything else is lane's own work (INTERNAL)
    attributes: dict[str, Any] = field(default_factory=dict)  # a None value is left out
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (name, at, attributes)
    links: list[int] = field(default_factory=list)  # earlier spans of the same trace this one continues
    error: str | None = None  # error.type: the span ended in an error (status ERROR)

    def add(self, key: str, amount: float) -> None:
        """Add to a running total (tokens, cost) kept as an attribute."""
        self.attributes[key] = self.attributes.get(key, 0) + amount
