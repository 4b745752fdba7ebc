"""Session memory on real git repositories: `lane session start` and `lane session end`."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lane.cli import session as cli
from lane.coding.session import end, gather

runner = CliRunner()
OLD_LOG = """\
# Log

## 2025-01-01 09:00 UTC — main

Set up the project.

### RESUME HERE

1. old step that no longer counts

## 2025-01-02 09:00 UTC — main

```
## not an entry: inside a code fence
```

## 2025-01-03 09:00 UTC — feature

Wrote the parser.

### RESUME HERE

1. Add tests for tabs
2. Open the pull request

### Notes

after the block"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on main with an unmerged branch `feature`, a stash, and four uncommitted changes."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    for key, value in (("user.email", "dev@example.com"), ("user.name", "Dev"), ("commit.gpgsign", "false")):
        git(root, "config", key, value)
    (root / "app.py").write_text("print(1)\n")
    (root / "old_name.py").write_text("z = 3\n")
    git(root, "add", "app.py", "old_name.py")
    git(root, "commit", "-qm", "Start the app")
    git(root, "checkout", "-qb", "feature")
    (root / "feature.py").write_text("x = 1\n")
    git(root, "add", "feature.py")
    git(root, "commit", "-qm", "Feature work")
    git(root, "checkout", "-q", "main")
    (root / "app.py").write_text("print(2)\n")
    git(root, "stash", "push", "-qm", "half-done idea")
    (root / "app.py").write_text("print(3)\n")  # unstaged
    (root / "staged.py").write_text("y = 2\n")
    git(root, "add", "staged.py")
    git(root, "mv", "old_name.py", "new_name.py")  # staged rename: one change, listed by its new path
    (root / "scratch.txt").write_text("notes\n")  # untracked
    return root


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never find a repository above tmp_path
    return folder


