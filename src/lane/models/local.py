"""Local models: a GGUF file run in-process by llama.cpp (`lane[local]`).

The built-in model is small and a base model: it continues text rather than
following chat instructions, so it gets few-shot text (the step's direction,
goal, tools, `examples:`, this input, then `Output:` or `Call:`), and after a
tool result it answers rather than calling again. Of a step's many examples it
sees the few nearest this input (models/nearest.py).

A small base model cannot be trusted to write valid JSON, so it does not have
to: every reply is decoded under a grammar built from a JSON schema. With tools,
the schema is "call one of these tools with arguments of its schema, or give
the output"; without, it is the step's output schema. The model is loaded once
per process and shared by every step and run that names it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lane.errors import ModelError, ModelUnavailable
from lane.models.base import ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage
from lane.models.nearest import nearest
from lane.models.weights import INSTALL

N_CTX = 4096
MAX_TOKENS = 512
EXAMPLES_SHOWN = 4  # of a step's examples, the model sees at most this many: those nearest its input

_LOADED: dict[Path, tuple[Any, threading.Lock]] = {}
_LOADING = threading.Lock()


_QUIET: Any = None


def _llama() -> Any:
    global _QUIET
    try:
        import llama_cpp
    except ImportError:
        raise ModelUnavailable(f"local models need llama.cpp; install it with: {INSTALL}") from None
    if _QUIET is None:  # llama.cpp logs to stderr from C even with verbose=False; lane's output stays clean
        _QUIET = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))
    return llama_cpp


@contextlib.contextmanager
def without_amx(llama_cpp: Any) -> Iterator[None]:
    """On a CPU that lists AMX, load without llama.cpp's extra buffer types (its AMX path).

    Virtual machines (Firecracker among them) list AMX in /proc/cpuinfo without enabling it:
    a native build of llama.cpp then dies of SIGILL on the first token. Without extra buffer
    types it runs on AVX2/AVX-512, which such machines do have."""
    try:
        listed = "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        listed = False
    module = llama_cpp.llama_cpp
    defaults = module.llama_model_default_params
    if not listed or "use_extra_bufts" not in {name for name, _ in module.llama_model_params._fields_}:
        yield
        return

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = without_extra_buffers  # read once, by Llama() below
    try:
        yield
    finally:
        module.llama_model_default_params = defaults


def _free_all() -> None:
    """Free every loaded model before llama.cpp's own exit handlers run: freed after them, it crashes the process."""
    while _LOADED:
        llm, lock = _LOADED.popitem()[1]
        with lock:
            llm.close()


def load(path: Path) -> tuple[Any, threading.Lock]:
    """The model at `path`, loaded once per process, with the lock that serialises its use."""
    path = path.resolve()
    with _LOADING:
        if path not in _LOADED:
            llama_cpp = _llama()
            if not _LOADED:
                atexit.register(_free_all)  # after llama_cpp's import, so it runs before llama_cpp's handlers
            if not path.is_file():
                raise ModelUnavailable(f"no GGUF model file at {path}")
            try:
                with without_amx(llama_cpp):
                    llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise ModelUnavailable(f"llama.cpp cannot load {path}: {exc}") from None
            _LOADED[path] = (llm, threading.Lock())
        return _LOADED[path]


