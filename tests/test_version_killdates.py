"""Kill dates of runbook versions (issue 16, part 6): set at a promotion or in the runbook, checked by
`lane killdates --check` against what still keeps the version alive. Real runs on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

from test_releases import FILES, v2

import lane as lane_api
from conftest import lane, lane_json, write_project


def promoted_with_kill_date(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "shop", FILES)
    with lane_api.Project.load(root) as project:
        project.run("care", {"customer": "first"})
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "50%", cwd=root)
    lane_json("promote", "care", "--kill-date", "2027-01-31", "--sunset", "v1 gets no runs for 14 days", "--by", "ann", cwd=root)
    return root


def test_a_retired_version_past_its_kill_date_passes_the_check(tmp_path: Path) -> None:
    root = promoted_with_kill_date(tmp_path)
    checked = lane("killdates", "--check", "--today", "2027-02-05", cwd=root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = lane_json("killdates", "--today", "2027-02-05", cwd=root)["versions"]
    assert listed == [{"runbook": "care", "version": 1, "kill_date": "2027-01-31", "sunset": "v1 gets no runs for 14 days",
                       "where": "lane promote care by ann", "days_left": -5, "receives": None, "late_runs": 0, "waiting": 0,
                       "failing": False}]
    with lane_api.Project.load(root) as project:  # its snapshot is kept for its past runs
        first = next(r for r in project.runs() if r.version == 1)
        assert project.show(first.run_id)["status"] == "completed"


def test_a_version_past_its_kill_date_with_runs_waiting_fails_the_check(tmp_path: Path) -> None:
    root = write_project(tmp_path / "shop", FILES)
    ask = "  - {id: ok, human: lead, prompt: Go?, approve: yes}\n"
    (root / "runbooks" / "care.yaml").write_text(v2(extra_step=ask, number=1))
    with lane_api.Project.load(root) as project:
        assert project.run("care", {"customer": "ann"}).status == "paused"  # waits on v1
    (root / "runbooks" / "care.yaml").write_text(v2(number=2))
    with lane_api.Project.load(root) as project:
        project.run("care", {"customer": "bob"})
    lane_json("release", "care", "2", "--share", "50%", cwd=root)
    lane_json("promote", "care", "--kill-date", "2027-01-31", cwd=root)
    before = lane("killdates", "--check", "--today", "2027-01-30", cwd=root)
    assert before.returncode == 0, before.stdout
    after = lane("killdates", "--check", "--today", "2027-02-02", cwd=root)
    assert after.returncode == 1
    assert "the kill date of care v1 has passed: 2027-01-31, 2 days overdue, and 1 of its runs waits (not ended)" in after.stdout


def test_a_kill_date_in_the_runbook_fails_while_new_runs_still_go_to_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "shop", FILES)
    (root / "runbooks" / "care.yaml").write_text(v2("kill_date: 2027-01-01\nsunset: replaced by v2 once it is promoted\n", number=1))
    with lane_api.Project.load(root) as project:
        project.run("care", {"customer": "ann"})
    failed = lane("killdates", "--check", "--today", "2027-01-10", cwd=root)
    assert failed.returncode == 1
    assert "runbooks/care.yaml: the kill date of care v1 has passed" in failed.stdout
    assert "it is the version in runbooks/care.yaml: new runs go to it" in failed.stdout
    assert "sunset criterion: 'replaced by v2 once it is promoted'" in failed.stdout
    listed = lane("killdates", "--today", "2026-12-22", cwd=root)
    assert listed.returncode == 0 and "care v1: kill date 2027-01-01, 10 days left" in listed.stdout
