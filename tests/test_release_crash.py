"""Crash safety of releases: SIGKILL the process that widens a release, the one that rolls it back, and the one
starting runs, at random points, while runs start all along. Asserted: every run is in the store with exactly one
`run_started` that says where it was routed, it ran that version and completes on it when resumed; the rollback
is in the release journal once; no run starts on the rolled-back version once its rollback is committed."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_crash import _store_sound
from test_releases import FILES, v2

import lane as lane_api
from conftest import lane, lane_json, write_project

STARTER = """
import sys
import lane
with lane.Project.load(".") as project:
    i = int(sys.argv[1])
    while True:
        run_id, execution = project.start("care", {"customer": f"c{i % 40}"})
        print(run_id, flush=True)
        import asyncio
        asyncio.run(execution)
        i += 1
"""

SWITCHER = """
import random
import lane
with lane.Project.load(".") as project:
    while True:
        project.release("care", 2, share=random.choice([0.2, 0.4, 0.6]))
"""


def _spawn(root: Path, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, script, *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.mark.slow
def test_kill_9_during_release_switches_and_a_rollback_loses_and_reroutes_no_run(tmp_path: Path) -> None:
    rng = random.Random(16)
    root = write_project(tmp_path / "shop", {**FILES, "starter.py": STARTER, "switcher.py": SWITCHER})
    with lane_api.Project.load(root) as project:
        project.run("care", {"customer": "first"})
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "30%", cwd=root)

    printed: list[str] = []
    starter = _spawn(root, "starter.py", "0")
    for round_ in range(6):  # the release is widened and narrowed again and again, killed at random points
        switcher = _spawn(root, "switcher.py")
        time.sleep(rng.uniform(0.3, 1.2))
        _kill(switcher)
        if round_ in (2, 4):  # the process starting runs dies too, mid-run or mid-start
            printed += _kill(starter).split()
            starter = _spawn(root, "starter.py", str(100 * round_))
        _store_sound(root, None)

    for _ in range(5):  # a rollback killed at a random point: done whole, or not at all, then done again
        rolling = subprocess.Popen([*lane_cmd(), "rollback", "care", "--reason", "crash test"], cwd=root,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.8))
        rolling.send_signal(signal.SIGKILL)
        rolling.wait(timeout=30)
        if lane_json("release", "care", cwd=root)["candidate"] is None:
            break
    else:
        assert lane("rollback", "care", "--reason", "crash test", cwd=root).returncode == 0
    time.sleep(1.5)  # runs go on starting after the rollback
    printed += _kill(starter).split()

    state = lane_json("release", "care", cwd=root)
    assert [e["type"] for e in state["log"]].count("rolled_back") == 1 and state["candidate"] is None
    rolled_at = datetime.fromisoformat(next(e["at"] for e in state["log"] if e["type"] == "rolled_back"))

    with lane_api.Project.load(root) as project:
        for record in project.runs():  # the runs the kills cut off are resumed on the version they were routed to
            if record.status not in ("completed",):
                assert project.resume(record.run_id).status == "completed"
        runs = {r.run_id: r for r in project.runs()}
        assert set(printed) <= set(runs), "a run the starter printed is not in the store"
        versions = set()
        for run_id, record in runs.items():
            events = project.store.events(run_id)
            started = [e for e in events if e.type == "run_started"]
            assert len(started) == 1, f"run {run_id} has {len(started)} run_started events"
            routing = started[0].data.get("routing")
            if record.inputs["customer"] == "first":
                continue
            assert routing is not None and routing["version"] == record.version, (run_id, routing)
            assert record.status == "completed" and project.output(run_id) == f"v{record.version} answered {record.inputs['customer']}"
            if record.version == 2:  # none chose the rolled-back version once its rollback was on disk
                assert datetime.fromisoformat(started[0].at) <= rolled_at, (run_id, started[0].at, rolled_at)
            versions.add(record.version)
    assert versions == {1, 2} and len(runs) > 20
    _store_sound(root, None)


def lane_cmd() -> list[str]:
    return [sys.executable, "-m", "lane"]


def test_routing_is_in_the_run_started_event_committed_with_the_run(tmp_path: Path) -> None:
    root = write_project(tmp_path / "shop", FILES)
    with lane_api.Project.load(root) as project:
        project.run("care", {"customer": "first"})
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 50%}\n"))
    ran = lane("run", "care", "--input", "customer=ann", "--json", cwd=root)
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(lane("show", json.loads(ran.stdout)["run_id"], "--json", cwd=root).stdout)
    started = lane_json("audit", shown["run_id"], cwd=root)  # the run is sound to audit
    assert isinstance(started, list)
    with lane_api.Project.load(root) as project:
        first = project.store.events(shown["run_id"])[0]
    assert first.seq == 1 and first.type == "run_started" and first.data["routing"]["candidate"] == 2
