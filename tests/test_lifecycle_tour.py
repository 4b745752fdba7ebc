"""The README's lifecycle tour, step by step, on the built-in local model: the demo's record, fixtures that pass,
v2 released to 20% of new runs by email, an outcome, the report with its chart, v2 promoted with v1's kill date,
and an autonomy proposal from the demo's record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lane as lane_api
from conftest import lane, lane_json

README = Path(__file__).resolve().parent.parent / "README.md"


def decide_all(root: Path, run_ids: list[str]) -> None:
    """What the support lead does at the terminal: approve each reply as it is, then the run sends it."""
    for run_id in run_ids:
        if lane_json("show", run_id, cwd=root)["status"] != "paused":
            continue
        assert lane("approve", run_id, cwd=root).returncode == 0
        assert lane("resume", run_id, cwd=root).returncode == 0


def tour_block() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"## Manage the process.*?```sh\n(.*?)```", text, re.S)
    assert found is not None, "the README has its lifecycle tour"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_lifecycle_tour_on_the_built_in_model(tmp_path: Path) -> None:
    block = tour_block()
    for command in ("lane demo --dir demo", "lane test support-triage", "lane release support-triage 2 --share 20% --key inputs.email",
                    "lane outcome", "lane report support-triage", "lane promote support-triage --by alice --kill-date 2027-01-31",
                    "lane killdates --check", "lane autonomy support-triage"):
        assert command in block, f"the tour shows {command!r}"

    root = tmp_path / "demo"
    demo = lane("demo", "--dir", str(root), "--no-ask", cwd=tmp_path, timeout=1200)  # the lead decides each reply, as at a terminal
    assert demo.returncode == 3, demo.stdout + demo.stderr
    decide_all(root, [r["run_id"] for r in lane_json("runs", cwd=root)])

    tested = lane("test", "support-triage", cwd=root, timeout=1200)
    assert tested.returncode == 0, tested.stdout  # the golden fixtures pass on v1

    book = root / "runbooks" / "support-triage.yaml"  # v2: the writer asked for fewer words
    text = book.read_text().replace("version: 1", "version: 2", 1)
    book.write_text(text.replace("Name what the customer wrote about in a few words", "Name what the customer wrote about in four to eight words"))
    released = lane("release", "support-triage", "2", "--share", "20%", "--key", "inputs.email", "--json", cwd=root, timeout=1200)
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout)["candidate"]["share"] == 0.2

    for email in sorted((root / "inbox").glob("*.eml")):
        ran = lane("run", "support-triage", "--input", f"email=inbox/{email.name}", "--no-ask", "--json", cwd=root, timeout=600)
        assert ran.returncode == 3, ran.stdout + ran.stderr
        decide_all(root, [json.loads(ran.stdout)["run_id"]])
    with lane_api.Project.load(root) as project:
        runs = [r for r in project.runs() if r.status == "completed"]
    on_v2 = sorted(r.inputs["email"] for r in runs if r.version == 2)
    assert on_v2 == ["inbox/01-double-charge.eml", "inbox/04-password-reset.eml"]  # 20% of the emails, by their file

    for run in runs[:6]:
        assert lane("outcome", run.run_id, "resolved=yes", "--by", "alice", cwd=root).returncode == 0
    report = lane_json("report", "support-triage", cwd=root)
    assert report["versions"] == [1, 2]
    resolved = next(k for k in report["kpis"] if k["name"] == "resolved")
    assert sum(v["n"] for v in resolved["versions"]) == 6
    chart = Path(report["chart"])
    assert chart.exists() and chart.read_text().count("<polyline") >= 4

    promoted = lane_json("promote", "support-triage", "--by", "alice", "--kill-date", "2027-01-31", "--sunset",
                         "v1 gets no runs for 14 days", cwd=root)
    assert promoted["stable"]["version"] == 2 and promoted["kill_dates"]["1"]["kill_date"] == "2027-01-31"
    assert lane("killdates", "--check", "--today", "2027-02-15", cwd=root).returncode == 0  # v1 retired in time

    proposals = lane_json("autonomy", "support-triage", cwd=root)["proposals"]
    send = next(p for p in proposals if p["step"] == "send" and p["version"] == 1)
    assert (send["proposal"]["from"], send["proposal"]["to"]) == ("guarded", "auto")
    assert "14 of 14 approved without edit" in send["proposal"]["text"]  # the demo's 8 and the 6 emails v1 kept, as the README says
