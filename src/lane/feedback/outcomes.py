"""Outcomes: results known only after a run (the customer answered "solved", the invoice was paid).

    lane outcome RUN resolved=yes --by alice

An outcome is journaled on the run (`outcome_recorded`: name, value, who, when); a later one of the same name
replaces it. A KPI reads it as `outcomes.NAME` (write `outcomes.NAME | default(none)`: it is unknown until
recorded). When an outcome is recorded on a run that has ended, its KPIs are measured again and journaled.
"""

from __future__ import annotations

import re
from typing import Any

from lane.errors import UsageError
from lane.store.records import FINISHED, Event, RunRecord, now

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise UsageError(f"outcome name {name!r}: use letters, digits and _, starting with a letter (a KPI reads outcomes.NAME)")


def outcomes_of(events: list[Event]) -> dict[str, Any]:
    """The run's outcomes, the latest of each name."""
    return {e.ref or "": e.data.get("value") for e in events if e.type == "outcome_recorded"}


def outcome_events(book: Any, run: RunRecord, events: list[Event], name: str, value: Any, by: str | None) -> list[Event]:
    """The events that record the outcome, and, for a run that has ended, its KPIs measured again with it."""
    from lane.feedback.kpis import measure

    if run.status not in (*FINISHED, "paused", "stopped"):
        raise UsageError(f"run {run.run_id} is {run.status}: record its outcome once it pauses or ends")
    seq = events[-1].seq + 1 if events else 1
    out = [Event(seq, "outcome_recorded", None, name, now(), {"name": name, "value": value, "by": by})]
    if book is not None and book.kpis and run.status in FINISHED:
        scope = scope_of(run, events)
        scope["outcomes"] = {**outcomes_of(events), name: value}
        values, errors = measure(book.kpis, scope, [s.id for s in book.steps])
        out.append(Event(seq + 1, "kpis_recorded", None, None, now(), {"values": values, "errors": errors, "after_outcome": name}))
    return out


def scope_of(run: RunRecord, events: list[Event]) -> dict[str, Any]:
    """What a KPI reads of an ended run, from its journal: each step's output and how it ended, and the run."""
    steps: dict[str, Any] = {}
    tokens, seconds = 0, 0.0
    for event in events:
        data = event.data
        if event.type == "run_retried":
            for step in data.get("steps", ()):
                steps.pop(step, None)
        elif event.step_id and "." not in event.step_id and event.type in ("step_finished", "step_failed", "step_skipped", "step_rejected"):
            status = {"step_finished": "completed", "step_failed": "failed", "step_skipped": "skipped", "step_rejected": "rejected"}[event.type]
            extras = {k: v for k, v in data.items() if k in ("edited", "approved_by")}
            steps[event.step_id] = {"status": status, "output": data.get("output"), **extras}
        elif event.type == "model_responded":
            usage = (data.get("response") or {}).get("usage") or {}
            tokens += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        elif event.type in ("run_completed", "run_failed", "run_rejected"):
            seconds = float(data.get("active_seconds") or 0.0)
    return {"inputs": run.inputs, "steps": steps, "run": {"id": run.run_id, "status": run.status, "tokens": tokens, "seconds": round(seconds, 2)}}
