"""What one executing run holds: its project, runbook, journal, meter and values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lane.engine.budgets import RUN_DEFAULTS, Meter, merge
from lane.engine.journal import Journal
from lane.models.base import Model
from lane.models.registry import load_model
from lane.spec.files import Budget
from lane.spec.project import ProjectSpec
from lane.spec.runbook import RunbookSpec, StepSpec


class StepFailed(Exception):
    """A step could not complete; the run fails with this reason."""


@dataclass
class ModelCache:
    """Models load once per process and are shared by every step and run; `provided` ones come first."""

    shared: dict[str, Model] = field(default_factory=dict)
    provided: dict[str, Model] = field(default_factory=dict)

    def get(self, model_id: str, project: ProjectSpec) -> Model:
        if model_id in self.provided:
            return self.provided[model_id]
        key = f"{project.root}::{model_id}"
        model = self.shared.get(key)
        if model is None:
            model = self.shared[key] = load_model(model_id, project.root)
        return model


@dataclass
class RunState:
    run_id: str
    project: ProjectSpec
    book: RunbookSpec
    journal: Journal
    inputs: dict[str, Any]
    models: ModelCache
    meter: Meter = field(default_factory=Meter)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_limits: Budget = merge(RUN_DEFAULTS, self.project.config.budgets, self.book.file.budgets)
        for event in self.journal.events:
            self.meter.observe(event)
        self.journal.listeners.append(self.meter.observe)

    def approver_roles(self, step: StepSpec) -> list[str]:
        """The human roles that may decide for this step: the one it names, else any."""
        if step.kind == "human":
            return [step.step.human or ""]
        named = step.step.approver or self.book.file.approver
        return [named] if named else self.project.human_roles

    def scope(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "steps": self.steps, "run": {"id": self.run_id}}
