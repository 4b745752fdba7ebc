"""The kill-date registry on real repositories: `lane killdates` and `lane killdates --check`."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lane.cli import killdates as cli
from lane.coding.killdates import check_killdates

runner = CliRunner()
MARK = "lane: " + "kill-date"  # spelled in two parts so this file holds no marker itself
REGISTRY = """\
flags:
  new_dashboard: {sunset: "100% of users on the new route for 14 days, zero errors", kill_date: 2027-01-31}
shims:
  v1_settings_reader: {sunset: "no v1 rows left", kill_date: 2027-03-01}
"""
FILES = {
    "killdates.yaml": REGISTRY,
    "web/routes.py": f"import flags\n\nif flags.on('new_dashboard'):  # {MARK} new_dashboard\n    pass\n",
    "web/app.js": f"// {MARK} new_dashboard\nconst x = 1;\n",
    "db/settings.sql": f"select 1;\n-- {MARK} v1_settings_reader\n",
    "docs/flags.md": f"Mark code with `# {MARK} NAME`.\n\n<!-- {MARK} new_dashboard -->\n",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args], cwd=repo, check=True, capture_output=True)


def make(root: Path, files: dict[str, str], *, repo: bool = True) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if repo:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
    return root


def run(root: Path, *args: str, today: str = "2026-01-01") -> tuple[int, str, str]:
    result = runner.invoke(cli.app, [*args, "-p", str(root), "--today", today])
    return result.exit_code, result.stdout, result.stderr


def test_check_passes_when_every_date_is_ahead_and_every_marker_registered(tmp_path: Path) -> None:
    root = make(tmp_path, FILES)
    code, out, _ = run(root, "--check")
    assert code == 0, out
    assert "ok: 2 kill dates, none passed; every marker is registered" in out

    code, out, _ = run(root)
    assert code == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert rows["new_dashboard"] == ["flags", "new_dashboard", "2027-01-31", "395", "3"]
    assert rows["v1_settings_reader"] == ["shims", "v1_settings_reader", "2027-03-01", "424", "1"]

    code, out, _ = run(root, "--json")
    data = json.loads(out)
    assert data["ok"] is True and data["entries"][0]["days_left"] == 395
    assert data["entries"][0]["markers"] == [
        {"name": "new_dashboard", "path": "docs/flags.md", "line": 3},
        {"name": "new_dashboard", "path": "web/app.js", "line": 1},
        {"name": "new_dashboard", "path": "web/routes.py", "line": 3},
    ]  # the backquoted `# lane: ...` in the prose of docs/flags.md is not a marker


def test_check_fails_on_a_past_kill_date(tmp_path: Path) -> None:
    root = make(tmp_path, FILES)
    code, out, err = run(root, "--check", today="2027-02-10")
    assert code == 1
    assert (
        "killdates.yaml:2: the kill date of flag 'new_dashboard' has passed: 2027-01-31, 10 days overdue; "
        "sunset criterion: '100% of users on the new route for 14 days, zero errors'"
    ) in out
    assert "v1_settings_reader" not in out and "1 problem" in err
    code, out, _ = run(root, today="2027-02-10")
    assert code == 0 and "-10 (overdue)" in out  # listing alone never fails
    assert check_killdates(root, today=date(2027, 1, 31)).ok  # the kill date itself is the last day


def test_check_fails_on_a_marker_not_in_the_registry(tmp_path: Path) -> None:
    root = make(tmp_path, FILES)
    (root / "web/beta.py").write_text(f"\n\nBETA = True  # {MARK} beta_search\n")  # untracked, not ignored: scanned
    code, out, _ = run(root, "--check")
    assert code == 1
    assert "web/beta.py:3: the marker names 'beta_search', which is not in killdates.yaml" in out
    assert json.loads(run(root, "--check", "--json")[1])["unregistered"] == [{"name": "beta_search", "path": "web/beta.py", "line": 3}]


def test_ignored_files_are_not_scanned_and_unused_entries_only_warn(tmp_path: Path) -> None:
    root = make(tmp_path, {**FILES, "db/settings.sql": "select 1;\n", ".gitignore": "build/\n"})
    (root / "build").mkdir()
    (root / "build/out.js").write_text(f"// {MARK} left_in_a_build\n")
    code, out, _ = run(root, "--check")
    assert code == 0, out
    assert "killdates.yaml:4: warning: no code mentions shim 'v1_settings_reader' any more: ready to delete" in out
    assert "left_in_a_build" not in out


def test_a_folder_that_is_not_a_git_repository_is_walked(tmp_path: Path) -> None:
    root = make(tmp_path, {**FILES, "lib/old.py": f"# {MARK} gone_flag\n"}, repo=False)
    report = check_killdates(root, today=date(2026, 1, 1))
    assert [(m.path, m.line, m.name) for m in report.unregistered] == [("lib/old.py", 1, "gone_flag")]
    assert len(report.entries[0].markers) == 3


@pytest.mark.parametrize(
    ("registry", "where"),
    [
        ("flags:\n  a: {sunset: soon}\n", "killdates.yaml:2:3: a needs kill_date"),
        ("flags:\n  a: {sunset: soon, kill_date: next week}\n", "killdates.yaml:2:32: kill_date of a must be a date YYYY-MM-DD"),
        ("shims:\n  b: {kill_date: 2027-01-01, sunst: x}\n", "killdates.yaml:2:30: unknown key 'sunst' in b"),
        ("flags:\n  a: {sunset: x, kill_date: 2027-01-01}\nshims:\n  a: {sunset: y, kill_date: 2027-01-01}\n",
         "killdates.yaml:4:3: a is registered twice (also under flags at line 2)"),
    ],
)  # fmt: skip
def test_a_malformed_registry_exits_2_with_line_and_column(tmp_path: Path, registry: str, where: str) -> None:
    root = make(tmp_path, {"killdates.yaml": registry})
    code, out, _ = run(root, "--check")
    assert code == 2
    assert where in out


@pytest.mark.parametrize(("text", "name"), [
    ("x();// KD a", "a"), (" * KD a", "a"), ("<p><!-- KD a -->", "a"),
    ("{# KD a #}", "a"), ("; KD a", "a"), ("% KD a", "a"),
    ("# KD a", "a"), ("`# KD a`", None), ("word#KD a", None),
])
def test_markers_are_found_after_every_comment_leader_but_not_in_quoted_prose(text: str, name: str | None) -> None:
    from lane.coding.killdates import MARKER

    found = MARKER.search(text.replace("KD", "lane: " + "kill-date"))  # spelt apart: this file holds no marker itself
    assert (found.group(1) if found else None) == name


def test_markers_in_restructuredtext_markdown_html_and_plain_text_count(tmp_path: Path) -> None:
    root = make(tmp_path, {
        "killdates.yaml": REGISTRY,
        "docs/index.rst": f"Title\n=====\n\n.. {MARK} new_dashboard\n",
        "docs/page.html": f"<p>x</p><!-- {MARK} v1_settings_reader -->\n",
        "NOTES.txt": f"{MARK} new_dashboard\n",
        "src/code.py": f"text = 'x'\n{MARK} not_counted_in_code\n",  # a bare marker counts in text files only
    })
    report = check_killdates(root)
    found = sorted((m.path, m.name) for s in report.entries for m in s.markers)
    assert found == [("NOTES.txt", "new_dashboard"), ("docs/index.rst", "new_dashboard"), ("docs/page.html", "v1_settings_reader")]
    assert report.unregistered == ()
