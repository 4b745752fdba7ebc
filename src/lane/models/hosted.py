"""Hosted and self-hosted models through pydantic-ai's model layer (`lane[hosted]`).

lane keeps its own loop: this module turns one lane request into one call of
`pydantic_ai.direct` and the answer back, and maps every way a provider can fail
to one of lane's `ModelCallFailed` errors. Retrying is lane's (see
`engine/agent.py`), so the provider SDK's own retries are turned off.

Tool names go to the wire with anything but letters, digits, `_` and `-`
replaced (`crm.find_customer` -> `crm_find_customer`); the step's output schema
is one more tool, `final_output`, which a step with no tools must call.

Replies stream to a progress display only from providers known to stream well:
servers reached by `base_url` differ (llama.cpp's repeats a tool's name in
every piece and sends no usage), so they stream only with `stream: true`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lane.errors import (
    ModelAuthFailed,
    ModelCallFailed,
    ModelError,
    ModelRateLimited,
    ModelReplyMalformed,
    ModelRequestRejected,
    ModelServerFailed,
    ModelTimedOut,
    ModelUnavailable,
    ModelUnreachable,
)
from lane.models.base import ModelRequest, ModelResponse, Settings, ToolCall, Usage

INSTALL = "pip install 'lane[hosted]'"
OUTPUT_TOOL = "final_output"
DEFAULT_TIMEOUT = 300.0  # seconds per attempt: a CPU-bound self-hosted server can be slow
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "ollama": "OLLAMA_API_KEY"}
OLLAMA_URL = "http://127.0.0.1:11434/v1"


def _pydantic_ai() -> Any:
    try:
        import pydantic_ai.direct
    except ImportError:
        raise ModelUnavailable(f"hosted models need pydantic-ai; install it with: {INSTALL}") from None
    return pydantic_ai


class _Client:
    """What one event loop uses: an HTTP client lives on the loop that opened it."""

    def __init__(self, http: Any, model: Any) -> None:
        self.http = http
        self.model = model
        self.in_flight = 0


class HostedModel:
    """One provider's model, shared by every step that names it; HTTP clients are per event loop, closed after each run."""

    def __init__(self, model_id: str, provider: str, name: str, *, base_url: str | None = None, api_key: str | None = None,
                 stream: bool = True) -> None:
        _pydantic_ai()
        self.id = model_id
        self.stream = stream
        self.provider = provider
        self.name = name
        self.base_url = base_url
        # A server by base_url gets only the key `api_key` names: never OPENAI_API_KEY or ANTHROPIC_API_KEY.
        self.key_variable = api_key.removeprefix("env:") if api_key else None if base_url else KEY_VARIABLES.get(provider)
        self.needs_key = api_key is not None or (base_url is None and provider in ("openai", "anthropic"))
        self.key = self._read_key()
        self.where = f"model {model_id}" + (f" at {_shown_url(base_url)}" if base_url else "")
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Client] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _client(self) -> _Client:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = self._build()
            return client

    def _read_key(self) -> str:
        key = os.environ.get(self.key_variable) if self.key_variable else None
        return self._require(key) if self.needs_key else key or "not-needed"

    def _build(self) -> _Client:
        from pydantic_ai.models import create_async_httpx2_client

        self.key = self._read_key()  # each run's client reads the key again: a fixed key counts on resume

        http = create_async_httpx2_client()  # each request sets its own timeout (the agent's settings)
        if self.provider == "anthropic":
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            return _Client(http, AnthropicModel(self.name, provider=AnthropicProvider(api_key=self.key, base_url=self.base_url, http_client=http)))
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.profiles.openai import OpenAIModelProfile

        if self.provider == "ollama":
            from pydantic_ai.providers.ollama import OllamaProvider

            url = self.base_url or os.environ.get("OLLAMA_BASE_URL") or OLLAMA_URL
            return _Client(http, OpenAIChatModel(self.name, provider=OllamaProvider(base_url=url, api_key=self.key, http_client=http)))
        from pydantic_ai.providers.openai import OpenAIProvider

        if self.base_url is None:
            return _Client(http, OpenAIChatModel(self.name, provider=OpenAIProvider(api_key=self.key, http_client=http)))
        # Servers that speak OpenAI's API (vLLM, llama.cpp, LM Studio) read `max_tokens`, not `max_completion_tokens`.
        profile = OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False)
        provider = OpenAIProvider(base_url=self.base_url, api_key=self.key, http_client=http)
        return _Client(http, OpenAIChatModel(self.name, provider=provider, profile=profile))

    async def aclose(self) -> None:
        """Close this event loop's HTTP client (at the end of a run); the next request opens a new one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None or client.in_flight:  # another run on this loop is waiting on it: it closes at that run's end
                return
            del self._clients[loop]
        await client.http.aclose()

    def _require(self, key: str | None) -> str:
        if key:
            return key
        raise ModelAuthFailed(
            f"model {self.id} needs an API key in the environment variable {self.key_variable}, which is not set; "
            f"set it with `export {self.key_variable}=...` (or name another variable with `api_key: env:NAME` "
            "under models: in lane.yaml)"
        )

    def redact(self, text: str) -> str:
        """Error text with the key replaced: a server may echo what it was sent."""
        if self.key != "not-needed" and len(self.key) >= 4:
            text = text.replace(self.key, f"[secret:{self.key_variable}]")
        return text

    async def request(self, request: ModelRequest) -> ModelResponse:
        wire = WireNames([t.name for t in request.tools])
        messages = to_messages(request, wire)
        params, forced, wrapped = parameters(request, wire)
        settings = model_settings(request.settings, forced, openai_family=self.provider != "anthropic", official=self.base_url is None)
        client = self._client()
        client.in_flight += 1
        try:
            with self._mapped_errors():
                answer = await self._answer(client.model, request, messages, params, settings)
            return from_answer(answer, wire, wrapped=wrapped, structured=request.output_schema is not None)
        finally:
            client.in_flight -= 1

    async def _answer(self, model: Any, request: ModelRequest, messages: list[Any], params: Any, settings: dict[str, Any]) -> Any:
        pydantic_ai = _pydantic_ai()
        if request.on_stream is None or not self.stream:
            return await pydantic_ai.direct.model_request(model, messages, model_settings=settings, model_request_parameters=params, instrument=False)
        async with pydantic_ai.direct.model_request_stream(
            model, messages, model_settings=settings, model_request_parameters=params, instrument=False
        ) as stream:
            async for event in stream:
                delta = _delta_text(event)
                if delta:
                    request.on_stream(delta)
            return stream.get()

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except ModelError:
            raise
        except Exception as exc:
            mapped = map_error(exc, self)
            if mapped is None:
                raise
            mapped.args = (self.redact(str(mapped)),)
            raise mapped from exc


class WireNames:
    """lane's tool names to names every provider accepts, and back."""

    def __init__(self, names: list[str]) -> None:
        self.to_wire: dict[str, str] = {}
        self.to_lane: dict[str, str] = {}
        taken = {OUTPUT_TOOL}
        for name in names:
            base = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "tool"
            wire, n = base, 1
            while wire in taken:
                n += 1
                wire = f"{base}_{n}"
            taken.add(wire)
            self.to_wire[name], self.to_lane[wire] = wire, name

    def wire(self, name: str) -> str:
        return self.to_wire.get(name, re.sub(r"[^A-Za-z0-9_-]", "_", name))

    def lane(self, wire: str) -> str:
        return self.to_lane.get(wire, wire)


