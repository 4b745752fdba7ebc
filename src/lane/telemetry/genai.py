"""lane's journal in the words of OpenTelemetry's GenAI semantic conventions.

A run is an `invoke_workflow` span, an agent step `invoke_agent`, a model turn
`chat` and a tool call `execute_tool`, with the attributes the conventions name
(`gen_ai.*`). Messages, when content is recorded, take the conventions' JSON
shape: `{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", ...}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

WORKFLOW, AGENT, CHAT, TOOL = "invoke_workflow", "invoke_agent", "chat", "execute_tool"


class Content:
    """Prompts, outputs, tool arguments and results, as span attributes (`telemetry.content: true`): redacted first."""

    def __init__(self, redact: Callable[[Any], Any]) -> None:
        self.redact = redact

    def text(self, value: Any) -> str:
        value = self.redact(value)
        return value if isinstance(value, str) else _json(value)


def provider_and_model(model_id: str) -> tuple[str, str]:
    """`gen_ai.provider.name` and `gen_ai.request.model` of a lane model id: `openai:gpt-4.1-mini` is
    (`openai`, `gpt-4.1-mini`); the built-in `local` is (`local`, `local`)."""
    provider, _, model = model_id.partition(":")
    return provider, model or provider


def model_attributes(model_id: str) -> dict[str, Any]:
    provider, model = provider_and_model(model_id)
    return {"gen_ai.provider.name": provider, "gen_ai.request.model": model}


def finish_reason(response: dict[str, Any]) -> str:
    """Why the model stopped, as the conventions name it: cut off at its token limit, calling tools, or done."""
    if response.get("cut_off") is not None:
        return "length"
    return "tool_call" if response.get("tool_calls") else "stop"


def error_type(error: str) -> str:
    """A low-cardinality class for an error text lane recorded as `Name: message` (a tool's exception), else `_OTHER`."""
    name = error.partition(":")[0]
    return name if name.isidentifier() else "_OTHER"


def messages(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lane's messages (system, user, assistant with tool calls, tool results) as the conventions' input messages."""
    return [_message(m) for m in conversation]


def reply(response: dict[str, Any]) -> dict[str, Any]:
    """A model's recorded response as the conventions' output message."""
    return {**_message(assistant(response)), "finish_reason": finish_reason(response)}


def assistant(response: dict[str, Any]) -> dict[str, Any]:
    """The message lane's agent adds to its conversation for a response (as `engine.agent` does)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.get("text")}
    if response.get("tool_calls"):
        message["tool_calls"] = response["tool_calls"]
    if "output" in response:
        message["output"] = response["output"]
    return message


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role", "user"))
    content = message.get("content")
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.get("call_id"), "result": content}]}
    parts: list[dict[str, Any]] = []
    if content not in (None, ""):
        parts.append({"type": "text", "content": content if isinstance(content, str) else _json(content)})
    if "output" in message:
        parts.append({"type": "text", "content": _json(message["output"])})
    for call in message.get("tool_calls") or ():
        parts.append({"type": "tool_call", "name": call.get("name"), "arguments": call.get("args")})
    return {"role": role, "parts": parts}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
