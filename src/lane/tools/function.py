"""Python function tools, loaded from a project's `tools/*.py` modules."""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import inspect
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, PydanticUserError, ValidationError, create_model
from pydantic_core import to_jsonable_python

from lane.store.values import storable
from lane.tools.base import Effect, Lane, ToolArgsInvalid, ToolContext, ToolMeta, string_arguments

if TYPE_CHECKING:
    import asyncio


class FunctionTool:
    """A `@tool` function: its JSON schema comes from type hints and the docstring."""

    def __init__(self, name: str, fn: Callable[..., Any], meta: ToolMeta, *, timeout: float | None = None) -> None:
        import docstring_parser

        self.name = name
        self.fn = fn
        self.effect: Effect = meta.effect
        self.idempotent = meta.idempotent
        self.call_timeout = meta.timeout or timeout  # the engine cuts a call off after it: a function cannot time out by itself
        doc = docstring_parser.parse(inspect.getdoc(fn) or "")
        self.description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
        try:
            self._args_model, self._ctx_param = _args_model(fn, {p.arg_name: p.description or "" for p in doc.params})
            schema = _inline_defs(self._args_model.model_json_schema())
        except PydanticUserError as exc:  # a type pydantic cannot validate or describe
            first = str(exc).strip().splitlines()[0].split(". ", 1)[0]
            raise TypeError(
                f"tool {fn.__name__}: its parameters cannot be described to a model ({first}); "
                "use types such as str, int, list[str] or a pydantic model"
            ) from exc
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        self.parameters = schema
        self._is_async = inspect.iscoroutinefunction(fn)

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self._args_model.model_validate(args)
        except ValidationError as exc:
            raise ToolArgsInvalid(_describe(exc)) from exc
        return {field.alias or name: getattr(model, name) for name, field in type(model).model_fields.items()}

    def subjects(self, args: dict[str, Any]) -> list[str]:
        return string_arguments(args)

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        return None  # a Python tool's reach is its own code's

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        kwargs = self.check_args(args)
        if self._ctx_param:
            kwargs[self._ctx_param] = ctx
        if self._is_async:
            result = await self.fn(**kwargs)
        else:
            result = await _in_thread(self.fn, kwargs)
        try:
            return to_jsonable_python(result)
        except UnicodeError:  # a name from os.listdir as a key: its bytes escaped, not an error (NaN: the engine refuses it)
            return to_jsonable_python(storable(result, numbers=False))


class _Workers:
    """Daemon threads for sync tools, reused from call to call (starting a thread costs more than a call).

    Not asyncio's executor: its threads are joined when the event loop closes, so a
    function that hangs would keep lane from ever ending the run. A daemon thread
    goes on alone until it returns or the process ends; a call that hangs keeps its
    thread, and the next call gets another."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:
            start = self.idle == 0
            if not start:
                self.idle -= 1
        if start:
            threading.Thread(target=self._work, name="lane-tool", daemon=True).start()
        self.jobs.put(job)

    def _work(self) -> None:
        while True:
            self.jobs.get()()
            with self.lock:
                self.idle += 1


_WORKERS = _Workers()


async def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """`fn(**kwargs)` on one of the workers' threads, which a cut-off call leaves behind."""
    import asyncio

    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():  # cut off meanwhile: nobody waits any more
            outcome()

    def work() -> None:
        try:
            result = context.run(fn, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as asyncio.to_thread would
            caught = exc
            report = lambda: settle(lambda: done.set_exception(caught))  # noqa: E731
        else:
            report = lambda: settle(lambda: done.set_result(result))  # noqa: E731
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(report)

    _WORKERS.submit(work)
    return await done


def _args_model(fn: Callable[..., Any], docs: dict[str, str]) -> tuple[type[BaseModel], str | None]:
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # a name the module never defines (a typo, an import under TYPE_CHECKING)
        raise TypeError(f"tool {fn.__name__}: cannot read its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    ctx_param = None
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, Any)
        if hint is ToolContext:
            ctx_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__}: *args and **kwargs cannot be described to a model")
        default = ... if param.default is param.empty else param.default
        # fields are named p0, p1...; the parameter's own name is the alias the model sees and sends, so
        # names pydantic reserves (schema, json, copy, model_dump, _private...) work like any other
        fields[f"p{len(fields)}"] = (hint, _field(default, docs.get(param.name), param.name))
    model = create_model(
        f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model, ctx_param


def _field(default: Any, description: str | None, alias: str) -> Any:
    from pydantic import Field

    return Field(default=default, description=description or None, alias=alias)


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace `#/$defs/X` references with the definitions, so the schema stands on its own wherever it is
    nested (tool arguments sit inside larger schemas). A definition that refers to itself stays a reference."""
    defs = schema.pop("$defs", {})

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref[8:] not in seen:
                name = ref[8:]
                return walk({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}, seen | {name})
            return {k: walk(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema, frozenset())
    if any(f"#/$defs/{name}" in str(inlined) for name in defs):
        inlined["$defs"] = defs  # recursive types keep their definitions
    return inlined


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_module(path: Path, toolset: str, *, timeout: float | None = None) -> list[FunctionTool]:
    """Import a tools module and return its `@tool` functions, named `toolset.function`.

    Raises ImportError with the module's own error when it cannot be imported.
    """
    module_name = f"lane_project_tools.{toolset}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        del sys.modules[module_name]
        raise
    except BaseException as exc:  # the user's module: whatever it raises, even SystemExit, is its problem to show
        del sys.modules[module_name]
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        if isinstance(exc, SystemExit):
            last += " (it exits when imported; keep sys.exit() under `if __name__ == \"__main__\":`)"
        raise ImportError(last) from exc
    tools = []
    for attr, value in vars(module).items():
        meta = getattr(value, "__lane_tool__", None)
        if isinstance(meta, ToolMeta) and callable(value) and getattr(value, "__module__", None) == module_name:
            tools.append(FunctionTool(f"{toolset}.{meta.name or attr}", value, meta, timeout=timeout))
    return tools
