"""Coding tools held to a task's FILES: a Claude Code PreToolUse hook and a git pre-commit hook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TASK = """\
# Task: add the parser

## FILES
- src/app/parser.py
- tests/test_parser*.py

## TYPES
- parse(text: str) -> Tree

## SKELETON
One function.

## PROHIBITED
- no new dependencies

## VALIDATE
```sh
true
```
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args],
                          cwd=root, check=True, capture_output=True, text=True).stdout


def lane(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lane", *args], cwd=root, input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "parser.py").write_text("x = 1\n")
    (root / "src" / "app" / "other.py").write_text("y = 1\n")
    (root / "features" / "parser" / "tasks").mkdir(parents=True)
    (root / "features" / "parser" / "tasks" / "add.md").write_text(TASK)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    started = lane(root, "task", "start", "parser", "add")
    assert started.returncode == 0, started.stderr
    return root


def hook(root: Path, payload: object) -> dict[str, object]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    done = lane(root, "hook", "claude", stdin=text)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)["hookSpecificOutput"]
    assert answer["hookEventName"] == "PreToolUse"
    return answer


def edit(root: Path, tool: str, path: str) -> dict[str, object]:
    tool_input: dict[str, object] = {"file_path": str(root / path)}
    tool_input |= {"Edit": {"old_string": "x", "new_string": "z"}, "Write": {"content": "z"},
                   "MultiEdit": {"edits": [{"old_string": "x", "new_string": "z"}]}, "NotebookEdit": {"new_source": "z"}}[tool]
    if tool == "NotebookEdit":
        tool_input["notebook_path"] = tool_input.pop("file_path")
    return {"session_id": "s", "transcript_path": "/tmp/t.jsonl", "cwd": str(root), "hook_event_name": "PreToolUse",
            "tool_name": tool, "tool_input": tool_input}


@pytest.mark.parametrize("tool", ["Edit", "Write", "MultiEdit", "NotebookEdit"])
def test_the_claude_hook_allows_edits_inside_files_and_denies_the_rest(repo: Path, tool: str) -> None:
    inside = hook(repo, edit(repo, tool, "src/app/parser.py"))
    assert inside["permissionDecision"] == "allow", inside
    tests = hook(repo, edit(repo, tool, "tests/test_parser_edge.py"))
    assert tests["permissionDecision"] == "allow", tests
    for path in ("src/app/other.py", "pyproject.toml", "../outside.txt", "src/app/../other.py"):
        answer = hook(repo, edit(repo, tool, path))
        assert answer["permissionDecision"] == "deny", (path, answer)
        assert "parser/add" in str(answer["permissionDecisionReason"])


@pytest.mark.parametrize("payload", [
    "not json", "[]", "{}", json.dumps({"tool_name": "Edit"}), json.dumps({"tool_name": "Write", "tool_input": {"file_path": 3}}),
    json.dumps({"tool_name": "Edit", "tool_input": "src/app/parser.py"}),
])
def test_the_claude_hook_denies_input_it_cannot_read(repo: Path, payload: str) -> None:
    answer = hook(repo, payload)
    assert answer["permissionDecision"] == "deny" and "could not check" in str(answer["permissionDecisionReason"])


def test_with_no_active_task_every_edit_is_denied(repo: Path) -> None:
    assert lane(repo, "task", "stop").returncode == 0
    answer = hook(repo, edit(repo, "Edit", "src/app/parser.py"))
    assert answer["permissionDecision"] == "deny" and "no active task" in str(answer["permissionDecisionReason"])


def test_other_tools_get_no_answer_from_lane(repo: Path) -> None:
    for tool, tool_input in (("Bash", {"command": "ls"}), ("Read", {"file_path": "src/app/parser.py"})):
        done = lane(repo, "hook", "claude", stdin=json.dumps({"tool_name": tool, "tool_input": tool_input, "cwd": str(repo)}))
        assert (done.returncode, done.stdout) == (0, "")


def bash(repo: Path, command: str) -> dict[str, object]:
    done = lane(repo, "hook", "claude", stdin=json.dumps({"tool_name": "Bash", "tool_input": {"command": command}, "cwd": str(repo)}))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["hookSpecificOutput"]) if done.stdout else {}


