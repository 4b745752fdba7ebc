"""The sandbox expressions run in: Jinja2's immutable sandbox, with every way to build a large value bounded.

Jinja2's sandbox bounds no operator and no filter by what it builds: `*`, `**`,
`%`, `~`, str methods, format specs and filters given a width or count
(`'%999999999d' | format(1)`, `center`, `'{:>999999999}'.format`) are bounded
here, before they run, by MAX_SIZE each and MAX_BUILT for one evaluation in all.

Imported only when an expression needs Jinja2: a plain lookup such as
`steps.draft.output.body` never does (see expressions.py).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.lexer import describe_token
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

Ref = tuple[str | int, ...]

MAX_SIZE = 1_000_000  # characters or items one `*`, width, count or separator may build; `**` exponents up to 1000
MAX_BUILT = 20_000_000  # characters or items one evaluation may build in all (a `map` repeats a filter per item)
MAX_BITS = 100_000  # a number `**` may build, in bits: about 30,000 digits


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with every way to build a large value bounded, so an expression cannot
    exhaust memory or time: `*`, `**`, `%`, `~`, str methods and formatting here, filters in `_bounded_filter`."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Run values are JSON data: `inputs.items` is the input named items, not dict.items.
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 1000:
                raise SecurityError(f"exponent {right} is too large (at most 1000)")
            if isinstance(left, int) and isinstance(right, int) and right > 0 and left.bit_length() * right > MAX_BITS:
                raise SecurityError(f"'**' would build a number of {left.bit_length() * right} bits (at most {MAX_BITS})")
            return left**right
        if operator == "%":
            if isinstance(left, str):
                grown = _percent_growth(left, right)
                _charge("'%'", _length(left) + _length(right) + grown, grown)
            return left % right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                size = times * (len(seq) if isinstance(seq, str) else _length(seq) - 1)
                if size > MAX_SIZE:  # counted with what the items hold: a list may hold one long text many times
                    raise SecurityError(f"'*' would build {size} items (at most {MAX_SIZE})")
                _charge("'*'", size)
        return left * right

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2 calls this for every attribute of a str an expression reads: bound the methods that build."""
        owner, name = getattr(value, "__self__", None), getattr(value, "__name__", "")
        if not isinstance(owner, str) or name not in _STR_METHODS and name not in ("format", "format_map"):
            return None
        if name in ("format", "format_map"):
            return _format_method(self, owner, name)
        return _bounded_method(f"str.{name}", value, _STR_METHODS[name])

    def join_text(self, values: tuple[Any, ...]) -> str:
        """`a ~ b`: text of each value, joined (see _CodeGenerator)."""
        _charge("'~'", sum(_length(v) for v in values))
        return "".join(map(str, values))


