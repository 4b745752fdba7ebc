"""What one executing run holds: its project, runbook, journal, meter and values."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lane.engine.budgets import Meter, merge, run_defaults
from lane.engine.journal import Journal
from lane.engine.toolbox import Toolbox
from lane.models.base import Model
from lane.models.registry import load_model, model_id
from lane.spec.files import Budget, ModelSpec
from lane.spec.project import ProjectSpec
from lane.spec.runbook import RunbookSpec, StepSpec


class StepFailed(Exception):
    """A step could not complete; the run fails with this reason. `feedback` is what a feedback loop
    (`on_fail: back_to`) tells the agent it goes back to."""

    def __init__(self, reason: str, *, feedback: str | None = None) -> None:
        self.feedback = feedback
        super().__init__(reason)


class StepRejected(StepFailed):
    """A person rejected what the step needed (its value, its call, its handoff); the run ends `rejected`."""


class Failed(Exception):
    """A step failed (or was rejected) and its failure is journaled; each group around it fails with it."""

    def __init__(self, reason: str, status: str) -> None:
        self.reason = reason
        self.status = status  # failed | rejected
        super().__init__(reason)


_LOADING = threading.Lock()


@dataclass
class ModelCache:
    """Models load once per process and are shared by every step and run; `provided` ones come first."""

    shared: dict[tuple[object, ...], Model] = field(default_factory=dict)
    provided: dict[str, Model] = field(default_factory=dict)

    def get(self, spec: ModelSpec, project: ProjectSpec) -> Model:
        provided = self.provided.get(model_id(spec))
        if provided is not None:
            return provided
        key = self._key(spec, project)
        model = self.shared.get(key)
        if model is None:
            with _LOADING:  # runs in several threads share the process's models: one instance per model, or a
                model = self.shared.get(key)  # run would use one the others' aclose never sees (its sockets left open)
                if model is None:
                    model = self.shared[key] = load_model(spec, project.root)
        return model

    async def aclose(self) -> None:
        """Close what models hold open for a run (HTTP clients live on one event loop); they reopen on use."""
        for model in (*list(self.shared.values()), *self.provided.values()):  # a snapshot: another thread may add one
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

    @staticmethod
    def _key(spec: ModelSpec, project: ProjectSpec) -> tuple[object, ...]:
        changed = 0
        if spec.provider == "scripted":  # a script edited since it was read is read again
            with contextlib.suppress(OSError):
                changed = (project.root / (spec.model or "")).stat().st_mtime_ns
        return (project.root, spec, changed)


@dataclass
class RunState:
    run_id: str
    project: ProjectSpec
    book: RunbookSpec
    journal: Journal
    inputs: dict[str, Any]
    models: ModelCache
    meter: Meter = field(default_factory=Meter)
    on_stream: Callable[[str], None] | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # the results of the steps of the block running here
    toolbox: Toolbox = field(init=False)
    _models_of_run: dict[str, Model] = field(default_factory=dict)
    outer: dict[str, dict[str, Any]] = field(default_factory=dict)  # the results of the steps around a group's block
    names: dict[str, Any] = field(default_factory=dict)  # what a group's block adds to expressions: a for_each's item
    children: ChildRuns | None = None  # how a `runbook:` step runs its child run (given by the Project)

    def __post_init__(self) -> None:
        self.toolbox = Toolbox(self.project)
        self.run_limits: Budget = merge(run_defaults(), self.project.config.budgets, self.book.file.budgets)
        for event in self.journal.events:
            self.meter.observe(event)
        self.journal.listeners.append(self.meter.observe)
        self.journal.compact()  # counted: what finished branches and items recorded inside can be let go

    def model(self, name: str | None, spec: ModelSpec) -> Model:
        """The model an agent names (`name` as written, resolved to `spec`), looked up once per run."""
        key = name or "default"
        found = self._models_of_run.get(key)
        if found is None:
            found = self._models_of_run[key] = self.models.get(spec, self.project)
        return found

    def approver_roles(self, step: StepSpec) -> list[str]:
        """The human roles that may decide for this step: the one it names, else any."""
        if step.kind == "human":
            return [step.step.human or ""]
        named = step.step.approver or self.book.file.approver
        return [named] if named else self.project.human_roles

    def scope(self) -> dict[str, Any]:
        steps = {**self.outer, **self.steps} if self.outer else self.steps
        return {"inputs": self.inputs, "steps": steps, "run": {"id": self.run_id}, **self.names}

    def frame(self, names: dict[str, Any] | None = None) -> RunState:
        """The run as a group's block sees it: its steps' results of its own, those before the group readable,
        and `names` added to expressions. Journal, meter, models and tools are the run's."""
        inner = copy.copy(self)
        inner.outer = {**self.outer, **self.steps}
        inner.steps = {}
        if names:
            inner.names = {**self.names, **names}
        return inner


ChildRuns = Callable[["RunState", str, str, dict[str, Any], str, bool], Awaitable[tuple[str, str | None, Any]]]
"""(parent state, child run id, runbook, inputs, parent step, whether the step started it now) -> the child run's
status, reason and output."""