def to_messages(request: ModelRequest, wire: WireNames) -> list[Any]:
    """lane's messages as pydantic-ai's: requests (system, user, tool results) and responses, alternating."""
    from pydantic_ai import messages as m

    out: list[Any] = []
    pending: list[Any] = []  # parts of the next request
    calls = 0  # tool calls so far: the k-th call is answered by the k-th tool message
    results = 0
    output_call: str | None = None  # an earlier structured output, answered by the next user message

    def flush_request() -> None:
        nonlocal pending
        if pending:
            out.append(m.ModelRequest(parts=pending))
            pending = []

    for message in request.messages:
        role = message["role"]
        if role == "system":
            pending.append(m.SystemPromptPart(message["content"]))
        elif role == "user" and output_call is not None:
            pending.append(m.ToolReturnPart(tool_name=OUTPUT_TOOL, content=message["content"], tool_call_id=output_call))
            output_call = None
        elif role == "user":
            pending.append(m.UserPromptPart(message["content"]))
        elif role == "tool":
            results += 1
            content = message["content"]
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            pending.append(m.ToolReturnPart(tool_name=wire.wire(message["name"]), content=text, tool_call_id=f"call_{results}"))
        elif role == "assistant":
            flush_request()
            parts: list[Any] = []
            if message.get("content"):
                parts.append(m.TextPart(message["content"]))
            for call in message.get("tool_calls", ()):
                calls += 1
                parts.append(m.ToolCallPart(wire.wire(call["name"]), call["args"], f"call_{calls}"))
            if "output" in message:
                output_call = f"output_{len(out)}"
                parts.append(m.ToolCallPart(OUTPUT_TOOL, message["output"] if isinstance(message["output"], dict) else {"value": message["output"]}, output_call))
            out.append(m.ModelResponse(parts=parts or [m.TextPart("")]))
    flush_request()
    return out


