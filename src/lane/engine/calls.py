"""One tool call, from request to result: allowlist, arguments, autonomy, approval, execution.

Every stage is journaled once; a resumed run walks the same stages and finds
them recorded. A call that was running when its process died is retried only
for an idempotent tool (same idempotency key); otherwise a person is asked.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_core import to_jsonable_python

from lane.engine.approvals import args_hash, ask, decision_for
from lane.engine.autonomy import Gate, gate
from lane.engine.rules import RuleSet, Verdict, evaluate
from lane.engine.state import RunState, StepFailed
from lane.errors import ToolError
from lane.spec.files import Budget
from lane.spec.runbook import StepSpec
from lane.store import values
from lane.store.records import Event
from lane.tools.base import Lane, Tool, ToolArgsInvalid, ToolContext


@dataclass(frozen=True)
class CallOutcome:
    status: str  # ok | error | refused | proposed | rejected
    result: Any  # what the agent sees, or the tool step's output
    ran: bool = False  # the result came from the tool (outside data), not from lane


@dataclass(frozen=True)
class CallRequest:
    step: StepSpec
    call_id: str
    tool: str
    args: dict[str, Any]
    level: str  # the autonomy level it runs under
    allowlists: tuple[tuple[str, list[str]], ...]  # (whose, patterns): the call must match every one
    roles: list[str]  # who may approve it
    limits: Budget  # the step's budget
    lane: Lane = Lane()  # the paths its agent may reach
    rulesets: tuple[tuple[str, RuleSet], ...] = ()  # (where they are written, rules): deny -> ask -> allow


T = TypeVar("T")

# What was decided about a call without running it, and the outcome the agent sees.
SETTLED = {"tool_call_refused": "refused", "tool_call_invalid": "error", "tool_call_proposed": "proposed"}


async def call_tool(state: RunState, req: CallRequest) -> CallOutcome:
    """The call's outcome. Once requested, a call is judged on what was recorded, never again."""
    journal, step_id = state.journal, req.step.id
    requested = journal.find("tool_call_requested", step_id, req.call_id) or await _request(state, req)
    for type_, status in SETTLED.items():
        settled = journal.find(type_, step_id, req.call_id)
        if settled is not None:
            return CallOutcome(status, settled.data["result"])
    tool = await _tool(state, requested.data["tool"])
    if tool is None:  # the project changed under a paused run
        refused = journal.record("tool_call_refused", step_id, req.call_id, reason="the tool is no longer in the project", basis="no such tool",
                                 result={"error": f"refused: there is no tool '{req.tool}' any more"})
        return CallOutcome("refused", refused.data["result"])
    args = requested.data["args"]
    gated = journal.find("tool_call_gated", step_id, req.call_id)
    verdict = gated.data["gate"] if gated is not None else gate(requested.data["level"], requested.data["effect"])
    if verdict == "approve":
        decision = _approval(state, req, requested, tool)
        if decision.data["decision"] == "rejected":
            return CallOutcome("rejected", {"rejected": True, "reason": decision.data.get("reason") or "rejected by a person"})
        if decision.data.get("edited_args") is not None:
            args = decision.data["edited_args"]
            blocked = _edit_refused(state, req, tool, args)
            if blocked is not None:
                return blocked
    return await _execute(state, req, tool, copy.deepcopy(args))


def _edit_refused(state: RunState, req: CallRequest, tool: Tool, args: dict[str, Any]) -> CallOutcome | None:
    """A person's edit stays inside the lane too: deny rules and scopes hold for what a person wrote."""
    if state.journal.find("tool_started", req.step.id, req.call_id) is not None:
        return None  # checked before it first ran
    try:
        checked = to_jsonable_python(tool.check_args(args))
    except ToolArgsInvalid:
        checked = args  # decisions check an edit's arguments; the tool reports what is still wrong
    blocked = _blocked(state, req, tool, checked)
    if blocked is None:
        return None
    reason, basis = blocked
    event = state.journal.record("tool_call_refused", req.step.id, req.call_id, reason=f"the edited call is refused: {reason}",
                                 basis=basis, result={"error": f"refused: the edited call is refused: {reason}"})
    return CallOutcome("refused", event.data["result"])


