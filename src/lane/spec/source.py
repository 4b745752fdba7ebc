"""YAML sources that remember where every value came from.

A `Source` is one parsed file: its plain data (dicts, lists, scalars) and the
ruamel tree that knows each node's line and column, so any problem found later
can point at `path:line:column`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from lane.errors import Problem

Loc = tuple[str | int, ...]


@dataclass
class Source:
    """A parsed YAML document with positions."""

    path: str  # as shown to the person: relative to the project
    tree: Any
    line_offset: int = 0  # lines before the YAML starts (front matter)
    body: str = ""  # Markdown after front matter
    body_line: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def data(self) -> Any:
        return to_plain(self.tree)

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


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, path: str, *, line_offset: int = 0) -> Source:
    """Parse YAML text; a syntax error becomes a Problem, never an exception."""
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 if mark else 1) + line_offset
        col = mark.column + 1 if mark else 1
        what = (exc.problem or exc.context or "invalid YAML").split(" with value ")[0]  # not a duplicate key's whole value
        return Source(path, None, line_offset, problems=[Problem(path, line, col, f"YAML syntax error: {what}{_opened(exc, line_offset)}")])
    return Source(path, tree, line_offset)


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


def read_yaml(file: Path, shown: str) -> Source:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Source(shown, None, problems=[Problem(shown, 1, 1, f"cannot read file: {exc}")])
    return parse_yaml(text, shown)


def read_front_matter(file: Path, shown: str) -> Source:
    """A Markdown file with YAML front matter between `---` lines."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Source(shown, None, problems=[Problem(shown, 1, 1, f"cannot read file: {exc}")])
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
