"""Golden fixtures and `lane test`: a runbook run on known inputs, each in a store of its own, held to expectations.

    # fixtures/support-triage/01-double-charge.yaml
    description: A customer charged twice.
    inputs: {email: inbox/01-double-charge.eml}
    model: rehearsal                   # optional: the model every agent uses (`lane test --model` overrides it)
    decisions:                         # optional: how a person decides each request, by step id or call id
      send: hold                       # approve | hold (the fixture ends there) | {approve: true, edit: {...}} | {reject: WHY}
    expect:
      status: paused                   # the run's status when the fixture ends
      steps:
        classify: {fields: {category: billing}}     # JSON fields (dotted paths), `output` (exact), `status`
      checks:
        - steps.classify.output.urgency in ['normal', 'high']

A request the fixture does not decide holds the run there, as `hold` does: a fixture never approves by default.
Tools run for real (hold before an effect a fixture must not have). Each `lane test` records its result in
`.lane/tests/RUNBOOK.json` and compares the next one with it: what passed before and fails now is drift.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lane.errors import Problem, UsageError
from lane.spec.expressions import ExpressionFailed, ExpressionSyntaxError, compile_expression
from lane.spec.files import Strict, check_model
from lane.spec.source import read_yaml

FIXTURES = "fixtures"
RESULTS = Path(".lane") / "tests"


class StepExpect(Strict):
    status: str | None = None
    output: Any = None  # exact, when given (a null output is `output: null`)
    fields: dict[str, Any] = Field(default_factory=dict)  # dotted paths into the output


class Expect(Strict):
    status: Literal["completed", "failed", "paused", "stopped", "rejected"] | None = None
    steps: dict[str, StepExpect] = Field(default_factory=dict)
    checks: list[str] = Field(default_factory=list)


class Decide(Strict):
    approve: bool | None = None
    edit: Any = None
    reject: str | None = None


class FixtureFile(Strict):
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    decisions: dict[str, str | Decide] = Field(default_factory=dict)
    expect: Expect = Field(default_factory=Expect)


@dataclasses.dataclass(frozen=True)
class Fixture:
    name: str
    path: str
    file: FixtureFile


def fixture_paths(root: Path, runbook: str) -> list[Path]:
    folder = root / FIXTURES / runbook
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file()) if folder.is_dir() else []


def check_fixtures(spec: Any) -> list[Problem]:
    """Every fixture of every runbook: its shape, the steps it names, its expressions (`lane validate`)."""
    problems: list[Problem] = []
    for book in spec.runbooks.values():
        problems += load_fixtures(spec, book)[1]
    folder = spec.root / FIXTURES
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name not in spec.runbooks and not child.name.startswith("."):
                problems.append(Problem(f"{FIXTURES}/{child.name}", 1, 1, f"there is no runbook {child.name!r} for these fixtures"))
    return problems


def load_fixtures(spec: Any, book: Any) -> tuple[list[Fixture], list[Problem]]:
    found, problems = [], []
    step_ids = {s.id for s in book.walk()}
    for path in fixture_paths(spec.root, book.name):
        shown = f"{FIXTURES}/{book.name}/{path.name}"
        source = read_yaml(path, shown)
        if source.problems:
            problems += source.problems
            continue
        fixture, found_here = check_model(FixtureFile, source)
        problems += found_here
        if fixture is None:
            continue
        for step in fixture.expect.steps:
            if step not in step_ids:
                problems.append(source.at(("expect", "steps", step), f"runbook {book.name} has no step {step!r}", key=True))
        for i, text in enumerate(fixture.expect.checks):
            try:
                compile_expression(text)
            except ExpressionSyntaxError as exc:
                problems.append(source.at(("expect", "checks", i), f"not an expression: {exc}"))
        for key, decision in fixture.decisions.items():
            if isinstance(decision, str) and decision not in ("approve", "hold") or \
                    isinstance(decision, Decide) and (decision.reject is None) == (decision.approve is None):
                problems.append(source.at(("decisions", key), f"decide {key} with approve, hold, {{approve: true, edit: VALUE}} "
                                                              "or {reject: WHY}"))
        found.append(Fixture(path.stem, shown, fixture))
    return found, problems


def with_model(spec: Any, model: str) -> Any:
    """The project with every agent on `model` (a model id, or a name of lane.yaml's `models:`)."""
    config = spec.config.model_copy(update={"models": {**spec.config.models, "default": model}})
    agents = {name: dataclasses.replace(agent, file=agent.file.model_copy(update={"model": None})) for name, agent in spec.agents.items()}
    return dataclasses.replace(spec, config=config, agents=agents)


def run_fixture(project_type: Any, spec: Any, models: dict[str, Any], book: Any, fixture: Fixture, model: str | None) -> dict[str, Any]:
    """One fixture in a store of its own: its run driven by the fixture's decisions, then held to its expectations."""
    from lane.store.sqlite import SQLiteStore

    chosen = model or fixture.file.model
    spec = with_model(spec, chosen) if chosen else spec
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lane-test-") as folder:
        project = project_type(spec, models=models, store=SQLiteStore(Path(folder) / "lane.db"))
        try:
            try:
                run = project.run(book.name, fixture.file.inputs)
            except UsageError as exc:  # inputs that do not fit: this fixture fails, the others run
                return {"fixture": fixture.name, "file": fixture.path, "passed": False, "status": "not started", "reason": str(exc),
                        "held_at": None, "model": spec.model_id(None), "kpis": {}, "seconds": 0.0,
                        "expectations": [{"expect": "the run starts", "passed": False, "got": str(exc)}]}
            stopped_at = None
            for _ in range(100):
                if run.status != "paused":
                    break
                stopped_at = _decide(run, fixture.file.decisions)
                if stopped_at is not None:
                    break
                run = run.resume()
            view = project.show(run.run_id)
        finally:
            project.close()
    seconds = time.monotonic() - started
    results = _expectations(fixture.file.expect, view)
    return {"fixture": fixture.name, "file": fixture.path, "passed": all(r["passed"] for r in results), "status": view["status"],
            "reason": view.get("reason"), "held_at": stopped_at, "model": spec.model_id(None), "expectations": results,
            "kpis": _kpis(book, view, seconds), "seconds": round(seconds, 3)}


def _decide(run: Any, decisions: dict[str, Any]) -> str | None:
    """Decide what the run waits for as the fixture says; the step held at, if the fixture holds (or is silent)."""
    for pending in run.pending:
        decision = decisions.get(pending.call_id, decisions.get(pending.step_id, "hold"))
        role = pending.roles[0] if pending.roles else None
        if decision == "hold":
            return str(pending.step_id)
        if decision == "approve":
            run.approve(pending.call_id, as_role=role)
        elif decision.reject is not None:
            run.reject(pending.call_id, as_role=role, reason=decision.reject)
        elif "edit" in decision.model_fields_set:
            run.approve(pending.call_id, as_role=role, edit=decision.edit)
        else:
            run.approve(pending.call_id, as_role=role)
    return None


def _scope(view: dict[str, Any]) -> dict[str, Any]:
    steps = {s["id"]: {"status": s["status"], "output": s.get("output"), "error": s.get("error")} for s in view["steps"]}
    return {"inputs": view["inputs"], "steps": steps, "run": {"id": view["run_id"], "status": view["status"]}}


def _expectations(expect: Expect, view: dict[str, Any]) -> list[dict[str, Any]]:
    scope = _scope(view)
    out: list[dict[str, Any]] = []
    if expect.status is not None:
        out.append({"expect": f"status == {expect.status!r}", "passed": view["status"] == expect.status, "got": view["status"]})
    for step_id, wanted in expect.steps.items():
        step = scope["steps"].get(step_id, {"status": "not run", "output": None})
        if wanted.status is not None:
            out.append({"expect": f"steps.{step_id}.status == {wanted.status!r}", "passed": step["status"] == wanted.status, "got": step["status"]})
        if "output" in wanted.model_fields_set:
            out.append({"expect": f"steps.{step_id}.output == {json.dumps(wanted.output, ensure_ascii=False)}",
                        "passed": step["output"] == wanted.output, "got": step["output"]})
        for path, value in wanted.fields.items():
            got = _field(step["output"], path)
            out.append({"expect": f"steps.{step_id}.output.{path} == {json.dumps(value, ensure_ascii=False)}", "passed": got == value, "got": got})
    for text in expect.checks:
        try:
            held, got = bool(compile_expression(text).evaluate(scope)), None
        except ExpressionFailed as exc:
            held, got = False, f"cannot be computed: {exc}"
        out.append({"expect": text, "passed": held, "got": got})
    return out


_ABSENT = "(absent)"


def _field(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
    return value


def _kpis(book: Any, view: dict[str, Any], seconds: float) -> dict[str, Any]:
    from lane.feedback.kpis import measure

    scope = _scope(view)
    ended = ("completed", "failed", "skipped", "rejected")  # a step still waiting (a held fixture) counts as not run
    scope["steps"] = {k: v for k, v in scope["steps"].items() if v["status"] in ended}
    usage = view.get("usage") or {}
    scope["run"] |= {"tokens": int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)), "seconds": round(seconds, 3)}
    return measure(book.kpis, scope, [s.id for s in book.steps])[0]


