"""The two ends of a job: what a `lane` process sends to a run's workflow, and what a worker does with it.

`send` runs where the run was asked for (`lane run`, `lane resume`, `lane serve`): it hands the job to
the workflow and waits, showing the run's events as the workers commit them. `run_here` runs on a
worker, as the stretch's activity: it claims the run and executes it with lane's own engine, or, tried
again after a worker died, carries it on from its journal or says where an earlier try left it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lane.engine.journal import Journal
from lane.errors import RunNotFound, UsageError
from lane.secrets import Redactor

if TYPE_CHECKING:
    from lane.project import OnEvent, Project, Run
    from lane.store.records import Event


async def send(project: Project, run_id: str, job: dict[str, Any], on_event: OnEvent | None) -> Run:
    """Send `job` to the run's workflow; the run as the stretch that ran it left it."""
    from lane.backends.temporal.client import ready, submit
    from lane.project import Run, _guarded

    try:
        client = await ready(project.temporal)
    except UsageError as exc:
        if job["kind"] == "start":
            _not_run(project, run_id, f"not sent to Temporal: {exc}")
            raise UsageError(f"{exc} (run {run_id} is recorded as failed: `lane retry {run_id}` sends it again)") from None
        raise
    store = project.store
    events = store.events(run_id)
    seen = events[-1].seq if events else 0
    tail = None
    report = _guarded(on_event)
    if report is not None:
        shown = [0 if job["kind"] == "start" else seen]

        def tail() -> None:
            for event in store.events(run_id, after=shown[0]):  # only what is new since the last look
                report(event)
                shown[0] = event.seq

    try:
        status = await submit(client, project.temporal, run_id, {**job, "seen": seen, "project": project.spec.config.project}, tail)
    except UsageError as exc:
        if job["kind"] == "start":  # refused by the worker (another project's, another store): not left `running`
            _not_run(project, run_id, f"not run: {exc}")
        raise
    record = store.run(run_id)
    return Run(project, run_id, status, record.reason if record.status == status else None)  # the reason stays in the store


def _not_run(project: Project, run_id: str, why: str) -> None:
    """End a run that no worker took as failed (never left `running` with nobody to run it); `lane retry` sends it again."""
    record = project.store.run(run_id)
    if record.status == "running" and record.owner is None:
        Journal(project.store, run_id, project.store.events(run_id), Redactor(project.spec.secrets)).fail(why)


async def run_here(project: Project, job: dict[str, Any], *, retried: bool) -> tuple[str, int]:
    """Run one job of a run's workflow in this worker: the run's status after it, and the last seq of its journal."""
    from lane.engine.budgets import parse_overrides
    from lane.project import _check_resumable

    name = project.spec.config.project
    if job.get("project", name) != name:
        raise UsageError(f"task queue {project.temporal.task_queue!r} is served by the workers of project {name!r}, "
                         f"not {job.get('project')!r}: give each project its own temporal.task_queue")
    store = project.store
    try:
        record = store.run(str(job["run_id"]))
    except RunNotFound:
        raise UsageError(f"the worker's store has no run {job['run_id']}: the workers must use the store the "
                         "project's lane.yaml names, as every process that starts runs does") from None
    kind, taken_over = job["kind"], False
    if retried:
        events = store.events(record.run_id)
        if events and events[-1].seq > int(job.get("seen", 0)):  # an earlier try got somewhere
            if record.status != "running":
                return record.status, events[-1].seq
            kind = "resume"  # it died on the way: carry on from its journal, as `lane resume` does
        elif kind == "retry" and record.status == "running" and events and events[-1].type in ("run_failed", "run_rejected"):
            taken_over = True  # an earlier try claimed the run for the retry and died before committing anything
            record = replace(record, status=events[-1].type.removeprefix("run_"))
    last = [0]  # the seq of the last event this stretch recorded: what its outcome says it saw, with no read

    def seen(event: Event) -> None:
        last[0] = event.seq

    if kind == "start":
        run = await project._start_here(record, on_event=seen)
    elif kind == "retry":
        run = await project._retry_here(record, job.get("from_step"), seen, taken_over=taken_over)
    else:
        try:
            overrides = parse_overrides(job.get("budget") or {})
        except ValueError as exc:
            raise UsageError(f"--budget: {exc}") from None
        _check_resumable(record)
        run = await project._resume_here(record, overrides, seen)
    return run.status, last[0]
