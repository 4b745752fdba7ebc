"""`lane report` (issue 16, part 5): versions compared on every KPI with intervals and tests on a known data set,
and the chart of each KPI per version over time. Real runs on a real SQLite store."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import lane as lane_api
from conftest import lane, lane_json, write_project

FILES = {
    "lane.yaml": """
        project: known
        roles: {}
        toolsets:
          calc: {python: tools/calc.py}
    """,
    "tools/calc.py": """
        from lane import tool

        @tool(effect="read", idempotent=True)
        def echo(value: int) -> int:
            '''Give the value back.'''
            return value
    """,
}

RUNBOOK = """
runbook: scored
version: {version}
inputs: {{type: object, properties: {{good: {{type: boolean}}, score: {{type: integer}}}}, required: [good, score]}}
steps:
  - {{id: echo, tool: calc.echo, args: {{value: "${{{{ inputs.score }}}}"}}}}
kpis:
  good: {{value: inputs.good, target: ">= 0.9"}}
  score: {{value: steps.echo.output}}
"""


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1: 8 of 10 good, scores 1..10; v2: 20 of 20 good, scores 11..30."""
    root = write_project(tmp_path_factory.mktemp("report") / "known", {**FILES, "runbooks/scored.yaml": RUNBOOK.format(version=1)})
    with lane_api.Project.load(root) as project:
        for i in range(10):
            assert project.run("scored", {"good": i < 8, "score": i + 1}).status == "completed"
    (root / "runbooks" / "scored.yaml").write_text(RUNBOOK.format(version=2))
    with lane_api.Project.load(root) as project:
        for i in range(20):
            project.run("scored", {"good": True, "score": 11 + i})
    return root


def _kpi(report: dict, name: str) -> dict:
    return next(k for k in report["kpis"] if k["name"] == name)


def test_the_report_gives_wilson_intervals_and_fishers_test_for_shares(known: Path) -> None:
    report = lane_json("report", "scored", cwd=known)
    good = _kpi(report, "good")
    v1, v2 = good["versions"]
    assert (v1["version"], v1["n"], v1["held"], v1["value"]) == (1, 10, 8, 0.8)
    assert v1["low"] == pytest.approx(0.4902, abs=1e-4) and v1["high"] == pytest.approx(0.9433, abs=1e-4)  # Wilson, 8 of 10
    assert v2["low"] == pytest.approx(0.8389, abs=1e-4) and v2["high"] == pytest.approx(1.0)  # Wilson, 20 of 20
    [compared] = good["comparisons"]
    assert compared["test"] == "Fisher's exact" and compared["p_value"] == pytest.approx(0.10345, abs=1e-4)  # 8/10 against 20/20
    assert compared["significant"] is False and compared["difference"] == pytest.approx(0.2)
    assert good["target"] == ">= 0.9"


def test_the_report_gives_a_bootstrap_interval_of_the_median_and_mann_whitney(known: Path) -> None:
    score = _kpi(lane_json("report", "scored", cwd=known), "score")
    v1, v2 = score["versions"]
    assert score["kind"] == "median" and v1["value"] == 5.5 and v2["value"] == 20.5
    assert 1 <= v1["low"] <= 5.5 <= v1["high"] <= 10 and v1["low"] < v1["high"]
    [compared] = score["comparisons"]
    # every v2 score is above every v1 score: U = 0, two-sided p by the normal approximation with continuity correction
    assert compared["test"] == "Mann-Whitney U" and compared["p_value"] == pytest.approx(1.2009e-05, rel=1e-3)
    assert compared["significant"] is True


def test_the_built_in_shares_are_reported_for_every_runbook(known: Path) -> None:
    report = lane_json("report", "scored", cwd=known)
    completed = _kpi(report, "completed")
    assert completed["built_in"] is True and [v["value"] for v in completed["versions"]] == [1.0, 1.0]
    assert report["runs"] == 30 and report["versions"] == [1, 2]


def test_the_chart_draws_each_kpi_per_version_over_time(known: Path, tmp_path: Path) -> None:
    target = tmp_path / "chart.svg"
    shown = lane("report", "scored", "--chart", str(target), cwd=known)
    assert shown.returncode == 0, shown.stderr
    assert "v1: n=10: 80% (95% 49% to 94%)" in shown.stdout and "Mann-Whitney U" in shown.stdout and f"chart: {target}" in shown.stdout
    svg = ET.parse(target).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = svg.findall(".//s:polyline", ns)
    assert len(lines) == 4 * 2  # good, score, completed, failed: a line per version
    assert {line.find("s:title", ns).text for line in lines} == {"v1", "v2"}
    text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "good (share of runs) · target >= 0.9" in text and "v2: 100% (n=20)" in text and "p = " in text
    default = lane_json("report", "scored", cwd=known)["chart"]
    assert Path(default) == known / ".lane" / "reports" / "scored.svg" and Path(default).exists()


def test_a_chart_that_cannot_be_written_is_a_one_line_error(known: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    failed = lane("report", "scored", "--chart", str(tmp_path / "file" / "chart.svg"), cwd=known)
    assert failed.returncode == 2 and "cannot write the chart" in failed.stderr and "Traceback" not in failed.stderr
    missing = lane("report", "nope", cwd=known)
    assert missing.returncode == 2 and "no runbook 'nope'" in missing.stderr
