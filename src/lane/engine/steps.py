"""Tool, human and check steps. (Agent steps live in agent.py.)"""

from __future__ import annotations

import sys
from typing import Any

from lane.engine.approvals import ask, decision_for
from lane.engine.calls import CallRequest, call_tool
from lane.engine.state import RunState, StepFailed, StepRejected
from lane.spec.expressions import as_text
from lane.spec.files import Budget
from lane.spec.runbook import StepSpec
from lane.tools.command import run_command


async def run_tool_step(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    args = step.args.render(state.scope()) if step.args else {}
    if not isinstance(args, dict):
        raise StepFailed(f"the args of step {step.id} must evaluate to a mapping, not {type(args).__name__}")
    level = step.step.autonomy or state.book.file.autonomy
    request = CallRequest(step, f"{step.id}:1", step.step.tool or "", args, level, (), state.approver_roles(step), Budget(),
                          rulesets=(("lane.yaml", state.project.rules),))
    outcome = await call_tool(state, request)
    if outcome.status != "ok":
        result = outcome.result if isinstance(outcome.result, dict) else {"error": outcome.result}
        detail = result.get("reason") or result.get("error") or result.get("note")
        failure = StepRejected if outcome.status == "rejected" else StepFailed
        raise failure(f"tool step {step.id} ({step.step.tool}) {outcome.status}: {detail}")
    used = state.journal.find("approval_used", step.id, request.call_id)
    decision = state.journal.at(used.data["decision_seq"]).data if used is not None else {}
    return outcome.result, {"edited": decision.get("edited_args") is not None, "approved_by": decision.get("by")}


async def run_human_step(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    journal = state.journal
    decision = decision_for(journal, step.id, step.id, "human_step")
    if decision is None:
        value = step.approve.render(state.scope()) if step.approve else None
        schema = step.step.input or step.step.output
        question = step.step.prompt or (f"approve, edit or reject the value of step {step.id}" if step.approve else f"supply the input of step {step.id}")
        raise ask(journal, step.id, step.id, "human_step", question=question, roles=[step.step.human or ""], value=value, schema=schema, mode="approve" if step.approve else "input")
    if decision.data["decision"] == "rejected":
        raise StepRejected(f"step {step.id} was rejected by {decision.data['by']}" + (f": {decision.data['reason']}" if decision.data.get("reason") else ""))
    request = journal.at(decision.data["request_seq"])
    edited = "edited" in decision.data
    return (decision.data["edited"] if edited else request.data["value"]), {"edited": edited, "approved_by": decision.data["by"]}


async def run_check_step(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    argv = step.check.render(state.scope()) if step.check else []
    argv = [a if isinstance(a, str) else as_text(a) for a in argv]
    shown = " ".join(argv)
    if argv[:1] == ["lane"]:  # lane's own commands run on this lane, whatever PATH holds
        argv = [sys.executable, "-P", "-m", "lane", *argv[1:]]
    state.journal.flush()  # a command is an effect: what led to it is on disk first
    cwd = state.project.root / (step.step.cwd or ".")
    timeout = step.step.timeout or 600
    budget = state.meter.time_left(step.id, state.run_limits, Budget())
    cut = budget is not None and budget[0] < timeout  # the run's wall_seconds ends first: it stops the run, not the check
    result = await run_command(argv, cwd=cwd, timeout=max(budget[0], 0.0) if budget is not None and cut else timeout, max_output=65536)
    if result.timed_out and budget is not None and cut:
        raise budget[1]
    output = result.to_json()
    if result.exit_code != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        why = "timed out" if result.timed_out else ("could not start" if result.exit_code is None else f"exited {result.exit_code}")
        raise StepFailed(f"check {step.id} ({shown}) {why}" + (f": {' | '.join(tail)}" if tail else ""))
    return output, {}