def clock(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_start_shows_branch_changes_stash_unmerged_and_last_commit(repo: Path) -> None:
    state = gather(repo)
    assert state.git is not None and state.git_note is None
    g = state.git
    assert (g.branch, g.changes, g.staged, g.unstaged, g.untracked) == ("main", 4, 2, 1, 1)
    assert {(c.status, c.path) for c in g.paths} == {(" M", "app.py"), ("A ", "staged.py"), ("R ", "new_name.py"), ("??", "scratch.txt")}
    assert len(g.stashes) == 1 and "half-done idea" in g.stashes[0]
    assert (g.base, g.unmerged) == ("main", ("feature",)) and "local main" in g.base_source
    assert g.last_commit is not None and g.last_commit.subject == "Start the app" and g.last_commit.sha == g.head

    result = runner.invoke(cli.app, ["start", "-p", str(repo)])
    assert result.exit_code == 0, result.output
    for shown in ("branch: main", "4 files (2 staged, 1 unstaged, 1 untracked)", " M app.py", "?? scratch.txt",
                  "stashes: 1", "half-done idea", "not merged into main (the local main branch): feature",
                  "Start the app", "log.md: none yet", "roadmap: none (looked for ROADMAP.md"):
        assert shown in result.output

    data = json.loads(runner.invoke(cli.app, ["start", "-p", str(repo), "--json"]).output)
    assert data["git"]["unmerged"] == ["feature"] and data["git"]["changes"] == 4 and data["log"] is None


def test_start_uses_origin_head_and_reports_a_detached_head(repo: Path) -> None:
    git(repo, "update-ref", "refs/remotes/origin/feature", "feature")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/feature")
    git(repo, "checkout", "-q", "--detach", "feature")
    g = gather(repo).git
    assert g is not None
    assert (g.branch, g.base, g.unmerged) == (None, "origin/feature", ())  # main is merged into feature
    assert "origin/HEAD" in g.base_source
    output = runner.invoke(cli.app, ["start", "-p", str(repo)]).output
    assert f"detached HEAD at {g.head}" in output and "not merged into origin/feature" in output


def test_start_shows_last_entries_and_only_the_latest_resume_here(repo: Path) -> None:
    (repo / "log.md").write_text(OLD_LOG)
    (repo / "src").mkdir()
    state = gather(repo / "src", entries=2)  # log.md is read at the repository's top
    assert state.root == repo.resolve()
    assert state.total_entries == 3
    assert [e.heading for e in state.entries] == ["2025-01-02 09:00 UTC — main", "2025-01-03 09:00 UTC — feature"]
    assert state.resume is not None
    assert state.resume.text == "1. Add tests for tabs\n2. Open the pull request"
    assert (state.resume.entry, state.resume.earlier) == ("2025-01-03 09:00 UTC — feature", 1)

    result = runner.invoke(cli.app, ["start", "-p", str(repo), "--entries", "2"])
    assert result.exit_code == 0, result.output
    assert "last 2 of 3 entries" in result.output
    resume = result.output.split("RESUME HERE (the latest", 1)[1]
    assert "2. Open the pull request" in resume and "1 earlier one in the log is history" in resume
    assert "old step" not in result.output and "after the block" not in resume.split("roadmap:")[0]


def test_start_reads_roadmap_and_known_issues_and_names_them(repo: Path) -> None:
    (repo / "ROADMAP.md").write_text("".join(f"- milestone {n}\n" for n in range(1, 51)))
    (repo / "docs").mkdir()
    (repo / "docs" / "known-issues.md").write_text("- tabs break the parser\n")
    state = gather(repo)
    assert state.roadmap is not None and state.known_issues is not None
    assert (state.roadmap.path, state.roadmap.shown_lines, state.roadmap.total_lines) == ("ROADMAP.md", 40, 50)
    assert state.known_issues.path == "docs/known-issues.md"
    output = runner.invoke(cli.app, ["start", "-p", str(repo)]).output
    assert "roadmap: ROADMAP.md (first 40 of 50 lines)" in output and "milestone 40" in output
    assert "milestone 41" not in output
    assert "known issues: docs/known-issues.md (in full)" in output and "tabs break the parser" in output


def test_end_appends_entries_and_the_latest_resume_wins(repo: Path) -> None:
    log = repo / "log.md"
    log.write_bytes(OLD_LOG.encode())  # no final newline: kept as it is
    log.chmod(0o640)
    head = git(repo, "rev-parse", "--short", "HEAD")
    first = end(repo, "Fixed tabs.\n## not a heading", ["Run  the\nsuite"], clock=lambda: clock("2025-02-01T10:30:00+02:00"))
    second = end(repo, "Reviewed.", ["Merge feature", "Tag 1.0"], clock=lambda: clock("2025-02-02T18:05:59+00:00"))

    text = log.read_text()
    assert text.startswith(OLD_LOG + "\n\n## 2025-02-01 08:30 UTC — main\n")
    assert text.endswith(
        "## 2025-02-02 18:05 UTC — main\n\nReviewed.\n\n"
        f"- HEAD: {head}\n- Uncommitted files: 5\n\n### RESUME HERE\n\n1. Merge feature\n2. Tag 1.0\n"
    )  # log.md itself is the fifth uncommitted file
    assert "\\## not a heading" in first.text and "1. Run the suite" in first.text
    assert (first.created, second.steps) == (False, ("Merge feature", "Tag 1.0"))
    assert stat.S_IMODE(log.stat().st_mode) == 0o640
    state = gather(repo, entries=10)
    assert state.total_entries == 5
    assert state.resume is not None and state.resume.text == "1. Merge feature\n2. Tag 1.0" and state.resume.earlier == 3


def test_end_creates_log_md_with_a_title_through_the_cli(repo: Path) -> None:
    result = runner.invoke(cli.app, ["end", "-p", str(repo), "--note", "First session.", "--resume", "Write docs"])
    assert result.exit_code == 0, result.output
    assert "(created it)" in result.output and "RESUME HERE block of 1 step" in result.output
    text = (repo / "log.md").read_text()
    assert re.fullmatch(
        r"# Log\n\n## \d{4}-\d\d-\d\d \d\d:\d\d UTC — main\n\nFirst session\.\n\n- HEAD: [0-9a-f]{7,}\n"
        r"- Uncommitted files: 4\n\n### RESUME HERE\n\n1\. Write docs\n", text), text
    result = runner.invoke(cli.app, ["end", "-p", str(repo), "--note", "Second.", "--json"])
    assert json.loads(result.output)["created"] is False
    resume = gather(repo).resume
    assert resume is not None and resume.text == "1. Write docs"


def test_end_keeps_crlf_line_endings(repo: Path) -> None:
    old = b"# Log\r\n\r\n## 2025-01-01 09:00 UTC - main\r\n\r\nStarted.\r\n"
    (repo / "log.md").write_bytes(old)
    end(repo, "Next.", clock=lambda: clock("2025-03-01T00:00:00+00:00"))
    data = (repo / "log.md").read_bytes()
    assert data.startswith(old + b"\r\n## 2025-03-01 00:00 UTC") and b"\n" not in data.replace(b"\r\n", b"")


def test_outside_a_git_repository(outside: Path) -> None:
    state = gather(outside)
    assert state.git is None and state.git_note is not None and "not in a git repository" in state.git_note
    result = runner.invoke(cli.app, ["start", "-p", str(outside)])
    assert result.exit_code == 0 and "is not in a git repository" in result.output
    result = runner.invoke(cli.app, ["end", "-p", str(outside), "--note", "Sketched."])
    assert result.exit_code == 0, result.output
    assert "— no git repository\n\nSketched.\n\n- HEAD: none (not a git repository)\n" in (outside / "log.md").read_text()
    assert [e.body.splitlines()[0] for e in gather(outside).entries] == ["Sketched."]


def test_empty_note_blank_step_and_missing_folder_are_usage_errors(repo: Path, tmp_path: Path) -> None:
    for args, message in (
        (["--note", "  \n"], "the note is empty"),
        (["--note", "ok", "--resume", " "], "a --resume step is empty"),
    ):
        result = runner.invoke(cli.app, ["end", "-p", str(repo), *args])
        assert result.exit_code == 2 and message in result.output
    assert not (repo / "log.md").exists()
    result = runner.invoke(cli.app, ["start", "-p", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    assert runner.invoke(cli.app, ["start", "-p", str(repo), "--entries", "-1"]).exit_code == 2


def test_start_shows_the_active_task(repo: Path) -> None:
    (repo / ".lane").mkdir(exist_ok=True)
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / ".lane" / "active-task.json").write_text(json.dumps({"feature": "cart", "task": "01-add", "base": base}))
    result = runner.invoke(cli.app, ["start", "-p", str(repo)])
    assert result.exit_code == 0 and f"active task: cart/01-add, based on {base[:12]}" in result.output
    assert gather(repo).active_task == {"feature": "cart", "task": "01-add", "base": base}
    (repo / ".lane" / "active-task.json").write_text("{broken")
    assert "is not a valid active-task file" in runner.invoke(cli.app, ["start", "-p", str(repo)]).output
