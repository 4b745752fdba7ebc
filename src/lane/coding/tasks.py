"""Task runbooks: `features/FEATURE/tasks/TASK.md` with five blocks.

FILES is the allowlist of paths (globs in git's dialect, spec/globs.py: `*` within a
folder, `**` across folders, a trailing `/` for everything under a folder); TYPES and SKELETON are for the
person and the coding agent; PROHIBITED holds rules in words plus `forbid: REGEX`
lines checked against added lines; VALIDATE holds ```sh blocks, one command a line.
`load_task` and `Task.in_scope` are what hooks import: keep those names stable.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from lane.coding import markdown
from lane.errors import UsageError
from lane.spec.globs import matches

BLOCKS = ("FILES", "TYPES", "SKELETON", "PROHIBITED", "VALIDATE")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
HEADING = re.compile(r"([A-Za-z]+)\b")  # a block's name: the first word of its heading
FORBID = re.compile(r"\s*forbid:\s*(.*\S)", re.IGNORECASE)
TIMEOUT = re.compile(r"\btimeout\s*[:=]\s*(\S+)")
PLACEHOLDER = re.compile(r"<.*>")

TEMPLATE = """\
# Task {task} (feature {feature})

<!-- Written by `lane task new {feature} {task}`. Replace every <placeholder>;
     then `lane task verify {feature} {task}` checks the working tree against this file. -->

Goal: <one or two sentences: what is true when this task is done>

## FILES

The only paths this task may change, add, delete or rename: one bullet each,
relative to the repository's root, in .gitignore's dialect: `*` matches within
one folder, `**` across folders, and a folder (`docs/`) means everything under
it. A nested bullet is a note. This file and its evidence file are always allowed.

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
        return rel in self.own_files or any(matches(g, rel) for g in self.files)


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
    doc = markdown.parse(text)
    sections = _sections(path, doc)
    return Task(
        feature=feature, name=task, path=path,
        files=_files(path, doc, *sections["FILES"]),
        forbid=_forbid(path, doc, *sections["PROHIBITED"]),
        validate=_validate(path, doc, *sections["VALIDATE"]),
        blocks={name: "\n".join(doc.lines[start - 1 : end - 1]).strip() for name, (start, end) in sections.items()},
        text=text,
    )


def _sections(path: Path, doc: markdown.Document) -> dict[str, tuple[int, int]]:
    """The lines (first, after the last) under each block's level-2 heading, `## FILES` or FILES over `-----`,
    up to the next heading of level 1 or 2. A heading inside fenced code is code."""
    heads = [h for h in doc.headings() if h.level <= 2]
    sections: dict[str, tuple[int, int]] = {}
    for i, head in enumerate(heads):
        named = HEADING.match(head.title) if head.level == 2 else None
        if not named:
            continue
        name = named[1].upper()
        if name in sections:
            raise UsageError(f"{path}:{head.line}: a second `## {name}` block; a task has one of each")
        if name in BLOCKS:
            sections[name] = (head.after, heads[i + 1].line if i + 1 < len(heads) else len(doc.lines) + 1)
    missing = [name for name in BLOCKS if name not in sections]
    if missing:
        raise UsageError(f"{path}: no {', '.join(f'`## {m}`' for m in missing)} block; a task has {', '.join(BLOCKS)} "
                         f"(`lane task new FEATURE TASK` writes a template)")
    return sections


def _files(path: Path, doc: markdown.Document, start: int, end: int) -> list[str]:
    """One pattern per top-level list item: the text in its leading backticks, else its first word. A nested
    item is a note on the one above it."""
    files: list[str] = []
    for item in doc.items(start, end):
        text = item.text.strip()
        if item.depth > 0 or not text:
            continue
        if PLACEHOLDER.fullmatch(text):
            raise UsageError(f"{path}:{item.line}: FILES still holds the template's placeholder {text}; "
                             "replace it with a path or glob this task may change")
        pattern = text[1:].split("`", 1)[0] if text.startswith("`") else text.split()[0]
        files.append(pattern.removeprefix("./").lstrip("/"))
    return files


def _forbid(path: Path, doc: markdown.Document, start: int, end: int) -> list[Forbid]:
    """A `forbid: REGEX` line of prose (a list item or a paragraph; not code), the regex optionally in backticks."""
    rules: list[Forbid] = []
    for number, line in doc.text_lines(start, end):
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


def _validate(path: Path, doc: markdown.Document, start: int, end: int) -> list[Command]:
    commands: list[Command] = []
    for fence in doc.fences(start, end):
        if fence.info.split(maxsplit=1)[:1] != ["sh"]:
            label = f"```{fence.info}" if fence.info else "unlabelled"
            raise UsageError(f"{path}:{fence.line}: VALIDATE runs only ```sh blocks, and this one is {label}; "
                             "label it ```sh or move it out of VALIDATE")
        timeout = _timeout(path, fence.line, fence.info)
        pending: list[str] = []
        first = 0
        for number, line in enumerate(fence.content.splitlines(), fence.line + 1):
            if not pending and (not line.strip() or line.strip().startswith("#")):
                continue
            first = first if pending else number
            pending.append(line.strip() if not pending else line)
            if line.rstrip().endswith("\\"):
                continue  # a continued line: sh -c reads the backslash-newline itself
            commands.append(_command(path, first, "\n".join(pending), timeout))
            pending = []
        if pending:  # the block ends on a continued line
            commands.append(_command(path, first, "\n".join(pending), timeout))
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
