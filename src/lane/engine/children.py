"""Steps that run another runbook: a child run with its own id, linked both ways.

The parent journals `child_started` (the child's id, runbook and inputs) and
commits it before the child exists, so a crash in between is taken up by the
same child id. The child runs in the same process and event loop; when it
waits for a person the parent pauses, and resuming the parent takes the child up.
"""

from __future__ import annotations

from typing import Any

from lane.engine.state import RunState, StepFailed, StepRejected
from lane.errors import PauseRun, StopRun
from lane.spec.runbook import StepSpec


async def run_child_step(state: RunState, step: StepSpec) -> Any:
    return await run_child(state, step, step.id)


async def run_child(state: RunState, step: StepSpec, name: str) -> Any:
    """The output of the child run started for `name` (a step, or an item of a for_each), once it completes."""
    journal = state.journal
    started = journal.find("child_started", name)
    if started is None:
        inputs = step.with_.render(state.scope()) if step.with_ is not None else {}
        if not isinstance(inputs, dict):
            raise StepFailed(f"the 'with' of step {name} must give a mapping of the child's inputs, not {type(inputs).__name__}")
        import os

        started = journal.record("child_started", name, run_id=os.urandom(6).hex(), runbook=step.step.runbook, inputs=inputs)
        await journal.commit()  # the child's id is on disk before the child exists: a crash takes up the same child
    if state.children is None:
        raise StepFailed(f"step {name} runs a runbook, which needs a lane Project to run it")
    child, runbook = str(started.data["run_id"]), str(started.data["runbook"])
    status, reason, output = await state.children(state, child, runbook, dict(started.data["inputs"]), name)
    if status == "completed":
        return output
    if status == "paused":
        raise PauseRun(f"child run {child} ({runbook}) is {reason or 'waiting for a person'}")
    if status == "stopped":
        raise StopRun(f"child run {child} ({runbook}) stopped: {reason}")
    failure = StepRejected if status == "rejected" else StepFailed
    raise failure(f"child run {child} ({runbook}) {status}: {reason}")