class _CodeGenerator(CodeGenerator):
    """Jinja2's compiler, but `~` calls the sandbox (Jinja2 calls its own str_join, which nothing can bound)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_Sandbox.code_generator_class = _CodeGenerator


class _Budget:
    """What one evaluation has built so far."""

    spent = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("lane_expression_budget", default=None)


def _charge(what: str, built: int, grown: int = 0) -> None:
    """Refuse an operation before it builds `built` characters or items, `grown` of them from a width, count or separator."""
    if grown > MAX_SIZE:
        raise SecurityError(f"{what} would build {built} characters or items (a width, count or separator may add at most {MAX_SIZE})")
    budget = _BUDGET.get()
    spent = built + (budget.spent if budget else 0)
    if spent > MAX_BUILT:
        raise SecurityError(f"{what} would take what this expression builds past {MAX_BUILT} characters or items")
    if budget:
        budget.spent = spent


def _length(value: Any) -> int:
    """About how long `value` is as text: characters, and one for each other value; a value held in several places
    counts each time (that is what text of it would hold). Stops counting past MAX_BUILT."""
    seen: dict[int, int] = {}

    def size(node: Any) -> int:
        if isinstance(node, str):
            return len(node)
        if not isinstance(node, (list, tuple, dict, set, frozenset)):
            return 1
        known = seen.get(id(node))
        if known is None:
            known = 1
            for item in itertools.chain.from_iterable(node.items()) if isinstance(node, dict) else node:
                known += size(item)
                if known > MAX_BUILT:
                    break
            seen[id(node)] = known
        return known

    return size(value)


def _int(value: Any) -> int:
    return abs(value) if isinstance(value, int) else 0  # not an int: the operation raises its own error


def _lines(text: Any) -> int:
    return text.count("\n") + 1 if isinstance(text, str) else 1


_PERCENT = re.compile(r"%(\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)", re.S)


def _percent_growth(fmt: str, args: Any) -> int:
    """The widths and precisions a printf-style format asks for; `*` takes them from the arguments."""
    values = iter(args if isinstance(args, tuple) else (args,))
    grown = 0
    for match in _PERCENT.finditer(fmt):
        key, width, precision, conversion = match.groups()
        for part in (width, precision):
            grown += _int(next(values, 0)) if part == "*" else int(part or 0)
        if conversion != "%" and key is None:
            next(values, None)
    return grown


def _replaced(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return found * max(len(new) - len(old), 0)


def _joined(sep: Any, items: Any) -> int:
    return len(str(sep)) * max(len(items) - 1, 0) if isinstance(items, (list, tuple, str, dict)) else 0


_STR_METHODS: dict[str, Callable[[str, tuple[Any, ...]], int]] = {  # what each may add to its text
    "center": lambda s, a: _int(a[0] if a else 0) - len(s),
    "ljust": lambda s, a: _int(a[0] if a else 0) - len(s),
    "rjust": lambda s, a: _int(a[0] if a else 0) - len(s),
    "zfill": lambda s, a: _int(a[0] if a else 0) - len(s),
    "expandtabs": lambda s, a: s.count("\t") * _int(a[0] if a else 8),
    "replace": lambda s, a: _replaced(s, a[0], a[1], a[2] if len(a) > 2 else -1) if len(a) >= 2 else 0,
    "join": lambda s, a: _joined(s, a[0]) if a else 0,
    "translate": lambda s, a: len(s) * max((len(v) for v in a[0].values() if isinstance(v, str)), default=1)
    if a and isinstance(a[0], dict) else 0,
}


def _bounded_method(what: str, method: Callable[..., str], grows: Callable[[str, tuple[Any, ...]], int]) -> Callable[..., str]:
    owner: str = method.__self__  # type: ignore[attr-defined]

    def bounded(*args: Any, **kwargs: Any) -> str:
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)  # `join` may be given a map's generator
        grown = max(grows(owner, (*args, *kwargs.values())), 0)
        _charge(what, len(owner) + sum(_length(a) for a in args) + grown, grown)
        return method(*args, **kwargs)

    return bounded


class _BoundedFields:
    """str.format and format_map: each field's width and precision bounded, and the text of each value counted."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        grown = sum(int(n) for n in re.findall(r"\d+", format_spec))  # a fill digit counts too: harmless
        _charge("str.format", _length(value) + grown, grown)
        return super().format_field(value, format_spec)  # type: ignore[misc]

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            _charge("str.format", _length(value))
        return super().convert_field(value, conversion)  # type: ignore[misc]


class _Formatter(_BoundedFields, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFields, SandboxedEscapeFormatter):
    pass


def _format_method(env: _Sandbox, owner: str, name: str) -> Callable[..., str]:
    """As Jinja2's own wrapper of str.format and format_map, with the fields bounded."""
    formatter = _EscapeFormatter(env, escape=owner.escape) if isinstance(owner, Markup) else _Formatter(env)

    def wrapper(*args: Any, **kwargs: Any) -> str:
        if name == "format_map":
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            kwargs = args[0]
            return type(owner)(formatter.vformat(owner, (), kwargs))
        return type(owner)(formatter.vformat(owner, args, kwargs))

    return wrapper


