"""The Python API: the same operations as the CLI.

    project = lane.Project.load("path/to/project")
    run = project.run("support-triage", inputs={"email": {...}})
    if run.status == "paused":
        run.approve(as_role="support-lead")
        run = run.resume()
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic_core import PydanticSerializationError, to_jsonable_python

from lane.engine.approvals import Pending, open_requests
from lane.engine.audit import audit
from lane.engine.budgets import parse_overrides
from lane.engine.decisions import UNSET, Decision, decide
from lane.engine.journal import GroupCommit, Journal
from lane.engine.state import ModelCache
from lane.engine.timeline import timeline
from lane.errors import Problem, ProjectInvalid, RunBusy, StoreUnavailable, UsageError
from lane.secrets import Redactor
from lane.spec.project import ProjectSpec, load_project
from lane.spec.runbook import RunbookSpec
from lane.spec.schema import schema_errors
from lane.store.records import FINISHED, Event, ReleaseMoved, RunRecord, now
from lane.store.sqlite import process_owner
from lane.store.url import Store, open_store
from lane.store.values import checked, encode, storable, too_deep

if TYPE_CHECKING:
    from lane.models.base import Model

OnEvent = Callable[[Event], None]
OnStream = Callable[[str], None]
T = TypeVar("T")
_MODELS: dict[tuple[object, ...], Model] = {}  # models load once per process, shared by every project and run


@dataclass(frozen=True)
class Run:
    """A handle on one run, as it stood when this handle was made."""

    project: Project
    run_id: str
    status: str
    reason: str | None

    @property
    def pending(self) -> list[Pending]:
        """What the run waits for, oldest first (empty unless it is paused)."""
        return self.project.pending(self.run_id)

    @property
    def output(self) -> Any:
        """The output of the run's last step that ran, once the run completed; None before."""
        return self.project.output(self.run_id)

    def approve(self, call_id: str | None = None, *, as_role: str | None = None, edit: Any = UNSET, patch: Any = UNSET,
                result: Any = UNSET, automatic: str | None = None) -> Decision:
        return self.project.approve(self.run_id, call_id, as_role=as_role, edit=edit, patch=patch, result=result, automatic=automatic)

    def reject(self, call_id: str | None = None, *, reason: str, as_role: str | None = None) -> Decision:
        return self.project.reject(self.run_id, call_id, as_role=as_role, reason=reason)

    def resume(self, *, budget: dict[str, Any] | None = None, on_event: OnEvent | None = None, on_stream: OnStream | None = None) -> Run:
        return self.project.resume(self.run_id, budget=budget, on_event=on_event, on_stream=on_stream)

    def retry(self, *, from_step: str | None = None, on_event: OnEvent | None = None, on_stream: OnStream | None = None) -> Run:
        return self.project.retry(self.run_id, from_step=from_step, on_event=on_event, on_stream=on_stream)

    async def resume_async(self, *, budget: dict[str, Any] | None = None, on_event: OnEvent | None = None,
                           on_stream: OnStream | None = None) -> Run:
        return await self.project.resume_async(self.run_id, budget=budget, on_event=on_event, on_stream=on_stream)

    async def retry_async(self, *, from_step: str | None = None, on_event: OnEvent | None = None,
                          on_stream: OnStream | None = None) -> Run:
        return await self.project.retry_async(self.run_id, from_step=from_step, on_event=on_event, on_stream=on_stream)

    def show(self) -> dict[str, Any]:
        return self.project.show(self.run_id)


def _guarded(callback: Callable[[T], None] | None) -> Callable[[T], None] | None:
    """The callback, made unable to fail the run: a display's problem is not the run's."""
    if callback is None:
        return None
    report = callback

    def guarded(item: T) -> None:
        try:
            report(item)
        except Exception:  # noqa: S110, BLE001
            pass

    return guarded


def _journal(store: Store, run_id: str, events: list[Event], on_event: OnEvent | None, redact: Redactor,
             group: GroupCommit | None = None) -> Journal:
    """The run's journal, reporting each new event to `on_event`."""
    journal = Journal(store, run_id, events, redact, group)
    report = _guarded(on_event)
    if report is not None:
        journal.listeners.append(report)
    return journal


def _token(size: int) -> str:
    """Random hex of `size` bytes: run ids and process claims (os.urandom, as `secrets` uses)."""
    return os.urandom(size).hex()


