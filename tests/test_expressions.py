"""Expressions: Jinja2's syntax in a bounded sandbox, values that stay JSON, references checked."""

from __future__ import annotations

import re

import pytest

from lane.spec.expressions import ExpressionFailed, ExpressionSyntaxError, compile_expression, compile_value

SCOPE = {"inputs": {"email": {"from": "a@x.example", "body": "Refund please"}, "n": 3, "items": [1, 2, 3]},
         "steps": {"classify": {"status": "completed", "output": {"category": "billing"}}}, "run": {"id": "r1"}}


@pytest.mark.parametrize(("text", "value"), [
    ("inputs.email.from", "a@x.example"),
    ("steps.classify.output.category != 'other'", True),
    ("'refund' in inputs.email.body | lower", True),
    ("inputs.items | length > 2", True),
    ("inputs.items | map('string') | list", ["1", "2", "3"]),
    ("inputs.items | select('odd')", [1, 3]),
    ("inputs.n * 2", 6),
    ("steps.classify.status == 'completed' and run.id == 'r1'", True),
    ("inputs.missing | default(none)", None),
])
def test_expressions_evaluate_like_jinja2(text: str, value: object) -> None:
    assert compile_expression(text).evaluate(SCOPE) == value


@pytest.mark.parametrize(("text", "says"), [
    ("'a' * 10000000", "'*' would build 10000000 items (at most 1000000)"),
    ("[0] * 10000000", "'*' would build 10000000 items"),
    ("2 ** 100000", "exponent 100000 is too large (at most 1000)"),
    ("inputs.email.__class__.__mro__", "access to attribute '__class__' of 'dict' object is unsafe"),
    ("inputs.nope", "'dict object' has no attribute 'nope'; write `| default(none)` after an optional value"),
    ("'abc' | truncate(-1)", "'abc' | truncate(-1)"),
])
def test_the_sandbox_refuses_what_could_escape_or_exhaust_it(text: str, says: str) -> None:
    with pytest.raises(ExpressionFailed, match=re.escape(says)):
        compile_expression(text).evaluate(SCOPE)


def test_random_is_not_offered_because_a_replay_must_see_the_same_values() -> None:
    with pytest.raises(ExpressionSyntaxError, match="No filter named 'random'"):
        compile_expression("[1, 2] | random")


def test_values_keep_their_type_and_text_reads_as_json() -> None:
    assert compile_value("${{ inputs.email }}").render(SCOPE) == SCOPE["inputs"]["email"]
    assert compile_value("${{ inputs.n }}-${{ inputs.items }}").render(SCOPE) == "3-[1, 2, 3]"
    assert compile_value({"to": "${{ inputs.email.from }}", "list": ["${{ inputs.n }}", "x"]}).render(SCOPE) == {"to": "a@x.example", "list": [3, "x"]}
    assert compile_value("flag: ${{ inputs.n > 1 }}, none: ${{ none }}").render(SCOPE) == "flag: true, none: "


def test_dates_become_iso_text_and_other_objects_are_refused() -> None:
    import datetime

    assert compile_value({"when": datetime.date(2024, 1, 1)}).render(SCOPE) == {"when": "2024-01-01"}
    with pytest.raises(ExpressionFailed, match="there is no 'keys' in it"):  # a dict's method is never a value
        compile_value("${{ inputs.email.keys }}").render(SCOPE)
    with pytest.raises(ExpressionFailed, match="there is no 'items' in it"):  # `inputs.items` with no input `items`
        compile_value("${{ inputs.items }}").render({**SCOPE, "inputs": {}})
    assert compile_value("${{ inputs.email.get('nope', 3) }}").render(SCOPE) == 3, "dict methods still work when called"
