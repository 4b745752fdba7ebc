"""A run's timeline, built from its journal: what `lane show` prints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lane.engine.approvals import Pending, open_requests
from lane.engine.journal import among
from lane.store.records import Event, RunRecord

ENDINGS = ("run_paused", "run_stopped", "run_failed", "run_rejected", "run_completed")  # the run waits, or is done, after one


def timeline(run: RunRecord, events: list[Event], step_order: list[tuple[str, str]]) -> dict[str, Any]:
    """The run as JSON: run fields, steps in runbook order, each with context, usage and tool calls."""
    steps: dict[str, dict[str, Any]] = {sid: _blank(sid, kind) for sid, kind in step_order}
    calls: dict[str, dict[str, Any]] = {}
    asked: set[tuple[str, str | None]] = set()  # (step, turn) whose messages are in
    kpis: dict[str, Any] = {}
    attempts = 1
    idle, ended_at = 0.0, None  # seconds the run spent ended or paused so far, and when it last ended
    idle_at: dict[str, float] = {}  # a step's `idle` when it started: its seconds leave out the waits since
    for event in events:
        if event.type in ENDINGS:
            ended_at = event.at
        elif event.type in ("run_resumed", "run_retried") and ended_at is not None:
            idle += _seconds(ended_at, event.at) or 0.0
            ended_at = None
        if event.type == "kpis_recorded":  # the latest ending's measures
            kpis = {"values": event.data["values"], "errors": event.data["errors"]}
        if event.type == "run_retried":
            attempts = int(event.data.get("attempt", attempts + 1))
            _retry(steps, calls, asked, event.data.get("steps", ()), event.data.get("keep", ()))
            kpis = {}  # measured again when this attempt ends
        if event.type == "loop_back":  # the steps after the agent step run again; the agent goes on
            _retry(steps, calls, asked, event.data.get("steps", ()))
        if event.step_id is None:
            continue
        step = steps.setdefault(event.step_id, _blank(event.step_id, event.data.get("kind", "?")))
        _apply(step, calls, asked, event)
        if event.type == "step_started" and step["started_at"] == event.at:
            idle_at[event.step_id] = idle
        elif event.type == "step_finished" and step["seconds"] is not None:  # the time it ran, not the run's pauses
            step["seconds"] = round(max(0.0, step["seconds"] - (idle - idle_at.get(event.step_id, idle))), 6)
    for step in steps.values():
        _skills(step)
    usage = _no_usage()
    for step in steps.values():
        for attempt in (*step.get("previous_attempts", ()), step):  # what an earlier attempt spent was spent
            for key in usage:
                usage[key] += attempt["usage"][key]
    usage["cost_usd"] = round(usage["cost_usd"], 8)
    return {
        **run.to_json(),
        "inputs": run.inputs,
        "usage": usage,
        "kpis": kpis.get("values", {}),
        "kpi_errors": kpis.get("errors", {}),
        "attempts": attempts,
        "pending": [Pending.from_request(e).to_json() for e in open_requests(events)] if run.status == "paused" else [],
        "steps": _nest(steps),
    }


def _skills(step: dict[str, Any]) -> None:
    """The skills an agent step loaded (skills.load) and read from (skills.read), with what they cost its context in
    tokens (about four characters a token, as the context's estimate)."""
    import json

    loaded: dict[str, dict[str, Any]] = {}
    for call in step.get("tool_calls", ()):
        if call.get("tool") not in ("skills.load", "skills.read") or call.get("status") != "ok":
            continue
        name = str((call.get("args") or {}).get("name", ""))
        entry = loaded.setdefault(name, {"name": name, "files": [], "tokens": 0})
        result = next((e.get("result") for e in reversed(call["executions"]) if "result" in e), None)
        entry["tokens"] += len(json.dumps(result, ensure_ascii=False)) // 4
        if call["tool"] == "skills.read":
            entry["files"].append((call.get("args") or {}).get("path"))
    if loaded:
        step["skills"] = list(loaded.values())


def _nest(steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps as a tree: a for_each's `items` (numbered, in input order) and a parallel's `branches`,
    each with the `steps` that ran in it. Steps are listed in the order they started."""
    top: list[dict[str, Any]] = []
    for step_id, step in steps.items():
        parent, part = _parent(step_id)
        container = steps.get(parent) if parent else None
        if container is None or parent is None:
            top.append(step)
        elif part == "item":
            step["index"] = int(step_id[len(parent) + 1 : -1])
            container.setdefault("items", []).append(step)
        elif container["kind"] == "parallel":
            step["name"] = step_id[len(parent) + 1 :]
            container.setdefault("branches", {})[step["name"]] = step
        else:  # a step of an item or a branch
            container.setdefault("steps", []).append(step)
    for step in steps.values():
        if "items" in step:
            step["items"].sort(key=lambda item: item["index"])
    return top


def _parent(step_id: str) -> tuple[str | None, str]:
    """What holds a step: (the for_each, "item") for `each[2]`; (the item or branch or parallel, "step") for `each[2].inc`."""
    if step_id.endswith("]") and "[" in step_id:
        return step_id[: step_id.rindex("[")], "item"
    cut = step_id.rfind(".")
    return (step_id[:cut], "step") if cut > 0 else (None, "step")


def _retry(steps: dict[str, dict[str, Any]], calls: dict[str, dict[str, Any]], asked: set[tuple[str, str | None]], again: list[str],
           keep: Sequence[str] = ()) -> None:
    """The steps a retry or a feedback loop runs again start blank; what they did before is kept under
    `previous_attempts`. The steps inside a group run again go with it (their history is the group's),
    except its branches and items that finished (`keep`): they are not run again."""
    named, kept = set(again), set(keep)
    for step_id in [s for s in steps if s not in named and among(s, named) and not among(s, kept)]:
        del steps[step_id]
    for step_id in again:
        old = steps.get(step_id)
        if old is None:
            continue
        history = old.pop("previous_attempts", [])
        if old["status"] == "waiting":  # what it waited for is behind it: it failed, or never finished
            old["status"] = "failed" if old.get("error") else "not finished"
        if old["status"] != "pending":
            history.append(old)
        steps[step_id] = {**_blank(step_id, old["kind"]), "previous_attempts": history}
    for key in [k for k in calls if among(k.partition("/")[0], named) and not among(k.partition("/")[0], kept)]:
        del calls[key]
    asked.difference_update({pair for pair in asked if among(pair[0], named) and not among(pair[0], kept)})


def _blank(step_id: str, kind: str) -> dict[str, Any]:
    return {
        "id": step_id, "kind": kind, "status": "pending", "started_at": None, "finished_at": None, "seconds": None,
        "output": None, "context": None, "usage": _no_usage(),
        "turns": [], "messages": [], "tool_calls": [], "decisions": [], "error": None,
    }


def _no_usage() -> dict[str, Any]:
    """Tokens in and out, USD, and how many calls had no known price (their cost is not in cost_usd)."""
    return {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "unpriced_calls": 0}


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    total["input_tokens"] += usage.get("input_tokens", 0)
    total["output_tokens"] += usage.get("output_tokens", 0)
    cost = usage.get("cost_usd", 0.0)
    if cost is None:
        total["unpriced_calls"] += 1
    else:
        total["cost_usd"] += cost


def _apply(step: dict[str, Any], calls: dict[str, dict[str, Any]], asked: set[tuple[str, str | None]], event: Event) -> None:
    data, kind = event.data, event.type
    if kind == "step_started":
        step.update(status="running", kind=data.get("kind", step["kind"]))
        step["started_at"] = step["started_at"] or event.at
    elif kind == "step_skipped":
        step.update(status="skipped", reason=data.get("reason"))
    elif kind == "step_finished":
        step.update(status="completed", finished_at=event.at, output=data.get("output"))
        if "edited" in data:
            step["edited"] = data["edited"]
        step["seconds"] = _seconds(step["started_at"], event.at)
    elif kind in ("step_failed", "step_rejected"):
        step.update(status="failed" if kind == "step_failed" else "rejected", error=data.get("error"), finished_at=event.at)
    elif kind == "context_assembled":
        step["context"] = {k: data.get(k) for k in ("agent", "model", "messages", "sources", "tools", "estimated_tokens")}
        step["messages"] = list(data.get("messages", []))
    elif kind == "model_called":
        if (step["id"], event.ref) not in asked:  # a turn asked again after a resume adds nothing new
            asked.add((step["id"], event.ref))
            step["messages"].extend(data.get("added", []))
    elif kind == "model_responded":
        response = data.get("response", {})
        step["messages"].append({"role": "assistant", **{k: v for k, v in response.items() if k != "usage"}})
        step["turns"].append({"turn": event.ref, "at": event.at, "model": data.get("model"), "response": response})
        _add_usage(step["usage"], response.get("usage", {}))
    elif kind == "loop_back":
        step["status"] = "running"
        after = f"turn:{int(data.get('after_turn') or 1) - 1}"  # the answer that was sent back
        step.setdefault("loops", []).append({k: data.get(k) for k in ("from_step", "attempt", "of", "failure")} | {"after_turn": after, "at": event.at})
    elif kind == "child_started":
        step["child"] = {"run_id": data.get("run_id"), "runbook": data.get("runbook")}
    elif kind == "model_failed":
        step.setdefault("model_failures", []).append(
            {k: data.get(k) for k in ("model", "kind", "status", "error", "attempt", "retry_in")} | {"turn": event.ref, "at": event.at}
        )
    elif kind == "handoff_rejected":
        step.setdefault("handoff_rejections", []).append({"errors": data.get("errors"), "output": data.get("output")})
    elif kind == "approval_requested":
        if data.get("kind") in ("human_step", "handoff", "loop", "retry"):  # about the step, not about a call's effect
            step["status"] = "waiting"
        else:
            _call(step, calls, event)["status"] = "waiting" if data.get("kind") == "tool_call" else "in_doubt"
    elif kind == "decision":
        record = {k: data.get(k) for k in ("kind", "decision", "by", "user", "reason")} | {"at": event.at}
        for key in ("edited_args", "edited", "result"):
            if key in data:
                record[key] = data[key]
        if data.get("kind") in ("tool_call", "in_doubt"):
            call = _call(step, calls, event)
            call["decision"] = {"edited_args": None} | record  # the documented shape, edited or not
            call["status"] = "approved" if data["decision"] == "approved" else "rejected"
        else:
            step["decisions"].append(record)
    elif event.ref is not None and kind.startswith("tool_"):
        _tool_event(_call(step, calls, event), event)


def _tool_event(call: dict[str, Any], event: Event) -> None:
    data, kind = event.data, event.type
    if kind == "tool_call_requested":
        call.update(tool=data.get("tool"), args=data.get("args"), args_hash=data.get("args_hash"), effect=data.get("effect"), level=data.get("level"), requested_at=event.at)
    elif kind == "tool_call_gated":
        call["basis"] = data.get("basis")
    elif kind == "tool_call_refused":
        call.update(status="refused", reason=data.get("reason"), basis=data.get("basis") or "allowlist")
    elif kind == "tool_call_invalid":
        call.update(status="invalid", reason=data.get("reason"))
    elif kind == "tool_call_proposed":
        call["status"] = "proposed"
    elif kind == "tool_started":
        call["executions"].append({"attempt": data.get("attempt"), "idempotency_key": data.get("idempotency_key"), "started_at": event.at, "status": "interrupted"})
        call["status"] = "running"
    elif kind == "tool_timed_out" and call["executions"]:  # cut off by a budget: whether it took effect is not known
        call["executions"][-1].update(status="timed_out", seconds=data.get("seconds"))
        call["status"] = "timed_out"
    elif kind == "tool_finished":
        execution = call["executions"][-1] if call["executions"] and "finished_at" not in call["executions"][-1] else None
        if execution is None or data.get("settled_by"):
            execution = {"attempt": None, "idempotency_key": None, "started_at": None, "settled_by": data.get("settled_by")}
            call["executions"].append(execution)
        execution.update(finished_at=event.at, status=data.get("status"), seconds=data.get("seconds"))
        execution["result" if data.get("status") == "ok" else "error"] = data.get("result" if data.get("status") == "ok" else "error")
        call["status"] = data.get("status")


def _call(step: dict[str, Any], calls: dict[str, dict[str, Any]], event: Event) -> dict[str, Any]:
    key = f"{event.step_id}/{event.ref}"
    call = calls.get(key)
    if call is None:
        call = calls[key] = {
            "call_id": event.ref, "tool": None, "args": None, "effect": None, "status": "requested",
            "basis": None, "decision": None, "executions": [],
        }
        step["tool_calls"].append(call)
    return call


def _seconds(start: str | None, end: str) -> float | None:
    if start is None:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 6)
