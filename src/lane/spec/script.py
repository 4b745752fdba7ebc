"""Checking scripted-model files (`model: scripted:FILE`)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from lane.errors import Problem
from lane.models.scripted import turn_problems
from lane.spec.source import Loc, Source, read_yaml

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec


def check_script(project: ProjectSpec, file: str, steps: dict[str, list[str]], *, maybe: Collection[str] | None = ()) -> list[Problem]:
    """Problems in a script file; `steps` maps each agent step using it to that step's tool allowlist.

    `maybe`: steps that may use it too (their model is not known), None when any step may."""
    path = project.root / file
    if not path.is_file():
        return []  # reported where the model is named
    source = read_yaml(path, file)
    if source.problems:
        return source.problems
    data = source.data
    if isinstance(data, list):
        allow = sorted({t for tools in steps.values() for t in tools})
        return _check_turns(project, source, (), data, allow if steps else None)
    if not isinstance(data, dict):
        return [source.at((), "a script is a list of turns, or a mapping from step id to a list of turns")]
    problems: list[Problem] = []
    for step_id, turns in data.items():
        if steps and maybe is not None and step_id not in steps and step_id not in maybe:
            near = difflib.get_close_matches(str(step_id), list(steps), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; steps using it: {', '.join(steps)}"
            problems.append(source.at((step_id,), f"no agent step '{step_id}' uses this script{hint}", key=True))
            continue
        if not isinstance(turns, list):
            problems.append(source.at((step_id,), f"the turns of step '{step_id}' must be a list"))
            continue
        problems += _check_turns(project, source, (step_id,), turns, steps.get(step_id))
    return problems


def _check_turns(project: ProjectSpec, source: Source, loc: Loc, turns: list[Any], allow: list[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    for i, turn in enumerate(turns):
        at = (*loc, i)
        found = turn_problems(turn)
        problems += [source.at((*at, *p.at), p.message, key=p.key) for p in found]
        broken = {p.at[:2] for p in found}  # ("tool_calls", j) for a call without a name or with bad args
        calls = turn.get("tool_calls") if isinstance(turn, dict) else None
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            if ("tool_calls", j) in broken:
                continue
            message = _tool_problem(project, call["name"], allow)
            if message:
                problems.append(source.at((*at, "tool_calls", j, "name"), message))
    return problems


def _tool_problem(project: ProjectSpec, name: str, allow: list[str] | None) -> str | None:
    """Why a turn cannot call tool `name`: it is not in the project (tools of MCP servers are known
    only when they run), or the agent's allowlist does not include it."""
    if name not in project.tools and not project.unloaded_tool(name):
        near = difflib.get_close_matches(name, list(project.tools), n=1)
        return f"no tool '{name}' in this project" + (f" (did you mean '{near[0]}'?)" if near else "")
    if allow is not None and not any(fnmatch.fnmatchcase(name, p) for p in allow):
        return f"calls tool '{name}', which its agent is not allowed (allowed: {', '.join(allow) or 'none'})"
    return None