def parameters(request: ModelRequest, wire: WireNames) -> tuple[Any, str | None, bool]:
    """The tools offered; the one tool the model must call, if any; whether the output schema was wrapped as `{value}`."""
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.tools import ToolDefinition

    tools = [ToolDefinition(name=wire.wire(t.name), parameters_json_schema=t.parameters, description=t.description) for t in request.tools]
    outputs = []
    if request.output_schema is not None and request.tool_choice != "required":
        outputs = [ToolDefinition(name=OUTPUT_TOOL, parameters_json_schema=_object_schema(request.output_schema),
                                  description="Give the step's output. Call this when you have the answer.", kind="output")]
    params = ModelRequestParameters(function_tools=tools, output_tools=outputs, output_mode="tool", allow_text_output=True)
    forced = None
    if request.tool_choice == "required":
        forced = tools[0].name if len(tools) == 1 else "required"
    elif not tools and outputs:
        forced = OUTPUT_TOOL
    wrapped = bool(outputs) and request.output_schema is not None and request.output_schema.get("type") != "object"
    return params, forced, wrapped


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Tool arguments are an object: any other output schema is wrapped as `{value: ...}`."""
    if schema.get("type") == "object":
        return schema
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def model_settings(settings: Settings, forced: str | None, *, openai_family: bool, official: bool) -> dict[str, Any]:
    timeout = settings.timeout or DEFAULT_TIMEOUT
    # `timeout` bounds each read; `request_timeout` the whole call, a streamed one included.
    out: dict[str, Any] = {"max_retries": 0, "timeout": timeout, "request_timeout": timeout}
    if settings.temperature is not None:
        out["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        out["max_tokens"] = settings.max_tokens
    if forced == "required":
        # Any of several tools. The official APIs take "required"; some servers by base_url (llama.cpp's) refuse it,
        # so there lane's own loop asks again until a tool is called.
        if official:
            out["tool_choice"] = "required"
    elif forced is not None:
        # Name the tool: every OpenAI-style server takes this form, and some (llama.cpp's) take no other.
        if openai_family:
            out["extra_body"] = {"tool_choice": {"type": "function", "function": {"name": forced}}}
        else:
            out["tool_choice"] = [forced]
    return out


def _delta_text(event: Any) -> str:
    from pydantic_ai import messages as m

    if isinstance(event, m.PartDeltaEvent):
        delta = event.delta
        if isinstance(delta, m.TextPartDelta):
            return delta.content_delta
        if isinstance(delta, m.ToolCallPartDelta) and isinstance(delta.args_delta, str):
            return delta.args_delta
    if isinstance(event, m.PartStartEvent):
        part = event.part
        if isinstance(part, m.TextPart):
            return part.content
        if isinstance(part, m.ToolCallPart) and isinstance(part.args, str):
            return part.args
    return ""


def from_answer(answer: Any, wire: WireNames, *, wrapped: bool, structured: bool) -> ModelResponse:
    from pydantic_ai import messages as m

    cut = answer.finish_reason == "length"

    texts, calls, output = [], [], None
    has_output = False
    for part in answer.parts:
        if isinstance(part, m.TextPart) and part.content:
            texts.append(part.content)
        elif isinstance(part, m.ToolCallPart):
            args = part.args_as_dict()
            if part.tool_name == OUTPUT_TOOL and not has_output:
                has_output, output = True, args
            elif part.tool_name != OUTPUT_TOOL:
                calls.append(ToolCall(wire.lane(part.tool_name), args))
    usage = Usage(int(answer.usage.input_tokens or 0), int(answer.usage.output_tokens or 0), _cost(answer))
    text = "".join(texts) or None
    if cut and (structured or calls or has_output):  # an unfinished call or output: the agent step asks again
        return ModelResponse(text=text, usage=usage, cut_off=usage.output_tokens)
    if has_output and not calls:
        if wrapped and isinstance(output, dict) and "value" in output:
            output = output["value"]
        return ModelResponse(text=text, output=output, usage=usage)
    return ModelResponse(text=text, tool_calls=tuple(calls), usage=usage)


def _cost(answer: Any) -> float | None:
    """USD from genai-prices; None when the model's price is not known (a self-hosted model, say)."""
    try:
        return float(answer.cost().total_price)
    except Exception:  # noqa: BLE001 - genai-prices raises LookupError, ValueError, even AssertionError: the price is unknown
        return None