_FILTER_GROWTH: dict[str, Callable[[Any, dict[str, Any]], int]] = {  # what each filter may add to what it is given
    "center": lambda s, a: _int(a["width"]) - _length(s),
    "indent": lambda s, a: _lines(s) * (len(a["width"]) if isinstance(a["width"], str) else _int(a["width"])),
    "wordwrap": lambda s, a: (2 * _length(s) // max(_int(a["width"]), 1) + _lines(s)) * len(str(a["wrapstring"] or "\n")),
    "format": lambda s, a: _percent_growth(str(s), a["args"] or a["kwargs"]),
    "join": lambda s, a: _joined(a["d"], s),
    "replace": lambda s, a: _replaced(str(s), a["old"], a["new"], a["count"]),
    "batch": lambda s, a: _int(a["linecount"]) if a["fill_with"] is not None else 0,
    "slice": lambda s, a: _int(a["slices"]),  # it loops that many times, even over a short list
    # each line is indented by the level: about as many characters again per level of indent
    "tojson": lambda s, a: _length(s) * (len(a["indent"]) if isinstance(a["indent"], str) else _int(a["indent"])),
}
_COUNTED_FILTERS = {  # filters that turn what they are given into text (a list holding one long text many times is long)
    "capitalize", "e", "escape", "forceescape", "lower", "pprint", "safe", "string", "striptags", "title", "trim",
    "truncate", "upper", "urlencode", "urlize", "wordcount", "xmlattr", "sum",
}


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: str | int | None = None, start: Any = 0) -> Any:
    """Jinja2's sum, but lists are added in one pass: Python adds them one at a time, copying the sum so far each time."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    items = list(iterable)
    if isinstance(start, list) and all(isinstance(item, list) for item in items):
        return [*start, *itertools.chain.from_iterable(items)]
    return sum(items, start)


def _grows_not(subject: Any, given: dict[str, Any]) -> int:
    return 0


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = getattr(fn, "__wrapped__", fn) if getattr(fn, "jinja_async_variant", False) else fn  # lane renders synchronously
    signature = inspect.signature(fn)
    skip = 1 if hasattr(fn, "jinja_pass_arg") else 0  # the environment or context Jinja2 passes first
    subject = list(signature.parameters)[skip]
    grows = _FILTER_GROWTH.get(name, _grows_not)

    def bounded(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        if isinstance(given[subject], Iterator):  # a map's generator: counted, then handed on
            given[subject] = list(given[subject])
        grown = max(grows(given[subject], given), 0)
        _charge(f"the {name} filter", sum(_length(v) for v in list(given.values())[skip:]) + grown, grown)
        return fn(*bound.args, **bound.kwargs)

    return functools.update_wrapper(bounded, fn)  # keeps jinja_pass_arg


ENV = _Sandbox(undefined=StrictUndefined)
ENV.filters.pop("random", None)  # replay must see the same values
ENV.globals.pop("lipsum", None)  # random text, as long as asked: neither replayable nor bounded
ENV.filters["sum"] = _sum
for _name in (*_FILTER_GROWTH, *_COUNTED_FILTERS):
    ENV.filters[_name] = _bounded_filter(_name, ENV.filters[_name])


def compile(text: str) -> tuple[Callable[..., Any], tuple[Ref, ...]]:  # noqa: A001 - the sandbox's own verb
    """The expression as a function of the run's values, and every name chain it reads; raises TemplateSyntaxError."""
    _check_syntax(text)
    fn: Callable[..., Any] = ENV.compile_expression(text, undefined_to_none=False)
    return fn, tuple(_refs(ENV.parse("{{ " + text + " }}")))


def evaluate(fn: Callable[..., Any], scope: dict[str, Any], *, builds: bool = True) -> Any:
    """`fn` over the run's values, with what it builds counted; raises what went wrong."""
    budget = _BUDGET.set(_Budget())
    try:
        value = fn(**scope)
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        if isinstance(getattr(value, "__self__", None), dict) and callable(value):  # `inputs.items` with no input items
            raise UndefinedError(f"there is no {getattr(value, '__name__', '?')!r} in it (a missing input or output)")
        if isinstance(value, Iterator):  # map, select and friends return generators
            value = list(value)
        if builds and _length(value) > MAX_BUILT:  # one long text held many times: its JSON would be huge
            raise SecurityError(f"its value would be more than {MAX_BUILT} characters or items as text")
        return value
    finally:
        _BUDGET.reset(budget)


def _check_syntax(text: str) -> None:
    """Parse as Jinja2 does, but name what follows a complete expression (Jinja2 says 'chunk after expression')."""
    parser = Parser(ENV, text, state="variable")
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
