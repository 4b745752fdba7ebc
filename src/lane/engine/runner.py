"""The run loop: each step of a block in order, from wherever the journal stands.

A block is the runbook's steps, a parallel branch or a for_each item. A
finished step is never run again: its recorded output is put back in scope.
A failed check (or a rejected human step) with `on_fail: {back_to: ...}` sends
the failure back to an earlier agent step and the block goes on from there.
The loop ends when every step is done, a person is needed (paused), a budget
is reached (stopped) or a step fails (failed); the ending is journaled and
committed with the run's status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lane.engine.agent import AgentStep
from lane.engine.feedback import loop_back
from lane.engine.state import Failed, RunState, StepFailed, StepRejected
from lane.engine.steps import run_check_step, run_human_step, run_tool_step
from lane.errors import PauseRun, RunError, StopRun
from lane.feedback.kpis import measure
from lane.spec.expressions import ExpressionFailed
from lane.spec.runbook import StepSpec
from lane.store.records import FINISHED

Handler = Callable[[RunState, StepSpec], Awaitable[tuple[Any, dict[str, Any]]]]


async def _agent(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    from lane.engine.audit import refused_calls

    agent = AgentStep(state, step)
    output = await agent.run()
    # `turns`: where a feedback loop takes its conversation up again; `refused`: what a reviewer reads beside the answer
    return output, {"turns": agent.turn, "refused": refused_calls(state.journal.events, step.id)}


async def _group(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    from lane.engine.flow import run_group

    return await run_group(state, step, run_block), {}


async def _child(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    from lane.engine.children import run_child_step

    return await run_child_step(state, step), {}


HANDLERS: dict[str, Handler] = {"agent": _agent, "tool": run_tool_step, "human": run_human_step, "check": run_check_step,
                                "parallel": _group, "for_each": _group, "runbook": _child}
ENDINGS = {"completed": "run_completed", "paused": "run_paused", "stopped": "run_stopped", "failed": "run_failed", "rejected": "run_rejected"}


async def execute(state: RunState) -> tuple[str, str | None]:
    """Run the steps; returns the run's new status and the reason for it."""
    try:
        await run_block(state, state.book.steps, "")
    except PauseRun as signal:
        return end(state, "paused", signal.reason)
    except StopRun as signal:
        return end(state, "stopped", signal.reason, key=signal.key, scope=signal.scope)
    except Failed as failed:
        return end(state, failed.status, failed.reason)
    try:
        output = run_output(state)
    except ExpressionFailed as exc:
        return end(state, "failed", f"the runbook's output: {exc}")
    return end(state, "completed", None, output=output)


async def run_block(state: RunState, steps: list[StepSpec], prefix: str) -> Any:
    """Run a block's steps (named `prefix` + their id); its output is that of its last step."""
    index = 0
    while index < len(steps):
        step = steps[index].at(prefix)
        try:
            await run_step(state, step)
        except (StepFailed, ExpressionFailed, RunError) as exc:
            if not isinstance(exc, StepFailed) or step.step.on_fail is None:
                raise fail(state, step, exc) from None
            try:
                index = loop_back(state, steps, index, step, exc)  # back to the agent step, or a person is asked
            except StepFailed as final:  # the person ended the loop
                raise fail(state, step, final) from None
            continue
        except Failed as inner:  # a group's step failed inside: the group fails with it
            state.journal.record("step_rejected" if inner.status == "rejected" else "step_failed", step.id, error=inner.reason)
            state.steps[step.step.id] = {"status": inner.status, "output": None, "error": inner.reason}
            raise
        index += 1
    return state.steps[steps[-1].step.id].get("output") if steps else None


def fail(state: RunState, step: StepSpec, exc: Exception) -> Failed:
    """Journal the step's failure; the signal that fails the groups around it and the run."""
    reason = str(exc) if isinstance(exc, StepFailed) else f"step {step.id}: {exc}"
    status = "rejected" if isinstance(exc, StepRejected) else "failed"
    state.journal.record("step_rejected" if status == "rejected" else "step_failed", step.id, error=reason)
    state.steps[step.step.id] = {"status": status, "output": None, "error": reason}
    return Failed(reason, status)


async def run_step(state: RunState, step: StepSpec) -> None:
    journal, local = state.journal, step.step.id
    if step.step.on_fail is not None:  # its failure was sent back: replayed, not run again
        failed = journal.find("step_failed", step.id) or journal.find("step_rejected", step.id)
        if failed is not None:
            failure = StepRejected if failed.type == "step_rejected" else StepFailed
            raise failure(failed.data["error"], feedback=failed.data.get("feedback"))
    finished = journal.find("step_finished", step.id)
    if finished is not None:
        state.steps[local] = {"status": "completed", **finished.data}
        return
    if journal.find("step_skipped", step.id) is not None:
        state.steps[local] = {"status": "skipped", "output": None}
        return
    if journal.find("step_started", step.id) is None:
        if step.when is not None and not step.when.evaluate(state.scope()):
            journal.record("step_skipped", step.id, reason=f"when: {step.step.when} was false")
            state.steps[local] = {"status": "skipped", "output": None}
            return
        state.meter.check_step(state.run_limits)
        journal.record("step_started", step.id, kind=step.kind)
    output, extra = await HANDLERS[step.kind](state, step)
    journal.record("step_finished", step.id, output=output, **extra)
    state.steps[local] = {"status": "completed", "output": output, **extra}


def end(state: RunState, status: str, reason: str | None, **extra: Any) -> tuple[str, str | None]:
    seconds = round(state.meter.active_seconds(), 6)
    if state.book.kpis and status in FINISHED:  # paused and stopped runs go on; their KPIs come when they end
        run = {"id": state.run_id, "status": status, "tokens": state.meter.run.tokens, "seconds": round(seconds, 2)}
        from lane.feedback.outcomes import outcomes_of

        scope = {**state.scope(), "run": run, "outcomes": outcomes_of(state.journal.events)}  # those recorded while it paused
        values, errors = measure(state.book.kpis, scope, [s.id for s in state.book.steps])
        state.journal.record("kpis_recorded", values=values, errors=errors)
    data: dict[str, Any] = {"reason": reason, "active_seconds": seconds, **extra}
    state.journal.record(ENDINGS[status], **data)
    state.journal.flush(status=status, reason=reason, release=True)
    return status, reason


def run_output(state: RunState) -> Any:
    """The run's output: its runbook's `output:` value, else the output of its last step that ran."""
    if state.book.output is not None:
        return state.book.output.render(state.scope())
    for step in reversed(state.book.steps):
        result = state.steps.get(step.step.id)
        if result is not None and result.get("status") == "completed":
            return result.get("output")
    return None
