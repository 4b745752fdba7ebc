"""The scripted model: canned turns, for tests and for rehearsing a runbook."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lane.errors import ScriptExhausted, UsageError
from lane.models.base import NO_OUTPUT, ModelRequest, ModelResponse, ToolCall, Usage

TURN_KEYS = {"text", "tool_calls", "output", "usage"}
TOKEN_KEYS = ("input_tokens", "output_tokens")  # with COST_KEY, the fields of Usage
COST_KEY = "cost_usd"


class ScriptedModel:
    """Answers from a script: a list of turns, or a mapping from step id to a list.

    A list is consumed in order by every call on this model in a run; a mapping
    gives each step its own list. A turn is a mapping with `text`, `tool_calls`
    (a list of `{name, args}`), `output` (the step's handoff) and optionally
    `usage` (`{input_tokens, output_tokens}`). The position comes from the
    request, not from hidden state, so a resumed run picks up where it was.
    """

    def __init__(self, script: list[dict[str, Any]] | dict[str, list[dict[str, Any]]], *, name: str = "scripted") -> None:
        self.id = f"scripted:{name}"
        self.name = name
        self.script = script
        self._turns: dict[str, list[ModelResponse]] | list[ModelResponse]
        if isinstance(script, dict):
            self._turns = {step: [parse_turn(t) for t in turns] for step, turns in script.items()}
        else:
            self._turns = [parse_turn(t) for t in script]

    @classmethod
    def from_file(cls, path: Path, *, name: str | None = None) -> ScriptedModel:
        from lane.spec.source import read_yaml

        source = read_yaml(path, str(path))
        if source.problems:
            raise UsageError(str(source.problems[0]))
        return cls(source.data or [], name=name or str(path))

    async def request(self, request: ModelRequest) -> ModelResponse:
        if isinstance(self._turns, dict):
            turns = self._turns.get(request.step_id)
            if turns is None:  # a step inside a group: by its path without item numbers (each.work), or its own id (work)
                path = _NUMBERS.sub("", request.step_id)
                turns = self._turns.get(path, self._turns.get(path.rpartition(".")[2], []))
            index, whose = request.turn, f"step {request.step_id!r}"
        else:
            turns, index, whose = self._turns, request.seq, "this run"
        if index >= len(turns):
            raise ScriptExhausted(
                f"scripted model {self.name}: {whose} asked for turn {index + 1}, "
                f"but the script has {len(turns)} turn(s) for it; add turns to the script"
            )
        return turns[index]


_NUMBERS = re.compile(r"\[\d+\]")


def parse_turn(turn: Any) -> ModelResponse:
    """A turn as the model's response; raises UsageError saying what is wrong with it (as `lane validate` does)."""
    problems = turn_problems(turn)
    if problems:
        where = ".".join(str(p) for p in problems[0].at)
        raise UsageError(f"a scripted turn {'at ' + where + ' ' if where else ''}is wrong: {problems[0].message}")
    calls = tuple(ToolCall(c["name"], dict(c.get("args") or {})) for c in turn.get("tool_calls") or ())
    usage = Usage(**turn["usage"]) if turn.get("usage") is not None else Usage()
    return ModelResponse(text=turn.get("text"), tool_calls=calls, output=turn.get("output", NO_OUTPUT), usage=usage)


@dataclass(frozen=True)
class TurnProblem:
    at: tuple[str | int, ...]  # inside the turn
    message: str
    key: bool = False  # the problem is the key at `at`, not its value


def turn_problems(turn: Any) -> list[TurnProblem]:
    """Everything that keeps `turn` from being a model turn: empty when parse_turn can read it."""
    if not isinstance(turn, dict):
        return [TurnProblem((), "a turn needs text, tool_calls or output")]
    problems = [TurnProblem((key,), _unknown(key, TURN_KEYS), key=True) for key in sorted(set(turn) - TURN_KEYS, key=str)]
    if not turn.keys() & {"text", "tool_calls", "output"}:
        return problems or [TurnProblem((), "a turn needs text, tool_calls or output")]
    if turn.get("text") is not None and not isinstance(turn["text"], str):
        problems.append(TurnProblem(("text",), f"text must be text, not {type(turn['text']).__name__}; quote it"))
    calls = turn.get("tool_calls") or []
    if not isinstance(calls, list):
        problems.append(TurnProblem(("tool_calls",), "tool_calls must be a list of {name, args}"))
    else:
        for j, call in enumerate(calls):
            problems += [TurnProblem(("tool_calls", j, *p.at), p.message, p.key) for p in _call_problems(call)]
    if turn.get("usage") is not None:
        problems += [TurnProblem(("usage", *p.at), p.message, p.key) for p in _usage_problems(turn["usage"])]
    return problems


def _unknown(key: Any, allowed: set[str] | tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    return f"unknown key '{key}'" + (f" (did you mean '{near[0]}'?)" if near else f"; allowed keys: {', '.join(sorted(allowed))}")


def _call_problems(call: Any) -> list[TurnProblem]:
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return [TurnProblem((), "a tool call needs a name: {name: toolset.tool, args: {...}}")]
    if not isinstance(call.get("args", {}), dict):
        return [TurnProblem(("args",), "args must be a mapping")]
    return []


def _usage_problems(usage: Any) -> list[TurnProblem]:
    """`usage` as Usage holds it: whole numbers of tokens, and a cost in US dollars or null."""
    if not isinstance(usage, dict):
        return [TurnProblem((), f"usage must be a mapping such as {{{TOKEN_KEYS[0]}: 120, {TOKEN_KEYS[1]}: 30}}")]
    problems = []
    for key, value in usage.items():
        if key in TOKEN_KEYS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(TurnProblem((key,), f"{key} must be a whole number of tokens, 0 or more, not {value!r}"))
        elif key == COST_KEY:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value >= 0):
                problems.append(TurnProblem((key,), f"{key} must be a cost in US dollars (0 or more) or null, not {value!r}"))
        else:
            problems.append(TurnProblem((key,), _unknown(key, (*TOKEN_KEYS, COST_KEY)), key=True))
    return problems

