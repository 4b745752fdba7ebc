"""Steps that run another runbook: a child run with its own id, linked both ways.

The parent journals `child_started` (the child's id, runbook and inputs) and
commits it before the child exists, so a crash in between is taken up by the
same child. The child's id is derived from the parent's id, the step and the
feedback loops that ran the step again, so a `lane retry` of the parent takes up
the same child (retried in place: its finished steps and their effects stand)
while a loop starts a new one. The child runs in the same process and event loop,
under its own budgets and its parent's: when it waits for a person the parent
pauses, and resuming the parent takes the child up.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Protocol

from lane.engine.journal import Journal
from lane.engine.state import RunState, StepFailed, StepRejected
from lane.errors import PauseRun, RunNotFound, StopRun, UsageError
from lane.secrets import Redactor
from lane.spec.runbook import StepSpec
from lane.spec.schema import schema_errors
from lane.store.records import FINISHED, RunRecord


async def run_child_step(state: RunState, step: StepSpec) -> Any:
    return await run_child(state, step, step.id)


async def run_child(state: RunState, step: StepSpec, name: str) -> Any:
    """The output of the child run started for `name` (a step, or an item of a for_each), once it completes."""
    journal = state.journal
    started = journal.find("child_started", name)
    fresh = started is None
    if started is None:
        inputs = step.with_.render(state.scope()) if step.with_ is not None else {}
        if not isinstance(inputs, dict):
            raise StepFailed(f"the 'with' of step {name} must give a mapping of the child's inputs, not {type(inputs).__name__}")
        child = hashlib.sha256(f"{state.run_id}/{name}/{journal.loops(name)}".encode()).hexdigest()[:12]
        started = journal.record("child_started", name, run_id=child, runbook=step.step.runbook, inputs=inputs)
        await journal.commit()  # the child's id is on disk before the child exists: a crash takes up the same child
    if state.children is None:
        raise StepFailed(f"step {name} runs a runbook, which needs a lane Project to run it")
    child, runbook = str(started.data["run_id"]), str(started.data["runbook"])
    status, reason, output = await state.children(state, child, runbook, dict(started.data["inputs"]), name, fresh)
    if status == "completed":
        return output
    if status == "paused":
        raise PauseRun(f"child run {child} ({runbook}) is {reason or 'waiting for a person'}")
    if status == "stopped":
        raise StopRun(f"child run {child} ({runbook}) stopped: {reason}")
    failure = StepRejected if status == "rejected" else StepFailed
    raise failure(f"child run {child} ({runbook}) {status}: {reason}")


class Host(Protocol):
    """What runs child runs: a lane Project."""

    spec: Any

    @property
    def store(self) -> Any: ...

    def _journal_for(self, run_id: str, events: list[Any]) -> Journal: ...
    def _new_state(self, run_id: str, book: Any, journal: Journal, inputs: dict[str, Any], parent: RunState) -> RunState: ...
    async def _executing(self, state: RunState) -> tuple[str, str | None]: ...
    def output(self, run_id: str) -> Any: ...


class ChildRunner:
    """Starts, takes up or retries a child run, in this process."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, parent: RunState, child_id: str, runbook: str, inputs: dict[str, Any], step: str,
                       fresh: bool) -> tuple[str, str | None, Any]:
        host, store = self.host, self.host.store
        book = parent.project.runbooks.get(runbook)  # as the parent's version has it
        if book is None:
            raise StepFailed(f"step {step}: there is no runbook {runbook!r} any more")
        try:
            record: RunRecord | None = store.run(child_id)
        except RunNotFound:
            record = None
        if record is not None and record.run_id != child_id:
            record = None  # a prefix of another run's id
        if record is None:
            errors = schema_errors(book.file.inputs, inputs, root="")
            if errors:
                raise StepFailed(f"step {step}: the inputs do not fit runbook {runbook!r}: " + "; ".join(f"inputs.{e}" for e in errors))
            store.create_run(child_id, book.name, book.file.version, Redactor(host.spec.secrets)(inputs), _owner(), parent=(parent.run_id, step))
            journal = host._journal_for(child_id, [])
            journal.record("run_started", runbook=book.name, version=book.file.version, inputs=inputs, parent_id=parent.run_id, parent_step=step)
        else:
            if record.status == "completed":
                return "completed", None, host.output(child_id)
            if record.status in FINISHED and not fresh:
                return record.status, record.reason, None
            if book.file.version != record.version:  # a child started before versions were kept, its runbook changed since
                raise StopRun(f"step {step}: run {record.run_id} is of runbook {runbook} v{record.version}, which this project no "
                              f"longer has; restore it, then `lane resume {parent.run_id}`")
            journal = self._take_up(record, book)
        state = host._new_state(child_id, book, journal, inputs if record is None else record.inputs, parent)
        try:
            status, reason = await host._executing(state)
        except asyncio.CancelledError:  # its parent's group failed (on_error: fail): the child ends with it
            journal.record("run_failed", reason="cancelled: its parent's group failed")
            journal.flush(status="failed", reason="cancelled: its parent's group failed", release=True)
            raise
        ended = journal.find("run_completed") if status == "completed" else None
        return status, reason, ended.data.get("output") if ended is not None else None

    def _take_up(self, record: RunRecord, book: Any) -> Journal:
        """Resume a paused, stopped or interrupted child; retry a failed or rejected one in place (the parent's step
        runs again after `lane retry`): its finished steps stand, the rest run again."""
        from lane.engine import retry

        store, owner = self.host.store, _owner()
        if record.status in FINISHED:
            tools = self.host.spec.tools
            events = store.events(record.run_id)
            plan = retry.plan(record, [s.id for s in book.steps], events, lambda name: name in tools and tools[name].idempotent, None)
            store.claim(record.run_id, owner, check=retry.check_retryable)
            journal = self.host._journal_for(record.run_id, store.events(record.run_id))
            journal.record("run_retried", **plan.to_event(record.status))
            return journal
        store.claim(record.run_id, owner, check=_not_finished)
        journal = self.host._journal_for(record.run_id, store.events(record.run_id))
        journal.record("run_resumed", previous_status=record.status)
        return journal


def _not_finished(run: RunRecord) -> None:
    if run.status in FINISHED:
        raise UsageError(f"run {run.run_id} is {run.status}")


def _owner() -> str:
    import os

    from lane.store.sqlite import process_owner

    return process_owner(os.urandom(4).hex())
