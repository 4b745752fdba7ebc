"""Task runbooks: `features/FEATURE/tasks/TASK.md` with five blocks.

FILES is the allowlist of paths (globs: `*` within a folder, `**` across folders,
a trailing `/` for everything under a folder); TYPES and SKELETON are for the
person and the coding agent; PROHIBITED holds rules in words plus `forbid: REGEX`
lines checked against added lines; VALIDATE holds ```sh blocks, one command a line.
`load_task` and `Task.in_scope` are what hooks import: keep those names stable.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath

from lane.errors import UsageError

BLOCKS = ("FILES", "TYPES", "SKELETON", "PROHIBITED", "VALIDATE")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
HEADING = re.compile(r"##\s+([A-Za-z]+)\b")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})\s*(.*)")
BULLET = re.compile(r"\s*[-*+]\s+(.*\S)")
FORBID = re.compile(r"\s*(?:[-*+]\s+)?forbid:\s*(.*\S)", re.IGNORECASE)
TIMEOUT = re.compile(r"\btimeout\s*[:=]\s*(\S+)")
PLACEHOLDER = re.compile(r"<.*>")

TEMPLATE = """\
# Task {task} (feature {feature})

<!-- Written by `lane task new {feature} {task}`. Replace every <placeholder>;
     then `lane task verify {feature} {task}` checks the working tree against this file. -->

Goal: <one or two sentences: what is true when this task is done>

## FILES

The only paths this task may change, add, delete or rename: one bullet each,
relative to the repository's root. `*` matches within one folder, `**` across
folders, and a trailing `/` means everything under a folder. This file and its
evidence file are always allowed.

- <a path or glob, e.g. src/app/cart.py>
- <another, e.g. tests/test_cart*.py>

## TYPES

The types, signatures and data shapes the change uses or provides, exactly.

```python
<e.g. def add_item(cart: Cart, sku: str, quantity: int = 1) -> Cart: ...>
```

## SKELETON

The shape of the change: what goes where, and what calls what.

1. <e.g. src/app/cart.py: add `add_item` next to `remove_item`>
2. <e.g. tests/test_cart.py: one test for each rule of add_item>

## PROHIBITED

What this task must not do. `lane task verify` always checks two built-in rules:

- built-in: no path outside FILES is changed, added, deleted or renamed
- built-in: no new or changed dependency in pyproject.toml, requirements*.txt or package.json

Rules in words are for the person and the coding agent. A `forbid:` line is
checked too: the task fails when an added line matches its regular expression.
The one below is an example: keep it, change it or delete it.

- <e.g. no change to the public names of src/app/__init__.py>
- forbid: `breakpoint\\(\\)`

## VALIDATE

Commands that must each exit 0, in ```sh blocks: one command a line, run with
`sh -c` from the root of a clean checkout of the base plus the task's changes
(files git ignores are not there); lines starting with # are skipped. A command
gets 600 seconds unless its block says otherwise, e.g. ```sh timeout=120

```sh
<a command that must exit 0, e.g. python -m pytest tests/test_cart.py -q>
```
"""


@dataclass(frozen=True)
class Forbid:
    """A `forbid:` rule: no added line may match `pattern`."""

    pattern: re.Pattern[str]
    line: int


@dataclass(frozen=True)
class Command:
    """One VALIDATE command; `timeout` None means the caller's default."""

    run: str
    line: int
    timeout: float | None = None


@dataclass(frozen=True)
class Task:
    feature: str
    name: str
    path: Path
    files: list[str]
    forbid: list[Forbid]
    validate: list[Command]
    blocks: dict[str, str]
    text: str = ""  # the whole file, as a coding agent is given it

    @property
    def own_files(self) -> tuple[str, str]:
        """The task file and its evidence file, relative to the root: always in scope."""
        base = f"features/{self.feature}/tasks/{self.name}"
        return f"{base}.md", f"{base}.evidence.json"

    def in_scope(self, path: str | PurePath) -> bool:
        """Whether `path` (relative to the repository's root, `/`-separated) may change under this task."""
        rel = _normalize(path)
        if rel is None:
            return False
        return rel in self.own_files or any(glob_regex(g).fullmatch(rel) for g in self.files)


def records_work(path: str) -> bool:
    """Whether `path` (relative to the repository's root) is a lock, a sign-off, a task or evidence: files that
    define or record the work, which a person changes and a coding agent never does."""
    parts = path.casefold().split("/")
    return parts[0] == "features" and (parts[-1] in ("lock.md", "lock.signoff.json") or parts[2:3] == ["tasks"])


def check_name(kind: str, value: str) -> str:
    if not NAME.fullmatch(value) or ".." in value:
        raise UsageError(f"{kind} must be a simple name (letters, digits, '.', '_', '-'; no '/' or '..'), not {value!r}")
    return value


def task_path(root: Path, feature: str, task: str) -> Path:
    return root / "features" / check_name("FEATURE", feature) / "tasks" / f"{check_name('TASK', task)}.md"


def evidence_path(root: Path, feature: str, task: str) -> Path:
    return task_path(root, feature, task).with_suffix(".evidence.json")


def new_task(root: Path, feature: str, task: str) -> Path:
    """Write the template for a task; an existing task file is never overwritten."""
    path = task_path(root, feature, task)
    if path.exists():
        raise UsageError(f"{path} exists already: edit it, or remove it to start over")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(feature=feature, task=task), encoding="utf-8")
    return path


