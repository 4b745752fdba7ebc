"""Markdown as a renderer reads it: headings, list items and fenced code, with their lines.

Task, lock and session files are read through markdown-it-py (CommonMark), not line by line, so a heading or a
bullet inside a code fence is code, a setext heading (`FILES` over `-----`) is a heading, and a nested list
belongs to the item above it, as on GitHub. Lines are 1-based, as an editor shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.token import Token


@dataclass(frozen=True)
class Heading:
    level: int
    title: str  # its text as written (inline markup kept)
    line: int  # where it starts
    after: int  # the first line after it (a setext heading takes two)


@dataclass(frozen=True)
class Item:
    """A list item's own text: its first paragraph as written, without its marker or the lists nested in it."""

    line: int
    text: str
    depth: int  # 0 for an item of a list that is in no other list


@dataclass(frozen=True)
class Fence:
    line: int  # the opening fence's line; the content starts on the next
    info: str  # what follows the opening fence: ```sh timeout=120 gives "sh timeout=120"
    content: str


@dataclass(frozen=True)
class Document:
    lines: list[str]
    tokens: list[Token]

    def headings(self) -> list[Heading]:
        """The document's own headings (not those inside a list or a quote), in order."""
        found = []
        for i, token in enumerate(self.tokens):
            if token.type == "heading_open" and token.level == 0 and token.map:
                found.append(Heading(int(token.tag[1:]), self.tokens[i + 1].content, token.map[0] + 1, token.map[1] + 1))
        return found

    def within(self, start: int, end: int) -> list[Token]:
        """The tokens of the top-level blocks that start on lines start..end-1, with everything inside them."""
        first = last = len(self.tokens)
        for i, token in enumerate(self.tokens):
            if token.level != 0 or not token.map:
                continue
            if first == len(self.tokens) and token.map[0] + 1 >= start:
                first = i
            if token.map[0] + 1 >= end:
                last = i
                break
        return self.tokens[first:last] if first < last else []

    def items(self, start: int, end: int) -> list[Item]:
        found, depth = [], -1
        tokens = self.within(start, end)
        for i, token in enumerate(tokens):
            if token.type in ("bullet_list_open", "ordered_list_open"):
                depth += 1
            elif token.type in ("bullet_list_close", "ordered_list_close"):
                depth -= 1
            elif token.type == "list_item_open" and token.map and depth >= 0:
                inline = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 1].type == "paragraph_open" else None
                found.append(Item(token.map[0] + 1, inline.content if inline is not None else "", depth))
        return found

    def fences(self, start: int, end: int) -> list[Fence]:
        return [Fence(t.map[0] + 1, t.info.strip(), t.content) for t in self.within(start, end) if t.type == "fence" and t.map]

    def text_lines(self, start: int, end: int) -> list[tuple[int, str]]:
        """Each line of prose (paragraphs, list items, headings) on lines start..end-1: never code."""
        found = []
        for token in self.within(start, end):
            if token.type == "inline" and token.map:
                found += [(token.map[0] + 1 + k, line) for k, line in enumerate(token.content.split("\n"))]
        return found

    def code_lines(self) -> set[int]:
        """The lines that are code (fenced or indented), fences' own delimiters included."""
        return {n + 1 for t in self.tokens if t.type in ("fence", "code_block") and t.map for n in range(*t.map)}


def parse(text: str) -> Document:
    return Document(text.splitlines(), list(_parser().parse(text)))


@lru_cache(maxsize=1)
def _parser():  # type: ignore[no-untyped-def]
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")
