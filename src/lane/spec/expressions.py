"""Expressions: `when:` conditions and `${{ ... }}` values.

The syntax is Jinja2's expression language (as in Ansible's `when:`), evaluated
in Jinja2's immutable sandbox: no Python `eval`, no attribute access to
internals, no mutation. Names in scope: `inputs`, `steps` (each step's
`output`, `status` and, for human steps, `edited`) and `run` (`id`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.lexer import describe_token
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic_core import PydanticSerializationError, to_jsonable_python

MAX_SIZE = 1_000_000  # characters or items one `*` may build; `**` exponents up to 1000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with `*` and `**` bounded so an expression cannot exhaust memory or time."""

    intercepted_binops = frozenset(["*", "**"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Run values are JSON data: `inputs.items` is the input named items, not dict.items.
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 1000:
                raise SecurityError(f"exponent {right} is too large (at most 1000)")
            return left**right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_SIZE:
                raise SecurityError(f"'*' would build {len(seq) * times} items (at most {MAX_SIZE})")
        return left * right


_ENV = _Sandbox(undefined=StrictUndefined)
_ENV.filters.pop("random", None)  # replay must see the same values
_WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.S)
_PART = re.compile(r"\$\{\{(.*?)\}\}", re.S)

Ref = tuple[str | int, ...]


class ExpressionSyntaxError(ValueError):
    def __init__(self, text: str, message: str) -> None:
        self.text = text
        super().__init__(f"expression {text.strip()!r} does not parse: {message}")


class ExpressionFailed(ValueError):
    """An expression could not be evaluated against the run's values."""


@dataclass(frozen=True)
class Expression:
    text: str
    refs: tuple[Ref, ...]
    _fn: Callable[..., Any]

    def evaluate(self, scope: dict[str, Any]) -> Any:
        try:
            value = self._fn(**scope)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            if isinstance(value, Iterator):  # map, select and friends return generators
                value = list(value)
            return value
        except Exception as exc:  # an expression's failure is the run's data, whatever Jinja2 raised
            hint = "; write `| default(none)` after an optional value" if isinstance(exc, UndefinedError) else ""
            raise ExpressionFailed(f"{self.text.strip()!r}: {exc}{hint}") from exc


def compile_expression(text: str) -> Expression:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionSyntaxError(str(text), "it is empty")
    try:
        _check_syntax(text)
        fn: Callable[..., Any] = _ENV.compile_expression(text, undefined_to_none=False)
        tree = _ENV.parse("{{ " + text + " }}")
    except TemplateSyntaxError as exc:
        message = (exc.message or "syntax error").replace("'end of template'", "end of the expression")
        raise ExpressionSyntaxError(text, message.replace("end of template", "end of the expression")) from exc
    if _DOTTED.match(text):
        fn = _lookup(text.strip().split("."), fn)
    return Expression(text, tuple(_refs(tree)), fn)


_DOTTED = re.compile(r"^\s*[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\s*$")


def _lookup(parts: list[str], general: Callable[..., Any]) -> Callable[..., Any]:
    """The common case, `steps.draft.output.body`, as plain dict lookups; anything else goes to Jinja2."""
    head, rest = parts[0], parts[1:]

    def fn(**scope: Any) -> Any:
        value = scope.get(head, _MISSING)
        for part in rest:
            if type(value) is not dict:
                return general(**scope)
            if part not in value:
                return general(**scope)  # Jinja2 says what is missing, in its words
            value = value[part]
        return general(**scope) if value is _MISSING else value

    return fn


_MISSING: Any = object()


def _check_syntax(text: str) -> None:
    """Parse as Jinja2 does, but name what follows a complete expression (Jinja2 says 'chunk after expression')."""
    parser = Parser(_ENV, text, state="variable")
    parser.parse_expression()
    if not parser.stream.eos:
        token = parser.stream.current
        hint = "; to compare two values, write ==" if token.type == "assign" else ""
        raise TemplateSyntaxError(f"unexpected '{describe_token(token)}'{hint}", token.lineno)


def _refs(tree: nodes.Node) -> list[Ref]:
    """Every maximal chain like steps.classify.output.category in the tree."""
    found: list[Ref] = []

    def chain(node: nodes.Node) -> Ref | None:
        if isinstance(node, nodes.Name):
            return (node.name,)
        if isinstance(node, nodes.Getattr):
            base = chain(node.node)
            return (*base, node.attr) if base else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            base = chain(node.node)
            return (*base, node.arg.value) if base else None
        return None

    def walk(node: nodes.Node) -> None:
        ref = chain(node)
        if ref is not None:
            found.append(ref)
            if isinstance(node, (nodes.Getattr, nodes.Getitem)):
                return
        for child in node.iter_child_nodes():
            walk(child)

    walk(tree)
    return found


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
            out.extend((loc, m.group(1)) for m in _PART.finditer(node))
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*loc, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*loc, i))

    walk(raw, ())
    return out


def _compile(raw: Any, refs: list[Ref]) -> Callable[[dict[str, Any]], Any]:
    if isinstance(raw, str):
        whole = _WHOLE.match(raw) if raw.count("${{") == 1 else None
        if whole:
            expr = compile_expression(whole.group(1))
            refs.extend(expr.refs)
            return expr.evaluate
        parts = _PART.split(raw)
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
