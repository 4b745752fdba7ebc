"""The run loop: each step in order, from wherever the journal stands.

A finished step is never run again: its recorded output is put back in scope.
The loop ends when every step is done, a person is needed (paused), a budget
is reached (stopped) or a step fails (failed); the ending is journaled and
committed with the run's status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lane.engine.agent import AgentStep
from lane.engine.state import RunState, StepFailed, StepRejected
from lane.engine.steps import run_check_step, run_human_step, run_tool_step
from lane.errors import PauseRun, RunError, StopRun
from lane.feedback.kpis import measure
from lane.spec.expressions import ExpressionFailed
from lane.spec.runbook import StepSpec
from lane.store.records import FINISHED

Handler = Callable[[RunState, StepSpec], Awaitable[tuple[Any, dict[str, Any]]]]


async def _agent(state: RunState, step: StepSpec) -> tuple[Any, dict[str, Any]]:
    return await AgentStep(state, step).run(), {}


HANDLERS: dict[str, Handler] = {"agent": _agent, "tool": run_tool_step, "human": run_human_step, "check": run_check_step}
ENDINGS = {"completed": "run_completed", "paused": "run_paused", "stopped": "run_stopped", "failed": "run_failed", "rejected": "run_rejected"}


async def execute(state: RunState) -> tuple[str, str | None]:
    """Run the steps; returns the run's new status and the reason for it."""
    current: StepSpec | None = None
    try:
        for step in state.book.steps:
            current = step
            await run_step(state, step)
    except PauseRun as signal:
        return end(state, "paused", signal.reason)
    except StopRun as signal:
        return end(state, "stopped", signal.reason, key=signal.key, scope=signal.scope)
    except (StepFailed, ExpressionFailed, RunError) as exc:
        reason = str(exc) if isinstance(exc, StepFailed) else f"step {current.id if current else '?'}: {exc}"
        status = "rejected" if isinstance(exc, StepRejected) else "failed"
        if current is not None:
            state.journal.record("step_rejected" if status == "rejected" else "step_failed", current.id, error=reason)
            state.steps[current.id] = {"status": status, "output": None, "error": reason}
        return end(state, status, reason)
    return end(state, "completed", None)


async def run_step(state: RunState, step: StepSpec) -> None:
    journal = state.journal
    finished = journal.find("step_finished", step.id)
    if finished is not None:
        state.steps[step.id] = {"status": "completed", **finished.data}
        return
    if journal.find("step_skipped", step.id) is not None:
        state.steps[step.id] = {"status": "skipped", "output": None}
        return
    if journal.find("step_started", step.id) is None:
        if step.when is not None and not step.when.evaluate(state.scope()):
            journal.record("step_skipped", step.id, reason=f"when: {step.step.when} was false")
            state.steps[step.id] = {"status": "skipped", "output": None}
            return
        state.meter.check_step(state.run_limits)
        journal.record("step_started", step.id, kind=step.kind)
    output, extra = await HANDLERS[step.kind](state, step)
    journal.record("step_finished", step.id, output=output, **extra)
    state.steps[step.id] = {"status": "completed", "output": output, **extra}


def end(state: RunState, status: str, reason: str | None, **extra: Any) -> tuple[str, str | None]:
    seconds = round(state.meter.active_seconds(), 6)
    if state.book.kpis and status in FINISHED:  # paused and stopped runs go on; their KPIs come when they end
        run = {"id": state.run_id, "status": status, "tokens": state.meter.run.tokens, "seconds": round(seconds, 2)}
        values, errors = measure(state.book.kpis, {**state.scope(), "run": run}, [s.id for s in state.book.steps])
        state.journal.record("kpis_recorded", values=values, errors=errors)
    data: dict[str, Any] = {"reason": reason, "active_seconds": seconds, **extra}
    state.journal.record(ENDINGS[status], **data)
    state.journal.flush(status=status, reason=reason, release=True)
    return status, reason
