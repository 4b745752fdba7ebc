"""The feature runbook end to end on real git repositories: `lane feature plan`, then `lane run` with the
scripted model editing files, pausing for the lock's sign-off and each task's review, and stopping a task
whose work reached outside FILES."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import lane, lane_json, write_project

LOCK = """\
# Lock: cart

## Canonical alignment

Follows the pricing rules in canon/PRICING.md §1.

## Scope

### IN

- Add items to a cart, and total it

### OUT

- Discounts and taxes stay out of this feature

### Single surgical change

Two pure functions in src/: add_item and total.

## Invariants

- A cart is a list of (sku, price) pairs; nothing else changes it

## Blast radius

src/cart.py and src/total.py, both new; nothing imports them yet.

## Interface contract

`add_item(cart, sku, price) -> list` and `total(cart) -> int`.

## Sunset criterion

Replaced when the real checkout service ships, with zero callers left.

## Kill date

2099-12-31
"""

TASK = """\
# Task {name} (feature cart)

Goal: {goal}

## FILES

- {file}

## TYPES

```python
{types}
```

## SKELETON

1. {file}: the one function.

## PROHIBITED

- forbid: breakpoint\\(\\)

## VALIDATE

```sh
grep -q "def {function}" {file}
```
"""

PROJECT = {
    "canon/PRICING.md": "---\ntier: 1\n---\nPrices are whole cents.\n",  # the lock cites it
    "lane.yaml": """
        project: shop
        models: {default: scripted:script.yaml}
        roles:
          engineer: {kind: human, description: Signs locks and reviews every task.}
          coder: {kind: agent}
        toolsets:
          repo: {builtin: files, root: .}
          stamp: {command: [PYTHON, scripts/stamp.py], effect: write, description: Stamps the changelog.}
    """,
    "agents/coder.md": """
        ---
        name: coder
        description: Works one coding task at a time.
        autonomy: guarded
        tools: [repo.read, repo.write, repo.list, stamp]
        ---
        You change code exactly as the task says, and only the files it names.
    """,
    "scripts/stamp.py": """
        from pathlib import Path
        Path("CHANGELOG.md").write_text("- cart: stamped by a tool\\n")
    """,
    ".gitignore": "__pycache__/\n",
}

CART = "def add_item(cart, sku, price):\n    return [*cart, (sku, price)]\n"
TOTAL = "def total(cart):\n    return sum(price for _, price in cart)\n"
TOTAL_TURNS = [  # task 2, done right the first time
    {"tool_calls": [{"name": "repo.write", "args": {"path": "src/total.py", "content": TOTAL}}]},
    {"output": {"summary": "total"}},
]


def git(repo: Path, *args: str, input_text: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, input=input_text).stdout


def make_repo(root: Path, script: dict[str, Any], extra: dict[str, str] | None = None) -> Path:
    files = {**PROJECT, **(extra or {})}
    files["lane.yaml"] = files["lane.yaml"].replace("PYTHON", sys.executable)
    write_project(root, files)
    (root / "script.yaml").write_text(json.dumps(script))
    tasks = root / "features" / "cart" / "tasks"
    tasks.mkdir(parents=True)
    (root / "features" / "cart" / "LOCK.md").write_text(LOCK)
    (tasks / "01-add.md").write_text(TASK.format(name="01-add", goal="Carts take items.", file="src/cart.py",
                                                 types="def add_item(cart: list, sku: str, price: int) -> list: ...", function="add_item"))
    (tasks / "02-total.md").write_text(TASK.format(name="02-total", goal="Carts have a total.", file="src/total.py",
                                                   types="def total(cart: list) -> int: ...", function="total"))
    git(root, "init", "-q")
    git(root, "config", "user.email", "engineer@shop.example")
    git(root, "config", "user.name", "Engineer")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Lock and tasks of cart")
    return root


def plan_and_commit(repo: Path, *args: str) -> str:
    planned = lane("feature", "plan", "cart", *args, cwd=repo)
    assert planned.returncode == 0, planned.stderr
    printed = next(line.strip() for line in planned.stdout.splitlines() if line.strip().startswith("git add "))
    subprocess.run(printed, shell=True, cwd=repo, check=True, capture_output=True)  # the next step, exactly as printed
    assert "agents" in printed and "lane.yaml" in printed and "runbooks" in printed
    assert git(repo, "status", "--porcelain", "--", "lane.yaml", "agents", "runbooks", "features") == ""
    return planned.stdout


def run_until_paused(repo: Path, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    started = lane(*args, "--json", cwd=repo, timeout=300)
    return json.loads(started.stdout)["run_id"] if started.stdout.strip() else "", started


def approve_and_resume(repo: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    approved = lane("approve", run_id, "--as", "engineer", cwd=repo)
    assert approved.returncode == 0, approved.stderr
    return lane("resume", run_id, "--json", cwd=repo, timeout=300)


def pending_step(repo: Path, run_id: str) -> str:
    shown = lane_json("show", run_id, cwd=repo)
    assert shown["status"] == "paused", shown["reason"]
    return str(shown["pending"][0]["step_id"])


def subjects(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s").splitlines()


def committed_files(repo: Path, rev: str) -> list[str]:
    return sorted(git(repo, "show", "--name-only", "--format=", rev).split())


def test_two_tasks_run_end_to_end_pausing_for_the_sign_off_and_each_review(tmp_path: Path) -> None:
    script = {
        "task1_work": [
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": CART}}]},
            {"output": {"summary": "add_item in src/cart.py"}},
        ],
        "task2_work": [
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/total.py", "content": TOTAL}}]},
            {"output": {"summary": "total in src/total.py"}},
        ],
    }
    repo = make_repo(tmp_path / "shop", script)
    planned = plan_and_commit(repo)
    assert "coder: coder (lane's editing agent in agents/coder.md" in planned and "reviewer: engineer" in planned
    assert lane("validate", cwd=repo).returncode == 0

    run_id, started = run_until_paused(repo, "run", "feature-cart")
    assert started.returncode == 3, started.stderr
    assert pending_step(repo, run_id) == "sign_off", "the run must wait for the lock's sign-off before any task"
    assert not (repo / "src").exists()

    resumed = approve_and_resume(repo, run_id)
    assert resumed.returncode == 3, resumed.stderr
    assert pending_step(repo, run_id) == "task1_review"
    assert subjects(repo)[0] == "cart: lock signed by engineer"
    assert committed_files(repo, "HEAD") == ["features/cart/LOCK.signoff.json"]  # the lock itself was committed already
    assert (repo / "src" / "cart.py").read_text() == CART
    evidence = json.loads((repo / "features/cart/tasks/01-add.evidence.json").read_text())
    assert evidence["passed"] is True and [c["path"] for c in evidence["changes"]] == ["src/cart.py"]
    # While the task is active, Claude Code and git are held to its FILES as well.
    marked = json.loads((repo / ".lane" / "active-task.json").read_text())
    assert (marked["feature"], marked["task"]) == ("cart", "01-add") and len(marked["base"]) == 40  # the commit it started from
    assert "lane hook claude" in (repo / ".claude" / "settings.local.json").read_text()
    shown = lane_json("show", run_id, cwd=repo)
    work = next(s for s in shown["steps"] if s["id"] == "task1_work")
    sent = json.dumps(work["context"])
    assert "Carts take items." in sent and "src/cart.py" in sent, "the agent must see its task"
    review = next(p for p in shown["pending"] if p["step_id"] == "task1_review")
    assert review["value"]["summary"] == "add_item in src/cart.py"
    assert "PASSED" in review["value"]["verification"]
    assert "untracked  src/cart.py" in review["value"]["verification"], "the reviewer sees which paths changed"
    assert not (repo / "src" / "total.py").exists(), "task 2 must wait for the review of task 1"

    resumed = approve_and_resume(repo, run_id)
    assert resumed.returncode == 3, resumed.stderr
    assert pending_step(repo, run_id) == "task2_review"
    assert subjects(repo)[0] == "cart: task 01-add"
    assert committed_files(repo, "HEAD") == ["features/cart/tasks/01-add.evidence.json", "src/cart.py"]
    second = json.loads((repo / "features/cart/tasks/02-total.evidence.json").read_text())
    assert second["passed"] is True and [c["path"] for c in second["changes"]] == ["src/total.py"]

    finished = approve_and_resume(repo, run_id)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["status"] == "completed"
    assert subjects(repo)[:4] == ["cart: task 02-total", "cart: task 01-add", "cart: lock signed by engineer", "Plan feature cart"]
    assert committed_files(repo, "HEAD") == ["features/cart/tasks/02-total.evidence.json", "src/total.py"]
    assert git(repo, "status", "--porcelain") == "", "everything the run did is committed"
    assert not (repo / ".claude").exists() and not (repo / ".lane" / "active-task.json").exists()
    hooks = Path(git(repo, "rev-parse", "--git-path", "hooks").strip())
    assert not (repo / hooks / "pre-commit").exists(), "lane's pre-commit hook must be gone after the last task"
    decisions = [s for s in lane_json("show", run_id, cwd=repo)["steps"] if s["kind"] == "human"]
    assert [s["id"] for s in decisions] == ["sign_off", "task1_review", "task2_review"]


def test_a_task_whose_work_reached_outside_files_stops_at_verify(tmp_path: Path) -> None:
    script = {
        "task1_work": [
            # Outside FILES through lane's file tools: refused before it runs.
            {"tool_calls": [{"name": "repo.write", "args": {"path": "README.md", "content": "hijacked\n"}}]},
            # Outside FILES through a command the agent may run: only verify can see that.
            {"tool_calls": [{"name": "stamp", "args": {}}]},
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": CART}}]},
            {"output": {"summary": "add_item, and a changelog line"}},
            # Verify's failure goes back to the agent (attempts 2 and 3), which does not fix it.
            {"output": {"summary": "add_item, and a changelog line, again"}},
            {"output": {"summary": "add_item, and a changelog line, once more"}},
        ],
    }
    repo = make_repo(tmp_path / "shop", script)
    plan_and_commit(repo)
    run_id, started = run_until_paused(repo, "run", "feature-cart")
    assert started.returncode == 3, started.stderr

    asked = approve_and_resume(repo, run_id)
    assert asked.returncode == 3, asked.stdout + asked.stderr
    shown = lane_json("show", run_id, cwd=repo)
    [loop] = shown["pending"]
    assert loop["kind"] == "loop" and loop["step_id"] == "task1_verify" and loop["attempts"] == 3
    work = next(s for s in shown["steps"] if s["id"] == "task1_work")
    assert [x["attempt"] for x in work["loops"]] == [2, 3]
    told = [m["content"] for m in work["messages"] if m["role"] == "user" and "attempt 2 of 3" in str(m.get("content"))]
    assert told and "CHANGELOG.md" in told[0], "the verify failure went back into the coding agent's conversation"
    ended = lane("reject", run_id, "--as", "engineer", "--reason", "stop here; I will fix it by hand", cwd=repo)
    assert ended.returncode == 0, ended.stderr
    stopped = lane("resume", run_id, "--json", cwd=repo, timeout=300)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    shown = lane_json("show", run_id, cwd=repo)
    assert shown["status"] == "failed"
    assert "task1_verify" in shown["reason"] and "CHANGELOG.md" in shown["reason"] and "not in FILES" in shown["reason"]
    assert not (repo / "README.md").exists(), "lane's file tools must not write outside the task's FILES"
    refused = [c for c in lane_json("audit", run_id, cwd=repo) if c["tool"] == "repo.write" and c["outcome"] == "refused"]
    assert len(refused) == 1 and "not in the FILES of task cart/01-add" in json.dumps(refused[0])
    evidence = json.loads((repo / "features/cart/tasks/01-add.evidence.json").read_text())
    assert evidence["passed"] is False
    assert subjects(repo)[0] == "cart: lock signed by engineer", "nothing of the task may be committed"
    assert [s["id"] for s in shown["steps"] if s["status"] == "completed"][-1] == "task1_work"
    assert not any(s["id"].startswith("task2") and s["status"] != "pending" for s in shown["steps"])
    # The work stays for the person to fix; committing it is refused until it verifies.
    refused_commit = lane("task", "commit", "cart", "01-add", cwd=repo)
    assert refused_commit.returncode == 2 and "failed" in refused_commit.stderr


FAKE_CLAUDE = """\
#!PYTHON
# A stand-in for Claude Code's print mode: it asks the PreToolUse hooks in .claude/settings.local.json before
# each Write, as Claude Code does, and writes only what they allow.
import json, subprocess, sys
from pathlib import Path