class LocalModel:
    # A 270M base model offered a skill catalog and skills.load never loaded one, and the names it wrote got worse
    # (docs/skills.md): an agent on it is not offered skills (engine/agent.py reads this).
    uses_skills = False

    def __init__(self, model_id: str, path: Path, *, max_tokens: int = MAX_TOKENS, temperature: float = 0.0) -> None:
        self.id = model_id
        self.path = path
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._llm, self._lock = load(path)
        self._grammars: dict[str, Any] = {}

    async def request(self, request: ModelRequest) -> ModelResponse:
        schema = reply_schema(request)
        max_tokens = request.settings.max_tokens or self.max_tokens
        prompt = self._fitted(request, schema, max_tokens)
        grammar = self._grammar(schema) if schema is not None else None
        temperature = self.temperature if request.settings.temperature is None else request.settings.temperature
        options = {"grammar": grammar, "max_tokens": max_tokens, "temperature": temperature, "stop": None if grammar else ["\n"]}
        # Generation runs on this thread: in a worker thread it measured 5-30% slower, and one
        # llama.cpp context generates one reply at a time anyway.
        await asyncio.sleep(0)  # a Ctrl-C that came in meanwhile stops the run before the next generation
        result = self._complete(prompt, options, request.on_stream)
        await asyncio.sleep(0)
        usage = result.get("usage", {})
        choice = result["choices"][0]
        text = choice["text"]
        spent = Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        if grammar is not None and choice.get("finish_reason") == "length":  # unfinished JSON: the agent step asks again
            return ModelResponse(text=text, usage=spent, prompt=prompt, cut_off=max_tokens)
        return parse_reply(text, request, spent, prompt)

    def _fitted(self, request: ModelRequest, schema: dict[str, Any] | None, max_tokens: int) -> str:
        """The prompt, with the step's oldest turns left out while it and the reply would not fit the window: in a
        long feedback loop the model sees the task, the examples and the latest turns."""
        turns = max(0, len(request.messages) - 2)
        for skip in range(turns + 1):
            prompt = render_prompt(request, schema, skip=skip)
            with self._lock:
                needed = len(self._llm.tokenize(prompt.encode())) + max_tokens
            if needed <= N_CTX or request.task is None:
                return prompt
        return prompt  # even with no turn it does not fit: llama.cpp says so, and the step fails with its words

    def _complete(self, prompt: str, options: dict[str, Any], on_stream: Any) -> dict[str, Any]:
        with self._lock:  # one llama.cpp context: one generation at a time
            try:
                if on_stream is None:
                    result: dict[str, Any] = self._llm(prompt, **options)
                else:
                    result = self._streamed(prompt, options, on_stream)
            except ValueError as exc:  # llama-cpp-python says "Requested tokens (N) exceed context window of M"
                raise ModelError(f"local model {self.id}: {exc}; shorten the step's context") from None
        return result

    def _streamed(self, prompt: str, options: dict[str, Any], on_stream: Any) -> dict[str, Any]:
        """The same generation, piece by piece; llama.cpp's stream has no usage, so tokens are counted here."""
        pieces: list[str] = []
        finish = None
        for chunk in self._llm(prompt, stream=True, **options):
            choice = chunk["choices"][0]
            if choice["text"]:
                pieces.append(choice["text"])
                on_stream(choice["text"])
            finish = choice.get("finish_reason") or finish
        text = "".join(pieces)
        usage = {"prompt_tokens": len(self._llm.tokenize(prompt.encode())),
                 "completion_tokens": len(self._llm.tokenize(text.encode(), add_bos=False)) if text else 0}
        return {"choices": [{"text": text, "finish_reason": finish}], "usage": usage}

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            relaxed = json.dumps(grammar_schema(schema), sort_keys=True)
            try:
                self._grammars[key] = _llama().LlamaGrammar.from_json_schema(relaxed, verbose=False)
            except Exception as exc:  # the converter raises bare AssertionErrors and ValueErrors
                raise ModelError(f"local model {self.id}: llama.cpp cannot turn this JSON schema into a grammar ({exc}); "
                                 "simplify the step's output schema or the tool's arguments") from None
        return self._grammars[key]


GRAMMAR_MAX_REPEAT = 1000  # llama.cpp crashes (not raises) on repetition counts much above this


