"""YAML sources that remember where every value came from.

A `Source` is one parsed file: its plain data (dicts, lists, scalars) and the
ruamel tree that knows each node's line and column, so any problem found later
can point at `path:line:column`.

Every YAML file lane reads comes through here, and so do data files (`--input-file`,
`--input KEY=@FILE`). A file past the limits below is refused as a Problem at the
place that passes them, before anything copies or walks it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent
from ruamel.yaml.reader import ReaderError

from lane.errors import Problem
from lane.spec import libyaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    """How much of one YAML file lane reads. A real project is far inside all four."""

    bytes: int  # the file as written
    values: int  # values with every alias expanded: an alias counts all it names, each time it is used
    text: int  # characters of text, aliases expanded the same way
    depth: int  # mappings and lists inside one another


# ruamel's round-trip parser reads about 0.2 MB a second, so 1 MiB is already seconds;
# a 1,000-step runbook is about 70 KB. The expanded limits stop a "billion laughs" file
# (nested aliases, 600 bytes that expand to 10^9 values) long before it costs anything.
YAML_LIMITS = Limits(bytes=1 << 20, values=1_000_000, text=10_000_000, depth=100)
JSON_BYTES = 32 << 20  # data files that are JSON: parsed in C, and a 10 MB document is real
JSON_DEPTH = YAML_LIMITS.depth  # deeper data breaks the recursion of JSON encoders and schema checks


@dataclass
class Source:
    """A parsed YAML document with positions."""

    path: str  # as shown to the person: relative to the project
    tree: Any
    line_offset: int = 0  # lines before the YAML starts (front matter)
    body: str = ""  # Markdown after front matter
    body_line: int = 0
    problems: list[Problem] = field(default_factory=list)
    damaged: set[tuple[int, int]] = field(default_factory=set)  # (line, column) of mappings that had unknown keys taken out
    plain: bool = False  # the tree is plain data already (a JSON file)

    @cached_property
    def data(self) -> Any:
        # Computed once: callers read it once per step, and the tree does not change after loading.
        return self.tree if self.plain else to_plain(self.tree)

    def at(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        """A problem at the node reached by `loc` (the key itself if `key`)."""
        line, col = self.position(loc, key=key)
        return Problem(self.path, line, col, message)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        node: Any = self.tree
        line, col = _start(node)
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                pos = node.lc.key(part) if (key and last) else node.lc.value(part)
                line, col = pos
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            elif isinstance(node, (CommentedMap, CommentedSeq)):
                # a key that is not there (a missing key, or a pydantic union tag): stay here
                continue
            else:
                break
        return line + 1 + self.line_offset, col + 1


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line, lc.col
    return 0, 0


def to_plain(node: Any) -> Any:
    if isinstance(node, TaggedScalar):  # `!!str 12`: the value it tags
        return to_plain(node.value)
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


class _Refused(MarkedYAMLError):
    """A file lane will not read (past YAML_LIMITS, or a value Python cannot hold), at the place that says why."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(problem=message, problem_mark=mark)


_TOO_DEEP = f"nested deeper than {YAML_LIMITS.depth} levels; lane reads at most {YAML_LIMITS.depth}"


