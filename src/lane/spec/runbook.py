"""Runbooks: compile each step's expressions and check what they refer to."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lane.errors import LaneError, Problem
from lane.spec.expressions import (
    Expression,
    ExpressionSyntaxError,
    Ref,
    Value,
    compile_expression,
    compile_value,
    expressions_in,
)
from lane.spec.files import COMMON_STEP_KEYS, STEP_KEYS, STEP_KINDS, RunbookFile, Step
from lane.spec.source import Loc, Source
from lane.spec.toolsets import missing_program

if TYPE_CHECKING:
    from jsonschema.exceptions import SchemaError, ValidationError

    from lane.spec.project import ProjectSpec

CHECK_OUTPUT = {"type": "object", "properties": {k: {} for k in ("exit_code", "stdout", "stderr", "seconds", "timed_out", "truncated")}}
STEP_FIELDS = {"output": "any step", "status": "any step", "edited": "human and tool steps", "approved_by": "human and tool steps"}
EDITABLE = ("human", "tool")  # steps whose value a person may edit before it is used
_DECIDED = ("edited", "approved_by")  # what a person's decision on a human or tool step adds
RUN_FIELDS = ("id",)
RUN_END_FIELDS = ("id", "status", "tokens", "seconds")  # known once the run ends: for kpis


@dataclass
class StepSpec:
    step: Step
    kind: str
    index: int
    when: Expression | None = None
    with_: Value | None = None
    goal: Value | None = None
    args: Value | None = None
    approve: Value | None = None
    check: Value | None = None

    @property
    def id(self) -> str:
        return self.step.id



@dataclass
class RunbookSpec:
    file: RunbookFile
    source: Source
    steps: list[StepSpec] = field(default_factory=list)
    kpis: dict[str, Expression] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.file.runbook



def check_runbook(book: RunbookFile, source: Source, project: ProjectSpec) -> tuple[RunbookSpec, list[Problem]]:
    spec = RunbookSpec(book, source)
    problems: list[Problem] = []
    problems += _check_schema(book.inputs, source, ("inputs",))
    if book.approver is not None:
        problems += project.check_role(book.approver, source, ("approver",), kind="human")
    seen: dict[str, int] = {}
    earlier: dict[str, StepSpec] = {}  # the steps before this one, kept as the loop goes (not rebuilt per step)
    for index, step in enumerate(book.steps):
        loc: Loc = ("steps", index)
        if step.id in seen:
            problems.append(source.at((*loc, "id"), f"duplicate step id '{step.id}' (first used by step {seen[step.id] + 1})"))
            continue
        seen[step.id] = index
        step_spec, found = _check_step(step, index, spec, project, earlier)
        problems += found
        spec.steps.append(step_spec)
        earlier[step_spec.id] = step_spec
    every = {s.id: s for s in spec.steps}
    for name, kpi in book.kpis.items():
        expr, found = _expression(kpi.value, source, ("kpis", name, "value"), spec, every, project, at_end=True)
        problems += found
        if expr is not None:
            spec.kpis[name] = expr
    return spec, problems


def _check_step(step: Step, index: int, book: RunbookSpec, project: ProjectSpec, earlier: dict[str, StepSpec]) -> tuple[StepSpec, list[Problem]]:
    source, loc = book.source, ("steps", index)
    kinds = [k for k in STEP_KINDS if getattr(step, k) is not None]
    problems: list[Problem] = []
    if len(kinds) != 1:
        what = "none" if not kinds else " and ".join(kinds)
        problems.append(source.at(loc, f"step '{step.id}' must have exactly one of agent, tool, human, check (it has {what})"))
        return StepSpec(step, kinds[0] if kinds else "check", index), problems
    kind = kinds[0]
    spec = StepSpec(step, kind, index)
    present = set(source.data["steps"][index])
    for key in sorted(present - COMMON_STEP_KEYS - STEP_KEYS[kind]):
        users = [k for k, keys in STEP_KEYS.items() if key in keys]
        if not users:
            continue  # not a step key at all: reported as unknown already
        problems.append(source.at((*loc, key), f"'{key}' is not used by {kind} steps (it belongs to {', '.join(users)} steps)", key=True))
    problems += _check_roles(spec, source, loc, project)
    if step.when is not None:
        spec.when, found = _expression(step.when, source, (*loc, "when"), book, earlier, project)
        problems += found
    for key, attr in (("with", "with_"), ("goal", "goal"), ("args", "args"), ("approve", "approve"), ("check", "check")):
        raw = getattr(step, attr)
        if raw is not None:
            value, found = _value(raw, source, (*loc, key), book, earlier, project)
            setattr(spec, attr, value)
            problems += found
    for key in ("output", "input"):
        schema = getattr(step, key)
        if schema is not None:
            problems += _check_schema(schema, source, (*loc, key))
    if kind == "agent" and not step.goal:
        problems.append(source.at(loc, f"agent step '{step.id}' needs a 'goal': what the agent must achieve"))
    if kind == "agent" and step.task is not None:
        problems += _check_task(step.task, source, (*loc, "task"), project)
    if kind == "tool" and step.tool not in project.tools and not project.unloaded_tool(step.tool or ""):
        problems.append(source.at((*loc, "tool"), _unknown_tool(step.tool or "", project)))
    if kind == "human" and (step.approve is None) == (step.input is None):
        problems.append(source.at(loc, f"human step '{step.id}' needs exactly one of 'approve' (a value to sign off) or 'input' (a JSON schema to fill)"))
    if kind == "check" and not step.check:
        problems.append(source.at((*loc, "check"), "a check needs a command: a list such as [pytest, -q]"))
    elif kind == "check" and step.check and "${{" not in str(step.check[0]) and step.check[0] != "lane":
        problems += missing_program(source, project.root, str(step.check[0]), step.cwd, (*loc, "check", 0))
    if kind == "agent" and step.tool_choice == "required" and step.agent in project.agents:
        usable = step.tools if step.tools is not None else project.agents[step.agent].file.tools
        if not usable:
            problems.append(source.at((*loc, "tool_choice"), f"tool_choice: required, but agent '{step.agent}' has no tools in this step"))
    if kind == "agent" and step.agent in project.agents and step.tools is not None:
        allowed = project.agents[step.agent].file.tools
        for i, name in enumerate(step.tools):
            if not project.allows(allowed, name):
                problems.append(source.at((*loc, "tools", i), f"agent '{step.agent}' is not allowed tool '{name}' (its tools: {', '.join(allowed) or 'none'})"))
    return spec, problems


def _check_task(name: str, source: Source, loc: Loc, project: ProjectSpec) -> list[Problem]:
    """A coding task the step works: it must exist and read as a task, or the step could not be held to its FILES."""
    from lane.coding.repo import top_of_repo
    from lane.coding.tasks import load_task

    feature, _, task = name.partition("/")
    if ".." in name:
        return [source.at(loc, f"task {name!r} must be FEATURE/TASK, two simple names")]
    try:
        load_task(top_of_repo(project.root), feature, task)
    except LaneError as exc:
        return [source.at(loc, str(exc).replace(f"{project.root}/", ""))]
    return []


def _check_roles(spec: StepSpec, source: Source, loc: Loc, project: ProjectSpec) -> list[Problem]:
    step = spec.step
    problems: list[Problem] = []
    if spec.kind == "agent":
        problems += project.check_role(step.agent or "", source, (*loc, "agent"), kind="agent")
    if spec.kind == "human":
        problems += project.check_role(step.human or "", source, (*loc, "human"), kind="human")
    if step.owner is not None:
        problems += project.check_role(step.owner, source, (*loc, "owner"))
    if step.approver is not None:
        problems += project.check_role(step.approver, source, (*loc, "approver"), kind="human")
    return problems


def _unknown_tool(name: str, project: ProjectSpec) -> str:
    near = difflib.get_close_matches(name, list(project.tools), n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else (f"; tools: {', '.join(sorted(project.tools))}" if project.tools else "; lane.yaml declares no toolsets")
    return f"unknown tool '{name}'{hint}"


def _expression(text: str, source: Source, loc: Loc, book: RunbookSpec, earlier: dict[str, StepSpec], project: ProjectSpec,
                *, at_end: bool = False) -> tuple[Expression | None, list[Problem]]:
    try:
        expr = compile_expression(text)
    except ExpressionSyntaxError as exc:
        return None, [source.at(loc, str(exc))]
    problems = [source.at(loc, msg) for msg in (_check_ref(ref, book, earlier, at_end=at_end) for ref in expr.refs) if msg]
    return (None if problems else expr), problems


def _value(raw: Any, source: Source, loc: Loc, book: RunbookSpec, earlier: dict[str, StepSpec], project: ProjectSpec) -> tuple[Value | None, list[Problem]]:
    problems: list[Problem] = []
    for inner, text in expressions_in(raw):
        try:
            expr = compile_expression(text)
        except ExpressionSyntaxError as exc:
            problems.append(source.at((*loc, *inner), str(exc)))
            continue
        problems += [source.at((*loc, *inner), m) for m in (_check_ref(r, book, earlier) for r in expr.refs) if m]
    if problems:
        return None, problems
    return compile_value(raw), []


def _check_ref(ref: Ref, book: RunbookSpec, earlier: dict[str, StepSpec], *, at_end: bool = False) -> str | None:
    root = ref[0]
    if root == "inputs":
        return _check_property(ref[1:], book.file.inputs, "inputs")
    if root == "run":
        fields = RUN_END_FIELDS if at_end else RUN_FIELDS
        if len(ref) < 2 or ref[1] in fields:
            return None
        if ref[1] in RUN_END_FIELDS:
            return f"'run.{ref[1]}' is known only when the run ends; use it in kpis"
        return f"'run' has {'only ' if len(fields) == 1 else ''}{', '.join(fields)}, not '{ref[1]}'"
    if root != "steps":
        near = difflib.get_close_matches(str(root), ["inputs", "steps", "run"], n=1)
        return f"unknown name '{root}'" + (f" (did you mean '{near[0]}'?)" if near else "; expressions can use inputs, steps and run")
    if len(ref) < 2:
        return None
    step_id = str(ref[1])
    if step_id not in earlier:
        all_ids = [s.id for s in book.file.steps]
        if step_id in all_ids:
            return f"step '{step_id}' does not run before this one, so its output is not produced yet"
        near = difflib.get_close_matches(step_id, list(earlier), n=1)
        return f"no {'' if at_end else 'earlier '}step '{step_id}'" + (f" (did you mean '{near[0]}'?)" if near else "")
    target = earlier[step_id]
    if len(ref) < 3:
        return None
    field_name = str(ref[2])
    if field_name not in STEP_FIELDS or (field_name in _DECIDED and target.kind not in EDITABLE):
        has = [f for f in STEP_FIELDS if f not in _DECIDED or target.kind in EDITABLE]
        return f"steps.{step_id} has no '{field_name}' (it has {', '.join(has)})"
    if field_name == "output":
        return _check_property(ref[3:], _output_schema(target), f"steps.{step_id}.output")
    return None


def _output_schema(step: StepSpec) -> dict[str, Any] | None:
    if step.kind == "agent":
        return step.step.output
    if step.kind == "human":
        return step.step.input or step.step.output
    if step.kind == "check":
        return CHECK_OUTPUT
    return None


def _check_property(path: tuple[str | int, ...], schema: dict[str, Any] | None, where: str) -> str | None:
    """Follow `path` through a JSON schema's declared properties, where it declares them."""
    for part in path:
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict) or isinstance(part, int):
            return None
        props = schema["properties"]
        if part not in props:
            near = difflib.get_close_matches(str(part), list(props), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; it has {', '.join(props) or 'none'}"
            return f"{where} has no property '{part}'{hint}"
        schema, where = props[part], f"{where}.{part}"
    return None


def _check_schema(schema: Any, source: Source, loc: Loc) -> list[Problem]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        error: SchemaError | ValidationError = exc
        while error.context:  # "not valid under any of the given schemas": say which part is wrong
            error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator == "enum"))
        return [source.at((*loc, *error.absolute_path), f"invalid JSON schema: {_schema_message(error)}")]
    return []


def _schema_message(error: SchemaError | ValidationError) -> str:
    if error.validator == "enum" and "type" in error.absolute_path and isinstance(error.instance, str):
        types = [str(t) for t in error.validator_value]  # type: ignore[union-attr]
        near = difflib.get_close_matches(error.instance, types, n=1)
        return f"unknown type '{error.instance}'" + (f" (did you mean '{near[0]}'?)" if near else f"; types: {', '.join(types)}")
    return str(error.message)