async def _tool(state: RunState, name: str) -> Tool | None:
    try:
        return await state.toolbox.get(name)
    except ToolError as exc:  # an MCP server that cannot start
        raise StepFailed(str(exc)) from exc


async def _request(state: RunState, req: CallRequest) -> Event:
    """Record the call and, once and for all, whether it is refused, invalid, proposed, or how it is gated."""
    journal, step_id = state.journal, req.step.id
    allowed = all(state.project.allows(patterns, req.tool) for _, patterns in req.allowlists)
    # A tool off the allowlist is refused by its name: no MCP server starts for it.
    tool = await _tool(state, req.tool) if allowed else state.project.tools.get(req.tool)
    digest = args_hash(req.tool, journal.redact(req.args))  # a hash of a short secret could be guessed back
    state.meter.check_tool_call(step_id, f"{req.tool}:{digest}", state.run_limits, req.limits)
    requested = journal.record(
        "tool_call_requested", step_id, req.call_id,
        tool=req.tool, args=copy.deepcopy(req.args), args_hash=digest, effect=tool.effect if tool else None, level=req.level,
    )
    refusal = _refusal(req, tool, state)
    if refusal is not None or tool is None:
        _refuse(state, req, refusal or "", "allowlist" if not allowed else "no such tool")
        return requested
    if journal.redact(req.args) != req.args:  # what is stored must be what runs, and a secret is never stored
        _refuse(state, req, "the arguments hold the value of a secret; a call never carries one (a tool reads it from env: itself)", "secrets")
        return requested
    try:
        checked = to_jsonable_python(tool.check_args(req.args))
    except ToolArgsInvalid as exc:
        journal.record("tool_call_invalid", step_id, req.call_id, reason=str(exc), result={"error": f"invalid arguments for {req.tool}: {exc}"})
        return requested
    blocked = _blocked(state, req, tool, checked)
    if blocked is not None:
        _refuse(state, req, *blocked)
        return requested
    verdict = evaluate(req.tool, checked, lambda: tool.subjects(checked), req.rulesets)
    how, basis = _gate(req.level, tool.effect, verdict)
    journal.record("tool_call_gated", step_id, req.call_id, gate=how, basis=basis)
    if how == "propose":
        note = f"autonomy '{req.level}': the call was recorded as a proposal and not run"
        journal.record("tool_call_proposed", step_id, req.call_id, result={"proposed": True, "note": note})
    return requested


