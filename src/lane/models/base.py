"""The model seam: what lane sends to a model and what comes back.

Messages are plain JSON-able dicts so the journal records exactly what was sent:
  {"role": "system" | "user", "content": str}
  {"role": "assistant", "content": str | None, "tool_calls": [{"id", "name", "args"}], "output": ...}
  {"role": "tool", "call_id": str, "name": str, "content": JSON}
A provider translates them to its wire format; lane owns the loop around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0  # None: the provider's price for this model is not known

    def to_json(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Usage:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


NO_OUTPUT: Any = object()


@dataclass(frozen=True)
class ModelResponse:
    """One model turn: text, tool calls, a structured output, or a mix."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    output: Any = NO_OUTPUT
    usage: Usage = Usage()
    prompt: str | None = None  # the exact text sent, from providers that render their own prompt
    cut_off: int | None = None  # the reply stopped at this many tokens before it was complete: the agent asks again

    @property
    def has_output(self) -> bool:
        return self.output is not NO_OUTPUT

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text, "tool_calls": [{"name": c.name, "args": c.args} for c in self.tool_calls]}
        if self.has_output:
            data["output"] = self.output
        data["usage"] = self.usage.to_json()
        if self.prompt is not None:
            data["prompt"] = self.prompt
        if self.cut_off is not None:
            data["cut_off"] = self.cut_off
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResponse:
        return cls(
            text=data.get("text"),
            tool_calls=tuple(ToolCall(c["name"], c["args"]) for c in data.get("tool_calls", ())),
            output=data["output"] if "output" in data else NO_OUTPUT,
            usage=Usage.from_json(data.get("usage")),
            prompt=data.get("prompt"),
            cut_off=data.get("cut_off"),
        )


@dataclass(frozen=True)
class Task:
    """The step as structure, for providers that write their own prompt (a small base model wants few-shot text)."""

    direction: str
    goal: str
    inputs: Any
    examples: tuple[tuple[Any, Any], ...] = ()  # (inputs, output)


@dataclass(frozen=True)
class Settings:
    """Per-agent model settings; None leaves the provider's default."""

    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None  # seconds per attempt


@dataclass(frozen=True)
class ModelRequest:
    messages: list[dict[str, Any]]
    tools: tuple[ToolSpec, ...] = ()
    output_schema: dict[str, Any] | None = None
    step_id: str = ""
    turn: int = 0  # model turns already taken in this step
    seq: int = 0  # calls already answered by this model in this run
    tool_choice: str = "auto"  # auto: call a tool or answer; required: call a tool now
    task: Task | None = None
    settings: Settings = Settings()
    on_stream: Callable[[str], None] | None = None  # called with each piece of the reply as it arrives


class Model(Protocol):
    """A model lane can ask for one turn. Providers implement this."""

    id: str

    async def request(self, request: ModelRequest) -> ModelResponse: ...
