"""`lane task new` and `lane task verify` on real git repositories made in temporary folders."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lane.cli import tasks as task_cli
from lane.coding.tasks import BLOCKS, load_task

TASK = """\
# Task add-item (feature cart)

## FILES

Only these:

- src/app/cart.py
- `tests/**`  (any test)
{extra_files}

## TYPES

```python
def add_item(cart: list[str], sku: str) -> list[str]: ...
```

## SKELETON

```python
## FILES  (a heading inside code is code)
def add_item(cart, sku):
    return [*cart, sku]
```

## PROHIBITED

- no change to the public names of src/app/__init__.py
- forbid: `breakpoint\\(\\)`
- forbid: XXX-DEBUG

## VALIDATE

```sh
# comments are skipped
grep -q add_item src/app/cart.py
echo checked the cart; test -f src/app/cart.py
```
{extra_validate}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def write(repo: Path, name: str, text: str) -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    write(root, "src/app/cart.py", "def remove_item(cart, sku):\n    return [s for s in cart if s != sku]\n")
    write(root, "src/app/other.py", "VALUE = 1\n")
    write(root, "pyproject.toml", """\
        [project]
        name = "shop"
        dependencies = ["pydantic>=2.7", "rich>=13"]

        [project.optional-dependencies]
        dev = ["pytest>=8"]
    """)
    write(root, "requirements.txt", "# pinned\nhttpx==0.27.0\n")
    write(root, "package.json", json.dumps({"name": "shop", "dependencies": {"react": "^18.0.0"}, "devDependencies": {}}))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return root


def task(repo: Path, extra_files: str = "", extra_validate: str = "") -> None:
    write(repo, "features/cart/tasks/add-item.md", TASK.format(extra_files=extra_files, extra_validate=extra_validate))


def do_the_work(repo: Path) -> None:
    """The in-scope work of the task: a changed module and a new test."""
    with (repo / "src/app/cart.py").open("a") as f:
        f.write("\n\ndef add_item(cart, sku):\n    return [*cart, sku]\n")
    write(repo, "tests/test_cart.py", "def test_add(): pass\n")