def _blocked(state: RunState, req: CallRequest, tool: Tool, args: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, basis) when the call, with the arguments the tool will really get, leaves its lane or is denied."""
    try:
        outside = tool.out_of_lane(args, req.lane, state.project.root)
    except Exception as exc:  # a check that cannot be made fails closed
        outside = f"the call could not be checked against the lane: {exc}"
    if outside is not None:
        return outside, f"lane of {req.lane.agent}" if req.lane.agent else "lane"
    verdict = evaluate(req.tool, args, lambda: tool.subjects(args), req.rulesets)
    if verdict.action == "deny":
        return verdict.reason, verdict.rule or "rules"
    return None


def _gate(level: str, effect: str, verdict: Verdict) -> tuple[Gate, str]:
    """What happens to a call that passed its lane: the rules first, then the autonomy level."""
    if level == "observe" and effect != "read" and verdict.action is not None:
        return "propose", f"autonomy observe: {effect} calls are only proposed, whatever the rules ({verdict.rule})"
    if verdict.action == "ask":
        return "approve", verdict.rule or "rules"
    if verdict.action == "allow":
        return "run", verdict.rule or "rules"
    how = gate(level, effect)
    says = {"run": "runs", "approve": "waits for a person", "propose": "is only proposed"}[how]
    article = "an" if effect[0] in "aeiou" else "a"
    return how, f"autonomy {level}: {article} {effect} call {says}"


def _refuse(state: RunState, req: CallRequest, reason: str, basis: str) -> None:
    state.journal.record("tool_call_refused", req.step.id, req.call_id, reason=reason, basis=basis, result={"error": f"refused: {reason}"})


def _refusal(req: CallRequest, tool: Tool | None, state: RunState) -> str | None:
    for whose, patterns in req.allowlists:
        if not state.project.allows(patterns, req.tool):
            return f"'{req.tool}' is not in {whose} tools ({', '.join(patterns) or 'none'})"
    return f"there is no tool '{req.tool}'" if tool is None else None


def _approval(state: RunState, req: CallRequest, requested: Event, tool: Tool) -> Event:
    """The decision this call runs under; pauses the run until a person makes it."""
    journal = state.journal
    used = journal.find("approval_used", req.step.id, req.call_id)
    if used is not None:
        return journal.at(used.data["decision_seq"])
    decision = decision_for(journal, req.step.id, req.call_id, "tool_call")
    if decision is not None and decision.data.get("args_hash") != requested.data["args_hash"]:
        journal.record("approval_refused", req.step.id, req.call_id, decision_seq=decision.seq, reason="made for other arguments")
        decision = None
    if decision is None:
        if journal.find("approval_requested", req.step.id, req.call_id) is None:
            state.meter.check_approval(state.run_limits)
        raise ask(
            journal, req.step.id, req.call_id, "tool_call",
            question=f"run {req.tool} ({tool.effect}) with {_names(req.args)}?", roles=req.roles,
            tool=req.tool, args=req.args, args_hash=requested.data["args_hash"], effect=tool.effect,
        )
    journal.record("approval_used", req.step.id, req.call_id, decision_seq=decision.seq)
    return decision


async def _execute(state: RunState, req: CallRequest, tool: Tool, args: dict[str, Any]) -> CallOutcome:
    journal = state.journal
    finished = journal.find("tool_finished", req.step.id, req.call_id)
    if finished is not None:
        return _outcome(finished)
    # A start carried over by a retry counts only for a call of the same tool.
    starts = [s for s in journal.find_all("tool_started", req.step.id, req.call_id) if s.data.get("tool", req.tool) == req.tool]
    if starts and not tool.idempotent:
        settled = _in_doubt(state, req, tool, starts[-1])
        if settled is not None:
            return settled
    loops = journal.loops(req.step.id)  # a step run again by a feedback loop makes a new call: a new key
    key = idempotency_key(state.run_id, req.step.id, req.call_id if not loops else f"{req.call_id}#{loops}")
    journal.record("tool_started", req.step.id, req.call_id, attempt=len(starts) + 1, idempotency_key=key, tool=req.tool)
    await journal.commit()
    ctx = ToolContext(state.run_id, req.step.id, req.call_id, key, state.project.root, req.lane)
    began = time.perf_counter()
    result, error, unknown = await _invoke(state, req, tool, args, ctx)
    if error is None:
        result, unfit = values.checked(result, "result")
        if unfit is not None:
            error = f"the tool's result cannot be recorded: {unfit}; return null or a string instead"
    seconds = round(time.perf_counter() - began, 6)
    if error is None:
        event = journal.record("tool_finished", req.step.id, req.call_id, status="ok", result=result, seconds=seconds)
    else:
        extra = {"effect_unknown": True} if unknown else {}  # cut off by its timeout: a retry asks a person first
        event = journal.record("tool_finished", req.step.id, req.call_id, status="error", error=error, seconds=seconds, **extra)
    await journal.commit()
    return _outcome(event)


async def _invoke(state: RunState, req: CallRequest, tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[Any, str | None, bool]:
    """The tool's result, or None and its error, and whether its effect is unknown. A call in flight is cut off by the tool's
    own timeout (an error the agent sees) or by a wall_seconds budget (the run stops; the call is journaled as timed out)."""
    own: float | None = getattr(tool, "call_timeout", None)  # tools that do not time out by themselves (Python functions)
    budget = state.meter.time_left(req.step.id, state.run_limits, req.limits)
    limit = min(x for x in (own, budget[0] if budget else None, math.inf) if x is not None)
    began = time.perf_counter()
    try:
        finished, result = await within(tool.invoke(args, ctx), limit)
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except BaseException as exc:  # a tool's own failure (sys.exit and BaseException too) is data for the agent, not a crash of the run
        return None, f"{type(exc).__name__}: {exc}", False
    if finished:
        return result, None, False
    if budget is not None and (own is None or budget[0] <= own):
        # Whether it took effect is not known, so nothing is recorded as finished: a resume
        # retries it if the tool is idempotent, and asks a person otherwise.
        state.journal.record("tool_timed_out", req.step.id, req.call_id, seconds=round(time.perf_counter() - began, 6),
                             limit="wall_seconds", scope=budget[1].scope)
        state.journal.flush()
        raise budget[1]
    return None, f"timed out after {limit:g} s (the tool's timeout) and was abandoned; it may still have taken effect", True


async def within(work: Awaitable[T], seconds: float) -> tuple[bool, T | None]:
    """(True, its result), or (False, None) once `seconds` have passed: the work is then cancelled and left behind,
    not waited for, so a call that ignores cancellation cannot hold the run (its late result is never recorded)."""
    if seconds == math.inf:  # nothing to cut off: no task of its own
        return True, await work
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=None if seconds == math.inf else max(seconds, 0.0))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return True, task.result()
    task.cancel()
    task.add_done_callback(_forget)
    return False, None


def _forget(task: asyncio.Future[Any]) -> None:
    """A cut-off call's outcome, taken so asyncio does not report it as lost; nobody waits for it any more."""
    if not task.cancelled():
        task.exception()


