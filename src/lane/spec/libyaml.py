"""The common case of reading YAML, in C: libyaml composes, lane builds the tree with every position.

ruamel's round-trip loader, which keeps each value's line and column, is pure
Python: a 1,000-step runbook takes half a second. libyaml (ruamel.yaml.clib)
composes the same file in milliseconds, with the same YAML 1.2 rules and marks
on every node; lane builds from those nodes the very tree the round-trip loader
gives (CommentedMap and CommentedSeq with their line and column data).

Only plain documents are read here: mappings, lists and scalars that are text,
integers, numbers, booleans or null (written). Anything else (an alias, a tag
such as a date, a merge key, a duplicate key, an empty value, nesting past the
limit, a syntax error, and what the two readers take differently: a %YAML
directive, tabs, U+0085, U+2028, U+2029) returns UNREAD, and source.py reads the file the careful way, which counts
aliases, checks every limit and says what is wrong where.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

UNREAD: Any = object()
# Where libyaml and ruamel differ, the careful reader decides: a %YAML directive (libyaml keeps 1.2 rules),
# tabs (libyaml takes some as separators that ruamel refuses), and U+0085, U+2028, U+2029 (line breaks to one
# of them, not the other: every later line number would differ).
_UNLIKE = re.compile(r"^%YAML|[\t\x85\u2028\u2029]", re.M)
_TAG = "tag:yaml.org,2002:"


class _Unusual(Exception):
    """Something this reader leaves to the careful one."""


def available() -> bool:
    try:
        from _ruamel_yaml import CParser  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


_AVAILABLE = available()


def load(text: str, max_depth: int) -> Any:
    """The round-trip tree of a plain YAML document, or UNREAD."""
    if not _AVAILABLE or _UNLIKE.search(text):
        return UNREAD
    try:
        yaml = YAML(typ="safe", pure=False)
        node = yaml.compose(text)
        return None if node is None else _Builder(max_depth, yaml.constructor).build(node, 1)
    except Exception:  # noqa: BLE001 - whatever it is, the careful reader reports it properly
        return UNREAD


class _Builder:
    def __init__(self, max_depth: int, scalars: SafeConstructor) -> None:
        self.max_depth = max_depth
        self.seen: set[int] = set()
        self.scalars = scalars  # ruamel's own reading of YAML 1.2 integers, numbers and booleans

    def build(self, node: Any, depth: int) -> Any:
        if id(node) in self.seen:  # an alias: counted by the careful reader
            raise _Unusual
        self.seen.add(id(node))
        if depth > self.max_depth:  # counted as the careful reader counts: scalars too
            raise _Unusual
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, MappingNode) and node.tag == _TAG + "map":
            return self.mapping(node, depth)
        if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
            seq = CommentedSeq(self.build(item, depth + 1) for item in node.value)
            seq._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
            for index, item in enumerate(node.value):
                seq.lc.add_kv_line_col(index, [item.start_mark.line, item.start_mark.column])
            return seq
        raise _Unusual

    def mapping(self, node: Any, depth: int) -> CommentedMap:
        result = CommentedMap()
        result._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Unusual  # a mapping or a list as a key
            key = self.build(key_node, depth)
            if key in result or key_node.tag == _TAG + "merge":
                raise _Unusual
            result[key] = self.build(value_node, depth + 1)
            result.lc.add_kv_line_col(key, [key_node.start_mark.line, key_node.start_mark.column,
                                            value_node.start_mark.line, value_node.start_mark.column])
        return result

    def scalar(self, node: Any) -> Any:
        tag = node.tag.removeprefix(_TAG)
        if tag == "str":
            return node.value
        if tag == "null":
            if not node.value:  # an empty value: libyaml and ruamel place it differently; keep ruamel's place
                raise _Unusual
            return None
        if tag == "bool":
            return self.scalars.construct_yaml_bool(node)
        if tag == "int":
            return self.scalars.construct_yaml_int(node)
        if tag == "float":
            return self.scalars.construct_yaml_float(node)
        raise _Unusual