def verify(repo: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(task_cli.app, ["verify", "cart", "add-item", "--project", str(repo), *args])
    evidence_file = repo / "features/cart/tasks/add-item.evidence.json"
    evidence = json.loads(evidence_file.read_text()) if evidence_file.exists() else {}
    return result, evidence


def violations(evidence: dict[str, Any], check: str) -> list[dict[str, str]]:
    found = next(c for c in evidence["checks"] if c["name"] == check)
    assert found["passed"] is (not found["violations"])
    return list(found["violations"])


def test_a_clean_task_passes_and_writes_the_evidence(repo: Path) -> None:
    task(repo)
    do_the_work(repo)
    result, evidence = verify(repo)
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "FAILED" not in result.stdout
    assert evidence["passed"] is True
    assert evidence["task"] == "cart/add-item"
    assert evidence["base"] == "HEAD" and evidence["base_sha"] == git(repo, "rev-parse", "HEAD").strip()
    assert evidence["timestamp"].endswith("+00:00")
    assert {c["name"]: c["passed"] for c in evidence["checks"]} == {"task": True, "files": True, "dependencies": True, "forbid": True, "validate": True}
    assert {(c["status"], c["path"]) for c in evidence["changes"]} >= {("modified", "src/app/cart.py"), ("untracked", "tests/test_cart.py")}
    commands = evidence["validate"]
    assert [c["command"] for c in commands] == ["grep -q add_item src/app/cart.py", "echo checked the cart; test -f src/app/cart.py"]
    assert [c["exit_code"] for c in commands] == [0, 0]
    assert all(isinstance(c["seconds"], float) for c in commands)
    assert commands[1]["output_tail"] == "checked the cart"
    # a second run sees the first run's evidence file untracked, and it is in scope
    again, second = verify(repo, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == second and second["passed"] is True


def test_a_modified_file_outside_files_fails(repo: Path) -> None:
    task(repo)
    do_the_work(repo)
    write(repo, "src/app/other.py", "VALUE = 2\n")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert violations(evidence, "files") == [{"path": "src/app/other.py", "reason": "modified, and it is not in FILES"}]
    assert "FAIL files" in result.stdout and "src/app/other.py  modified, and it is not in FILES" in result.stdout
    assert "FAILED: files" in result.stdout and evidence["passed"] is False


def test_an_untracked_new_file_fails(repo: Path) -> None:
    task(repo)
    do_the_work(repo)
    write(repo, "notes/todo.txt", "later\n")
    write(repo, "build/out.txt", "ignored\n")
    write(repo, ".gitignore", "build/\n")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert {v["path"]: v["reason"] for v in violations(evidence, "files")} == {
        "notes/todo.txt": "untracked, and it is not in FILES",
        ".gitignore": "untracked, and it is not in FILES",
    }  # build/ is ignored by git, so it is no change


def test_a_deletion_outside_files_fails(repo: Path) -> None:
    task(repo)
    do_the_work(repo)
    (repo / "src/app/other.py").unlink()
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert violations(evidence, "files") == [{"path": "src/app/other.py", "reason": "deleted, and it is not in FILES"}]


def test_a_rename_needs_both_sides_in_files(repo: Path) -> None:
    task(repo)
    (repo / "lib").mkdir()
    git(repo, "mv", "src/app/cart.py", "lib/cart.py")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert violations(evidence, "files") == [{"path": "lib/cart.py", "reason": "renamed from src/app/cart.py, and it is not in FILES"}]
    git(repo, "mv", "lib/cart.py", "src/app/cart.py")
    (repo / "tests").mkdir()
    git(repo, "mv", "src/app/other.py", "tests/other.py")  # into scope, but out of a path outside it
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert violations(evidence, "files") == [
        {"path": "src/app/other.py", "reason": "renamed to tests/other.py, and src/app/other.py is not in FILES"}]


def test_a_new_or_changed_dependency_fails(repo: Path) -> None:
    task(repo, extra_files="- pyproject.toml\n- requirements*.txt\n- package.json")
    do_the_work(repo)
    pyproject = (repo / "pyproject.toml").read_text()
    pyproject = pyproject.replace('"pydantic>=2.7", "rich>=13"', '"pydantic>=2.8"').replace('["pytest>=8"]', '["pytest>=8", "hypothesis"]')
    (repo / "pyproject.toml").write_text(pyproject)
    with (repo / "requirements.txt").open("a") as f:
        f.write("requests>=2.31  # for the webhook\n")
    write(repo, "requirements-dev.txt", "ruff\n")
    write(repo, "package.json", json.dumps({"name": "shop", "dependencies": {"react": "^18.0.0"}, "devDependencies": {"left-pad": "1.3.0"}}))
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert violations(evidence, "files") == []
    assert sorted((v["path"], v["reason"]) for v in violations(evidence, "dependencies")) == [
        ("package.json", "new dependency in devDependencies: left-pad@1.3.0"),
        ("pyproject.toml", "changed dependency in [project] dependencies: pydantic>=2.8 (was pydantic>=2.7)"),
        ("pyproject.toml", "new dependency in [project.optional-dependencies] dev: hypothesis"),
        ("requirements-dev.txt", "new dependency in requirements: ruff"),
        ("requirements.txt", "new dependency in requirements: requests>=2.31"),
    ]  # removing rich is no violation
    assert "new dependency in requirements: requests>=2.31" in result.stdout


def test_dependencies_in_other_formats_fail_too(repo: Path) -> None:
    task(repo, extra_files="- pyproject.toml\n- requirements/**\n- dev-requirements.txt\n- package.json")
    do_the_work(repo)
    with (repo / "pyproject.toml").open("a") as f:
        f.write('\n[build-system]\nrequires = ["hatchling", "evil-plugin"]\n'
                '[tool.poetry.dependencies]\nrequests = "^2.31"\n[tool.poetry.group.dev.dependencies]\nblack = "*"\n'
                '[tool.uv]\ndev-dependencies = ["mypy"]\n[tool.uv.sources]\npydantic = { git = "https://example.invalid/fork" }\n')
    write(repo, "requirements/dev.txt", "coverage\n")
    write(repo, "dev-requirements.txt", "tox\n")
    write(repo, "package.json", json.dumps({"name": "shop", "overrides": {"lodash": "4.17.0"}, "resolutions": {"minimist": "0.0.8"},
                                            "bundleDependencies": ["left-pad"]}))
    result, evidence = verify(repo)
    assert result.exit_code == 1
    reasons = sorted(v["reason"] for v in violations(evidence, "dependencies"))
    for expected in ("new dependency in [build-system] requires: evil-plugin", "new dependency in [tool.poetry.dependencies]: requests ^2.31",
                     "new dependency in [tool.poetry.group.dev.dependencies]: black *", "new dependency in [tool.uv] dev-dependencies: mypy",
                     'new dependency in [tool.uv.sources]: pydantic {"git":"https://example.invalid/fork"}',
                     "new dependency in requirements: coverage", "new dependency in requirements: tox",
                     "new dependency in overrides: lodash@4.17.0", "new dependency in resolutions: minimist@0.0.8",
                     "new dependency in bundleDependencies: left-pad"):
        assert expected in reasons, reasons


def test_dependencies_in_uv_lock_inline_script_metadata_and_tox_fail_too(repo: Path) -> None:
    write(repo, "uv.lock", 'version = 1\n\n[[package]]\nname = "rich"\nversion = "13.7.0"\nsource = { registry = "https://pypi.org/simple" }\n')
    write(repo, "tox.ini", "[tox]\nenvlist = py311\n\n[testenv]\ndeps =\n    pytest\n")
    write(repo, "tests/tool.py", "# /// script\n# dependencies = [\"httpx\"]\n# ///\nprint(1)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "locks and tox")
    task(repo, extra_files="- uv.lock\n- tox.ini")
    do_the_work(repo)
    with (repo / "uv.lock").open("a") as f:
        f.write('\n[[package]]\nname = "evil"\nversion = "1.0"\nsource = { git = "https://example.invalid/evil" }\n')
    (repo / "uv.lock").write_text((repo / "uv.lock").read_text().replace('"13.7.0"', '"14.0.0"'))
    (repo / "tox.ini").write_text((repo / "tox.ini").read_text() + "    requests\n\n[testenv:lint]\ndeps = ruff\n")
    write(repo, "tests/tool.py", "# /// script\n# requires-python = \">=3.8\"\n# dependencies = [\"httpx\", \"leftpad\"]\n# ///\nprint(1)\n")
    write(repo, "tests/plain.py", "print('no block: no dependencies')\n")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    reasons = sorted(v["reason"] for v in violations(evidence, "dependencies"))
    for expected in ('new dependency in uv.lock: evil 1.0 {"git":"https://example.invalid/evil"}',
                     "changed dependency in uv.lock: rich 14.0.0", "new dependency in [testenv] deps: requests",
                     "new dependency in [testenv:lint] deps: ruff", "new dependency in # /// script dependencies: leftpad",
                     "new dependency in # /// script requires-python: python >=3.8"):
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)
    assert not any("httpx" in r or "pytest" in r for r in reasons)  # unchanged ones pass


def test_a_failing_validate_command_fails_with_its_output(repo: Path) -> None:
    task(repo, extra_validate="```sh\nfor i in 1 2 3; do echo line $i; done; echo broken >&2; exit 3\necho still runs\n```")
    do_the_work(repo)
    result, evidence = verify(repo)
    assert result.exit_code == 1
    failing = evidence["validate"][2]
    assert failing["exit_code"] == 3 and failing["timed_out"] is False
    assert failing["output_tail"].splitlines() == ["line 1", "line 2", "line 3", "broken"]
    assert evidence["validate"][3]["exit_code"] == 0  # the commands after a failure run too
    line = (repo / "features/cart/tasks/add-item.md").read_text().splitlines().index(failing["command"]) + 1
    assert violations(evidence, "validate") == [{"path": f"features/cart/tasks/add-item.md:{line}", "reason": f"`{failing['command']}` exited 3"}]
    assert "FAIL exit 3" in result.stdout and "| broken" in result.stdout


def test_a_validate_command_past_its_timeout_is_killed(repo: Path) -> None:
    task(repo, extra_validate="```sh timeout=1\nsleep 30 & sleep 30\n```")
    do_the_work(repo)
    started = time.monotonic()
    result, evidence = verify(repo)
    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    slow = evidence["validate"][2]
    assert slow["timed_out"] is True and slow["exit_code"] is None and 1 <= slow["seconds"] < 10
    assert "timed out after" in violations(evidence, "validate")[0]["reason"]


def test_forbid_rules_match_added_lines_only(repo: Path) -> None:
    task(repo)  # the task file itself holds XXX-DEBUG, and is not judged by its own rules
    do_the_work(repo)
    with (repo / "src/app/cart.py").open("a") as f:
        f.write("\ndef debug():\n    breakpoint()\n")
    write(repo, "tests/test_more.py", "x = 1\ny = 2  # XXX-DEBUG\n")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert [(v["path"], v["reason"].split(" (")[0]) for v in violations(evidence, "forbid")] == [
        ("src/app/cart.py:9", "added line matches forbid `breakpoint\\(\\)`"),
        ("tests/test_more.py:2", "added line matches forbid `XXX-DEBUG`"),
    ]
    assert violations(evidence, "files") == []


def test_base_compares_with_an_older_commit(repo: Path) -> None:
    task(repo)
    do_the_work(repo)
    write(repo, "src/app/other.py", "VALUE = 2\n")
    git(repo, "add", "src/app/other.py")
    git(repo, "commit", "-q", "-m", "sneaky")
    assert verify(repo)[0].exit_code == 0  # against HEAD the committed change is invisible
    result, evidence = verify(repo, "--base", "HEAD~1")
    assert result.exit_code == 1
    assert evidence["base_sha"] == git(repo, "rev-parse", "HEAD~1").strip()
    assert [v["path"] for v in violations(evidence, "files")] == ["src/app/other.py"]


def test_usage_errors_exit_2_and_say_how_to_fix(repo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(task_cli.app, ["verify", "cart", "add-item", "-p", str(repo)])
    assert missing.exit_code == 2
    assert "features/cart/tasks/add-item.md" in missing.stderr and "lane task new cart add-item" in missing.stderr
    task(repo)
    bad_base = runner.invoke(task_cli.app, ["verify", "cart", "add-item", "-p", str(repo), "--base", "no-such-branch"])
    assert bad_base.exit_code == 2 and "no-such-branch" in bad_base.stderr
    plain = tmp_path / "plain"
    plain.mkdir()
    not_git = runner.invoke(task_cli.app, ["verify", "cart", "add-item", "-p", str(plain)])
    assert not_git.exit_code == 2 and "not inside a git repository" in not_git.stderr
    for feature, name in (("../etc", "x"), ("cart", "a/b"), ("cart", "..")):
        bad = runner.invoke(task_cli.app, ["verify", feature, name, "-p", str(repo)])
        assert bad.exit_code == 2 and "simple name" in bad.stderr
    assert not (repo / "features/cart/tasks/add-item.evidence.json").exists()


def test_new_writes_a_template_that_must_be_filled_in(repo: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(task_cli.app, ["new", "cart", "checkout", "-p", str(repo)])
    assert made.exit_code == 0, made.output
    path = repo / "features/cart/tasks/checkout.md"
    text = path.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [f"## {b}" for b in BLOCKS]
    assert "lane task verify cart checkout" in made.stdout
    again = runner.invoke(task_cli.app, ["new", "cart", "checkout", "-p", str(repo)])
    assert again.exit_code == 2 and "exists already" in again.stderr and path.read_text() == text
    unfilled = runner.invoke(task_cli.app, ["verify", "cart", "checkout", "-p", str(repo)])
    assert unfilled.exit_code == 2 and "placeholder" in unfilled.stderr and "checkout.md:15" in unfilled.stderr
    filled = text.replace("- <a path or glob, e.g. src/app/cart.py>", "- src/app/cart.py").replace(
        "- <another, e.g. tests/test_cart*.py>", "- tests/test_cart*.py").replace(
        "<a command that must exit 0, e.g. python -m pytest tests/test_cart.py -q>", "true")
    path.write_text(filled)
    spec = load_task(repo, "cart", "checkout")
    assert spec.files == ["src/app/cart.py", "tests/test_cart*.py"]
    assert [c.run for c in spec.validate] == ["true"]
    assert [r.pattern.pattern for r in spec.forbid] == ["breakpoint\\(\\)"]
    result = runner.invoke(task_cli.app, ["verify", "cart", "checkout", "-p", str(repo)])
    assert result.exit_code == 1 and "NO CHANGE: nothing changed since HEAD" in result.output  # the task alone is no work
    (repo / "src/app/cart.py").write_text("def checkout(cart):\n    return cart\n")
    result = runner.invoke(task_cli.app, ["verify", "cart", "checkout", "-p", str(repo)])
    assert result.exit_code == 0, result.output


def test_in_scope_follows_the_globs(repo: Path) -> None:
    task(repo, extra_files="- docs/\n- src/**/*.txt\n- lib/*.py")
    spec = load_task(repo, "cart", "add-item")
    assert spec.files == ["src/app/cart.py", "tests/**", "docs/", "src/**/*.txt", "lib/*.py"]
    inside = ["src/app/cart.py", "tests/a/b/c.py", "docs/x/y.md", "src/a.txt", "src/a/b/c.txt", "lib/x.py", "./lib/x.py",
              "features/cart/tasks/add-item.md", "features/cart/tasks/add-item.evidence.json"]
    outside = ["src/app/other.py", "lib/sub/x.py", "src/app/cart.pyc", "documents/x", "../repo/src/app/cart.py",
               "/src/app/cart.py", "features/cart/tasks/other.md"]
    assert [p for p in inside if not spec.in_scope(p)] == []
    assert [p for p in outside if spec.in_scope(p)] == []


def test_a_validate_command_is_stopped_at_its_timeout_even_when_a_child_escapes_and_keeps_only_a_tail(tmp_path: Path) -> None:
    import time

    from lane.coding.tasks import Command
    from lane.coding.verify import run_command

    began = time.monotonic()
    result = run_command(tmp_path, Command("setsid sleep 30 & yes line | head -c 5000000; sleep 30", 1), 2)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - began < 20, "waited for a child that escaped the kill"
    assert result.output_tail.splitlines()[-1].startswith("line") and len(result.output_tail) < 20000


def test_a_commit_made_past_the_hooks_still_counts_as_the_tasks_change(repo: Path) -> None:
    """`lane task start` records the commit the task starts from: an out-of-scope change the agent committed itself
    (`git commit --no-verify`) is in the diff from there, so verify fails on it."""
    task(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the task")
    started = CliRunner().invoke(task_cli.app, ["start", "cart", "add-item", "--project", str(repo)])
    assert started.exit_code == 0, started.output
    base = git(repo, "rev-parse", "HEAD").strip()
    assert base[:12] in started.output
    write(repo, "src/app/other.py", "VALUE = 2  # out of scope\n")
    git(repo, "add", "src/app/other.py")
    git(repo, "commit", "-q", "--no-verify", "-m", "sneak it in")  # past lane's pre-commit hook
    do_the_work(repo)
    result, evidence = verify(repo)
    assert result.exit_code == 1 and evidence["base_sha"] == base
    assert "src/app/other.py" in result.output and "not in FILES" in result.output
    git(repo, "revert", "--no-edit", "HEAD")  # put it back: the change since the base is in scope again
    result, evidence = verify(repo)
    assert result.exit_code == 0, result.output
    assert sorted(c["path"] for c in evidence["changes"] if "evidence" not in c["path"]) == ["src/app/cart.py", "tests/test_cart.py"]
    head = CliRunner().invoke(task_cli.app, ["verify", "cart", "add-item", "--base", "HEAD", "--project", str(repo)])
    assert head.exit_code == 0  # --base still chooses


def test_what_git_does_not_show_or_what_a_link_reads_cannot_slip_past_verify(repo: Path, tmp_path: Path) -> None:
    """A file hidden by .git/info/exclude (a stray conftest.py), a link out of the repository or at an ignored file,
    a file turned into a link, and a change to the exclude file itself are all flagged."""
    write(repo, ".gitignore", "secret.txt\n")
    write(repo, "src/app/notes.txt", "notes\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore")
    task(repo, extra_files="- src/app/*.txt\n- src/app/link*\n- conftest.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the task")
    assert CliRunner().invoke(task_cli.app, ["start", "cart", "add-item", "--project", str(repo)]).exit_code == 0
    do_the_work(repo)
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text(exclude.read_text() + "stray/\n")
    write(repo, "stray/conftest.py", "import os  # changes every test run\n")
    write(repo, "secret.txt", "ignored\n")
    (tmp_path / "elsewhere.txt").write_text("outside\n")
    (repo / "src/app/link_out").symlink_to(tmp_path / "elsewhere.txt")
    (repo / "src/app/link_ignored").symlink_to("../../secret.txt")
    (repo / "src/app/notes.txt").unlink()
    (repo / "src/app/notes.txt").symlink_to("cart.py")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    reasons = {(v["path"], v["reason"].split(":")[0].split(",")[0]) for v in violations(evidence, "files")}
    assert ("stray/", "untracked") in reasons  # listed as hidden by the exclude file, and not in FILES
    assert ("src/app/link_out", f"is a link to {tmp_path / 'elsewhere.txt'}") in reasons
    assert ("src/app/link_ignored", "is a link to secret.txt") in reasons
    assert ("src/app/notes.txt", "changed type (a file became a link") in reasons
    assert (".git/info/exclude", "changed since the task started") in reasons
    assert any(c["status"] == "untracked, hidden by .git/info/exclude" and c["path"] == "stray/" for c in evidence["changes"])


def test_validate_runs_in_a_clean_checkout_of_exactly_what_would_be_committed(repo: Path) -> None:
    """A stray conftest.py that git ignores makes a failing test pass in the working tree, and an ignored data file
    is there to read; VALIDATE runs in a checkout of the base plus the changed paths, where neither exists."""
    import sys

    write(repo, ".gitignore", "conftest.py\n__pycache__/\n.pytest_cache/\ndata.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore")
    pytest_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider tests"
    task(repo, extra_validate=f"```sh\ntest ! -e data.txt\ntest \"$LANE_REPO\" != \"$PWD\"\n{pytest_cmd}\n```")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the task")
    assert CliRunner().invoke(task_cli.app, ["start", "cart", "add-item", "--project", str(repo)]).exit_code == 0
    do_the_work(repo)
    write(repo, "tests/test_cart.py", """\
        import pathlib, sys
        sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "src"))
        from app.cart import add_item

        def test_add():
            assert add_item([], "a") == ["b"]  # wrong
    """)
    write(repo, "conftest.py", """\
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.xfail)
    """)
    write(repo, "data.txt", "a file only this machine has\n")
    in_place = subprocess.run(pytest_cmd.split(), cwd=repo, capture_output=True, text=True)
    assert in_place.returncode == 0, in_place.stdout  # the trap is real: in the working tree, the wrong test "passes"
    result, evidence = verify(repo)
    assert result.exit_code == 1
    failed = [c for c in evidence["validate"] if c["exit_code"] != 0]
    assert [c["command"] for c in failed] == [pytest_cmd]
    assert "assert ['a'] == ['b']" in failed[0]["output_tail"]
    assert evidence["validated_in"].startswith(f"a clean checkout of {evidence['base_sha'][:12]} plus the ")
    write(repo, "tests/test_cart.py", (repo / "tests/test_cart.py").read_text().replace('["b"]', '["a"]'))
    result, evidence = verify(repo)
    assert result.exit_code == 0, result.output
    # the tree VALIDATE ran on is what `lane task commit` commits (the evidence file aside, which verify rewrote)
    committed = CliRunner().invoke(task_cli.app, ["commit", "cart", "add-item", "--project", str(repo)])
    assert committed.exit_code == 0, committed.output
    assert git(repo, "diff", "--name-only", evidence["tree"], "HEAD").split() == ["features/cart/tasks/add-item.evidence.json"]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the checkout is gone


def test_a_gitattributes_marking_files_binary_cannot_hide_lines_from_forbid(repo: Path) -> None:
    """The forbid rules read every added line of what would be committed, as text, whatever .gitattributes says."""
    task(repo, extra_files="- src/app/.gitattributes")
    do_the_work(repo)
    write(repo, "src/app/.gitattributes", "*.py binary\n")
    with (repo / "src/app/cart.py").open("a") as f:
        f.write("    breakpoint()\n")
    result, evidence = verify(repo)
    assert result.exit_code == 1
    assert [v["path"] for v in violations(evidence, "forbid")] == ["src/app/cart.py:7"]


def test_a_verify_killed_midway_leaves_no_checkout_behind_the_next(repo: Path) -> None:
    """A verify killed while VALIDATE runs leaves its checkout; the next verify removes it (its process is gone)
    and leaves the person's own worktrees alone."""
    import os
    import signal
    import sys

    task(repo, extra_validate="```sh\ntouch \"$LANE_REPO/started\"; sleep 60\n```")
    do_the_work(repo)
    other = repo.parent / "mine"
    git(repo, "worktree", "add", "-q", "--detach", str(other))
    proc = subprocess.Popen([sys.executable, "-m", "lane", "task", "verify", "cart", "add-item", "--project", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (repo / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (repo / "started").exists()
    listed = git(repo, "worktree", "list", "--porcelain")
    orphan = next(Path(b.split("\n")[0].removeprefix("worktree ")) for b in listed.split("\n\n") if "lane-verify-" in b)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert orphan.exists()
    (repo / "started").unlink()
    task(repo)
    result, _ = verify(repo)
    assert result.exit_code == 0, result.output
    assert not orphan.exists()
    listed = git(repo, "worktree", "list", "--porcelain")
    assert "lane-verify-" not in listed and str(other) in listed


def test_paths_with_glob_characters_or_a_leading_dash_are_verified_and_committed_as_named(repo: Path) -> None:
    task(repo, extra_files="- src/app/*")
    do_the_work(repo)
    write(repo, "src/app/-n.py", "A = 1\n")
    write(repo, "src/app/[ab].py", "B = 1\n")
    result, evidence = verify(repo)
    assert result.exit_code == 0, result.output
    committed = CliRunner().invoke(task_cli.app, ["commit", "cart", "add-item", "--project", str(repo)])
    assert committed.exit_code == 0, committed.output
    assert {"src/app/-n.py", "src/app/[ab].py"} <= set(git(repo, "show", "--name-only", "--format=", "HEAD").split("\n"))
    assert git(repo, "status", "--porcelain") == ""
