"""Outcomes (issue 16, part 4): results known only after a run, journaled on it and read by KPIs as outcomes.NAME."""

from __future__ import annotations

import json
from pathlib import Path

from test_versions import FILES, paused_run

from conftest import lane, lane_json, write_project

WITH_OUTCOME = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"] + """
          resolved:
            value: outcomes.resolved | default(none)
          solved_and_sent:
            value: "(outcomes.resolved | default(none)) == 'yes' and steps.send.status == 'completed'"
"""}


def finished_run(root: Path) -> str:
    run_id = paused_run(root)
    assert lane("approve", run_id, cwd=root).returncode == 0
    assert lane("resume", run_id, cwd=root).returncode == 0
    return run_id


def test_an_outcome_is_journaled_and_the_kpis_of_an_ended_run_are_measured_again(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", WITH_OUTCOME)
    assert lane("validate", cwd=root).returncode == 0
    run_id = finished_run(root)
    before = lane_json("show", run_id, cwd=root)["kpis"]
    assert before["resolved"] is None and before["solved_and_sent"] is False
    recorded = lane("outcome", run_id, "resolved=yes", "--by", "alice", cwd=root)
    assert recorded.returncode == 0, recorded.stderr
    assert f"recorded resolved=yes by alice on run {run_id}" in recorded.stdout and "solved_and_sent: true" in recorded.stdout
    view = lane_json("show", run_id, cwd=root)
    assert view["kpis"]["resolved"] == "yes" and view["kpis"]["solved_and_sent"] is True
    assert [(o["name"], o["value"], o["by"]) for o in view["outcomes"]] == [("resolved", "yes", "alice")]
    again = json.loads(lane("outcome", run_id, "resolved=no", "--json", cwd=root).stdout)
    assert again["outcomes"] == {"resolved": "no"} and again["kpis"]["values"]["solved_and_sent"] is False, "the latest one counts"
    rows = lane_json("versions", "reply", cwd=root)
    assert "no 1" in rows[0]["kpis"]["resolved"], "versions count it"


def test_an_outcome_recorded_while_a_run_waits_counts_when_it_ends(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", WITH_OUTCOME)
    run_id = paused_run(root)
    assert lane("outcome", run_id, "resolved=yes", cwd=root).returncode == 0
    assert lane("approve", run_id, cwd=root).returncode == 0 and lane("resume", run_id, cwd=root).returncode == 0
    assert lane_json("show", run_id, cwd=root)["kpis"]["solved_and_sent"] is True


def test_bad_outcomes_are_refused_with_the_reason(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", WITH_OUTCOME)
    run_id = paused_run(root)
    for pair, expected in (("9lives=1", "use letters, digits and _"), ("resolved", "write KEY=VALUE"), ("a-b=1", "outcome name 'a-b'")):
        refused = lane("outcome", run_id, pair, cwd=root)
        assert refused.returncode == 2 and expected in refused.stderr, (pair, refused.stderr)
    assert lane("outcome", "ffffffffffff", "resolved=yes", cwd=root).returncode == 2


def test_kpis_may_read_outcomes_but_steps_may_not(tmp_path: Path) -> None:
    files = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"].replace('body: "${{ steps.draft.output.body }}"',
                                                                                  'body: "${{ outcomes.resolved }}"')}
    checked = lane("validate", cwd=write_project(tmp_path / "desk", files))
    assert checked.returncode == 2 and "'outcomes' are known only after the run; use them in kpis" in checked.stdout
