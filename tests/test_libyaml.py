"""Project files read in C (spec/libyaml.py) give exactly the tree the careful reader gives: the same
values and the same line and column of every key and value; what the C reader leaves alone, the
careful one reads (and reports) as before."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from lane.spec import libyaml
from lane.spec.source import YAML_LIMITS, parse_yaml, to_plain

PLAIN = {
    "flow and block": "a: {b: [1, 2, {c: d}], e: 'quoted'}\nf:\n  - g\n  - h: i\n    j: [k]\n",
    "scalars": "i: 42\nh: 0x1F\no: 0o17\nneg: -3\nf: 1.5e3\ninf: .inf\nt: true\nT: True\nn: null\ntilde: ~\nyes_no: yes\nver: 1.10\n",
    "text": "lit: |\n  line one\n  line two\nfold: >\n  folded\n  text\nq: \"tab\\there\"\nu: \"caf\\u00e9 ☕\"\n",
    "keys": "1: one\n2.5: two\n'4': four\n",
    "comments": "# top\na: 1  # trailing\n# between\nb:\n  - 2  # item\n",
    "runbook": "runbook: r\nsteps:\n  - id: a\n    tool: x.y\n    args: {n: \"${{ steps.s1.output }}\"}\n  - {id: b, check: [test, -e, f]}\n",
    "nested lists": "- [1, [2, [3, []]]]\n- {}\n- []\n",
    "empty": "",
    "only a comment": "# nothing\n",
    "a scalar": "just text\n",
}
UNUSUAL = {
    "an alias": "a: &x [1, 2]\nb: *x\n",
    "a merge key": "base: &b {x: 1}\nthing:\n  <<: *b\n  y: 2\n",
    "a date": "when: 2024-05-01\n",
    "a tag": "v: !custom thing\n",
    "a duplicate key": "a: 1\na: 2\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "a syntax error": "a: [1, 2\n",
    "a mapping as a key": "? {a: 1}\n: b\n",
    "a set": "s: !!set {a, b}\n",
    "an empty value": "a:\nb: 1\n",  # libyaml places it after the colon, ruamel on the next line: ruamel's place is kept
    "keys equal in Python": "1: one\ntrue: two\n",
}


def careful(text: str) -> Any:
    yaml = YAML(typ="rt")
    return yaml.load(text)


def same(fast: Any, slow: Any, where: str = "") -> None:
    assert type(to_plain(fast)) is type(to_plain(slow)), where
    if isinstance(slow, float) and math.isnan(slow):
        assert math.isnan(fast), where
        return
    if isinstance(slow, (CommentedMap, CommentedSeq)):
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), where
        assert fast.lc.data == slow.lc.data, where
        items = slow.items() if isinstance(slow, CommentedMap) else enumerate(slow)
        assert len(fast) == len(slow), where
        for key, value in items:
            same(fast[key], value, f"{where}/{key}")
        return
    assert to_plain(fast) == to_plain(slow), where


@pytest.mark.parametrize("text", PLAIN.values(), ids=PLAIN.keys())
def test_plain_documents_read_the_same_in_c(text: str) -> None:
    assert libyaml.available(), "ruamel.yaml.clib is a dependency on CPython"
    fast = libyaml.load(text, YAML_LIMITS.depth)
    assert fast is not libyaml.UNREAD
    same(fast, careful(text))


def test_nan_reads_as_nan() -> None:
    fast = libyaml.load("x: .nan\n", YAML_LIMITS.depth)
    assert math.isnan(fast["x"])


@pytest.mark.parametrize("text", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_what_is_not_plain_is_left_to_the_careful_reader(text: str) -> None:
    assert libyaml.load(text, YAML_LIMITS.depth) is libyaml.UNREAD


def test_every_file_of_the_examples_reads_the_same_in_c() -> None:
    with resources.as_file(resources.files("lane.examples")) as root:
        files = [p for p in Path(root).rglob("*") if p.suffix in (".yaml", ".yml")]
        assert len(files) >= 4
        for file in files:
            text = file.read_text(encoding="utf-8")
            fast = libyaml.load(text, YAML_LIMITS.depth)
            assert fast is not libyaml.UNREAD, file
            same(fast, careful(text), str(file))


def test_nesting_past_the_limit_is_reported_by_the_careful_reader_at_its_place() -> None:
    deep = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 120))
    source = parse_yaml("x: " + "[" * 150 + "]" * 150 + "\n", "deep.yaml")
    assert source.problems and "nested deeper than 100 levels" in source.problems[0].message
    assert source.problems[0].line == 1
    assert libyaml.load(deep, 5) is libyaml.UNREAD


def test_a_duplicate_key_is_still_reported_where_it_is() -> None:
    source = parse_yaml("a: 1\nb: 2\na: 3\n", "dup.yaml")
    [problem] = source.problems
    assert (problem.line, problem.column) == (3, 1) and "duplicate key" in problem.message


@pytest.mark.parametrize("text", [
    "%YAML 1.1\n---\n{x: yes}\n",
    "a:\tb\n",
    "d: \"line\u2028break\"\nhumann: x\n",
    "d: \"next\x85line\"\n",
], ids=["a %YAML directive", "a tab", "U+2028", "U+0085"])
def test_what_the_two_readers_take_differently_is_read_the_careful_way(text: str) -> None:
    assert libyaml.load(text, YAML_LIMITS.depth) is libyaml.UNREAD


def test_a_tagged_string_reads_as_the_string() -> None:
    assert parse_yaml("description: !!str 12\nwhen: 2024-01-01\n", "t.yaml").data["description"] == "12"
