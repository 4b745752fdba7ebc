"""Checking scripted-model files (`model: scripted:FILE`)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from lane.errors import Problem
from lane.models.scripted import TURN_KEYS
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
        return _check_turns(source, (), data, allow if steps else None)
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
        problems += _check_turns(source, (step_id,), turns, steps.get(step_id))
    return problems


def _check_turns(source: Source, loc: Loc, turns: list[Any], allow: list[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    for i, turn in enumerate(turns):
        at = (*loc, i)
        unknown = sorted(set(turn) - TURN_KEYS, key=str) if isinstance(turn, dict) else []
        for key in unknown:
            near = difflib.get_close_matches(str(key), sorted(TURN_KEYS), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed keys: {', '.join(sorted(TURN_KEYS))}"
            problems.append(source.at((*at, key), f"unknown key '{key}'{hint}", key=True))
        if not isinstance(turn, dict) or not turn.keys() & {"text", "tool_calls", "output"}:
            if not unknown:
                problems.append(source.at(at, "a turn needs text, tool_calls or output"))
            continue
        calls = turn.get("tool_calls") or []
        if not isinstance(calls, list):
            problems.append(source.at((*at, "tool_calls"), "tool_calls must be a list of {name, args}"))
            continue
        for j, call in enumerate(calls):
            problems += _check_call(source, (*at, "tool_calls", j), call, allow)
    return problems


def _check_call(source: Source, at: Loc, call: Any, allow: list[str] | None) -> list[Problem]:
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return [source.at(at, "a tool call needs a name: {name: toolset.tool, args: {...}}")]
    if not isinstance(call.get("args", {}), dict):
        return [source.at((*at, "args"), "args must be a mapping")]
    name = call["name"]
    if allow is not None and not any(fnmatch.fnmatchcase(name, p) for p in allow):
        return [source.at((*at, "name"), f"calls tool '{name}', which its agent is not allowed (allowed: {', '.join(allow) or 'none'})")]
    return []