def report(root: Path, book: Any, results: list[dict[str, Any]], model: str | None, snapshot: str | None = None) -> dict[str, Any]:
    """The set's result: passes, KPIs over the fixtures, and what changed since the last recorded result."""
    from lane.feedback.kpis import summarize

    kpis = {name: summarize(name, [r["kpis"].get(name) for r in results], kpi.target).describe() for name, kpi in book.file.kpis.items()}
    previous_file = root / RESULTS / f"{book.name}.json"
    previous = _read(previous_file)
    changes = _changes(previous, results) if previous else []
    summary = {"runbook": book.name, "version": book.file.version, "snapshot": snapshot, "model": model, "fixtures": results,
               "passed": sum(r["passed"] for r in results), "failed": sum(not r["passed"] for r in results), "kpis": kpis,
               "previous": {k: previous[k] for k in ("at", "version", "passed", "failed") if k in previous} if previous else None,
               "changes": changes, "at": _now()}
    _write(previous_file, summary)
    return summary


def _changes(previous: dict[str, Any], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before = {r["fixture"]: r for r in previous.get("fixtures", ())}
    out = []
    for result in results:
        earlier = before.get(result["fixture"])
        if earlier is None:
            out.append({"fixture": result["fixture"], "change": "new"})
            continue
        if earlier["passed"] != result["passed"]:
            out.append({"fixture": result["fixture"], "change": "now passes" if result["passed"] else "now fails (drift)"})
        held = {e["expect"]: e["passed"] for e in earlier.get("expectations", ())}
        for expectation in result["expectations"]:
            if expectation["expect"] in held and held[expectation["expect"]] != expectation["passed"]:
                out.append({"fixture": result["fixture"], "expect": expectation["expect"],
                            "change": "now holds" if expectation["passed"] else "no longer holds"})
    return out


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    partial.replace(path)  # whole or not at all


def _now() -> str:
    from lane.store.records import now

    return now()
