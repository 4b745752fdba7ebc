"""What a store holds: runs and their events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FINISHED = ("completed", "failed", "rejected")


_second: tuple[int, str] = (0, "")  # the last second formatted, and its text: every event asks for the time


def now() -> str:
    """The time as ISO 8601 in UTC with microseconds, as `datetime.now(UTC).isoformat(timespec="microseconds")`."""
    global _second
    seconds, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second  # one read: another thread may replace it meanwhile
    if cached[0] != seconds:
        cached = _second = (seconds, datetime.fromtimestamp(seconds, UTC).isoformat()[:19])
    return f"{cached[1]}.{micro:06d}+00:00"


@dataclass(frozen=True, slots=True)
class Event:
    """One journal entry. `ref` names what it is about within the step: a call id or a turn."""

    seq: int
    type: str
    step_id: str | None
    ref: str | None
    at: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "step_id": self.step_id, "ref": self.ref, "at": self.at, **self.data}


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    runbook: str
    version: int
    status: str
    reason: str | None
    inputs: dict[str, Any]
    started_at: str
    updated_at: str
    owner: str | None
    parent_id: str | None = None  # the run whose step started this one
    parent_step: str | None = None
    snapshot: str | None = None  # the kept version it runs (its files, content-addressed)

    def to_json(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id,
            "runbook": self.runbook,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
        }
        if self.parent_id is not None:
            out |= {"parent_id": self.parent_id, "parent_step": self.parent_step}
        return out


class ReleaseMoved(Exception):
    """The runbook's release journal changed between routing a new run and creating it: route it again."""
