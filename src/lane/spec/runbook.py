"""Runbooks: compile each step's expressions and check what they refer to."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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
from lane.spec.files import COMMON_STEP_KEYS, STEP_ID, STEP_KEYS, STEP_KINDS, RunbookFile, Step
from lane.spec.schema import schema_errors
from lane.spec.source import Loc, Source
from lane.spec.toolsets import missing_program

if TYPE_CHECKING:
    from jsonschema.exceptions import SchemaError, ValidationError

    from lane.spec.project import ProjectSpec

CHECK_OUTPUT = {"type": "object", "properties": {k: {} for k in ("exit_code", "stdout", "stderr", "seconds", "timed_out", "truncated")}}
STEP_FIELDS = {"output": "any step", "status": "any step", "edited": "human and tool steps", "approved_by": "human and tool steps",
               "refused": "agent steps"}
EDITABLE = ("human", "tool")  # steps whose value a person may edit before it is used
_DECIDED = ("edited", "approved_by")  # what a person's decision on a human or tool step adds
RUN_FIELDS = ("id",)
BRANCH_ENTRY = {"type": "object", "properties": {"status": {}, "output": {}, "error": {}}}  # on_error: continue
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
    items: Value | None = None  # for_each: the list it maps over
    body: list[StepSpec] = field(default_factory=list)  # for_each: the steps run for each item
    branches: dict[str, list[StepSpec]] = field(default_factory=dict)  # parallel
    loc: Loc = ()  # where it is written in its runbook
    name: str = ""  # the id the run knows it by inside a group (`each[2].inc`, `both.a.pa`); the step's own id otherwise

    @property
    def id(self) -> str:
        return self.name or self.step.id

    def at(self, prefix: str) -> StepSpec:
        """This step as it runs inside a group whose steps are named `prefix` + their own id."""
        return replace(self, name=prefix + self.step.id) if prefix else self

    def walk(self) -> Iterator[StepSpec]:
        """This step and every step inside it."""
        yield self
        for inner in (*self.body, *(s for branch in self.branches.values() for s in branch)):
            yield from inner.walk()


@dataclass
class RunbookSpec:
    file: RunbookFile
    source: Source
    steps: list[StepSpec] = field(default_factory=list)
    kpis: dict[str, Expression] = field(default_factory=dict)
    output: Value | None = None
    children: list[tuple[StepSpec, Loc]] = field(default_factory=list)  # steps that run a runbook, checked once all are loaded

    @property
    def name(self) -> str:
        return self.file.runbook

    def walk(self) -> Iterator[StepSpec]:
        """Every step, those inside groups too."""
        for step in self.steps:
            yield from step.walk()

    def named(self) -> Iterator[tuple[str, StepSpec]]:
        """Every step with its name as a path without item numbers: `each.inc`, `both.a.pa` (what a script's step keys say)."""
        def walk(steps: list[StepSpec], prefix: str) -> Iterator[tuple[str, StepSpec]]:
            for step in steps:
                yield prefix + step.step.id, step
                yield from walk(step.body, f"{prefix}{step.step.id}.")
                for branch, inner in step.branches.items():
                    yield from walk(inner, f"{prefix}{step.step.id}.{branch}.")
        return walk(self.steps, "")


@dataclass(frozen=True)
class Scope:
    """What an expression at some place in a runbook can read: the steps before it (those of the groups
    around it too), and names such as a for_each's `item`."""

    earlier: dict[str, StepSpec]
    names: frozenset[str] = frozenset()
    block: tuple[str, ...] = ()  # the ids of the steps of the block it is in: a later one is "not run yet"


def check_runbook(book: RunbookFile, source: Source, project: ProjectSpec) -> tuple[RunbookSpec, list[Problem]]:
    spec = RunbookSpec(book, source)
    problems: list[Problem] = []
    problems += _check_schema(book.inputs, source, ("inputs",))
    if book.approver is not None:
        problems += project.check_role(book.approver, source, ("approver",), kind="human")
    spec.steps, found = _check_block(book.steps, ("steps",), spec, project, Scope({}))
    problems += found
    every = {s.id: s for s in spec.steps}
    for name, kpi in book.kpis.items():
        expr, found = _expression(kpi.value, source, ("kpis", name, "value"), spec, Scope(every), at_end=True)
        problems += found
        if expr is not None:
            spec.kpis[name] = expr
    if book.output is not None:
        spec.output, found = _value(book.output, source, ("output",), spec, Scope(every))
        problems += found
    if book.release is not None:
        from lane.feedback.releases import check_release

        problems += check_release(spec)
    return spec, problems


def _check_block(steps: list[Step], loc: Loc, book: RunbookSpec, project: ProjectSpec, outer: Scope) -> tuple[list[StepSpec], list[Problem]]:
    """The steps of a runbook, a branch or a for_each, in order; their ids are local to the block."""
    problems: list[Problem] = []
    specs: list[StepSpec] = []
    seen: dict[str, int] = {}
    earlier = dict(outer.earlier)  # kept as the loop goes (not rebuilt per step)
    ids = tuple(s.id for s in steps)
    for index, step in enumerate(steps):
        at: Loc = (*loc, index)
        if step.id in seen:
            problems.append(book.source.at((*at, "id"), f"duplicate step id '{step.id}' (first used by step {seen[step.id] + 1})"))
            continue
        seen[step.id] = index
        step_spec, found = _check_step(step, index, at, book, project, Scope(earlier, outer.names, ids))
        problems += found
        specs.append(step_spec)
        earlier[step_spec.id] = step_spec
    problems += _check_loops(specs, loc, book)
    return specs, problems


def _check_loops(specs: list[StepSpec], loc: Loc, book: RunbookSpec) -> list[Problem]:
    """`on_fail: {back_to: ID}` names an agent step earlier in the same block."""
    problems: list[Problem] = []
    for position, spec in enumerate(specs):
        on_fail = spec.step.on_fail
        if on_fail is None:
            continue
        at = (*loc, spec.index, "on_fail", "back_to")
        before = {s.step.id: s for s in specs[:position]}
        target = before.get(on_fail.back_to)
        if target is None:
            later = any(s.step.id == on_fail.back_to for s in specs[position:])
            near = difflib.get_close_matches(on_fail.back_to, [s.step.id for s in specs[:position] if s.kind == "agent"], n=1)
            why = "is not before this step" if later else "is not a step of this block"
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            problems.append(book.source.at(at, f"back_to '{on_fail.back_to}' {why}; it names an earlier agent step{hint}"))
        elif target.kind != "agent":
            problems.append(book.source.at(at, f"back_to '{on_fail.back_to}' is a {target.kind} step; a feedback loop goes back to an agent step"))
    return problems


def _check_step(step: Step, index: int, loc: Loc, book: RunbookSpec, project: ProjectSpec, scope: Scope) -> tuple[StepSpec, list[Problem]]:
    source = book.source
    kinds = [k for k in STEP_KINDS if getattr(step, k) is not None]
    if "for_each" in kinds and "runbook" in kinds:
        kinds.remove("runbook")  # the runbook each item runs
    problems: list[Problem] = []
    if len(kinds) != 1:
        what = "none" if not kinds else " and ".join(kinds)
        problems.append(source.at(loc, f"step '{step.id}' must have exactly one of {', '.join(STEP_KINDS)} (it has {what})"))
        return StepSpec(step, kinds[0] if kinds else "check", index, loc=loc), problems
    kind = kinds[0]
    spec = StepSpec(step, kind, index, loc=loc)
    present = set(_node(source, loc))
    for key in sorted(present - COMMON_STEP_KEYS - STEP_KEYS[kind]):
        users = [k for k, keys in STEP_KEYS.items() if key in keys]
        if not users:
            continue  # not a step key at all: reported as unknown already
        problems.append(source.at((*loc, key), f"'{key}' is not used by {kind} steps (it belongs to {', '.join(users)} steps)", key=True))
    problems += _check_roles(spec, source, loc, project)
    if step.when is not None:
        spec.when, found = _expression(step.when, source, (*loc, "when"), book, scope)
        problems += found
    inner = Scope(scope.earlier, scope.names | {step.as_}, scope.block) if kind == "for_each" else scope
    for key, attr in (("with", "with_"), ("goal", "goal"), ("args", "args"), ("approve", "approve"), ("check", "check")):
        raw = getattr(step, attr)
        if raw is not None:
            value, found = _value(raw, source, (*loc, key), book, inner if key == "with" else scope)
            setattr(spec, attr, value)
            problems += found
    for key in ("output", "input"):
        schema = getattr(step, key)
        if schema is not None:
            problems += _check_schema(schema, source, (*loc, key))
    problems += _check_kind(spec, loc, book, project, scope)
    return spec, problems


def _check_kind(spec: StepSpec, loc: Loc, book: RunbookSpec, project: ProjectSpec, scope: Scope) -> list[Problem]:
    step, kind, source = spec.step, spec.kind, book.source
    problems: list[Problem] = []
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
    if kind == "parallel":
        problems += _check_parallel(spec, loc, book, project, scope)
    if kind == "for_each":
        problems += _check_for_each(spec, loc, book, project, scope)
    if kind == "runbook" or (kind == "for_each" and step.runbook is not None):
        book.children.append((spec, loc))
    return problems


def _check_parallel(spec: StepSpec, loc: Loc, book: RunbookSpec, project: ProjectSpec, scope: Scope) -> list[Problem]:
    problems: list[Problem] = []
    branches = spec.step.parallel or {}
    if not branches:
        problems.append(book.source.at((*loc, "parallel"), "parallel needs at least one branch: a name and its list of steps"))
    for name, steps in branches.items():
        at = (*loc, "parallel", name)
        if not re.fullmatch(STEP_ID.strip("^$"), name):
            problems.append(book.source.at(at, f"branch name {name!r} must be a name of letters, digits and '_'", key=True))
        if not steps:
            problems.append(book.source.at(at, f"branch '{name}' needs at least one step"))
            continue
        # A branch sees the steps before the group, not its sibling branches (they run at the same time).
        spec.branches[name], found = _check_block(steps, at, book, project, Scope(scope.earlier, scope.names))
        problems += found
    return problems


def _check_for_each(spec: StepSpec, loc: Loc, book: RunbookSpec, project: ProjectSpec, scope: Scope) -> list[Problem]:
    step, source = spec.step, book.source
    problems: list[Problem] = []
    if "${{" not in (step.for_each or ""):
        problems.append(source.at((*loc, "for_each"), "for_each takes an expression giving a list, such as ${{ inputs.items }}"))
    else:
        spec.items, found = _value(step.for_each, source, (*loc, "for_each"), book, scope)
        problems += found
    if step.as_ in ("inputs", "steps", "run") or step.as_.lower() in ("true", "false", "none", "not", "and", "or", "in", "is", "if", "else"):
        problems.append(source.at((*loc, "as"), f"'as: {step.as_}' is a name expressions already give a meaning; name the item otherwise, such as item"))
    if (step.steps is None) == (step.runbook is None):
        problems.append(source.at(loc, f"for_each step '{step.id}' needs exactly one of 'steps' (run for each item) or 'runbook' (a child run for each item)"))
    elif step.steps is not None:
        if not step.steps:
            problems.append(source.at((*loc, "steps"), "for_each needs at least one step to run for each item"))
        spec.body, found = _check_block(step.steps, (*loc, "steps"), book, project, Scope(scope.earlier, scope.names | {step.as_}))
        problems += found
    if step.with_ is not None and step.runbook is None:
        problems.append(source.at((*loc, "with"), "'with' gives a child runbook its inputs; a for_each with 'steps' reads its item directly", key=True))
    return problems


def check_children(project: ProjectSpec) -> list[Problem]:
    """Steps that run a runbook: it exists, its inputs can match what `with` gives, and no runbook runs itself."""
    problems: list[Problem] = []
    for book in project.runbooks.values():
        for spec, loc in book.children:
            name = spec.step.runbook or ""
            child = project.runbooks.get(name)
            if child is None:
                near = difflib.get_close_matches(name, list(project.runbooks), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else f"; runbooks: {', '.join(sorted(project.runbooks)) or 'none'}"
                problems.append(book.source.at((*loc, "runbook"), f"no runbook '{name}'{hint}"))
                continue
            problems += _check_child_inputs(book, spec, loc, child)
        cycle = _cycle(project, book.name, [], set())
        if cycle and cycle[0] == book.name:
            spec, loc = next((s, at) for s, at in book.children if s.step.runbook == cycle[1])
            problems.append(book.source.at((*loc, "runbook"), f"runbooks run each other in a cycle: {' -> '.join(cycle)}"))
    return problems


def _cycle(project: ProjectSpec, name: str, path: list[str], done: set[str]) -> list[str] | None:
    """A cycle of runbooks running each other reached from `name`, or None; `done`: runbooks known to reach none."""
    if name in path:
        return [*path[path.index(name):], name]
    book = project.runbooks.get(name)
    if book is None or name in done:
        return None
    for spec, _ in book.children:
        found = _cycle(project, spec.step.runbook or "", [*path, name], done)
        if found:
            return found
    done.add(name)
    return None


def _check_child_inputs(book: RunbookSpec, spec: StepSpec, loc: Loc, child: RunbookSpec) -> list[Problem]:
    """What `with` gives must be able to fit the child's inputs: its required keys are there, and no key it does not take."""
    given = spec.step.with_
    schema = child.file.inputs
    at = (*loc, "with") if given is not None else loc
    if given is not None and not isinstance(given, dict):
        return [book.source.at(at, "'with' gives the child runbook's inputs: a mapping")]
    given = given or {}
    problems: list[Problem] = []
    props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    missing = [k for k in schema.get("required", ()) if k not in given]
    if missing:
        problems.append(book.source.at(at, f"runbook '{child.name}' needs input{'s' if len(missing) > 1 else ''} {', '.join(missing)}; give {'them' if len(missing) > 1 else 'it'} in 'with'"))
    if schema.get("additionalProperties") is False:
        for key in given:
            if key not in props:
                near = difflib.get_close_matches(str(key), list(props), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else f"; it takes {', '.join(props) or 'none'}"
                problems.append(book.source.at((*at, key), f"runbook '{child.name}' takes no input '{key}'{hint}", key=True))
    for key, raw in given.items():
        if key in props and "${{" not in str(raw):
            errors = schema_errors(props[key], raw, root=key)
            problems += [book.source.at((*at, key), f"runbook '{child.name}': {e}") for e in errors[:1]]
    return problems


def _node(source: Source, loc: Loc) -> Any:
    node = source.data
    for part in loc:
        node = node[part]
    return node


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


def _expression(text: str, source: Source, loc: Loc, book: RunbookSpec, scope: Scope,
                *, at_end: bool = False) -> tuple[Expression | None, list[Problem]]:
    try:
        expr = compile_expression(text)
    except ExpressionSyntaxError as exc:
        return None, [source.at(loc, str(exc))]
    problems = [source.at(loc, msg) for msg in (_check_ref(ref, book, scope, at_end=at_end) for ref in expr.refs) if msg]
    return (None if problems else expr), problems


def _value(raw: Any, source: Source, loc: Loc, book: RunbookSpec, scope: Scope) -> tuple[Value | None, list[Problem]]:
    problems: list[Problem] = []
    for inner, text in expressions_in(raw):
        try:
            expr = compile_expression(text)
        except ExpressionSyntaxError as exc:
            problems.append(source.at((*loc, *inner), str(exc)))
            continue
        problems += [source.at((*loc, *inner), m) for m in (_check_ref(r, book, scope) for r in expr.refs) if m]
    if problems:
        return None, problems
    return compile_value(raw), []


def _check_ref(ref: Ref, book: RunbookSpec, scope: Scope, *, at_end: bool = False) -> str | None:
    root, earlier = ref[0], scope.earlier
    if root in scope.names:
        return None
    if root == "inputs":
        return _check_property(ref[1:], book.file.inputs, "inputs")
    if root == "run":
        fields = RUN_END_FIELDS if at_end else RUN_FIELDS
        if len(ref) < 2 or ref[1] in fields:
            return None
        if ref[1] in RUN_END_FIELDS:
            return f"'run.{ref[1]}' is known only when the run ends; use it in kpis"
        return f"'run' has {'only ' if len(fields) == 1 else ''}{', '.join(fields)}, not '{ref[1]}'"
    if root == "outcomes":
        return None if at_end else "'outcomes' are known only after the run; use them in kpis"
    if root != "steps":
        known = ["inputs", "steps", "run", *(["outcomes"] if at_end else []), *sorted(scope.names)]
        near = difflib.get_close_matches(str(root), known, n=1)
        return f"unknown name '{root}'" + (f" (did you mean '{near[0]}'?)" if near else f"; expressions can use {', '.join(known[:-1])} and {known[-1]}")
    if len(ref) < 2:
        return None
    step_id = str(ref[1])
    if step_id not in earlier:
        if step_id in scope.block:
            return f"step '{step_id}' does not run before this one, so its output is not produced yet"
        near = difflib.get_close_matches(step_id, list(earlier), n=1)
        return f"no {'' if at_end else 'earlier '}step '{step_id}'" + (f" (did you mean '{near[0]}'?)" if near else "")
    target = earlier[step_id]
    if len(ref) < 3:
        return None
    field_name = str(ref[2])

    def offered(name: str) -> bool:
        return (name not in _DECIDED or target.kind in EDITABLE) and (name != "refused" or target.kind == "agent")

    if field_name not in STEP_FIELDS or not offered(field_name):
        has = [f for f in STEP_FIELDS if offered(f)]
        return f"steps.{step_id} has no '{field_name}' (it has {', '.join(has)})"
    if field_name == "output":
        return _check_property(ref[3:], _output_schema(target), f"steps.{step_id}.output")
    return None


def _output_schema(step: StepSpec) -> dict[str, Any] | None:
    if step.kind == "for_each":
        return {"type": "array"}
    if step.kind == "parallel":
        if step.step.on_error == "continue":  # each branch's entry says how it ended
            return {"type": "object", "properties": {name: BRANCH_ENTRY for name in step.branches}}
        return {"type": "object", "properties": {name: _output_schema(b[-1]) or {} for name, b in step.branches.items() if b}}
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
