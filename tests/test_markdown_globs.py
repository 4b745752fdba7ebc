"""Task, lock and session files read as a Markdown renderer reads them, and one glob dialect (git's) for FILES and
an agent's `paths:`, with `lane validate` warning where a `paths:` pattern changed meaning."""

from __future__ import annotations

import subprocess
import textwrap
from datetime import date
from pathlib import Path

import pytest

from conftest import lane, write_project
from lane.coding.locks import find_holes
from lane.coding.session import _headings
from lane.coding.tasks import load_task
from lane.errors import UsageError
from lane.spec.globs import fnmatch_difference, matches

TASK = """\
# Task add (feature cart)

FILES
-----

- `src/cart.py` the module
  - the main module, not a pattern
  - another note
1. tests/test_cart.py

```text
- not/a/pattern.py
## VALIDATE
```

TYPES
-----

```python
## PROHIBITED  (a heading in code is code)
def add(cart: list[str], sku: str) -> list[str]: ...
```

## SKELETON

One function.

## PROHIBITED

- forbid: `breakpoint\\(\\)`
- no debug prints, and this
  forbid: print\\(

```sh
forbid: code-is-not-a-rule
```

## VALIDATE

```sh timeout=30
grep -q add src/cart.py
```
"""


def repo_with(tmp_path: Path, task: str) -> Path:
    root = tmp_path / "repo"
    (root / "features/cart/tasks").mkdir(parents=True)
    (root / "features/cart/tasks/add.md").write_text(task)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def test_a_task_is_read_as_a_renderer_shows_it(tmp_path: Path) -> None:
    task = load_task(repo_with(tmp_path, TASK), "cart", "add")
    assert task.files == ["src/cart.py", "tests/test_cart.py"]  # setext heading; nested notes and code are not patterns
    assert [(r.pattern.pattern, r.line) for r in task.forbid] == [("breakpoint\\(\\)", 30), ("print\\(", 32)]
    assert [(c.run, c.line, c.timeout) for c in task.validate] == [("grep -q add src/cart.py", 41, 30.0)]
    assert "## PROHIBITED  (a heading in code is code)" in task.blocks["TYPES"]


def test_a_heading_only_inside_code_is_no_block(tmp_path: Path) -> None:
    text = TASK.replace("## VALIDATE\n\n```sh timeout=30\ngrep -q add src/cart.py\n```\n", "")
    with pytest.raises(UsageError, match=r"no `## VALIDATE` block"):
        load_task(repo_with(tmp_path, text), "cart", "add")


LOCK = """\
# Lock: dash

Canonical alignment
-------------------

Follows the routing rule in canon/ROUTING.md §2.

## Scope

### IN

- Serve /dashboard from the new route

### OUT

- The old dashboard stays

### Single surgical change

- Add the route to web/routes.py
  - with its flag check
  - and its test

## Invariants

```text
## Blast radius
```

- Users without the flag see the old dashboard

## Blast radius

web/routes.py only.

## Interface contract

`def dashboard(request) -> list[Widget]`

## Sunset criterion

Zero errors for 14 days.

## Kill date

2099-01-31
"""


def test_a_lock_is_read_as_a_renderer_shows_it() -> None:
    """A setext heading is a gate, a nested list is one change, a heading in a fence does not end a gate."""
    assert find_holes(LOCK, "LOCK.md", date(2026, 12, 6)) == []
    two = LOCK.replace("  - with its flag check", "- and a second change")
    holes = find_holes(two, "LOCK.md", date(2026, 12, 6))
    assert [h.message for h in holes] == ["lists 2 changes: a lock permits one; split the rest into their own locks"]


def test_session_headings_skip_code() -> None:
    lines = ["## 2026-12-01", "```", "## resume here (in code)", "```", "Resume here", "-----------"]
    assert _headings(lines) == [(0, 2, "2026-12-01"), (4, 2, "Resume here")]


@pytest.mark.parametrize(("pattern", "inside", "outside"), [
    ("src/cart.py", ["src/cart.py"], ["src/cart.pyc", "x/src/cart.py"]),
    ("src/*.py", ["src/a.py"], ["src/sub/a.py", "a.py"]),
    ("src/**", ["src", "src/a.py", "src/a/b/c.py"], ["srcx/a.py"]),
    ("docs/", ["docs", "docs/a/b.md"], ["documents/a.md"]),
    ("**/test_*.py", ["test_a.py", "tests/x/test_b.py"], ["tests/a_test.py"]),
    ("src/**/*.txt", ["src/a.txt", "src/a/b/c.txt"], ["a.txt"]),
    ("lib/[!_]*.py", ["lib/a.py"], ["lib/_a.py"]),
    ("*.md", ["README.md"], ["docs/a.md"]),
])
def test_one_glob_dialect(pattern: str, inside: list[str], outside: list[str]) -> None:
    assert [p for p in inside if not matches(pattern, p)] == []
    assert [p for p in outside if matches(pattern, p)] == []


def test_fnmatch_difference_names_what_changed() -> None:
    assert fnmatch_difference("src/**") is None and fnmatch_difference("src/*") is None and fnmatch_difference("a.md") is None
    said = fnmatch_difference("docs/*.md")
    assert said is not None and "no longer covers docs/sub/x.md" in said and "`docs/**/*.md`" in said


def test_an_agents_paths_use_the_same_dialect_and_validate_warns_where_it_changed(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {
        "lane.yaml": """
            project: p
            models: {default: scripted:script.yaml}
            roles: {writer: {kind: agent}}
            toolsets: {repo: {builtin: files, root: .}}
        """,
        "agents/writer.md": """
            ---
            name: writer
            description: Writes notes.
            autonomy: auto
            tools: [repo.write]
            paths: ["notes/*.md", "src/**"]
            ---
            Write notes.
        """,
        "runbooks/note.yaml": """
            runbook: note
            steps:
              - id: write
                agent: writer
                goal: Write the notes.
        """,
        "script.yaml": """
            write:
              - tool_calls: [{name: repo.write, args: {path: notes/deep/a.md, content: x}}]
              - tool_calls: [{name: repo.write, args: {path: notes/a.md, content: x}}]
              - output: done
        """,
    })
    checked = lane("validate", cwd=root)
    assert checked.returncode == 0, checked.stderr
    assert "warning: agents/writer.md:6:9:" in checked.stderr and "`notes/*.md` is read as in .gitignore now" in checked.stderr
    ran = lane("run", "note", "--json", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert (root / "notes/a.md").exists() and not (root / "notes/deep/a.md").exists()


def test_the_task_template_still_parses_once_filled_in(tmp_path: Path) -> None:
    from lane.coding.tasks import TEMPLATE

    filled = TEMPLATE.format(feature="cart", task="add").replace("- <a path or glob, e.g. src/app/cart.py>", "- src/app/cart.py")
    filled = filled.replace("- <another, e.g. tests/test_cart*.py>", "- tests/test_cart*.py")
    filled = filled.replace("<a command that must exit 0, e.g. python -m pytest tests/test_cart.py -q>", "true")
    task = load_task(repo_with(tmp_path, textwrap.dedent(filled)), "cart", "add")
    assert task.files == ["src/app/cart.py", "tests/test_cart*.py"]
    assert [r.pattern.pattern for r in task.forbid] == ["breakpoint\\(\\)"] and [c.run for c in task.validate] == ["true"]