@pytest.mark.parametrize(("command", "says"), [
    ("git commit -am 'done'", "git commit is a person's step"),
    ("git -C . commit --no-verify -m x", "--no-verify skips lane's pre-commit hook"),
    ("git -c core.hooksPath=/tmp/none status", "core.hooksPath"),
    ("git config core.hooksPath .githooks", "core.hooksPath"),
    ("git checkout -- src/app/other.py", "git checkout of src/app/other.py"),
    ("git restore src/app/other.py", "git restore of src/app/other.py"),
    ("git reset -- README.md", "git reset of README.md"),
    ("echo x > src/app/other.py", "writing src/app/other.py: src/app/other.py is not in the FILES"),
    ("echo x >> ../outside.txt", "outside the repository"),
    ("cat a | tee src/app/other.py", "writing src/app/other.py"),
    ("sed -i 's/a/b/' src/app/other.py", "writing src/app/other.py"),
    ("sh -c 'sed -i.bak -e s/a/b/ src/app/other.py'", "writing src/app/other.py"),
    ("env FOO=1 lane task stop", "lane task stop changes what the task is"),
    ("lane lock sign parser --by me", "lane lock sign"),
    ("echo x > features/parser/tasks/add.md", "defines or records the work"),
    ("echo $(git commit -m x)", "lane cannot analyse this command"),
    ("$(echo gi)t commit -n -am x", "lane cannot analyse this command"),
    ("echo x >& src/app/other.py", "writing src/app/other.py"),
    ("echo x 1<>src/app/other.py", "writing src/app/other.py"),
    ("git -c alias.ci=commit ci -m x", "alias"),
    ("git -c 'alias.x=!git commit --no-verify' x", "alias"),
    ("git commit-tree HEAD^{tree} -m x | xargs git update-ref HEAD", "writes history"),
    ("git reset --hard", "changes the whole working tree"),
    ("git clean -fdx", "changes the whole working tree"),
    ("git checkout .", "changes the whole working tree"),
    ("git checkout HEAD~0 src/app/other.py", "git checkout of src/app/other.py"),
    ("git --config-env=core.hooksPath=X status", "core.hooksPath"),
    ("uv run lane task stop", "lane task stop"),
])
def test_the_claude_hook_denies_bash_that_would_get_around_the_task(repo: Path, command: str, says: str) -> None:
    answer = bash(repo, command)
    assert answer.get("permissionDecision") == "deny" and says in str(answer.get("permissionDecisionReason")), (command, answer)


@pytest.mark.parametrize("command", [
    "python -m pytest -q", "git status", "git diff HEAD", "echo x > src/app/parser.py", "sed -i s/a/b/ src/app/parser.py",
    "ls > /dev/null", "lane task verify parser add", "git checkout -- src/app/parser.py", "grep -rn TODO src | head",
])
def test_the_claude_hook_leaves_ordinary_bash_to_claude_code(repo: Path, command: str) -> None:
    assert bash(repo, command) == {}, command


def test_start_installs_the_hooks_and_stop_removes_only_them(repo: Path) -> None:
    assert not (repo / ".claude" / "settings.json").exists()  # the shared settings never carry one machine's Python
    local = repo / ".claude" / "settings.local.json"
    settings = json.loads(local.read_text())
    [entry] = settings["hooks"]["PreToolUse"]
    assert entry["matcher"] == "Edit|Write|MultiEdit|NotebookEdit|Bash"
    assert entry["hooks"][0]["command"].endswith("-P -m lane hook claude || exit 2")
    assert "/.claude/settings.local.json" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    # The person's own settings and hooks survive start and stop.
    settings["permissions"] = {"deny": ["Bash(rm:*)"]}
    local.write_text(json.dumps(settings))
    assert lane(repo, "task", "stop").returncode == 0
    assert json.loads(local.read_text()) == {"permissions": {"deny": ["Bash(rm:*)"]}}
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_the_pre_commit_hook_blocks_paths_outside_files(repo: Path) -> None:
    (repo / "src" / "app" / "parser.py").write_text("x = 2\n")
    git(repo, "add", "src/app/parser.py")
    git(repo, "commit", "-qm", "in scope")  # passes the hook
    (repo / "src" / "app" / "other.py").write_text("y = 2\n")
    git(repo, "add", "src/app/other.py")
    blocked = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-qm", "out of scope"],
                             cwd=repo, capture_output=True, text=True)
    assert blocked.returncode == 1 and "src/app/other.py" in blocked.stderr, blocked.stderr
    git(repo, "restore", "--staged", "src/app/other.py")
    git(repo, "mv", "src/app/parser.py", "src/app/renamed.py")  # a rename out of scope: its new path is not in FILES
    renamed = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-qm", "rename"],
                             cwd=repo, capture_output=True, text=True)
    assert renamed.returncode == 1 and "src/app/renamed.py" in renamed.stderr, renamed.stderr


def test_a_persons_own_pre_commit_hook_still_runs_and_comes_back(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "features" / "parser" / "tasks").mkdir(parents=True)
    (root / "features" / "parser" / "tasks" / "add.md").write_text(TASK)
    git(root, "init", "-q")
    own = root / ".git" / "hooks" / "pre-commit"
    own.write_text("#!/bin/sh\necho own-hook-ran >&2\n")
    own.chmod(0o755)
    assert lane(root, "task", "start", "parser", "add").returncode == 0
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "parser.py").write_text("x\n")
    git(root, "add", "src/app/parser.py")
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-qm", "x"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and "own-hook-ran" in done.stderr, done.stderr
    assert lane(root, "task", "stop").returncode == 0
    assert own.read_text() == "#!/bin/sh\necho own-hook-ran >&2\n"