Path(sys.argv[0]).with_name("claude.args").write_text(json.dumps(sys.argv[1:]))
settings = json.loads(Path(".claude/settings.local.json").read_text())
hooks = [h["command"] for entry in settings["hooks"]["PreToolUse"] for h in entry["hooks"]]
for path, text in (("src/cart.py", CART), ("README.md", "hijacked\\n")):
    payload = {"hook_event_name": "PreToolUse", "tool_name": "Write", "cwd": str(Path.cwd()),
               "tool_input": {"file_path": str(Path.cwd() / path), "content": text}}
    answers = [subprocess.run(h, shell=True, input=json.dumps(payload), capture_output=True, text=True) for h in hooks]
    decisions = [json.loads(a.stdout)["hookSpecificOutput"]["permissionDecision"] if a.returncode == 0 else "deny" for a in answers]
    if all(d == "allow" for d in decisions):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
print("wrote what the hooks allowed")
"""


def test_an_installed_and_configured_external_cli_works_the_tasks_held_by_the_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fake.write_text(FAKE_CLAUDE.replace("PYTHON", sys.executable).replace("CART", repr(CART)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    toolset = "          claude: {command: [claude, -p, --permission-mode, acceptEdits], extra_args: true, effect: write, timeout: 120}\n"
    lane_yaml = textwrap.dedent(PROJECT["lane.yaml"]) + textwrap.indent(textwrap.dedent(toolset), "  ")
    repo = make_repo(tmp_path / "shop", {}, {"lane.yaml": lane_yaml})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # installed: on PATH
    planned = plan_and_commit(repo)
    assert "coder: claude (toolset claude in lane.yaml, and claude is installed)" in planned
    run_id, _ = run_until_paused(repo, "run", "feature-cart")
    assert pending_step(repo, run_id) == "sign_off"
    resumed = approve_and_resume(repo, run_id)
    assert resumed.returncode == 3, resumed.stderr
    assert pending_step(repo, run_id) == "task1_review"
    args = json.loads((bin_dir / "claude.args").read_text())
    assert args[:3] == ["-p", "--permission-mode", "acceptEdits"] and "features/cart/tasks/01-add.md" in args[3]
    assert (repo / "src" / "cart.py").read_text() == CART
    assert not (repo / "README.md").exists(), "the Claude Code hook must deny a write outside FILES"
    evidence = json.loads((repo / "features/cart/tasks/01-add.evidence.json").read_text())
    assert evidence["passed"] is True


@pytest.mark.parametrize(("change", "message"), [
    (lambda repo: (repo / "features/cart/tasks").rename(repo / "features/cart/steps"), "has no tasks: `lane task new cart TASK`"),
    (lambda repo: (repo / "features/cart/LOCK.md").unlink(), "has no lock: `lane lock new cart`"),
    (lambda repo: (repo / "agents/coder.md").unlink(), "no coding agent: write agents/coder.md"),
])
def test_plan_says_what_is_missing(tmp_path: Path, change: Any, message: str) -> None:
    repo = make_repo(tmp_path / "shop", {})
    change(repo)
    if not (repo / "agents/coder.md").exists():
        lane_yaml = (repo / "lane.yaml").read_text().replace("  coder: {kind: agent}\n", "")
        (repo / "lane.yaml").write_text(lane_yaml)
    planned = lane("feature", "plan", "cart", cwd=repo)
    assert planned.returncode == 2 and message in planned.stderr, planned.stderr
    assert not (repo / "runbooks").exists()


def test_plan_refuses_to_overwrite_and_force_raises_the_version(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {})
    assert lane("feature", "plan", "cart", cwd=repo).returncode == 0
    again = lane("feature", "plan", "cart", cwd=repo)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = lane("feature", "plan", "cart", "--force", cwd=repo)
    assert forced.returncode == 0 and "(version 2)" in forced.stdout
    assert "version: 2" in (repo / "runbooks/feature-cart.yaml").read_text()
    unknown = lane("feature", "plan", "cart", "--force", "--coder", "nobody", cwd=repo)
    assert unknown.returncode == 2 and "neither an agent in agents/ nor an external CLI" in unknown.stderr
    missing = lane("feature", "plan", "cart", "--force", "--coder", "aider", cwd=repo)
    assert missing.returncode == 2 and "configure it as a command toolset" in missing.stderr


def test_task_commit_takes_only_what_verify_passed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {})
    (repo / "src").mkdir()
    (repo / "src/cart.py").write_text(CART)
    unverified = lane("task", "commit", "cart", "01-add", cwd=repo)
    assert unverified.returncode == 2 and "has no evidence yet" in unverified.stderr

    assert lane("task", "verify", "cart", "01-add", cwd=repo).returncode == 0
    (repo / "src/cart.py").write_text(CART + "# changed after verify\n")
    changed = lane("task", "commit", "cart", "01-add", cwd=repo)
    assert changed.returncode == 2 and "changed after cart/01-add was verified: src/cart.py:" in changed.stderr

    (repo / "src/cart.py").write_text(CART)
    (repo / "notes.txt").write_text("a stray file\n")
    stray = lane("task", "commit", "cart", "01-add", cwd=repo)
    assert stray.returncode == 2 and "changed after" in stray.stderr, "a file added after verify must not slip in"
    (repo / "notes.txt").unlink()

    done = lane("task", "commit", "cart", "01-add", "-m", "Add add_item", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert subjects(repo)[0] == "Add add_item"
    assert committed_files(repo, "HEAD") == ["features/cart/tasks/01-add.evidence.json", "src/cart.py"]
    moved = lane("task", "commit", "cart", "01-add", cwd=repo)
    assert moved.returncode == 2 and "nothing to commit: the changes cart/01-add verified are in HEAD" in moved.stderr


def test_lock_sign_commit_commits_the_lock_and_sign_off_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {})
    (repo / "features/cart/LOCK.md").write_text(LOCK.replace("2099-12-31", "2098-12-31"))
    (repo / "staged.txt").write_text("someone's staged work\n")
    git(repo, "add", "staged.txt")
    signed = lane("lock", "sign", "cart", "--by", "Ada", "--commit", cwd=repo)
    assert signed.returncode == 0, signed.stderr
    assert committed_files(repo, "HEAD") == ["features/cart/LOCK.md", "features/cart/LOCK.signoff.json"]
    assert git(repo, "status", "--porcelain") == "A  staged.txt\n", "other staged work stays staged, uncommitted"


def test_validate_names_a_task_that_does_not_exist(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {})
    assert lane("feature", "plan", "cart", cwd=repo).returncode == 0
    book = repo / "runbooks/feature-cart.yaml"
    book.write_text(book.read_text().replace("task: cart/02-total", "task: cart/03-missing"))
    checked = lane("validate", cwd=repo)
    line = next(i for i, text in enumerate(book.read_text().splitlines(), 1) if "cart/03-missing" in text)
    assert checked.returncode == 2
    assert f"runbooks/feature-cart.yaml:{line}:" in checked.stdout + checked.stderr
    assert "no task file features/cart/tasks/03-missing.md" in checked.stdout + checked.stderr


def test_the_coding_example_runs_its_feature_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # VALIDATE's python3 leaves __pycache__/, as on most machines
    shop = tmp_path / "shop"
    made = lane("init", str(shop), "--example", "coding", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "lane feature plan cart" in made.stdout
    git(shop, "init", "-q")
    git(shop, "config", "user.email", "engineer@shop.example")
    git(shop, "config", "user.name", "Engineer")
    git(shop, "add", "-A")
    git(shop, "commit", "-q", "-m", "Shop: lock and tasks of cart")
    assert lane("lock", "check", "cart", cwd=shop).returncode == 0
    plan_and_commit(shop)
    run_id, started = run_until_paused(shop, "run", "feature-cart")
    assert started.returncode == 3, started.stderr
    for expected in ("task1_review", "task2_review"):
        resumed = approve_and_resume(shop, run_id)
        assert resumed.returncode == 3, resumed.stdout + resumed.stderr
        assert pending_step(shop, run_id) == expected
    finished = approve_and_resume(shop, run_id)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert subjects(shop)[:3] == ["cart: task 02-total", "cart: task 01-add", "cart: lock signed by engineer"]
    assert git(shop, "status", "--porcelain") == ""
    ran = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'src'); from cart import add_item; "
                          "from total import total; print(total(add_item(add_item([], 'a', 5), 'b', 7)))"],
                         cwd=shop, capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "12"


def test_the_review_shows_the_summary_the_verification_and_the_refused_writes_in_text(tmp_path: Path) -> None:
    """`lane resume` and `lane show`, as text, give the reviewer what they review: the agent's summary, the
    verification with the changed paths, and the writes lane refused outside FILES."""
    script = {"task1_work": [
        {"tool_calls": [{"name": "repo.write", "args": {"path": "README.md", "content": "hijacked\n"}}]},
        {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": CART}}]},
        {"output": {"summary": "add_item in src/cart.py"}},
    ]}
    repo = make_repo(tmp_path / "shop", script)
    plan_and_commit(repo)
    run_id, _ = run_until_paused(repo, "run", "feature-cart")
    assert lane("approve", run_id, "--as", "engineer", cwd=repo).returncode == 0
    resumed = lane("resume", run_id, cwd=repo, timeout=300)
    assert resumed.returncode == 3, resumed.stderr
    shown = lane("show", run_id, cwd=repo)
    for text in (resumed.stdout, shown.stdout):
        waiting = text[text.index("waiting: task1_review"):]
        assert "summary: add_item in src/cart.py" in waiting
        assert "untracked  src/cart.py" in waiting and "PASSED: every check holds" in waiting
        assert "- tool: repo.write" in waiting and "path: README.md" in waiting and "is not in the FILES of task cart/01-add" in waiting
    review = lane_json("show", run_id, cwd=repo)["pending"][0]["value"]
    assert [(r["tool"], r["path"]) for r in review["refused"]] == [("repo.write", "README.md")]


def test_an_edit_made_during_review_is_verified_again_and_one_that_breaks_the_task_goes_back_to_the_agent(tmp_path: Path) -> None:
    fixed = CART + "\n\ndef count(cart):\n    return len(cart)\n"
    script = {
        "task1_work": [
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": CART}}]},
            {"output": {"summary": "add_item"}},
            # the commit's re-verification failed after the reviewer's edit: the agent puts add_item back
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": fixed}}]},
            {"output": {"summary": "add_item again, beside the reviewer's count"}},
        ],
        "task2_work": TOTAL_TURNS,
    }
    repo = make_repo(tmp_path / "shop", script)
    plan_and_commit(repo)
    run_id, _ = run_until_paused(repo, "run", "feature-cart")
    assert approve_and_resume(repo, run_id).returncode == 3
    assert pending_step(repo, run_id) == "task1_review"
    # The reviewer's edit breaks VALIDATE (add_item is gone): the commit verifies again, fails, and the agent is told.
    (repo / "src" / "cart.py").write_text("def count(cart):\n    return len(cart)\n")
    again = approve_and_resume(repo, run_id)
    assert again.returncode == 3, again.stdout + again.stderr
    assert pending_step(repo, run_id) == "task1_review", "verified and reviewed again, not a failed run"
    shown = lane_json("show", run_id, cwd=repo)
    work = next(s for s in shown["steps"] if s["id"] == "task1_work")
    told = [m["content"] for m in work["messages"] if m["role"] == "user" and "task1_commit" in str(m.get("content"))]
    assert told and "verifying again" in told[0] and 'grep -q "def add_item"' in told[0]
    assert subjects(repo)[0] == "cart: lock signed by engineer", "nothing of the task was committed"
    # A reviewer's edit that keeps the task whole is verified again and committed with the work.
    (repo / "src" / "cart.py").write_text(fixed + "# reviewed\n")
    done = approve_and_resume(repo, run_id)
    assert done.returncode == 3, done.stdout + done.stderr
    assert pending_step(repo, run_id) == "task2_review"
    assert subjects(repo)[0] == "cart: task 01-add"
    assert git(repo, "show", "HEAD:src/cart.py") == fixed + "# reviewed\n"
    commit_step = next(s for s in lane_json("show", run_id, cwd=repo)["steps"] if s["id"] == "task1_commit")
    assert "verifying again" in commit_step["output"]["stdout"] and "PASSED" in commit_step["output"]["stdout"]
    evidence = json.loads(git(repo, "show", "HEAD:features/cart/tasks/01-add.evidence.json"))
    assert evidence["passed"] is True and evidence["contents"]["src/cart.py"].startswith("file")


def test_a_failed_feature_run_goes_on_from_the_failed_task_after_a_person_fixes_it(tmp_path: Path) -> None:
    """The agent cannot fix its out-of-scope change and a person ends the loop: the run fails at task 1's verify.
    The person removes the stray file; `lane retry` verifies task 1 again, and the run goes on to task 2."""
    script = {
        "task1_work": [
            {"tool_calls": [{"name": "stamp", "args": {}}]},  # CHANGELOG.md: outside FILES
            {"tool_calls": [{"name": "repo.write", "args": {"path": "src/cart.py", "content": CART}}]},
            {"output": {"summary": "add_item, and a changelog line"}},
            {"output": {"summary": "again"}},
            {"output": {"summary": "once more"}},
        ],
        "task2_work": TOTAL_TURNS,
    }
    repo = make_repo(tmp_path / "shop", script)
    plan_and_commit(repo)
    run_id, _ = run_until_paused(repo, "run", "feature-cart")
    assert approve_and_resume(repo, run_id).returncode == 3  # the loop's attempts are used up: a person decides
    assert lane("reject", run_id, "--as", "engineer", "--reason", "I will fix it by hand", cwd=repo).returncode == 0
    assert lane("resume", run_id, cwd=repo, timeout=300).returncode == 1
    (repo / "CHANGELOG.md").unlink()
    retried = lane("retry", run_id, "--json", cwd=repo, timeout=300)
    assert retried.returncode == 3, retried.stdout + retried.stderr
    assert pending_step(repo, run_id) == "task1_review"
    assert approve_and_resume(repo, run_id).returncode == 3
    assert pending_step(repo, run_id) == "task2_review"
    assert subjects(repo)[:2] == ["cart: task 01-add", "cart: lock signed by engineer"]
    assert committed_files(repo, "HEAD") == ["features/cart/tasks/01-add.evidence.json", "src/cart.py"]