def _blocking(work: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(work)


def _no_running_loop(call: str) -> None:
    """The blocking calls start their own event loop: inside one (a notebook, an async service) say what to call instead."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(f"Project.{call}() cannot run inside a running event loop (a notebook, an async service); "
                     f"use `await project.{call}_async(...)`")


def _check_resumable(run: RunRecord) -> None:
    if run.status in FINISHED:
        again = "; `lane retry` runs it again from where it ended" if run.status != "completed" else ""
        raise UsageError(f"run {run.run_id} is {run.status}; only paused, stopped or interrupted runs resume{again}")


def _still_ended(run: RunRecord) -> None:
    """A claim by a retry that takes over a dead worker's: the run is `running` under that worker, nothing more."""
    if run.status != "running":
        raise UsageError(f"run {run.run_id} is {run.status}: another process carried it on")


def _scopes(journal: Journal, overrides: dict[str, float]) -> dict[str, str]:
    """A raised budget applies where that budget stopped the run (a step), else to the whole run."""
    # how it ended: the event before run_resumed, past any outcome recorded while it waited
    ending = next((e for e in reversed(journal.events[:-1]) if e.type != "outcome_recorded"), None)
    if ending is None or ending.type != "run_stopped":
        return {}
    return {key: ending.data.get("scope", "run") for key in overrides if ending.data.get("key") == key}


def new_run_id() -> str:
    return _token(6)


def token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _child_status(steps: list[dict[str, Any]], status: dict[str, str]) -> None:
    """Each step that ran a child run says how the child stands now."""
    for step in steps:
        if "child" in step:
            step["child"]["status"] = status.get(step["child"]["run_id"], "not started")
        _child_status([*step.get("items", ()), *step.get("branches", {}).values(), *step.get("steps", ())], status)


class Project:
    def __init__(self, spec: ProjectSpec, *, models: dict[str, Model] | None = None, store: Store | None = None) -> None:
        self.spec = spec
        self.root = spec.root
        self._store: Store | None = None
        self._shared: GroupCommit
        self._own_store = store is not None
        if store is not None:  # another store than lane.yaml's (`lane test` runs each fixture in one of its own)
            self._store, self._shared = store, GroupCommit(store)
        self._models = ModelCache(shared=_MODELS, provided=dict(models or {}))
        from lane.engine.children import ChildRunner

        self._children = ChildRunner(self)
        self._snapshots: dict[str, Any] = {}  # runbook -> its version as this project has it (feedback.versions.Snapshot)
        self._kept: dict[str, str] = {}  # runbook -> the digest of that version, once kept in the store
        self._versions: dict[str, ProjectSpec] = {}  # digest -> the project as that kept version has it
        from lane.feedback.releasing import Releases

        self._releases = Releases(self)
        self._tracing: Any = None  # the commit observer that exports traces (False: none), made at the first run
        self._here = False  # True in `lane worker`: runs execute in this process whatever lane.yaml's engine

    @classmethod
    def load(cls, path: str | Path = ".", *, models: dict[str, Model] | None = None) -> Project:
        """Load and check the project; raises ProjectInvalid listing every problem.

        `models` serves model ids with objects you give, such as a
        `lane.testing.ScriptedModel` built in a test: `{"scripted:attack.yaml": ScriptedModel([...])}`.
        """
        return cls(load_project(Path(path), provided_models=frozenset(models or ())), models=models)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.spec.config.store, self.root)
            self._shared = GroupCommit(self._store)
        return self._store

    @property
    def _group(self) -> GroupCommit:
        """Commits shared by the runs this project executes at once (`asyncio.gather` of `run_async`, child runs)."""
        self.store  # noqa: B018 - opened with its group
        return self._shared

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------

    def run(self, runbook: str, inputs: dict[str, Any] | None = None, *, on_event: OnEvent | None = None, on_stream: OnStream | None = None) -> Run:
        """Start a run and execute it until it completes, pauses, stops or fails.

        `on_event` is called with each journal event as it is recorded, and `on_stream` with
        each piece of a model's reply as it arrives (for progress displays).
        """
        _no_running_loop("run")
        return _blocking(self.run_async(runbook, inputs, on_event=on_event, on_stream=on_stream))

    async def run_async(self, runbook: str, inputs: dict[str, Any] | None = None, *, on_event: OnEvent | None = None,
                        on_stream: OnStream | None = None) -> Run:
        run_id, execution = self.start(runbook, inputs, on_event=on_event, on_stream=on_stream)
        return await execution

    def start(self, runbook: str, inputs: dict[str, Any] | None = None, *, on_event: OnEvent | None = None,
              on_stream: OnStream | None = None, run_id: str | None = None) -> tuple[str, Coroutine[Any, Any, Run]]:
        """Check the inputs and record a new run (committed, owned by this process); its id, and the coroutine that
        executes it (await it, or hand it to a task: `lane serve` answers with the id before the run ends)."""
        book = self.spec.runbooks.get(runbook)
        self._tracer()  # a telemetry: that cannot work says so before the run exists
        if self._on_temporal:
            import importlib.util

            if importlib.util.find_spec("temporalio") is None:
                raise UsageError("lane.yaml says engine: temporal, which needs its extra: pip install 'lane[temporal]'")
        if book is None:
            names = ", ".join(sorted(self.spec.runbooks)) or "none"
            raise UsageError(f"no runbook {runbook!r} in {self.root}/runbooks (runbooks: {names})")
        if too_deep(inputs):
            raise UsageError(f"the inputs of runbook {runbook!r} nest deeper than 100 levels; lane takes at most 100")
        try:
            inputs = to_jsonable_python(storable(dict(inputs or {}), numbers=False))  # YAML dates become ISO text; stray bytes escaped
        except (PydanticSerializationError, UnicodeError) as exc:
            raise UsageError(f"the inputs of runbook {runbook!r} must be JSON data: {str(exc).splitlines()[0]}") from None
        inputs, unfit = checked(inputs, "inputs")
        if unfit is not None:
            raise UsageError(f"the inputs of runbook {runbook!r} must be JSON data: {unfit}")
        run_id = run_id or new_run_id()
        file_book, owner, redact = book, process_owner(_token(4)), Redactor(self.spec.secrets)
        stored = redact(inputs)  # what the store keeps, and the run executes on
        for _ in range(20):  # a release may route it; if the release changed before the run is written, route again
            spec, book, kept, routing, seq = self._releases.route(file_book, inputs, run_id)
            errors = schema_errors(book.file.inputs, inputs, root="")
            if errors:
                lines = [f"inputs.{e}".replace("inputs.:", "inputs:") for e in errors]
                version = f" v{book.file.version}" if routing else ""
                raise UsageError(f"the inputs do not fit runbook {runbook!r}{version}:\n" + "\n".join(lines))
            routed: dict[str, Any] = {"routing": routing} if routing else {}
            started = Event(1, "run_started", None, None, now(), redact({"runbook": book.name, "version": book.file.version, "inputs": inputs, **routed}))
            try:  # with where it went, and only if the release journal is still as the routing read it
                self.store.create_run(run_id, book.name, book.file.version, stored, owner, snapshot=kept, first=started, routed_at=seq)
                break
            except ReleaseMoved:
                continue
        else:
            raise UsageError(f"the release of runbook {runbook} keeps changing under this start; start the run again")
        if self._on_temporal:  # a worker claims it: this process only waits
            self.store.release(run_id, owner)
            return run_id, self._submit(run_id, {"kind": "start"}, on_event)
        journal = self._observed(_journal(self.store, run_id, [started], on_event, redact, self._group))
        for listener in journal.listeners:
            listener(started)
        return run_id, self._execute(run_id, book, journal, owner, on_stream, spec, json.loads(encode(stored)), released=seq is not None)

    def resume(self, run_id: str, *, budget: dict[str, Any] | None = None, on_event: OnEvent | None = None,
               on_stream: OnStream | None = None) -> Run:
        """Continue a paused, stopped or interrupted run; `budget` raises the limit that stopped it (`{"tool_calls": 80}`)."""
        _no_running_loop("resume")
        return _blocking(self.resume_async(run_id, budget=budget, on_event=on_event, on_stream=on_stream))

    async def resume_async(self, run_id: str, *, budget: dict[str, Any] | None = None, on_event: OnEvent | None = None,
                           on_stream: OnStream | None = None) -> Run:
        try:
            overrides = parse_overrides(budget or {})
        except ValueError as exc:
            raise UsageError(f"--budget: {exc}") from None
        record = self._root(self.store.run(run_id))  # a child run goes on inside its parent
        _check_resumable(record)
        if self._on_temporal:
            return await self._submit(record.run_id, {"kind": "resume", "budget": dict(budget or {})}, on_event)
        return await self._resume_here(record, overrides, on_event, on_stream)

    async def _resume_here(self, record: RunRecord, overrides: dict[str, float], on_event: OnEvent | None = None,
                           on_stream: OnStream | None = None) -> Run:
        self._tracer()  # before the claim: a telemetry: that cannot work leaves the run as it was
        spec, book = self._version_of(record)
        owner = process_owner(_token(4))
        self.store.claim(record.run_id, owner, check=_check_resumable)  # not finished meanwhile by another process
        journal = self._observed(_journal(self.store, record.run_id, self.store.events(record.run_id), on_event, Redactor(self.spec.secrets), self._group))
        journal.record("run_resumed", previous_status=record.status)
        if overrides:
            journal.record("budget_raised", limits=overrides, scopes=_scopes(journal, overrides))
        return await self._execute(record.run_id, book, journal, owner, on_stream, spec)

    def retry(self, run_id: str, *, from_step: str | None = None, on_event: OnEvent | None = None, on_stream: OnStream | None = None) -> Run:
        """Run a failed or rejected run again from the step where it ended, or from an earlier step `from_step`.

        Journaled as a new attempt: the steps from there on run afresh (their earlier attempt stays in the journal)."""
        _no_running_loop("retry")
        return _blocking(self.retry_async(run_id, from_step=from_step, on_event=on_event, on_stream=on_stream))

    async def retry_async(self, run_id: str, *, from_step: str | None = None, on_event: OnEvent | None = None,
                          on_stream: OnStream | None = None) -> Run:
        from lane.engine import retry

        record = self.store.run(run_id)
        retry.check_retryable(record)
        if self._on_temporal:
            self._retry_plan(record, from_step)  # a step that cannot be retried is said here, before anything is sent
            return await self._submit(record.run_id, {"kind": "retry", "from_step": from_step}, on_event)
        return await self._retry_here(record, from_step, on_event, on_stream)

    def _retry_plan(self, record: RunRecord, from_step: str | None) -> Any:
        from lane.engine import retry

        spec, book = self._version_of(record)
        tools = spec.tools
        return retry.plan(record, [s.id for s in book.steps], self.store.events(record.run_id),
                          lambda name: name in tools and tools[name].idempotent, from_step)

    async def _retry_here(self, record: RunRecord, from_step: str | None, on_event: OnEvent | None = None,
                          on_stream: OnStream | None = None, *, taken_over: bool = False) -> Run:
        """`taken_over`: a worker that claimed the run for this retry died before it committed anything; the run is
        `running` under its dead owner, its journal still ends failed or rejected."""
        from lane.engine import retry

        self._tracer()
        spec, book = self._version_of(record)
        plan = self._retry_plan(record, from_step)
        owner = process_owner(_token(4))
        check = _still_ended if taken_over else retry.check_retryable  # still failed or rejected: no other retry slipped in
        self.store.claim(record.run_id, owner, check=check)
        journal = self._observed(_journal(self.store, record.run_id, self.store.events(record.run_id), on_event, Redactor(self.spec.secrets), self._group))
        journal.record("run_retried", **plan.to_event(record.status))
        return await self._execute(record.run_id, book, journal, owner, on_stream, spec)

    # -- engine: temporal -----------------------------------------------------

    @property
    def temporal(self) -> Any:
        """lane.yaml's `temporal:` (its defaults when absent): where `engine: temporal` sends runs."""
        from lane.spec.files import TemporalConfig

        config = self.spec.config.temporal or TemporalConfig()
        return config if config.task_queue else config.model_copy(update={"task_queue": f"lane-{self.spec.config.project}"})

    @property
    def _on_temporal(self) -> bool:
        """Whether runs go to Temporal's workers. A worker's own Project executes them here, and so does one given
        models or a store of its own (`lane test`, a test's scripted model): the workers have neither."""
        return self.spec.config.engine == "temporal" and not (self._here or self._own_store or self._models.provided)

    def _executing_here(self) -> Project:
        """Make this Project execute runs in this process whatever lane.yaml's engine: a worker's."""
        self._here = True
        return self

    async def _submit(self, run_id: str, job: dict[str, Any], on_event: OnEvent | None) -> Run:
        """Send a job (start, resume, retry) to the run's workflow; the run as the stretch that ran it left it."""
        from lane.backends.temporal.jobs import send

        return await send(self, run_id, job, on_event)

    async def _stretch(self, job: dict[str, Any], *, retried: bool) -> tuple[str, int]:
        """Run one job of a run's workflow here (a worker's activity): the run's status after it, and its last seq."""
        from lane.backends.temporal.jobs import run_here

        return await run_here(self, job, retried=retried)

    async def _start_here(self, record: RunRecord, on_event: OnEvent | None = None) -> Run:
        """The first stretch of a run `start` recorded for a worker."""
        self._tracer()
        spec, book = self._version_of(record)
        owner = process_owner(_token(4))
        self.store.claim(record.run_id, owner, check=_check_resumable)
        journal = self._observed(_journal(self.store, record.run_id, self.store.events(record.run_id), on_event, Redactor(self.spec.secrets), self._group))
        return await self._execute(record.run_id, book, journal, owner, None, spec)

    def _root(self, record: RunRecord) -> RunRecord:
        """The run to resume for `record`: a child run that its parent still waits for is resumed by resuming the parent."""
        while record.parent_id is not None:
            parent = self.store.run(record.parent_id)
            if parent.status in FINISHED:
                break
            record = parent
        return record

    def _journal_for(self, run_id: str, events: list[Event]) -> Journal:
        """A child run's journal (shares commits with the runs of this project)."""
        return self._observed(Journal(self.store, run_id, events, Redactor(self.spec.secrets), self._group))

    def _observed(self, journal: Journal) -> Journal:
        """The journal, its commits traced when the project has telemetry (`telemetry:` or OTEL_EXPORTER_OTLP_ENDPOINT)."""
        tracing = self._tracer()
        if tracing:  # told what the journal held before too: the run's first event, decisions, another process's events
            journal.committed.append(lambda run_id, events, status: tracing(run_id, events, status, earlier=journal.events))
        return journal

    def _tracer(self) -> Any:
        """The observer that exports this project's traces (False: none); a `telemetry:` that cannot work is a
        UsageError, raised before a run is created or claimed so that none is left behind."""
        if self._tracing is None:
            from lane.telemetry import observer

            self._tracing = observer(self.spec) or False
        return self._tracing

    def _new_state(self, run_id: str, book: RunbookSpec, journal: Journal, inputs: dict[str, Any], parent: Any) -> Any:
        """A child run's state: the parent's tools (MCP servers start once), and the parent's budgets over its own."""
        from lane.engine.state import RunState

        state = RunState(run_id, parent.project, book, journal, inputs, self._models, on_stream=parent.on_stream)
        state.toolbox, state.children = parent.toolbox, self._children
        state.meter.under(parent.meter, parent.run_limits)
        return state

    async def _executing(self, state: Any) -> tuple[str, str | None]:
        """Execute a run's steps, counted among the runs of this project that share commits."""
        from lane.engine.runner import execute

        self._group.active += 1
        try:
            return await execute(state)
        finally:
            self._group.active -= 1

    def _spent_by_children(self, run_id: str) -> list[Event]:
        """The events of every run started under `run_id`, at any depth: a parent's budgets count what they spent."""
        found: list[Event] = []
        for child in self.store.children(run_id):
            found += self.store.events(child.run_id)
            found += self._spent_by_children(child.run_id)
        return found

    def _snapshot(self, book: RunbookSpec) -> Any:
        """The version of `book` this project has (its files read once per project)."""
        from lane.feedback.versions import snapshot

        found = self._snapshots.get(book.name)
        if found is None:
            found = self._snapshots[book.name] = snapshot(self.spec, book)
        return found

    def _keep(self, book: RunbookSpec) -> str:
        """Keep the version of `book` this project has (once per project), and its digest. A version that has runs
        is immutable: other files under the same number are refused, naming what changed."""
        kept = self._kept.get(book.name)
        if kept is None:
            from lane.feedback.versions import conflicts

            version = self._snapshot(book)
            changed = conflicts(self.store, version)
            if changed:
                raise UsageError(f"runbook {book.name} v{book.file.version} has runs, and its files changed since ({'; '.join(changed)}): "
                                 f"a version with runs is kept as it was; raise `version:` in {book.source.path}")
            manifest = version.manifest
            texts = {manifest["files"][path]: text for path, text in version.files.items()}
            self.store.keep_snapshot(version.digest, book.name, book.file.version, manifest, texts)
            kept = self._kept[book.name] = version.digest
        return kept

    def _version_of(self, record: RunRecord) -> tuple[ProjectSpec, RunbookSpec]:
        """The project and runbook a run executes on: its own kept version, whatever the files say now."""
        book = self.spec.runbooks.get(record.runbook)
        current = book is not None and book.file.version == record.version
        if record.snapshot is None:  # a run from before versions were kept: only the files as they are
            if book is None or not current:
                raise UsageError(f"run {record.run_id} is of runbook {record.runbook} v{record.version}, which this project no longer has")
            return self.spec, book
        if book is not None and current and self._digest_or_none(book) == record.snapshot:
            return self.spec, book
        spec = self._kept_spec(record.snapshot, f"run {record.run_id}: its version (runbook {record.runbook} v{record.version})")
        return spec, spec.runbooks[record.runbook]

    def _digest_or_none(self, book: RunbookSpec) -> str | None:
        try:
            return str(self._snapshot(book).digest)
        except UsageError:  # a file of the version as it is now is missing: the run's kept one is used
            return None

    def _book_or_none(self, record: RunRecord) -> RunbookSpec | None:
        """The runbook as the run's version has it, if it can still be read (to show a run, not to execute it)."""
        try:
            return self._version_of(record)[1]
        except UsageError:
            return None

    def _kept_spec(self, digest: str, what: str) -> ProjectSpec:
        """The project as the kept version `digest` has it (loaded once); `what` names it in errors ("run X: ...")."""
        from lane.spec.project import load_version

        spec = self._versions.get(digest)
        if spec is not None:
            return spec
        manifest = self.store.snapshot(digest)
        if manifest is None:
            raise UsageError(f"{what} is not in the store")
        files = {path: self.store.blob(key) for path, key in manifest["files"].items()}
        missing = [path for path, text in files.items() if text is None]
        if missing:
            raise UsageError(f"{what}: the store lacks its files {', '.join(missing)}")
        try:
            spec = load_version(self.spec, {path: text for path, text in files.items() if text is not None})
        except ProjectInvalid as exc:
            raise UsageError(f"{what} no longer loads with this lane.yaml and tools: {exc.problems[0]}") from None
        self._versions[digest] = spec
        return spec

    async def _execute(self, run_id: str, book: RunbookSpec, journal: Journal, owner: str, on_stream: OnStream | None,
                       spec: ProjectSpec | None = None, inputs: dict[str, Any] | None = None, *, released: bool = True) -> Run:
        """Execute the run here. `inputs`: its inputs as stored, when the caller has them (else they are read);
        `released`: False for a run routed when its runbook had never had a release. A release's guards count the
        runs started after it opened (Releases.figures), so this run's end moves none (but in the instant between
        routing and recording it, when the next run's end checks them), and the release log is not read again."""
        import asyncio  # the engine loads when a run first executes, not with the project

        from lane.engine.state import RunState

        shown = _guarded(on_stream)
        if shown is not None:  # a reply streamed to a terminal is shown, so it is scrubbed too (a secret split across pieces is not caught)
            show, redact = shown, Redactor(self.spec.secrets).text
            shown = lambda piece: show(redact(piece))  # noqa: E731
        inputs = self.store.run(run_id).inputs if inputs is None else inputs
        state = RunState(run_id, spec or self.spec, book, journal, inputs, self._models, on_stream=shown)
        state.children = self._children
        if any(s.step.runbook is not None for s in book.walk()):  # only a runbook that starts child runs has their spending to count
            state.meter.count_children(self._spent_by_children(run_id))
        try:
            status, reason = await self._executing(state)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.store.release(run_id, owner)  # interrupted, not failed: `lane resume` continues it
            raise
        except StoreUnavailable:  # nothing more can be written: the run stays as committed, `lane resume` carries it on
            self.store.forget(run_id)  # (in `lane serve` and `lane mcp` too, without a restart)
            raise
        except RunBusy:  # another process took the run over (this one lost the store a while): it writes nothing more
            raise
        except Exception as exc:  # a defect of lane's own: the run ends failed, with the reason and where
            reason = f"internal error: {type(exc).__name__}: {exc}"
            import traceback

            journal.fail(reason, traceback="".join(traceback.format_exception(exc)[-6:]))
            return Run(self, run_id, "failed", journal.redact(reason))
        except BaseException as exc:
            journal.fail(f"internal error: {type(exc).__name__}: {exc}")
            raise
        finally:
            with contextlib.suppress(Exception):
                await state.toolbox.aclose()
            with contextlib.suppress(Exception):
                await self._models.aclose()
        if status in FINISHED and released:
            self._releases.after_run(book.name)  # an open release's rollback_when and promote_when, checked after each run
        return Run(self, run_id, status, journal.redact(reason))  # what is shown is what is stored: no secret

    # -- people ---------------------------------------------------------------

    def create_token(self, person: str) -> str:
        """A new sign-in token for `person` (one of lane.yaml's `people:`), returned once: only its hash is kept."""
        if person not in self.spec.config.people:
            known = ", ".join(sorted(self.spec.config.people)) or "none; add them under people: in lane.yaml"
            raise UsageError(f"{person!r} is not one of the people in lane.yaml (people: {known})")
        token = f"lane_{_token(24)}"
        self.store.add_token(token_hash(token), person)
        return token

    def person_of(self, token: str) -> str | None:
        """The person a sign-in token belongs to, if it is one this project issued to someone lane.yaml's `people:`
        still names (taking a person out of `people:` signs them out)."""
        person = self.store.person_of(token_hash(token)) if token else None
        return person if person in self.spec.config.people else None

    def approve(self, run_id: str, call_id: str | None = None, *, as_role: str | None = None, edit: Any = UNSET, patch: Any = UNSET,
                result: Any = UNSET, automatic: str | None = None, person: str | None = None) -> Decision:
        """Approve what a paused run waits for: `call_id` (as `pending` lists it; needed when several wait), deciding as `as_role`.

        `edit` replaces the call's arguments or the step's value; `patch` changes them by a JSON merge patch
        (`{"category": "hardware"}`); `result` settles a call left in doubt by a crash; `automatic` approves
        with no person (see `lane.engine.decisions.decide`). Recorded at once; `resume` carries on."""
        target = self._deciding(run_id, call_id)
        return decide(self.store, self.spec, target, approve=True, call_id=call_id, as_role=as_role, edit=edit, patch=patch,
                      result=result, automatic=automatic, person=person)

    def reject(self, run_id: str, call_id: str | None = None, *, reason: str, as_role: str | None = None,
               person: str | None = None) -> Decision:
        """Reject what a paused run waits for, with the `reason`; `person` (one of lane.yaml's people) is recorded as who."""
        return decide(self.store, self.spec, self._deciding(run_id, call_id), approve=False, call_id=call_id, as_role=as_role,
                      reason=reason, person=person)

    def _deciding(self, run_id: str, call_id: str | None) -> str:
        """The run a decision is for: `run_id`, or the child run that holds what it waits for (decided from the parent's id)."""
        from lane.errors import DecisionError

        record = self.store.run(run_id)
        waiting = [p for p in self.pending(record.run_id) if p.run_id not in (None, record.run_id)]  # held by child runs
        if not waiting:
            return record.run_id  # decided here; decide() says what is wrong, if anything
        own = open_requests(self.store.events(record.run_id))
        if call_id is None:
            if len(waiting) == 1 and not own:
                return str(waiting[0].run_id)
            listed = ", ".join([str(e.ref) for e in own] + [f"{p.call_id} (run {p.run_id})" for p in waiting])
            raise DecisionError(f"run {record.run_id} waits for {len(own) + len(waiting)} decisions; say which with --call ID "
                                f"(one of {listed}); a child run's is decided with its own id too")
        if any(e.ref == call_id for e in own):
            return record.run_id
        holders = sorted({str(p.run_id) for p in waiting if p.call_id == call_id})
        if len(holders) == 1:
            return holders[0]
        if len(holders) > 1:
            raise DecisionError(f"{len(holders)} child runs of run {record.run_id} wait for {call_id!r} ({', '.join(holders)}); "
                                f"decide it with the child's id: lane approve CHILD --call {call_id}")
        return record.run_id

    # -- versions -------------------------------------------------------------

    def version_problems(self) -> list[Problem]:
        """Each runbook whose files changed under a version number that has runs (`lane validate`)."""
        from lane.feedback.versions import conflicts

        problems = []
        for book in self.spec.runbooks.values():
            changed = conflicts(self.store, self._snapshot(book))
            if changed:
                where = ("version",) if "version" in (book.source.tree or {}) else ("runbook",)
                problems.append(book.source.at(where, f"runbook {book.name} v{book.file.version} has runs, and its files changed since "
                                                      f"({'; '.join(changed)}): raise `version:` for the change"))
        return problems

    def versions(self, runbook: str) -> list[dict[str, Any]]:
        """The kept versions of a runbook, newest first: runs by status, KPIs over the finished ones."""
        from lane.feedback.versions import version_rows

        return version_rows(self.store, self._runbook(runbook))

    def diff(self, runbook: str, v1: int, v2: int) -> dict[str, Any]:
        """What changed between two kept versions of a runbook: a line per file or tool, and each file's diff."""
        from lane.feedback.versions import version_diff

        self._runbook(runbook)
        return version_diff(self.store, runbook, v1, v2)

    def test(self, runbook: str, *, model: str | None = None, on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Run every fixture of `runbook` (fixtures/RUNBOOK/*.yaml), each in a store of its own, and hold each to its
        expectations; the result is recorded in .lane/tests/RUNBOOK.json and compared with the one before."""
        from lane.feedback.fixtures import load_fixtures, report, run_fixture

        book = self._runbook(runbook)
        fixtures, problems = load_fixtures(self.spec, book)
        if problems:
            raise ProjectInvalid(problems)
        if not fixtures:
            raise UsageError(f"runbook {runbook} has no fixtures: write fixtures/{runbook}/NAME.yaml (inputs, decisions, expect; docs/lifecycle.md)")
        results = []
        for fixture in fixtures:
            results.append(run_fixture(Project, self.spec, self._models.provided, book, fixture, model))
            if on_result is not None:
                on_result(results[-1])
        return report(self.root, book, results, model, self._snapshot(book).digest)

    # -- releases -------------------------------------------------------------

    def release(self, runbook: str, version: int, *, share: float | None = None, key: str | None = None, model: str | None = None,
                by: str | None = None, on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Release `version` (the runbook's current one) to a `share` of new runs against the stable version, routed
        by `key` (an expression over the inputs; default the run id); its fixtures must pass first. Again for an open
        release: change its share. Returns the release's state (as `release_status`)."""
        return self._releases.release(runbook, version, share=share, key=key, model=model, by=by, on_result=on_result)

    def promote(self, runbook: str, *, by: str | None = None, kill_date: str | None = None, sunset: str | None = None) -> dict[str, Any]:
        """Make the released version the stable one (every new run goes to it); `kill_date` and `sunset` are set on the
        version it replaces."""
        return self._releases.promote(runbook, by=by, kill_date=kill_date, sunset=sunset)

    def rollback(self, runbook: str, *, by: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Send every new run back to the stable version: the open release is rolled back (else the last promotion)."""
        return self._releases.rollback(runbook, by=by, reason=reason)

    def report(self, runbook: str, *, chart: str | Path | None = None) -> dict[str, Any]:
        """Compare the runbook's versions on every KPI: n, the figure, a 95% interval and a test against the version
        before (SciPy, lane[report]); the chart of each KPI per version over time is written as SVG to `chart`
        (default .lane/reports/RUNBOOK.svg) and its path returned as `chart`."""
        from lane.feedback.report import report, rows
        from lane.feedback.report_chart import chart as draw

        book = self._runbook(runbook)
        found = report(self.store, book)
        target = Path(chart) if chart is not None else self.root / ".lane" / "reports" / f"{runbook}.svg"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(draw(found, rows(self.store, book)), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the chart to {target}: {exc.strerror or exc}") from None
        return {**found, "chart": str(target)}

    def autonomy(self, runbook: str | None = None, *, days: int = 30) -> dict[str, Any]:
        """Each call site's record over the last `days` (approvals, edits, rejections, failed checks, rollbacks) and a
        proposed level up or down where the record earns it (feedback/earned.py); needs SciPy (lane[report])."""
        from lane.feedback.earned import proposals

        return proposals(self, runbook, days=days)

    def accept_autonomy(self, proposal_id: str, *, by: str | None = None, days: int = 30) -> dict[str, Any]:
        """Write an autonomy proposal's level as a new runbook version (or agent file, raising its runbooks' versions)."""
        from lane.feedback.earned import accept

        return accept(self, proposal_id, by=by, days=days)

    def release_status(self, runbook: str) -> dict[str, Any]:
        """A runbook's release: the stable version, the released one and its share, each one's figures, the journal."""
        return self._releases.status(runbook)

    def outcome(self, run_id: str, name: str, value: Any, *, by: str | None = None) -> dict[str, Any]:
        """Record a result known only after the run (`resolved`, `paid`): journaled on the run, read by KPIs as
        `outcomes.NAME`; a run that has ended has its KPIs measured again. Returns the run's outcomes and KPIs."""
        from lane.feedback.outcomes import check_name, outcome_events, outcomes_of

        check_name(name)
        value, unfit = checked(value, f"outcome {name}")
        if unfit is not None or too_deep(value):
            raise UsageError(f"outcome {name} must be JSON data: {unfit or 'it nests deeper than 100 levels'}")
        if Redactor(self.spec.secrets)(value) != value:
            raise UsageError(f"outcome {name} holds the value of a secret, which lane never stores")
        record = self.store.run(run_id)
        book = self._book_or_none(record)
        events = self.store.append_checked(record.run_id, lambda run, journal: outcome_events(book, run, journal, name, value, by))
        everything = self.store.events(record.run_id)
        kpis: dict[str, Any] = next((e.data for e in reversed(everything) if e.type == "kpis_recorded"), {"values": {}, "errors": {}})
        return {"run_id": record.run_id, "recorded": events[0].to_json(), "outcomes": outcomes_of(everything), "kpis": kpis}

    def _runbook(self, name: str) -> RunbookSpec:
        book = self.spec.runbooks.get(name)
        if book is None:
            raise UsageError(f"no runbook {name!r} in {self.root}/runbooks (runbooks: {', '.join(sorted(self.spec.runbooks)) or 'none'})")
        return book

    # -- reading --------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        return self.store.runs()

    def get(self, run_id: str) -> Run:
        record = self.store.run(run_id)
        return Run(self, record.run_id, record.status, record.reason)

    def show(self, run_id: str) -> dict[str, Any]:
        record = self.store.run(run_id)
        book = self._book_or_none(record)
        order = [(s.id, s.kind) for s in book.steps] if book else []
        events = self.store.events(record.run_id)
        shown = timeline(record, events, order)
        outcomes = [{"name": e.ref, "value": e.data.get("value"), "by": e.data.get("by"), "at": e.at} for e in events if e.type == "outcome_recorded"]
        if outcomes:
            shown["outcomes"] = outcomes
        children = self.store.children(record.run_id)
        shown["children"] = [{**c.to_json(), "step": c.parent_step} for c in children]
        _child_status(shown["steps"], {c.run_id: c.status for c in children})
        if shown["status"] == "paused":
            shown["pending"] = [p.to_json() for p in self.pending(record.run_id)]
        return shown

    def audit(self, run_id: str) -> list[dict[str, Any]]:
        """Every tool call of the run in order: hashes, effect, what let it run or refused it, who decided; then
        those of its child runs, each with the `run_id` that made it."""
        record = self.store.run(run_id)
        rows = audit(self.store.events(record.run_id))
        for child in self.store.children(record.run_id):  # the calls of its child runs too, each saying whose
            rows += [{**row, "run_id": row.get("run_id", child.run_id)} for row in self.audit(child.run_id)]
        return rows

    def pending(self, run_id: str) -> list[Pending]:
        """What a paused run waits for, oldest first, with what its child runs wait for (their `run_id` says
        which run holds it); empty when it is not paused."""
        record = self.store.run(run_id)
        if record.status != "paused":
            return []
        found = [Pending.from_request(e) for e in open_requests(self.store.events(record.run_id))]
        for child in self.store.children(record.run_id):
            found += [p if p.run_id else replace(p, run_id=child.run_id) for p in self.pending(child.run_id)]
        return found

    def output(self, run_id: str) -> Any:
        """The output of a completed run's last step that ran (a skipped step has none); None for any other run."""
        record = self.store.run(run_id)
        if record.status != "completed":
            return None
        journal = Journal(self.store, record.run_id, self.store.events(record.run_id))
        ended = journal.find("run_completed")
        if ended is not None and "output" in ended.data:
            return ended.data["output"]
        book = self._book_or_none(record)
        order = [s.id for s in book.steps] if book else [
            e.step_id for e in journal.events if e.type == "step_finished" and e.step_id]
        for step_id in reversed(order):
            finished = journal.find("step_finished", step_id)
            if finished is not None:
                return finished.data.get("output")
        return None



