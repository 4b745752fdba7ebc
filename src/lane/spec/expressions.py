"""Expressions: `when:` conditions and `${{ ... }}` values.

The syntax is Jinja2's expression language (as in Ansible's `when:`), evaluated
in Jinja2's immutable sandbox (sandbox.py): no Python `eval`, no attribute
access to internals, no mutation, and nothing built past a bound. Names in
scope: `inputs`, `steps` (each step's `output`, `status` and, for human and
tool steps, `edited` and `approved_by`; for agent steps, `refused`) and `run` (`id`).

The common case, a plain lookup such as `steps.draft.output.body`, is read as
dict lookups without Jinja2 at all; Jinja2 is imported for the first expression
that needs it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

_WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.S)
_PART = re.compile(r"\$\{\{(.*?)\}\}", re.S)

Ref = tuple[str | int, ...]


class ExpressionSyntaxError(ValueError):
    def __init__(self, text: str, message: str, *, whole: bool = False) -> None:
        self.text = text
        super().__init__(message if whole else f"expression {text.strip()!r} does not parse: {message}")


class ExpressionFailed(ValueError):
    """An expression could not be evaluated against the run's values."""


@dataclass(frozen=True)
class Expression:
    text: str
    refs: tuple[Ref, ...]
    _fn: Callable[..., Any]
    _builds: bool = True  # False for a plain lookup (`steps.x.output`), which hands on a value as it is

    def evaluate(self, scope: dict[str, Any]) -> Any:
        try:
            return self._fn(scope)
        except Exception as exc:  # an expression's failure is the run's data, whatever Jinja2 raised
            undefined = type(exc).__name__ == "UndefinedError"
            hint = "; write `| default(none)` after an optional value" if undefined else ""
            raise ExpressionFailed(f"{self.text.strip()!r}: {exc}{hint}") from exc


def compile_expression(text: str) -> Expression:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionSyntaxError(str(text), "it is empty")
    if text.lstrip().startswith("${{"):  # what _split gives for a `${{` with no `}}` after it
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        raise ExpressionSyntaxError(text, f"an expression '${{{{' is not closed with '}}}}': {shown!r}", whole=True)
    return _compiled(text)


_DOTTED = re.compile(r"^\s*[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\s*$")
_NOT_NAMES = frozenset(("true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else"))


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> Expression:
    """Expressions are immutable, and a runbook repeats the same ones (`inputs.x` in every step): compile each once."""
    parts = text.strip().split(".")
    if _DOTTED.match(text) and not _NOT_NAMES.intersection(parts):  # a plain lookup: `steps.x.output`, a for_each's `item`
        return Expression(text, (tuple(parts),), _lookup(text, parts), _builds=False)
    from jinja2.exceptions import TemplateSyntaxError

    from lane.spec import sandbox

    try:
        fn, refs = sandbox.compile(text)
    except TemplateSyntaxError as exc:
        message = (exc.message or "syntax error").replace("'end of template'", "end of the expression")
        raise ExpressionSyntaxError(text, message.replace("end of template", "end of the expression")) from exc
    return Expression(text, refs, lambda scope: sandbox.evaluate(fn, scope))


def _lookup(text: str, parts: list[str]) -> Callable[[dict[str, Any]], Any]:
    """`steps.draft.output.body` as plain dict lookups; anything else (a missing key, a list) goes to Jinja2."""
    head, rest = parts[0], parts[1:]

    def fn(scope: dict[str, Any]) -> Any:
        value = scope.get(head, _MISSING)
        for part in rest:
            if type(value) is not dict or part not in value:
                return _general(text, scope)  # Jinja2 says what is missing, in its words
            value = value[part]
        return _general(text, scope) if value is _MISSING else value

    return fn


def _general(text: str, scope: dict[str, Any]) -> Any:
    from lane.spec import sandbox

    fn, _ = _general_fn(text)
    return sandbox.evaluate(fn, scope, builds=False)


@functools.lru_cache(maxsize=1024)
def _general_fn(text: str) -> tuple[Callable[..., Any], tuple[Ref, ...]]:
    from lane.spec import sandbox

    return sandbox.compile(text)


_MISSING: Any = object()


@dataclass(frozen=True)
class Value:
    """A runbook value in which `${{ ... }}` parts are evaluated; the rest is literal."""

    raw: Any
    _render: Callable[[dict[str, Any]], Any]
    refs: tuple[Ref, ...]

    def render(self, scope: dict[str, Any]) -> Any:
        return self._render(scope)


def compile_value(raw: Any) -> Value:
    """Compile every expression inside `raw`; raises ExpressionSyntaxError on the first bad one.

    Rendering gives JSON data (YAML dates become ISO text); anything else fails as ExpressionFailed.
    """
    refs: list[Ref] = []
    inner = _compile(raw, refs)

    def render(scope: dict[str, Any]) -> Any:
        value = inner(scope)
        try:
            return to_jsonable_python(value)
        except PydanticSerializationError as exc:
            raise ExpressionFailed(f"{raw!r} gives {type(value).__name__}, which is not JSON data") from exc

    return Value(raw, render, tuple(refs))


def expressions_in(raw: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(location inside raw, expression text) for each `${{ }}` in a value."""
    out: list[tuple[tuple[str | int, ...], str]] = []

    def walk(node: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(node, str):
            out.extend((loc, text) for text in _split(node)[1::2])
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*loc, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*loc, i))

    walk(raw, ())
    return out


def _split(text: str) -> list[str]:
    """Literal text and expressions, alternating (expressions at odd indexes). A `${{` with no `}}` after it
    is given as an expression from the `${{` on, which compile_expression refuses: it is never literal text."""
    parts = _PART.split(text)
    open_at = parts[-1].find("${{")
    if open_at >= 0:
        parts[-1:] = [parts[-1][:open_at], parts[-1][open_at:], ""]
    return parts


def _compile(raw: Any, refs: list[Ref]) -> Callable[[dict[str, Any]], Any]:
    if isinstance(raw, str):
        whole = _WHOLE.match(raw) if raw.count("${{") == 1 else None
        if whole:
            expr = compile_expression(whole.group(1))
            refs.extend(expr.refs)
            return expr.evaluate
        parts = _split(raw)
        if len(parts) == 1:
            return lambda scope: raw
        exprs: list[Expression | str] = []
        for i, part in enumerate(parts):
            if i % 2:
                expr = compile_expression(part)
                refs.extend(expr.refs)
                exprs.append(expr)
            elif part:
                exprs.append(part)
        return lambda scope: "".join(p if isinstance(p, str) else as_text(p.evaluate(scope)) for p in exprs)
    if isinstance(raw, dict):
        items = [(k, _compile(v, refs)) for k, v in raw.items()]
        return lambda scope: {k: f(scope) for k, f in items}
    if isinstance(raw, list):
        fns = [_compile(v, refs) for v in raw]
        return lambda scope: [f(scope) for f in fns]
    return lambda scope: raw


def as_text(value: Any) -> str:
    """How a value reads inside text: JSON for data, true/false, empty for null."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
