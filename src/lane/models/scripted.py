"""The scripted model: canned turns, for tests and for rehearsing a runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lane.errors import ScriptExhausted, UsageError
from lane.models.base import NO_OUTPUT, ModelRequest, ModelResponse, ToolCall, Usage

TURN_KEYS = {"text", "tool_calls", "output", "usage"}


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
            turns = self._turns.get(request.step_id, [])
            index, whose = request.turn, f"step {request.step_id!r}"
        else:
            turns, index, whose = self._turns, request.seq, "this run"
        if index >= len(turns):
            raise ScriptExhausted(
                f"scripted model {self.name}: {whose} asked for turn {index + 1}, "
                f"but the script has {len(turns)} turn(s) for it; add turns to the script"
            )
        return turns[index]


def parse_turn(turn: Any) -> ModelResponse:
    if not isinstance(turn, dict) or not turn.keys() & {"text", "tool_calls", "output"}:
        raise UsageError(f"a scripted turn needs text, tool_calls or output: {turn!r}")
    calls = tuple(ToolCall(str(c["name"]), dict(c.get("args") or {})) for c in turn.get("tool_calls") or ())
    usage = Usage(**turn["usage"]) if "usage" in turn else Usage()
    return ModelResponse(text=turn.get("text"), tool_calls=calls, output=turn.get("output", NO_OUTPUT), usage=usage)