def map_error(exc: Exception, model: HostedModel) -> ModelCallFailed | None:
    """The lane error for a provider failure, or None for one that is not the provider's (a bug: raised as is)."""
    from pydantic_ai import exceptions as e

    where = model.where
    status = getattr(exc, "status_code", None)
    after = getattr(exc, "retry_after", None)
    detail = _detail(exc)
    if isinstance(exc, e.ModelRateLimitError):
        wait = f"; it asked to wait {after:g} s" if after is not None else ""
        return ModelRateLimited(f"{where} is rate limited (HTTP {status or 429}{wait}){detail}", retry_after=after, status=status)
    if isinstance(exc, e.ModelQuotaExceededError):
        return ModelRequestRejected(f"{where}: the account's quota or credits are used up{detail}; top them up", status=status)
    if isinstance(exc, e.ModelAuthenticationError):
        variable = f" in {model.key_variable}" if model.key_variable else ""
        return ModelAuthFailed(f"{where} refused the API key{variable} (HTTP {status}){detail}; check the key and that it may use this model",
                               status=status)
    if isinstance(exc, e.ModelNotFoundError):
        return ModelRequestRejected(f"{where}: the server does not know this model or path (HTTP {status}){detail}; "
                                    "check the model name and base_url", status=status)
    if isinstance(exc, e.ModelRequestRejectedError):
        return ModelRequestRejected(f"{where} rejected the request (HTTP {status}){detail}", status=status)
    if isinstance(exc, (e.ModelUnavailableError, e.ModelServerError)):
        return ModelServerFailed(f"{where} failed with a server error (HTTP {status}){detail}", retry_after=after, status=status)
    if isinstance(exc, (e.ModelTimeoutError, e.ModelRequestTimeout)):
        return ModelTimedOut(f"{where} did not answer in time{detail}; raise `settings: timeout:` in the agent if it is just slow")
    if isinstance(exc, e.ModelConnectionError):
        return ModelUnreachable(f"{where} cannot be reached{detail}; is the server running?")
    if isinstance(exc, e.ModelHTTPError):
        if status is not None and (status >= 500 or status in (408, 409)):
            return ModelServerFailed(f"{where} failed (HTTP {status}){detail}", retry_after=after, status=status)
        return ModelRequestRejected(f"{where} rejected the request (HTTP {status}){detail}", status=status)
    if isinstance(exc, (e.UnexpectedModelBehavior, e.ModelAPIError)):
        return ModelReplyMalformed(f"{where} sent a reply lane cannot read{detail}")
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError, IndexError)):
        # A reply of the wrong shape can surface as any of these from the SDK's parsing.
        return ModelReplyMalformed(f"{where} sent a reply lane cannot read ({type(exc).__name__}: {exc})")
    return None


def _shown_url(url: str) -> str:
    """The URL without credentials or query, which may hold a key."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    text = str(body if body not in (None, "", {}) else exc.__cause__ or exc)
    text = " ".join(text.split())
    return f": {text[:300]}" if text else ""
