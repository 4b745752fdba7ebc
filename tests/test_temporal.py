"""engine: temporal, on Temporal's real dev server with real `lane worker` processes.

The same project runs, pauses, is approved and completes as on the local engine, with the same
timeline; each run is a workflow whose stretches are activities; workers killed with SIGKILL in
the middle of runs lose and repeat nothing (the crash project of test_crash.py); a missing worker
or server is one line.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from temporal_server import DevServer, Workers
from test_crash import FILES as CRASH_FILES
from test_crash import IDEM_TAGS, ONCE_TAGS, _effects, _settle_in_doubt, _store_sound

from conftest import LANE, Backing, lane, lane_json, write_project

PAY = {
    "lane.yaml": """
        project: pay
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human}
          worker: {kind: agent}
        toolsets:
          log: {python: tools/log.py}
    """,
    "agents/worker.md": """
        ---
        name: worker
        ---
        You draft payments.
    """,
    "runbooks/pay.yaml": """
        runbook: pay
        inputs: {type: object, properties: {tag: {type: string}}, required: [tag]}
        steps:
          - id: draft
            agent: worker
            goal: Draft the payment.
            with: {tag: "${{ inputs.tag }}"}
            output: {type: object, properties: {tag: {type: string}}, required: [tag]}
          - id: pay
            tool: log.once
            args: {tag: "${{ steps.draft.output.tag }}"}
          - id: check
            check: [grep, -c, "once p1", effects.log]
    """,
    "script.yaml": """
        draft:
          - output: {tag: p1}
    """,
    "tools/log.py": CRASH_FILES["tools/log.py"],
}


def _project(root: Path, server: DevServer, files: dict[str, str], backing: Backing | None = None, *, heartbeat: float | None = None) -> Path:
    text = backing.project_yaml(files["lane.yaml"]) if backing is not None else files["lane.yaml"]
    return write_project(root, {**files, "lane.yaml": server.lane_yaml(text, heartbeat=heartbeat)})


def _with(lane_yaml: str, lines: str) -> str:
    """A lane.yaml of this file with `lines` added."""
    return textwrap.dedent(lane_yaml) + lines


def _shape(value: Any) -> Any:
    """What a `lane show --json` looks like, without its values: keys, nesting and list lengths."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def _steps(view: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each step's id, kind, status and output (a check's timing left out)."""
    def timeless(output: Any) -> Any:
        return {k: v for k, v in output.items() if k != "seconds"} if isinstance(output, dict) else output

    return [(s["id"], s["kind"], s["status"], timeless(s.get("output"))) for s in view["steps"]]


def _history(server: DevServer, run_id: str) -> tuple[str, list[str]]:
    """The run's workflow: its status, and the activities it scheduled, in order."""
    from temporalio.client import Client

    async def read() -> tuple[str, list[str]]:
        client = await Client.connect(server.address)
        handle = client.get_workflow_handle(f"lane-run-{run_id}")
        status = (await handle.describe()).status
        history = await handle.fetch_history()
        scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                     for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
        return (status.name if status else "?"), scheduled

    return asyncio.run(read())


