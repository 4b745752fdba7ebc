"""Requests for a person's decision, and finding the decision that answers one.

A request and its decision share (step, ref): the ref is the call id for a
tool call, or the step id for a human step or a handoff. A decision is bound to
the request it follows and, for a tool call, to the hash of the arguments; the
engine uses it for that call only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lane.engine.journal import Journal
from lane.errors import PauseRun
from lane.store.records import Event


def args_hash(tool: str, args: Any) -> str:
    canonical = json.dumps({"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def latest_request(journal: Journal, step_id: str, ref: str, kind: str) -> Event | None:
    for event in reversed(journal.find_all("approval_requested", step_id, ref)):
        if event.data["kind"] == kind:
            return event
    return None


def decision_for(journal: Journal, step_id: str, ref: str, kind: str) -> Event | None:
    """The decision that answers the latest request of this kind, if a person has made it."""
    request = latest_request(journal, step_id, ref, kind)
    if request is None:
        return None
    for event in journal.find_all("decision", step_id, ref):
        if event.seq > request.seq and event.data["kind"] == kind:
            return event
    return None


def ask(journal: Journal, step_id: str, ref: str, kind: str, *, question: str, roles: list[str], **data: Any) -> PauseRun:
    """Record a request (once) and return the signal that pauses the run for it."""
    request = latest_request(journal, step_id, ref, kind)
    answered = request is not None and decision_for(journal, step_id, ref, kind) is not None
    if request is None or answered:
        journal.record("approval_requested", step_id, ref, kind=kind, question=question, roles=roles, **data)
    return PauseRun(f"waiting for {' or '.join(roles) or 'a person'}: {question}")


def open_requests(events: list[Event]) -> list[Event]:
    """Requests no decision has answered yet, oldest first."""
    pending: dict[tuple[str | None, str | None, str], Event] = {}
    for event in events:
        key = (event.step_id, event.ref, event.data.get("kind", ""))
        if event.type == "approval_requested":
            pending[key] = event
        elif event.type == "decision":
            pending.pop(key, None)
    return sorted(pending.values(), key=lambda e: e.seq)
