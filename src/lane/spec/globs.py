"""Path globs, in one dialect: git's, as in .gitignore, read from the project's (or repository's) root.

`*` and `?` stay within a folder, `**` crosses folders (`**/` also matches none), `[abc]` and `[!abc]` are
classes, a trailing `/` means a folder and everything under it, and, as in .gitignore, a pattern that names a
folder covers what is under it. A task's FILES, an agent's `paths:` and the file tools' lanes all match with
`matches`; pathspec (the library behind black's and others' .gitignore handling) does the matching.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


def matches(pattern: str, path: str) -> bool:
    """Whether `path` (relative, `/`-separated) is covered by `pattern`."""
    spec = _spec(pattern)
    return bool(spec.match_file(path)) or (pattern.endswith(("/", "/**")) and bool(spec.match_file(path + "/")))


@lru_cache(maxsize=1024)
def _spec(pattern: str) -> Any:
    from pathspec import PathSpec

    text = pattern.strip().removeprefix("./").lstrip("/")
    if text.startswith(("!", "#")):  # a name, not .gitignore's negation or comment
        text = "\\" + text
    return PathSpec.from_lines("gitignore", ["/" + text])  # anchored: from the root, as FILES always were


_SINGLE_STAR = re.compile(r"(?<!\*)\*(?!\*)")


def fnmatch_difference(pattern: str) -> str | None:
    """How `pattern` read as lane read `paths:` before (fnmatch, where `*` crossed `/`) differs from reading it
    as git does, for a warning; None when it reads the same."""
    parts = pattern.split("/")
    at = next((i for i, part in enumerate(parts) if _SINGLE_STAR.search(part)), None)
    if at is None or (at == len(parts) - 1 and parts[at] == "*"):
        return None  # no `*` that could cross a folder, or only a last `dir/*`, which covers the same as before
    lost = "/".join([*parts[:at], "sub", _SINGLE_STAR.sub("x", parts[at], count=1), *parts[at + 1 :]]).replace("*", "x")
    deeper = "/".join([*parts[:at], "**", *parts[at:]])
    return (f"`{pattern}` is read as in .gitignore now: `*` stays within one folder, so it no longer covers {lost}; "
            f"write `{deeper}` to reach into the folders below")