def grammar_schema(schema: Any) -> Any:
    """The schema the grammar is built from: large length and item bounds dropped.

    lane still validates the handoff against the full schema; the grammar only
    shapes decoding, and llama.cpp cannot build one with huge repetition counts.
    """
    if isinstance(schema, list):
        return [grammar_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("minLength", "maxLength", "minItems", "maxItems") and isinstance(value, int) and value > GRAMMAR_MAX_REPEAT:
            continue
        out[key] = grammar_schema(value)
    return out


def reply_schema(request: ModelRequest) -> dict[str, Any] | None:
    """What the reply must be: the output (by its schema), or with tools a call of one of them."""
    if not request.tools:
        return request.output_schema
    calls = [
        {"type": "object", "properties": {"tool": {"const": t.name}, "args": t.parameters}, "required": ["tool", "args"]}
        for t in request.tools
    ]
    if request.tool_choice == "required":
        return calls[0] if len(calls) == 1 else {"anyOf": calls}
    output = request.output_schema or {"type": "string"}
    if request.messages and request.messages[-1]["role"] == "tool":
        # A small base model copies the last pattern it saw: after a result it would call again and
        # again. It answers instead; a step that needs several calls wants a larger model.
        return output
    return {"anyOf": [*calls, output]}


def render_prompt(request: ModelRequest, schema: dict[str, Any] | None, *, skip: int = 0) -> str:
    """Few-shot text a base model can continue: direction, task, tools, examples, this input, what happened, a cue.

    `skip` leaves out the step's first turns (to fit the window), saying so."""
    task = request.task
    if task is None:
        return "\n\n".join(str(m.get("content") or "") for m in request.messages) + "\n\nOutput:"
    head = [task.direction.strip(), f"Task: {task.goal}"]
    if request.tools:
        head.append(_tools_text(request.tools))
    lines = ["\n\n".join(p for p in head if p), ""]
    for inputs, output in nearest(task.examples, task.inputs, EXAMPLES_SHOWN):
        lines += [f"Input: {_json(inputs)}", f"Output: {_json(output)}", ""]
    lines.append(f"Input: {_json(task.inputs)}")
    if skip:
        lines.append(f"Note: the first {skip} turn{'s' if skip != 1 else ''} of this step are left out to fit the model's window.")
    for message in request.messages[2 + skip :]:  # after the system and task messages: this step's turns
        lines.append(_turn_text(message))
    lines.append("Call:" if request.tool_choice == "required" and request.tools else "Output:")
    return "\n".join(lines)


def _tools_text(tools: tuple[ToolSpec, ...]) -> str:
    lines = ['Tools (to use one, write Call: {"tool": NAME, "args": {...}}):']
    for tool in tools:
        args = ", ".join(f"{name}: {spec.get('type', 'any')}" for name, spec in tool.parameters.get("properties", {}).items())
        summary = tool.description.splitlines()[0] if tool.description else ""
        lines.append(f"- {tool.name}({args}): {summary}")
    return "\n".join(lines)


def _turn_text(message: dict[str, Any]) -> str:
    role = message["role"]
    if role == "assistant" and message.get("tool_calls"):
        call = message["tool_calls"][0]
        return "Call: " + _json({"tool": call["name"], "args": call["args"]})
    if role == "assistant":
        return "Output: " + _json(message["output"] if "output" in message else message.get("content"))
    if role == "tool":
        return "Result: " + _json(message.get("content"))
    return f"Note: {message.get('content')}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def parse_reply(text: str, request: ModelRequest, usage: Usage, prompt: str) -> ModelResponse:
    """The model's reply as lane's response: a tool call, an output, or text."""
    try:
        data = json.loads(text, strict=False)  # grammars may let raw newlines into strings
    except ValueError:
        return ModelResponse(text=text.strip(), usage=usage, prompt=prompt)  # free text, or a reply cut off by max_tokens
    names = {t.name for t in request.tools}
    if isinstance(data, dict) and data.get("tool") in names and isinstance(data.get("args"), dict) and len(data) == 2:
        return ModelResponse(tool_calls=(ToolCall(str(data["tool"]), dict(data["args"])),), usage=usage, prompt=prompt)
    return ModelResponse(output=data, usage=usage, prompt=prompt)
