"""Budgets and the repeat detector.

Counts come from the journal: every event recorded (now or in an earlier
process) is metered once, so a resumed run keeps the counts it had. Limits are
checked before each new model call, tool call and step; the first one reached
stops the run with its reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from lane.errors import StopRun
from lane.spec.files import Budget
from lane.store.records import Event


@lru_cache(maxsize=1)
def agent_step_defaults() -> Budget:
    return Budget(steps=25)


@lru_cache(maxsize=1)
def run_defaults() -> Budget:  # functions, not constants: lane's models are built on first use, not at import
    return Budget(repeats=3)


@lru_cache(maxsize=256)
def merge(*layers: Budget | None) -> Budget:
    """Later layers override earlier ones, key by key."""
    values: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            values.update({k: v for k, v in layer.model_dump().items() if v is not None})
    return Budget(**values)


@dataclass
class Counts:
    tool_calls: int = 0
    steps: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    approvals: int = 0
    last_call: str | None = None
    repeats: int = 0


RUN = "run"  # the scope of run-wide limits; a step's scope is its id


@dataclass
class Meter:
    """Counts per run and per step, fed by journal events."""

    run: Counts = field(default_factory=Counts)
    steps: dict[str, Counts] = field(default_factory=dict)
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)  # scope -> raised limits
    active_before: float = 0.0
    segment_start: float = field(default_factory=time.monotonic)
    step_start: dict[str, float] = field(default_factory=dict)
    model_calls: dict[str, int] = field(default_factory=dict)

    parent: Meter | None = None  # a child run's: the parent run's meter, whose run-wide limits hold for the child too
    parent_limits: Budget | None = None

    def under(self, parent: Meter, limits: Budget) -> None:
        """Count this (child) run's use into `parent` from now on, and hold it to the parent's run-wide `limits` too."""
        self.parent, self.parent_limits = parent, limits

    def count_children(self, events: list[Event]) -> None:
        """Count what child runs recorded into this run's run-wide counts (their steps' own budgets are theirs)."""
        for event in events:
            self._count(event, None, forward=False)

    def observe(self, event: Event) -> None:
        step = self.steps.setdefault(event.step_id, Counts()) if event.step_id else None
        self._count(event, step, forward=True)
        if event.type == "step_started":
            self.step_start[event.step_id or ""] = time.monotonic()
        elif event.type == "model_responded" and step is not None:
            model = str(event.data.get("model"))
            self.model_calls[model] = self.model_calls.get(model, 0) + 1
        if event.type == "budget_raised":
            for key, value in event.data.get("limits", {}).items():
                self.overrides.setdefault(event.data.get("scopes", {}).get(key, RUN), {})[key] = value
        elif event.type in ("run_retried", "loop_back"):  # a step run again starts its own budget afresh; the run's counts go on
            for step_id in event.data.get("steps", ()):
                self.steps.pop(step_id, None)
                self.step_start.pop(step_id, None)
        elif event.type in ("run_paused", "run_stopped", "run_failed", "run_completed", "run_rejected"):
            self.active_before = float(event.data.get("active_seconds", self.active_before))

    def _count(self, event: Event, step: Counts | None, *, forward: bool) -> None:
        """The run-wide counts (and the step's, when given) an event adds; forwarded to the parent runs' meters."""
        kind, data = event.type, event.data
        if kind == "step_started" and data.get("kind") not in ("item", "branch"):  # a branch or an item is not a step
            self._add(steps=1, forward=forward)
        elif kind == "model_responded" and event.step_id:
            usage = data.get("response", {}).get("usage", {})
            tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
            cost = float(usage.get("cost_usd") or 0.0)
            self._add(tokens=tokens, cost_usd=cost, forward=forward)
            if step is not None:
                step.tokens += tokens
                step.cost_usd += cost
                step.steps += 1
        elif kind == "tool_call_requested" and event.step_id:
            self._add(tool_calls=1, forward=forward)
            if step is not None:
                signature = f"{data.get('tool')}:{data.get('args_hash')}"
                step.tool_calls += 1
                step.repeats = step.repeats + 1 if step.last_call == signature else 1
                step.last_call = signature
        elif kind == "approval_requested" and data.get("kind") == "tool_call":
            self._add(approvals=1, forward=forward)

    def _add(self, *, forward: bool, steps: int = 0, tokens: int = 0, cost_usd: float = 0.0, tool_calls: int = 0, approvals: int = 0) -> None:
        meter: Meter | None = self
        while meter is not None:
            run = meter.run
            run.steps += steps
            run.tokens += tokens
            run.cost_usd += cost_usd
            run.tool_calls += tool_calls
            run.approvals += approvals
            meter = meter.parent if forward else None

    def _check_parents(self) -> None:
        """A child run stops at its parent runs' run-wide limits too (a for_each over a runbook cannot multiply them)."""
        meter, limits = self.parent, self.parent_limits
        while meter is not None and limits is not None:
            upper = meter.limits(limits, RUN)
            for key, used, what in (("tool_calls", meter.run.tool_calls, None), ("tokens", meter.run.tokens, None),
                                    ("steps", meter.run.steps, None), ("cost_usd", meter.run.cost_usd, "USD"),
                                    ("approvals", meter.run.approvals, "calls sent for approval")):
                _over(key, used, getattr(upper, key), RUN, what=what, whose="the parent run")
            if upper.wall_seconds is not None and meter.active_seconds() >= upper.wall_seconds:
                raise StopRun(_message("wall_seconds", upper.wall_seconds, RUN, whose="the parent run"), key="wall_seconds", scope=RUN)
            limits = meter.parent_limits
            meter = meter.parent

    def active_seconds(self) -> float:
        return self.active_before + time.monotonic() - self.segment_start

    def limits(self, configured: Budget, scope: str) -> Budget:
        """The configured limits, with those a person raised for this scope (raised only, never lowered)."""
        raised = self.overrides.get(scope)
        if not raised:
            return configured
        values = configured.model_dump()
        for key, value in raised.items():
            values[key] = value if values[key] is None else max(values[key], value)
        return Budget(**values)

    def check_model_call(self, step_id: str, run_limits: Budget, step_limits: Budget) -> None:
        step = self.steps.setdefault(step_id, Counts())
        run_limits, step_limits = self.limits(run_limits, RUN), self.limits(step_limits, step_id)
        _over("tokens", self.run.tokens, run_limits.tokens, RUN)
        _over("tokens", step.tokens, step_limits.tokens, step_id)
        _over("steps", step.steps, step_limits.steps, step_id, what="model turns")
        _over("cost_usd", self.run.cost_usd, run_limits.cost_usd, RUN, what="USD")
        _over("cost_usd", step.cost_usd, step_limits.cost_usd, step_id, what="USD")
        self._check_time(step_id, run_limits, step_limits)
        self._check_parents()

    def check_approval(self, run_limits: Budget) -> None:
        """Before a call asks a person: a run may keep only so many calls waiting for approval."""
        limit = self.limits(run_limits, RUN).approvals
        _over("approvals", self.run.approvals, limit, RUN, what="calls sent for approval")
        self._check_parents()

    def check_tool_call(self, step_id: str, signature: str, run_limits: Budget, step_limits: Budget) -> None:
        step = self.steps.setdefault(step_id, Counts())
        run_limits, step_limits = self.limits(run_limits, RUN), self.limits(step_limits, step_id)
        _over("tool_calls", self.run.tool_calls, run_limits.tool_calls, RUN)
        _over("tool_calls", step.tool_calls, step_limits.tool_calls, step_id)
        repeats = step.repeats + 1 if step.last_call == signature else 1
        limit = step_limits.repeats or run_limits.repeats
        if limit is not None and repeats > limit:
            raise StopRun(
                f"repeat detector: step {step_id} made the same call ({signature.split(':')[0]} with the same arguments) "
                f"{repeats} times in a row (limit {limit}); `lane resume RUN --budget repeats=N` allows more",
                key="repeats", scope=step_id,
            )
        self._check_time(step_id, run_limits, step_limits)
        self._check_parents()

    def check_step(self, run_limits: Budget) -> None:
        run_limits = self.limits(run_limits, RUN)
        _over("steps", self.run.steps, run_limits.steps, RUN)
        self._check_time(None, run_limits, Budget())
        self._check_parents()

    def time_left(self, step_id: str, run_limits: Budget, step_limits: Budget) -> tuple[float, StopRun] | None:
        """Seconds until a wall_seconds budget (the run's or the step's) is reached, and the signal that stops
        the run then: for a call in flight, which is cut off when they run out. None without such a budget."""
        run_limits, step_limits = self.limits(run_limits, RUN), self.limits(step_limits, step_id)
        found: list[tuple[float, StopRun]] = []
        if run_limits.wall_seconds is not None:
            left = run_limits.wall_seconds - self.active_seconds()
            found.append((left, StopRun(_message("wall_seconds", run_limits.wall_seconds, RUN, cut=True),
                                        key="wall_seconds", scope=RUN)))
        if step_limits.wall_seconds is not None:
            started = max(self.step_start.get(step_id, self.segment_start), self.segment_start)
            left = step_limits.wall_seconds - (time.monotonic() - started)
            found.append((left, StopRun(_message("wall_seconds", step_limits.wall_seconds, step_id, cut=True),
                                        key="wall_seconds", scope=step_id)))
        meter, limits = self.parent, self.parent_limits
        while meter is not None and limits is not None:  # a parent run's wall_seconds cuts a child's call too
            upper = meter.limits(limits, RUN).wall_seconds
            if upper is not None:
                found.append((upper - meter.active_seconds(), StopRun(_message("wall_seconds", upper, RUN, cut=True, whose="the parent run"),
                                                                       key="wall_seconds", scope=RUN)))
            limits = meter.parent_limits
            meter = meter.parent
        return min(found, key=lambda pair: pair[0]) if found else None

    def _check_time(self, step_id: str | None, run_limits: Budget, step_limits: Budget) -> None:
        if run_limits.wall_seconds is not None and self.active_seconds() >= run_limits.wall_seconds:
            raise StopRun(_message("wall_seconds", run_limits.wall_seconds, RUN), key="wall_seconds", scope=RUN)
        if step_id is not None and step_limits.wall_seconds is not None:
            started = self.step_start.get(step_id, self.segment_start)
            if time.monotonic() - max(started, self.segment_start) >= step_limits.wall_seconds:
                raise StopRun(_message("wall_seconds", step_limits.wall_seconds, step_id), key="wall_seconds", scope=step_id)


def _over(key: str, used: float, limit: float | None, scope: str, *, what: str | None = None, whose: str | None = None) -> None:
    if limit is not None and used >= limit:
        raise StopRun(_message(key, limit, scope, f": {used:g} {what or key.replace('_', ' ')} used", whose=whose), key=key, scope=scope)


def _message(key: str, limit: float, scope: str, used: str = "", *, cut: bool = False, whose: str | None = None) -> str:
    where = whose or ("run" if scope == RUN else f"step {scope}")
    during = " while a call was in flight, which was cut off" if cut else ""
    return f"budget: {key} {limit:g} reached ({where}{used}){during}; `lane resume RUN --budget {key}=N` allows more"


def parse_overrides(pairs: dict[str, Any]) -> dict[str, float]:
    """Check `--budget KEY=N` values; raises ValueError naming the bad one."""
    out: dict[str, float] = {}
    for key, value in pairs.items():
        if key not in Budget.model_fields:
            raise ValueError(f"unknown budget {key!r}; budgets: {', '.join(Budget.model_fields)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"budget {key} must be a number, not {value!r}") from None
        if not math.isfinite(number) or number < 0 or number > 1e15:
            raise ValueError(f"budget {key} must be a number from 0 to 10^15, not {value!r}")
        out[key] = number if key in ("wall_seconds", "cost_usd") else int(number)
    try:
        Budget.model_validate(out)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"budget {first['loc'][0]}: {first['msg'].lower()}") from None
    return out