def test_a_run_pauses_is_approved_and_completes_with_the_local_engines_timeline(
        temporal: DevServer, backing: Backing, project_dir: Path, tmp_path: Path, workers: Workers) -> None:
    root = _project(project_dir, temporal, PAY, backing)
    workers.start()

    started = lane("run", "pay", "--input", "tag=p1", "--json", cwd=root)
    assert started.returncode == 3, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    view = lane_json("show", run_id, cwd=root)
    assert view["status"] == "paused"
    assert [p["call_id"] for p in view["pending"]] == ["pay:1"]
    assert not (root / "effects.log").exists()  # nothing paid before a person said so

    assert lane("approve", run_id, "--as", "lead", cwd=root).returncode == 0
    done = lane("resume", run_id, "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert [e[:2] for e in _effects(root)] == [("once", "p1")]

    status, activities = _history(temporal, run_id)
    assert status == "COMPLETED"
    assert activities == ["lane-stretch", "lane-stretch"]  # to the pause, then from the approval to the end

    # The same project on the local engine: the same timeline, value for value where values are not times or ids.
    local = write_project(tmp_path / "local", {**PAY, "lane.yaml": backing.fresh().project_yaml(PAY["lane.yaml"])})
    first = lane("run", "pay", "--input", "tag=p1", "--json", cwd=local)
    local_id = json.loads(first.stdout)["run_id"]
    assert lane("approve", local_id, "--as", "lead", cwd=local).returncode == 0
    assert lane("resume", local_id, "--json", cwd=local).returncode == 0
    here, there = lane_json("show", run_id, cwd=root), lane_json("show", local_id, cwd=local)
    assert _shape(here) == _shape(there)
    assert _steps(here) == _steps(there)
    audit = lane("audit", run_id, "--json", cwd=root)
    assert audit.returncode == 0 and "lead" in audit.stdout
    _store_sound(root, run_id, backing)


def test_a_failed_run_is_retried_through_a_new_workflow(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    files = {**PAY, "script.yaml": "draft:\n  - output: {tag: p2}\n"}  # the check looks for p1: it fails
    root = _project(project_dir, temporal, files)
    workers.start()
    run = lane("run", "pay", "--input", "tag=p2", "--json", cwd=root)
    run_id = json.loads(run.stdout)["run_id"]
    assert lane("approve", run_id, "--as", "lead", cwd=root).returncode == 0
    failed = lane("resume", run_id, "--json", cwd=root)
    assert failed.returncode == 1 and json.loads(failed.stdout)["status"] == "failed"
    assert _history(temporal, run_id) == ("COMPLETED", ["lane-stretch", "lane-stretch"])  # the workflow ends with the run

    with open(root / "effects.log", "a") as log:  # a person mends the world
        log.write("once p1 fixed-by-hand 0\n")
    again = lane("retry", run_id, "--from", "check", "--json", cwd=root)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "completed"
    assert [e[:2] for e in _effects(root)] == [("once", "p2"), ("once", "p1")]  # the payment was not made again

    assert _history(temporal, run_id) == ("COMPLETED", ["lane-stretch"])  # the retry's own workflow execution
    busy = lane("resume", run_id, cwd=root)
    assert busy.returncode == 2 and "completed" in busy.stderr


def _run_killing_workers(root: Path, workers: Workers, rng: random.Random, kills_wanted: int) -> tuple[str, int, list[str]]:
    """Start the crash run; SIGKILL the worker executing it at random moments, a fresh worker started each time."""
    workers.start()
    client = subprocess.Popen([*LANE, "run", "crash", "--json"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    kills, decisions = 0, []
    for _ in range(100):
        deadline = time.monotonic() + rng.uniform(0.1, 0.9)
        while client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if client.poll() is None and kills < kills_wanted:
            live = [p for p in workers.procs if p.poll() is None]
            for proc in live:  # the one executing it is among them: all go, a fresh one comes
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            kills += 1
            workers.start()
            continue
        out, err = client.communicate(timeout=180)
        if client.returncode == 0:
            return json.loads(out)["run_id"], kills, decisions
        assert client.returncode == 3, f"exit {client.returncode}: {err}"
        run_id = json.loads(out)["run_id"]
        _settle_in_doubt(root, run_id, decisions)
        client = subprocess.Popen([*LANE, "resume", run_id, "--json"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True)
    raise AssertionError("the run did not complete")


@pytest.mark.slow
def test_sigkill_of_workers_mid_run_loses_and_repeats_nothing(temporal: DevServer, backing: Backing, tmp_path: Path) -> None:
    rng = random.Random(20261206)
    total, attempt = 0, 0
    while total < 6:  # a run may end before a kill lands: as many runs as it takes
        attempt += 1
        assert attempt <= 6, f"only {total} kills landed mid-run in {attempt - 1} runs"
        store = backing.fresh()
        root = _project(tmp_path / f"p{attempt}", temporal, CRASH_FILES, store, heartbeat=1.5)
        found = Workers(root)
        try:
            run_id, kills, decisions = _run_killing_workers(root, found, rng, kills_wanted=4)
        finally:
            found.stop()
        total += kills
        print(f"run {attempt}: {kills} worker kills; in doubt: {decisions or 'none'}")
        view = lane_json("show", run_id, cwd=root)
        assert view["status"] == "completed"
        outputs = {s["id"]: s["output"] for s in view["steps"]}
        assert outputs["gather"] == {"count": 3} and outputs["commit"] == {"tag": "commit-3"}
        assert outputs["verify"]["stdout"].strip() == "1" and outputs["report"] == {"done": True}
        effects = _effects(root)
        once = [tag for kind, tag, _ in effects if kind == "once"]
        assert sorted(once) == sorted(ONCE_TAGS), f"non-idempotent calls ran {once} (decisions: {decisions})"
        keys: dict[str, set[str]] = defaultdict(set)
        for kind, tag, key in effects:
            if kind == "idem":
                keys[tag].add(key)
        assert set(keys) == IDEM_TAGS and all(len(seen) == 1 for seen in keys.values())
        _store_sound(root, run_id, store)


def test_no_worker_and_no_server_are_one_line_each(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    root = _project(project_dir, temporal, PAY)
    alone = lane("run", "pay", "--input", "tag=p1", cwd=root)
    assert alone.returncode == 2
    assert "no lane worker polls task queue" in alone.stderr and "lane worker" in alone.stderr
    assert "Traceback" not in alone.stderr and len(alone.stderr.strip().splitlines()) == 1
    [run] = lane_json("runs", cwd=root)  # not left `running` with nobody to run it
    assert run["status"] == "failed" and f"lane retry {run['run_id']}" in alone.stderr
    workers.start()
    sent = lane("retry", run["run_id"], "--json", cwd=root)
    assert sent.returncode == 3 and json.loads(sent.stdout)["status"] == "paused", sent.stderr
    workers.stop()

    yaml_text = (root / "lane.yaml").read_text()
    (root / "lane.yaml").write_text(yaml_text.replace("task_queue:", "namespace: nowhere, task_queue:"))
    lost = lane("run", "pay", "--input", "tag=p1", cwd=root)
    assert lost.returncode == 2 and "(namespace nowhere)" in lost.stderr and "not found" in lost.stderr
    assert "Traceback" not in lost.stderr and len(lost.stderr.strip().splitlines()) == 1

    text = yaml_text.replace(temporal.address, "127.0.0.1:9")
    (root / "lane.yaml").write_text(text)
    away = lane("run", "pay", "--input", "tag=p1", cwd=root)
    assert away.returncode == 2 and "cannot reach Temporal at 127.0.0.1:9" in away.stderr
    assert "Traceback" not in away.stderr and len(away.stderr.strip().splitlines()) == 1


def test_lane_worker_refuses_a_local_project(project_dir: Path) -> None:
    root = write_project(project_dir, PAY)
    refused = lane("worker", cwd=root)
    assert refused.returncode == 2 and "engine: temporal" in refused.stderr


def test_a_worker_stopped_with_sigterm_gives_its_run_back(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    root = _project(project_dir, temporal, CRASH_FILES, heartbeat=30)  # not found dead: given back
    first = workers.start()
    client = subprocess.Popen([*LANE, "run", "crash", "--json"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    while not (root / "effects.log").exists():  # the run is under way on the first worker
        assert client.poll() is None, client.communicate()
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0
    workers.start()
    decisions: list[str] = []
    out, err = client.communicate(timeout=120)
    while client.returncode == 3:  # stopped in the middle of a non-idempotent call: a person says whether it happened
        run_id = json.loads(out)["run_id"]
        _settle_in_doubt(root, run_id, decisions)
        again = lane("resume", run_id, "--json", cwd=root)
        out, err, client.returncode = again.stdout, again.stderr, again.returncode
    assert client.returncode == 0, err
    view = lane_json("show", json.loads(out)["run_id"], cwd=root)
    assert view["status"] == "completed"
    pids = {line.split()[3] for line in (root / "effects.log").read_text().splitlines()}
    assert pids == {str(first.pid), str(workers.procs[1].pid)}  # begun on the first worker, finished on the second
    once = [tag for kind, tag, _ in _effects(root) if kind == "once"]
    assert sorted(once) == sorted(ONCE_TAGS), decisions


def test_a_project_given_models_or_a_store_of_its_own_runs_here(project_dir: Path) -> None:
    """`lane test` and a test's scripted model object cannot travel to the workers: such a Project executes its runs itself."""
    from lane import Project
    from lane.models.scripted import ScriptedModel

    files = {**PAY, "runbooks/pay.yaml": PAY["runbooks/pay.yaml"].split("          - id: pay")[0]}
    root = write_project(project_dir, {**files, "lane.yaml": _with(files["lane.yaml"], "engine: temporal\ntemporal: {address: '127.0.0.1:9'}\n")})
    with Project.load(root, models={"scripted:script.yaml": ScriptedModel({"draft": [{"output": {"tag": "here"}}]})}) as project:
        run = project.run("pay", {"tag": "x"})  # no Temporal at 127.0.0.1:9: it ran in this process
    assert (run.status, run.output) == ("completed", {"tag": "here"})


@pytest.mark.parametrize(("extra", "said"), [
    ("store: memory\n", "engine: temporal needs a store its workers share"),
    ("temporal: {address: 'http://temporal:7233'}\n", "temporal.address 'http://temporal:7233': write HOST:PORT"),
])
def test_validate_says_what_temporal_cannot_use(project_dir: Path, extra: str, said: str) -> None:
    root = write_project(project_dir, {**PAY, "lane.yaml": _with(PAY["lane.yaml"], "engine: temporal\n" + extra)})
    checked = lane("validate", cwd=root)
    assert checked.returncode == 2 and said in checked.stdout and "lane.yaml:" in checked.stdout


def test_the_console_api_starts_and_decides_runs_that_workers_execute(temporal: DevServer, backing: Backing, project_dir: Path,
                                                                      workers: Workers) -> None:
    from test_serve_api import FILES as DESK
    from test_serve_api import start_server, stop_server

    root = _project(project_dir, temporal, DESK, backing)
    token = lane("token", "create", "alice", cwd=root).stdout.strip()
    workers.start()
    proc, client, _ = start_server(root, env={"DESK_KEY": "hunter2-secret"})
    try:
        code, started = client.call("POST", "/api/runs", token, {"runbook": "reply", "inputs": {"to": "ann@example.com"}})
        assert code == 201
        run_id = started["run_id"]
        view = client.until(run_id, token, "paused")
        assert [p["call_id"] for p in view["pending"]] == ["send:1"]
        code, _ = client.call("POST", f"/api/runs/{run_id}/decisions", token, {"approve": True, "patch": {"body": "Hello Ann"}})
        assert code == 200
        done = client.until(run_id, token, "completed")
        assert next(s for s in done["steps"] if s["id"] == "send")["output"] == "sent to ann@example.com"
    finally:
        stop_server(proc)
    assert _history(temporal, run_id) == ("COMPLETED", ["lane-stretch", "lane-stretch"])