def load_task(root: Path, feature: str, task: str) -> Task:
    path = task_path(root, feature, task)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no task file {path}; `lane task new {feature} {task}` writes one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the task file {path}: {exc}") from None
    sections = _sections(path, text)
    return Task(
        feature=feature, name=task, path=path,
        files=_files(path, sections["FILES"]),
        forbid=_forbid(path, sections["PROHIBITED"]),
        validate=_validate(path, sections["VALIDATE"]),
        blocks={name: "\n".join(line for _, line in lines).strip() for name, lines in sections.items()},
        text=text,
    )


Lines = list[tuple[int, str]]  # (1-based line number, text)


def _sections(path: Path, text: str) -> dict[str, Lines]:
    """The lines under each `## BLOCK` heading (headings inside fenced code do not count)."""
    sections: dict[str, Lines] = {}
    current: Lines | None = None
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if opened and (not fence or (opened[1][0] == fence[0] and len(opened[1]) >= len(fence) and not opened[2])):
            fence = "" if fence else opened[1]
        elif not fence and (heading := HEADING.match(line)):
            name = heading[1].upper()
            if name in sections:
                raise UsageError(f"{path}:{number}: a second `## {name}` block; a task has one of each")
            current = None
            if name in BLOCKS:
                current = sections[name] = []
            continue
        if current is not None:
            current.append((number, line))
    missing = [name for name in BLOCKS if name not in sections]
    if missing:
        raise UsageError(f"{path}: no {', '.join(f'`## {m}`' for m in missing)} block; a task has {', '.join(BLOCKS)} "
                         f"(`lane task new FEATURE TASK` writes a template)")
    return sections


def _files(path: Path, lines: Lines) -> list[str]:
    files: list[str] = []
    fence = False
    for number, line in lines:
        if FENCE.match(line):
            fence = not fence
        bullet = None if fence else BULLET.match(line)
        if not bullet:
            continue
        item = bullet[1]
        if PLACEHOLDER.fullmatch(item):
            raise UsageError(f"{path}:{number}: FILES still holds the template's placeholder {item}; "
                             "replace it with a path or glob this task may change")
        pattern = item[1:].split("`", 1)[0] if item.startswith("`") else item.split()[0]
        files.append(pattern.removeprefix("./").lstrip("/"))
    return files


def _forbid(path: Path, lines: Lines) -> list[Forbid]:
    rules: list[Forbid] = []
    for number, line in lines:
        found = FORBID.fullmatch(line)
        if not found:
            continue
        value = found[1]
        if len(value) > 1 and value.startswith("`") and value.endswith("`"):
            value = value[1:-1]
        try:
            rules.append(Forbid(re.compile(value), number))
        except re.error as exc:
            raise UsageError(f"{path}:{number}: `forbid: {value}` is not a valid regular expression ({exc})") from None
    return rules


def _validate(path: Path, lines: Lines) -> list[Command]:
    commands: list[Command] = []
    fence, timeout = "", None
    pending: list[str] = []
    start = 0
    for number, line in lines:
        opened = FENCE.match(line)
        if not fence and opened:
            fence, info = opened[1], opened[2].strip()
            if info.split(maxsplit=1)[:1] != ["sh"]:
                label = f"```{info}" if info else "unlabelled"
                raise UsageError(f"{path}:{number}: VALIDATE runs only ```sh blocks, and this one is {label}; "
                                 "label it ```sh or move it out of VALIDATE")
            timeout = _timeout(path, number, info)
            continue
        if not fence:
            continue
        if opened and opened[1][0] == fence[0] and len(opened[1]) >= len(fence) and not opened[2]:
            fence = ""
            continue
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        start = start if pending else number
        pending.append(line.strip() if not pending else line)
        if line.rstrip().endswith("\\"):
            continue  # a continued line: sh -c reads the backslash-newline itself
        commands.append(_command(path, start, "\n".join(pending), timeout))
        pending = []
    return commands


def _command(path: Path, line: int, run: str, timeout: float | None) -> Command:
    if PLACEHOLDER.fullmatch(run):
        raise UsageError(f"{path}:{line}: VALIDATE still holds the template's placeholder {run}; "
                         "replace it with a command that must exit 0")
    return Command(run, line, timeout)


def _timeout(path: Path, number: int, info: str) -> float | None:
    found = TIMEOUT.search(info)
    if not found:
        return None
    try:
        seconds = float(found[1])
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise UsageError(f"{path}:{number}: timeout must be a number of seconds above 0, e.g. ```sh timeout=120")
    return seconds


def _normalize(path: str | PurePath) -> str | None:
    text = path.as_posix() if isinstance(path, PurePath) else str(path).replace("\\", "/")
    if not text or text.startswith("/"):
        return None
    rel = posixpath.normpath(text)
    return None if rel in (".", "..") or rel.startswith("../") else rel


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A FILES glob as a regular expression: `*` and `?` stay within a folder, `**` crosses folders."""
    folder = pattern.endswith("/")  # everything under it, and the folder itself (a nested repository shows as one)
    pattern = pattern.rstrip("/") if folder else pattern
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + ("(?:/.*)?" if folder else ""))
