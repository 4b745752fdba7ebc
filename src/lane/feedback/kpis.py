"""KPIs: measures a runbook declares, recorded when each run ends and summarised across runs.

    kpis:
      approved_without_edit: {value: "steps.send.status == 'completed' and not steps.send.edited", target: ">= 0.8"}
      tokens: {value: run.tokens}

A value is an expression over the run's steps, inputs and `run` (`id`, `status`,
`tokens`, `seconds`), computed when the run completes or fails. A step that did
not run reads as `{status: "not run", output: none}`, and `edited` is none unless
the step finished;
a value that cannot be computed is recorded as null with the reason.
Across runs, a yes/no KPI is the share of runs where it held, a number its median,
anything else a count of each value; a target compares that figure.
"""

from __future__ import annotations

import operator
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lane.spec.expressions import Expression, ExpressionFailed

NOT_RUN = {"status": "not run", "output": None}
_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


def measure(kpis: dict[str, Expression], scope: dict[str, Any], step_ids: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each KPI's value for one run, and why any could not be computed."""
    # `edited` is unknown (none), not false, for a step that did not finish: no one approved anything there.
    steps = {step_id: {"edited": None, "approved_by": None, **scope["steps"].get(step_id, NOT_RUN)} for step_id in step_ids}
    scope = {**scope, "steps": steps}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, expr in kpis.items():
        try:
            values[name] = expr.evaluate(scope)
        except ExpressionFailed as exc:
            values[name], errors[name] = None, str(exc)
    return values, errors


@dataclass(frozen=True)
class KpiSummary:
    name: str
    runs: int  # runs with a value
    figure: float | None  # share (yes/no) or median (numbers); None for other values
    kind: str  # share | median | counts
    counts: dict[str, int]
    target: str | None
    met: bool | None  # None without a target or a figure

    def describe(self) -> str:
        if self.kind == "share" and self.figure is not None:
            held = round(self.figure * self.runs)
            text = f"{held}/{self.runs} ({self.figure:.0%})"
        elif self.kind == "median" and self.figure is not None:
            text = f"median {self.figure:.4g} over {self.runs} runs"
        else:
            text = ", ".join(f"{value} {count}" for value, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if self.target is not None and self.met is not None:
            text += f" · target {self.target.strip()}: {'met' if self.met else 'missed'}"
        return text or "no values"


def summarize(name: str, values: list[Any], target: str | None = None) -> KpiSummary:

    present = [v for v in values if v is not None]
    figure: float | None = None
    if present and all(isinstance(v, bool) for v in present):
        kind, figure = "share", sum(present) / len(present)
    elif present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        kind, figure = "median", float(statistics.median(present))
    else:
        kind = "counts"
    counts = dict(Counter(str(v) for v in present))
    met = None
    if target is not None and figure is not None:
        op, number = _target(target)
        met = _COMPARE[op](figure, number)
    return KpiSummary(name, len(present), figure, kind, counts, target, met)


def _target(target: str) -> tuple[str, float]:
    text = target.strip()
    op = next(o for o in (">=", "<=", "==", ">", "<") if text.startswith(o))
    return op, float(text[len(op):])
