"""A run's audit trail: every tool call in order, what let it run or refused it, and who decided.

Built from the journal alone, so it reads the same for a finished run, a
paused one and one that crashed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lane.store.records import Event

OUTCOMES = {
    "tool_call_refused": "refused",
    "tool_call_invalid": "invalid",
    "tool_call_proposed": "proposed",
}


def audit(events: list[Event]) -> list[dict[str, Any]]:
    """One row per tool call: call_id, step, tool, effect, level, args_hash, allowed_by, approved_by, outcome, result_hash."""
    rows: dict[tuple[str | None, str | None], dict[str, Any]] = {}  # the current attempt's calls
    every: list[dict[str, Any]] = []
    attempt = 1
    for event in events:
        key = (event.step_id, event.ref)
        data = event.data
        if event.type == "run_retried":  # steps run again reuse their call ids: their earlier rows are closed
            attempt = int(data.get("attempt", attempt + 1))
            rows = {k: row for k, row in rows.items() if k[0] not in set(data.get("steps", ()))}
            continue
        if event.type == "tool_call_requested":
            rows[key] = {
                "call_id": event.ref, "step": event.step_id, "attempt": attempt, "tool": data.get("tool"), "effect": data.get("effect"),
                "level": data.get("level"), "args_hash": data.get("args_hash"), "at": event.at,
                "allowed_by": None, "refused_by": None, "reason": None, "approved_by": None, "rejected_by": None, "decided_at": None,
                "edited": False, "outcome": "requested", "result_hash": None,
            }
            every.append(rows[key])
            continue
        row = rows.get(key)
        if row is None:
            continue
        if event.type == "tool_call_gated":
            row["allowed_by"] = data.get("basis")
            row["outcome"] = "waiting for approval" if data.get("gate") == "approve" else row["outcome"]
        elif event.type in OUTCOMES:
            row["outcome"] = OUTCOMES[event.type]
            row["reason"] = data.get("reason") or (data.get("result") or {}).get("note")
            if event.type == "tool_call_refused":
                row["refused_by"] = data.get("basis") or "allowlist"
        elif event.type == "decision" and data.get("kind") in ("tool_call", "in_doubt"):
            row["approved_by" if data["decision"] == "approved" else "rejected_by"] = data.get("by")
            row["decided_at"] = event.at
            row["edited"] = data.get("edited_args") is not None
            if data["decision"] == "rejected":
                row["outcome"], row["reason"] = "rejected", data.get("reason")
        elif event.type == "tool_started":
            row["outcome"] = "started, no result recorded"  # interrupted, unless a tool_finished follows
        elif event.type == "tool_timed_out":
            row["outcome"], row["reason"] = "cut off (wall_seconds): effect unknown", None
        elif event.type == "tool_finished":
            row["outcome"] = "ran" if data.get("status") == "ok" else "ran: error"
            row["result_hash"] = _hash(data.get("result") if data.get("status") == "ok" else {"error": data.get("error")})
    return every


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def refused_calls(events: list[Event], step_id: str) -> list[dict[str, Any]]:
    """The calls of one step refused before they ran, in its latest attempt: the tool, the path it named, and why.

    What a reviewer reads beside the step's answer: the writes an agent tried outside its lane."""
    requested: dict[str | None, dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for event in events:
        if event.type == "run_retried" and step_id in event.data.get("steps", ()):
            requested, found = {}, []
        elif event.step_id != step_id:
            continue
        elif event.type == "tool_call_requested":
            requested[event.ref] = event.data
        elif event.type == "tool_call_refused":
            call = requested.get(event.ref, {})
            args = call.get("args")
            path = args.get("path") if isinstance(args, dict) else None
            found.append({"tool": call.get("tool"), **({"path": path} if isinstance(path, str) else {}), "reason": event.data.get("reason")})
    return found
