"""Tool, human and check steps. (Agent steps live in agent.py.)"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from lane.engine.approvals import ask, decision_for
from lane.engine.calls import CallOutcome, CallRequest, call_tool
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
    attempt = 1
    while True:
        request = CallRequest(step, f"{step.id}:{attempt}", step.step.tool or "", args, level, (), state.approver_roles(step), Budget(),
                              rulesets=(("lane.yaml", state.project.rules),))
        outcome = await call_tool(state, request)
        if not await _retries(state, step, request, outcome, attempt):
            break
        attempt += 1
    if outcome.status != "ok":
        result = outcome.result if isinstance(outcome.result, dict) else {"error": outcome.result}
        detail = result.get("reason") or result.get("error") or result.get("note")
        failure = StepRejected if outcome.status == "rejected" else StepFailed
        said = f"the person who reviewed it said: {detail}" if outcome.status == "rejected" else f"{outcome.status}: {detail}"
        raise failure(f"tool step {step.id} ({step.step.tool}) {outcome.status}: {detail}", feedback=said)
    used = state.journal.find("approval_used", step.id, request.call_id)
    decision = state.journal.at(used.data["decision_seq"]).data if used is not None else {}
    return outcome.result, {"edited": decision.get("edited_args") is not None, "approved_by": decision.get("by")}


async def _retries(state: RunState, step: StepSpec, request: CallRequest, outcome: CallOutcome, attempt: int) -> bool:
    """Whether a tool step's failed call is made again under its `retry:` policy. A tool that is not
    idempotent is retried only with a person's approval, unless the policy says `unsafe: true`."""
    policy = step.step.retry
    if policy is None or outcome.status != "error" or attempt >= policy.attempts:
        return False
    journal = state.journal
    finished = journal.find("tool_finished", step.id, request.call_id)
    if finished is None:
        return False  # refused or invalid before it ran: the same call would be again
    kind = "timeout" if finished.data.get("effect_unknown") else "error"
    if kind not in policy.on:
        return False
    tool = state.project.tools.get(request.tool)
    if not (tool is not None and tool.idempotent) and not policy.unsafe:
        ref = f"{step.id}:{attempt + 1}"
        decision = decision_for(journal, step.id, ref, "retry")
        if decision is None:
            raise ask(journal, step.id, ref, "retry", roles=state.approver_roles(step), tool=request.tool, args=request.args,
                      error=finished.data.get("error"), attempts=attempt + 1,
                      question=f"{request.tool} failed ({finished.data.get('error')}) and is not idempotent; approve to call it again "
                               f"(attempt {attempt + 1} of {policy.attempts}), or reject to fail the step")
        if decision.data["decision"] == "rejected":
            why = f": {decision.data['reason']}" if decision.data.get("reason") else ""
            raise StepFailed(f"tool step {step.id} ({request.tool}) error: {finished.data.get('error')}; "
                             f"{decision.data['by']} chose not to call it again{why}")
    if journal.find("tool_call_requested", step.id, f"{step.id}:{attempt + 1}") is None:  # not waited for again on resume
        await asyncio.sleep(policy.delay * policy.backoff ** (attempt - 1))
    return True


async def run_human_step(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    journal = state.journal
    decision = decision_for(journal, step.id, step.id, "human_step")
    if decision is None:
        value = step.approve.render(state.scope()) if step.approve else None
        schema = step.step.input or step.step.output
        question = step.step.prompt or (f"approve, edit or reject the value of step {step.id}" if step.approve else f"supply the input of step {step.id}")
        raise ask(journal, step.id, step.id, "human_step", question=question, roles=[step.step.human or ""], value=value, schema=schema, mode="approve" if step.approve else "input")
    if decision.data["decision"] == "rejected":
        reason = decision.data.get("reason")
        raise StepRejected(f"step {step.id} was rejected by {decision.data['by']}" + (f": {reason}" if reason else ""),
                           feedback=f"{decision.data['by']} said: {reason}" if reason else None)
    request = journal.at(decision.data["request_seq"])
    edited = "edited" in decision.data
    return (decision.data["edited"] if edited else request.data["value"]), {"edited": edited, "approved_by": decision.data["by"]}


async def run_check_step(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    argv = step.check.render(state.scope()) if step.check else []
    argv = [a if isinstance(a, str) else as_text(a) for a in argv]
    shown = " ".join(argv)
    if argv[:1] == ["lane"]:  # lane's own commands run on this lane, whatever PATH holds
        argv = [sys.executable, "-P", "-m", "lane", *argv[1:]]
    await state.journal.commit()  # a command is an effect: what led to it is on disk first
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
        output_tail = "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-40:])[-4000:]
        raise StepFailed(f"check {step.id} ({shown}) {why}" + (f": {' | '.join(tail)}" if tail else ""), feedback=output_tail or None)
    return output, {}
