"""Where a project's runbooks would wait for a person, found before anything runs.

A project whose runbooks gate nothing (every step runs or proposes on its own)
needs no human role in its work chart; one with a gate does, and validate says
which step gates and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lane.engine.autonomy import gate
from lane.errors import Problem

if TYPE_CHECKING:
    from lane.engine.rules import RuleSet
    from lane.spec.project import ProjectSpec
    from lane.spec.runbook import RunbookSpec, StepSpec

NO_PERSON = ("the work chart has no human role to decide it; add one to roles in lane.yaml, such as "
             "`lead: {kind: human}`, or let the step run on its own (autonomy, rules)")


def first_gate(project: ProjectSpec) -> Problem | None:
    """The first step that would wait for a person, as a problem, when the work chart has no human role."""
    if project.human_roles:
        return None
    for book in project.runbooks.values():
        for step in book.steps:
            why = _gates(project, book, step)
            if why is not None:
                return book.source.at(("steps", step.index), f"step '{step.id}' {why}, but {NO_PERSON}")
    return None


def _gates(project: ProjectSpec, book: RunbookSpec, step: StepSpec) -> str | None:
    if step.kind == "tool":
        level = step.step.autonomy or book.file.autonomy
        return _call_gates(project, level, [step.step.tool or ""], (project.rules,))
    if step.kind == "agent":
        agent = project.agents.get(step.step.agent or "")
        if agent is None:
            return None
        allowed = step.step.tools if step.step.tools is not None else agent.file.tools
        return _call_gates(project, agent.file.autonomy, allowed, (project.rules, agent.rules))
    return None


def _call_gates(project: ProjectSpec, level: str, allowed: list[str], rulesets: tuple[RuleSet, ...]) -> str | None:
    """Why a call this step may make would wait for approval, or None."""
    if level == "observe":
        return None  # everything not read is only proposed
    for name, tool in sorted(project.tools.items()):
        if not project.allows(allowed, name):
            continue
        if gate(level, tool.effect) == "approve":
            return f"waits for a person (autonomy {level}: {name} is {tool.effect})"
        asked = [r for rules in rulesets for r in rules.ask if project.allows([r.tool], name)]
        if asked:
            return f"waits for a person (rule ask: {asked[0]})"
    if level != "auto" and any(project.unloaded_tool(p) for p in allowed):
        return f"may wait for a person (autonomy {level}: MCP tools' effects are known only when the server runs)"
    return None
