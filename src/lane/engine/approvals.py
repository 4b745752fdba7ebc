"""Requests for a person's decision, and finding the decision that answers one.

A request and its decision share (step, ref): the ref is the call id for a
tool call, or the step id for a human step or a handoff. A decision is bound to
the request it follows and, for a tool call, to the hash of the arguments; the
engine uses it for that call only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

from lane.engine.journal import AGAIN, Journal, among
from lane.errors import PauseRun
from lane.store.records import Event


def args_hash(tool: str, args: Any) -> str:
    canonical = json.dumps({"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "backslashreplace")).hexdigest()[:32]


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
    """Record a request (once) and return the signal that pauses the run for it.

    With no one to ask (a work chart without human roles), the step fails instead of waiting for ever."""
    if not roles:
        from lane.engine.state import StepFailed

        raise StepFailed(f"step {step_id} needs a person ({question}), but the work chart has no human role; "
                         "add one to roles in lane.yaml, such as `lead: {kind: human}`")
    request = latest_request(journal, step_id, ref, kind)
    answered = request is not None and decision_for(journal, step_id, ref, kind) is not None
    if request is None or answered:
        journal.record("approval_requested", step_id, ref, kind=kind, question=question, roles=roles, **data)
    return PauseRun(f"waiting for {' or '.join(roles) or 'a person'}: {question}")


def open_requests(events: list[Event]) -> list[Event]:
    """Requests no decision has answered yet, oldest first."""
    pending: dict[tuple[str | None, str | None, str], Event] = {}
    for event in events:
        if event.type in AGAIN:
            again, keep = set(event.data.get("steps", ())), set(event.data.get("keep", ()))
            pending = {key: e for key, e in pending.items() if not among(key[0], again) or among(key[0], keep)}
            continue
        key = (event.step_id, event.ref, event.data.get("kind", ""))
        if event.type == "approval_requested":
            pending[key] = event
        elif event.type == "decision":
            pending.pop(key, None)
    return sorted(pending.values(), key=lambda e: e.seq)


@dataclass(frozen=True)
class Pending:
    """One thing a paused run waits for a person to decide; `kind` says which:

    - `tool_call`: a call of `tool` with `args` (`effect`), to approve, edit or reject;
    - `human_step`: `value` to approve or edit (`mode` "approve"), or an input to give (`mode` "input");
    - `handoff`: an agent's `output` still invalid (`errors`) after its repairs: approve with a valid one, or reject;
    - `in_doubt`: a call of `tool` that was running when the run was interrupted: did it take effect?

    `schema` is the JSON Schema an edit must fit. Items read as attributes, or by key as in a dict.
    """

    call_id: str
    step_id: str
    kind: str
    question: str
    roles: tuple[str, ...]
    requested_at: str
    tool: str | None = None
    args: dict[str, Any] | None = None
    args_hash: str | None = None
    effect: str | None = None
    value: Any = None
    output: Any = None
    errors: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    mode: str | None = None
    idempotency_key: str | None = None
    run_id: str | None = None  # set when a child run holds it: decide it from either run's id
    failure: str | None = None  # loop: what failed the last attempt
    attempts: int | None = None  # loop: attempts made; retry: the attempt it would make
    error: str | None = None  # retry: the call's error

    @classmethod
    def from_request(cls, event: Event) -> Pending:
        data = event.data
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k in known and k not in ("roles", "errors")}
        return cls(call_id=event.ref or "", step_id=event.step_id or "", requested_at=event.at, roles=tuple(data.get("roles") or ()),
                   errors=tuple(data.get("errors") or ()), **extra)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if k in ("roles", "errors") else v for k, v in data.items() if k in known}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The fields that apply to this kind (those set), as JSON."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != () or f.name in ("call_id", "step_id", "kind", "question", "roles", "requested_at"):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def __getitem__(self, key: str) -> Any:
        data = self.to_json()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)
