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
        for path, step in book.named():
            why = _gates(project, book, step)
            if why is not None:
                return book.source.at(step.loc, f"step '{path}' {why}, but {NO_PERSON}")
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
    if step.step.on_fail is not None:
        return "may wait for a person (a feedback loop asks one when its attempts run out)"
    return None


def _call_gates(project: ProjectSpec, level: str, allowed: list[str], rulesets: tuple[RuleSet, ...]) -> str | None:
    """Why a call this step may make would wait for a person, or None: as calls.py decides, rules first, then autonomy."""
    for name, tool in sorted(project.tools.items()):
        if project.allows(allowed, name):
            why = _waits(project, level, name, tool.effect, rulesets)
            if why is not None:
                return why
    for pattern in (p for p in allowed if project.unloaded_tool(p)):  # an MCP server's tools are listed when it runs
        server, _, tool_name = pattern.partition(".")
        effects = project.mcp[server].effects if server in project.mcp else {}
        if tool_name in effects and "*" not in tool_name:  # its effect is declared in lane.yaml
            why = _waits(project, level, pattern, effects[tool_name], rulesets)
            if why is not None:
                return why
        elif level in ("ask", "guarded"):
            return f"may wait for a person (autonomy {level}: the effects of {pattern} are known only when its MCP server runs; "\
                   "declare them under `effects:`)"
    return None


def _waits(project: ProjectSpec, level: str, name: str, effect: str, rulesets: tuple[RuleSet, ...]) -> str | None:
    if level == "observe" and effect != "read":
        return None  # only proposed, whatever the rules
    asked = [r for rules in rulesets for r in rules.ask if project.allows([r.tool], name)]
    if asked:
        return f"waits for a person (rule ask: {asked[0]})"
    settled = [r for rules in rulesets for r in (*rules.deny, *rules.allow)
               if project.allows([r.tool], name) and r.pattern is None and not r.pairs]
    if settled:
        return None  # a rule for every call of the tool decides it: refused or run, no person
    if gate(level, effect) == "approve":
        return f"waits for a person (autonomy {level}: {name} is {effect})"
    return None