def _in_doubt(state: RunState, req: CallRequest, tool: Tool, last_start: Event) -> CallOutcome | None:
    """A non-idempotent call that was running when the run stopped: a person says what happened."""
    journal = state.journal
    decision = decision_for(journal, req.step.id, req.call_id, "in_doubt")
    if decision is None or decision.seq < last_start.seq:
        raise ask(
            journal, req.step.id, req.call_id, "in_doubt",
            question=f"{req.tool} was running when the run was interrupted: did this call take effect? "
            "(approve to run it again, approve --result JSON if it took effect, reject to give it up)",
            roles=req.roles, tool=req.tool, args=req.args, idempotency_key=last_start.data["idempotency_key"],
        )
    if decision.data["decision"] == "rejected":
        event = journal.record("tool_finished", req.step.id, req.call_id, status="error", error="interrupted; a person chose not to run it again",
                               seconds=0, effect_unknown=True)
        return _outcome(event)
    if "result" in decision.data:
        event = journal.record("tool_finished", req.step.id, req.call_id, status="ok", result=decision.data["result"], seconds=0, settled_by=decision.data["by"])
        return _outcome(event)
    return None


def _outcome(finished: Event) -> CallOutcome:
    if finished.data["status"] == "ok":
        return CallOutcome("ok", finished.data.get("result"), ran=True)
    return CallOutcome("error", {"error": finished.data.get("error")}, ran=True)


def _names(args: dict[str, Any]) -> str:
    """The arguments by name, for the one-line question; their values are shown whole beside it (`pending`)."""
    return "arguments " + ", ".join(json.dumps(k, ensure_ascii=False) for k in sorted(args)) if args else "no arguments"


def idempotency_key(run_id: str, step_id: str, call_id: str) -> str:
    return hashlib.sha256(f"{run_id}/{step_id}/{call_id}".encode()).hexdigest()[:32]