def test_the_agent_cannot_edit_its_own_task_or_the_hooks(repo: Path) -> None:
    for path in ("features/parser/tasks/add.md", "features/parser/tasks/add.evidence.json", ".claude/settings.local.json",
                 ".lane/active-task.json", ".git/hooks/pre-commit"):
        answer = hook(repo, edit(repo, "Write", path))
        assert answer["permissionDecision"] == "deny", (path, answer)
    for path in ("features/parser/LOCK.md", "features/parser/LOCK.signoff.json", "features/other/tasks/next.md"):
        answer = hook(repo, edit(repo, "Write", path))  # any lock, sign-off or task: the person's, as for lane's file tools
        assert answer["permissionDecision"] == "deny" and "defines or records the work" in answer["permissionDecisionReason"]


def test_verify_counts_the_agents_work_not_lanes_hooks_and_not_a_widened_task(repo: Path) -> None:
    (repo / "src" / "app" / "parser.py").write_text("x = 3\n")
    done = lane(repo, "task", "verify", "parser", "add", "--json")
    assert done.returncode == 0, done.stdout  # .lane/ and lane's hook in .claude/settings.local.json are not the agent's work
    task = repo / "features" / "parser" / "tasks" / "add.md"
    task.write_text(task.read_text().replace("- src/app/parser.py", "- src/app/parser.py\n- src/**"))
    (repo / "src" / "app" / "other.py").write_text("y = 3\n")
    widened = lane(repo, "task", "verify", "parser", "add", "--json")
    assert widened.returncode == 1
    failed = {c["name"]: c for c in json.loads(widened.stdout)["checks"] if not c["passed"]}
    assert "task" in failed, failed


def test_verify_sees_a_change_only_staged(repo: Path) -> None:
    other = repo / "src" / "app" / "other.py"
    other.write_text("y = 4\n")
    git(repo, "add", "src/app/other.py")
    other.write_text("y = 1\n")  # the working copy is put back; the index still holds the change a commit would take
    done = lane(repo, "task", "verify", "parser", "add", "--json")
    assert done.returncode == 1 and "src/app/other.py" in done.stdout


def test_what_the_hook_denied_is_in_the_verification_the_reviewer_reads(repo: Path) -> None:
    """Each denial is kept with the tool, the path and lane's reason (not a command's text), and `lane task verify`
    lists them; the next `lane task start` begins a fresh list."""
    denied = hook(repo, {"tool_name": "Write", "tool_input": {"file_path": str(repo / "src/app/other.py"), "content": "y = 2"}})
    assert denied["permissionDecision"] == "deny"
    hook(repo, {"tool_name": "Bash", "tool_input": {"command": "TOKEN=s3cr3t-value git commit -qm sneak"}})
    allowed = hook(repo, {"tool_name": "Edit", "tool_input": {"file_path": str(repo / "src/app/parser.py")}})
    assert allowed["permissionDecision"] == "allow"
    (repo / "src" / "app" / "parser.py").write_text("x = 2\n")
    verified = lane(repo, "task", "verify", "parser", "add")
    assert verified.returncode == 0, verified.stdout
    assert "REFUSED by the Claude Code hook while the task was active: 2" in verified.stdout
    assert "Write      src/app/other.py  src/app/other.py is not in the FILES" in verified.stdout
    assert "Bash       git commit is a person's step while a task is active" in verified.stdout
    evidence = json.loads((repo / "features/parser/tasks/add.evidence.json").read_text())
    assert [(r["tool"], r.get("path")) for r in evidence["refused"]] == [("Write", "src/app/other.py"), ("Bash", None)]
    assert "s3cr3t-value" not in (repo / ".lane" / "refused.jsonl").read_text() + json.dumps(evidence)
    assert lane(repo, "task", "start", "parser", "add").returncode == 0
    assert "REFUSED" not in lane(repo, "task", "verify", "parser", "add").stdout


def test_the_refusals_file_is_lanes_and_never_written_through_a_link(repo: Path, tmp_path: Path) -> None:
    denied = hook(repo, {"tool_name": "Write", "tool_input": {"file_path": str(repo / ".lane/refused.jsonl"), "content": "[]"}})
    assert denied["permissionDecision"] == "deny"
    (repo / ".lane" / "refused.jsonl").unlink()
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine\n")
    (repo / ".lane" / "refused.jsonl").symlink_to(target)
    assert hook(repo, {"tool_name": "Write", "tool_input": {"file_path": str(repo / "src/app/other.py")}})["permissionDecision"] == "deny"
    assert target.read_text() == "mine\n"