class _CountingComposer(Composer):
    """ruamel's composer, counting what the document holds with every alias expanded.

    The round-trip loader shares one object between an anchor and its aliases, so loading
    is cheap and the cost comes later, when the data is copied, walked or encoded. Counting
    here, where each alias is still an event with its own position, refuses the file at the
    alias that multiplies it or that names a value it is inside, in the same single pass.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # redefining an anchor is valid YAML; ruamel's warning is noise
        self.values = self.text = self.reach = 0
        self.sizes: dict[int, tuple[int, int, int]] = {}  # id(anchored node) -> values, text, height

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            self._expand(event)
            return super().compose_node(parent, index)
        depth = self.depth + 1
        if depth > YAML_LIMITS.depth:  # checked here, before ruamel's own recursion can run out of stack
            raise _Refused(_TOO_DEEP, event.start_mark)
        values, text, reach = self.values, self.text, self.reach
        self._count(1, len(event.value) if isinstance(event, ScalarEvent) else 0, event)
        self.reach = depth
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self.sizes[id(node)] = (self.values - values, self.text - text, self.reach - depth)
        self.reach = max(reach, self.reach)
        return node

    def _expand(self, event: AliasEvent) -> None:
        node = self.anchors.get(event.anchor)
        if node is None:
            return  # ruamel reports the undefined alias
        size = self.sizes.get(id(node))
        if size is None:  # its node is still being composed
            raise _Refused(f"alias '*{event.anchor}' is inside the value it names; lane cannot read a value that contains itself",
                           event.start_mark)
        values, text, height = size
        if self.depth + 1 + height > YAML_LIMITS.depth:
            raise _Refused(f"alias '*{event.anchor}' nests the file deeper than {YAML_LIMITS.depth} levels; lane reads at most {YAML_LIMITS.depth}",
                           event.start_mark)
        self._count(values, text, event)
        self.reach = max(self.reach, self.depth + 1 + height)

    def _count(self, values: int, text: int, event: Any) -> None:
        self.values += values
        self.text += text
        what = f"alias '*{event.anchor}' expands the file" if isinstance(event, AliasEvent) else "the file goes"
        why = " (an alias counts everything it names, each time it is used)" if isinstance(event, AliasEvent) else ""
        if self.values > YAML_LIMITS.values:
            raise _Refused(f"{what} past {YAML_LIMITS.values:,} values{why}; lane reads at most {YAML_LIMITS.values:,}", event.start_mark)
        if self.text > YAML_LIMITS.text:
            raise _Refused(f"{what} past {YAML_LIMITS.text:,} characters of text{why}; lane reads at most {YAML_LIMITS.text:,}", event.start_mark)


class _Constructor(RoundTripConstructor):
    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # `2024-13-45`, `!!int abc`, an integer of 5,000 digits
            reason = str(exc).split(";")[0]  # not Python's hint about sys.set_int_max_str_digits
            if not isinstance(node.value, str):
                raise _Refused(f"cannot read this value ({reason})", node.start_mark) from exc
            shown = node.value if len(node.value) <= 40 else f"{node.value[:40]}…"
            raise _Refused(f"cannot read {shown!r} ({reason}); quote it to keep it as text", node.start_mark) from exc


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Composer = _CountingComposer
    yaml.Constructor = _Constructor
    return yaml


def parse_yaml(text: str, path: str, *, line_offset: int = 0) -> Source:
    """Parse YAML text; a syntax error or a file past YAML_LIMITS becomes a Problem, never an exception."""
    if len(text) > YAML_LIMITS.bytes:
        return _problem(path, 1 + line_offset, 1, f"the file is {_size(len(text))} of YAML; lane reads YAML up to {_size(YAML_LIMITS.bytes)}")
    tree = libyaml.load(text, YAML_LIMITS.depth)  # the common case, in C
    if tree is not libyaml.UNREAD:
        return Source(path, tree, line_offset)
    try:
        tree = _yaml().load(text)
    except _Refused as exc:
        mark = exc.problem_mark
        return _problem(path, mark.line + 1 + line_offset, mark.column + 1, str(exc.problem))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 if mark else 1) + line_offset
        col = mark.column + 1 if mark else 1
        what = (exc.problem or exc.context or "invalid YAML").split(" with value ")[0]  # not a duplicate key's whole value
        return _problem(path, line, col, f"YAML syntax error: {what}{_opened(exc, line_offset)}")
    except ReaderError as exc:  # a character YAML forbids, such as NUL
        line, col = _line_col(text, exc.position)
        return _problem(path, line + line_offset, col, f"the character U+{exc.character:04X} is not allowed in YAML; remove it")
    except YAMLError as exc:
        return _problem(path, 1 + line_offset, 1, f"YAML error: {str(exc).splitlines()[0]}")
    except RecursionError:  # not expected past the composer's depth check, but the stack may start deep
        line, col = _too_deep(text)
        return _problem(path, line + line_offset, col, _TOO_DEEP)
    return Source(path, tree, line_offset)


def _problem(path: str, line: int, column: int, message: str) -> Source:
    return Source(path, None, problems=[Problem(path, line, column, message)])


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _too_deep(text: str) -> tuple[int, int]:
    """Where the event stream first goes deeper than the limit (ruamel's parser keeps its own stack, so it can tell)."""
    depth = 0
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > YAML_LIMITS.depth:
                return event.start_mark.line + 1, event.start_mark.column + 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return 1, 1


_OPENERS = {
    "while parsing a flow sequence": "the list [...]",
    "while parsing a flow mapping": "the mapping {...}",
    "while scanning a quoted scalar": "the quoted string",
}


def _opened(exc: MarkedYAMLError, line_offset: int) -> str:
    """Where the list, mapping or string that is not closed starts: often the thing to fix."""
    what, mark = _OPENERS.get(exc.context or ""), exc.context_mark
    if what is None or mark is None or exc.problem is None:
        return ""
    return f" (in {what} that starts at line {mark.line + 1 + line_offset}, column {mark.column + 1})"


def _size(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB" if count >= 1 << 20 else f"{count / 1024:.0f} KiB" if count >= 1024 else f"{count} bytes"


def read_text(file: Path, shown: str, limit: int) -> str | Problem:
    """A UTF-8 text file, or the Problem that stops it being read (too big, not readable, not UTF-8)."""
    try:
        size = file.stat().st_size
        if size > limit:  # before reading: the file may be a log or a disk image
            return Problem(shown, 1, 1, f"the file is {_size(size)}; lane reads files like it up to {_size(limit)}")
        raw = file.read_bytes()
    except OSError as exc:
        return Problem(shown, 1, 1, f"cannot read file: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1
        return Problem(shown, raw.count(b"\n", 0, exc.start) + 1, column,
                       f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8")


def read_yaml(file: Path, shown: str) -> Source:
    text = read_text(file, shown, YAML_LIMITS.bytes)
    if isinstance(text, Problem):
        return Source(shown, None, problems=[text])
    return parse_yaml(text, shown)


def read_front_matter(file: Path, shown: str) -> Source:
    """A Markdown file with YAML front matter between `---` lines."""
    text = read_text(file, shown, YAML_LIMITS.bytes)
    if isinstance(text, Problem):
        return Source(shown, None, problems=[text])
    return parse_front_matter(text, shown)


def parse_front_matter(text: str, shown: str) -> Source:
    """Markdown text with YAML front matter between `---` lines: the front matter, with the rest as `body`."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return Source(shown, None, problems=[Problem(shown, 1, 1, "missing YAML front matter: start the file with a line '---'")])
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        return Source(shown, None, problems=[Problem(shown, 1, 1, "front matter is not closed: add a line '---' after it")])
    source = parse_yaml("".join(lines[1:end]), shown, line_offset=1)
    source.body = "".join(lines[end + 1 :]).strip()
    source.body_line = end + 2
    return source


def read_data(file: Path, shown: str) -> Source:
    """A data file (`--input-file`, `--input KEY=@FILE`): JSON unless it is named .yaml or .yml or does not read as JSON.

    JSON is parsed in C, so a large document is read quickly; YAML keeps YAML_LIMITS."""
    text = read_text(file, shown, JSON_BYTES)
    if isinstance(text, Problem):
        return Source(shown, None, problems=[text])
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml"):
        try:
            return load_json(text, shown)
        except json.JSONDecodeError as exc:
            if suffix == ".json":
                return _problem(shown, exc.lineno, exc.colno, f"JSON syntax error: {exc.msg}")
    if len(text) > YAML_LIMITS.bytes:  # YAML that is not JSON, such as `name: Ada`, is read as YAML
        return _problem(shown, 1, 1, f"the file is {_size(len(text))} of YAML; lane reads YAML up to {_size(YAML_LIMITS.bytes)}: "
                        f"save large data as JSON, which it reads up to {_size(JSON_BYTES)}")
    return parse_yaml(text, shown)


def load_json(text: str, shown: str) -> Source:
    """JSON text as a Source of plain data (no positions inside), refused past JSON_DEPTH.

    Raises json.JSONDecodeError when the text is not JSON; any other problem is in the Source."""
    try:
        data = json.loads(text)
    except RecursionError:  # the C parser's own limit, near Python's recursion limit
        return _problem(shown, *_line_col(text, _json_too_deep(text)), _TOO_DEEP_JSON)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of 5,000 digits
        return _problem(shown, 1, 1, f"cannot read a value: {str(exc).split(';')[0]}")
    if _json_depth(text) > JSON_DEPTH:
        return _problem(shown, *_line_col(text, _json_too_deep(text)), _TOO_DEEP_JSON)
    return Source(shown, data, plain=True)


_TOO_DEEP_JSON = f"nested deeper than {JSON_DEPTH} levels; lane reads at most {JSON_DEPTH}"
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_TOKEN = re.compile(_JSON_STRING.pattern + r"|[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """How deep valid JSON nests, counted on its brackets outside strings (in C: fast on 10 MB)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _json_too_deep(text: str) -> int:
    """The offset of the first bracket past JSON_DEPTH (0 if none): only on the way to an error."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > JSON_DEPTH:
                return match.start()
        elif token in ("]", "}"):
            depth -= 1
    return 0
