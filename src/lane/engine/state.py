"""What one executing run holds: its project, runbook, journal, meter and values."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
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
    """A step could not complete; the run fails with this reason."""


class StepRejected(StepFailed):
    """A person rejected what the step needed (its value, its call, its handoff); the run ends `rejected`."""


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
            model = self.shared[key] = load_model(spec, project.root)
        return model

    async def aclose(self) -> None:
        """Close what models hold open for a run (HTTP clients live on one event loop); they reopen on use."""
        for model in (*self.shared.values(), *self.provided.values()):
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
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    toolbox: Toolbox = field(init=False)
    _models_of_run: dict[str, Model] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.toolbox = Toolbox(self.project)
        self.run_limits: Budget = merge(run_defaults(), self.project.config.budgets, self.book.file.budgets)
        for event in self.journal.events:
            self.meter.observe(event)
        self.journal.listeners.append(self.meter.observe)

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
        return {"inputs": self.inputs, "steps": self.steps, "run": {"id": self.run_id}}
