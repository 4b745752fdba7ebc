"""Faults of a PostgreSQL store, with real `lane` processes and a real server (tests/pg.py).

What a user would notice: PostgreSQL stopped in the middle of a run and started
again a moment later, and the run just goes on; stopped for longer, and the run
stops with one line saying why and what to do, and `lane resume` finishes it
once the database is back; two processes resuming one run at once, and exactly
one executes it. Each time, every effect happens once.

These tests stop and start the session's cluster: every other test's store is
closed by then, and the cluster is running again when each ends.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import LANE, Backing, lane, lane_json, write_project
from lane.errors import RunBusy, StoreUnavailable
from lane.project import Project
from lane.store.owners import process_owner
from lane.store.records import Event, now
from lane.store.url import open_store
from pg import Cluster

FILES = {
    "lane.yaml": """
        project: faults
        roles:
          op: {kind: human}
        toolsets:
          desk: {python: tools/desk.py}
    """,
    "runbooks/file.yaml": """
        runbook: file
        autonomy: auto
        steps:
          - {id: first, tool: desk.file, args: {tag: a}}
          - {id: second, tool: desk.file, args: {tag: b}}
    """,
    "runbooks/race.yaml": """
        runbook: race
        autonomy: ask
        steps:
          - {id: only, tool: desk.file, args: {tag: r}, approver: op}
    """,
    "tools/desk.py": '''
        import os
        import time
        from pathlib import Path

        from lane import tool

        ROOT = Path(__file__).resolve().parent.parent


        @tool(effect="external")
        def file(tag: str) -> dict:
            """File a letter once: it starts, waits for the test's go, then takes effect."""
            with open(ROOT / "effects.log", "a") as log:
                log.write(f"start {tag} {os.getpid()}\\n")
            while not (ROOT / f"go-{tag}").exists():
                time.sleep(0.02)
            with open(ROOT / "effects.log", "a") as log:
                log.write(f"done {tag} {os.getpid()}\\n")
            return {"filed": tag}
    ''',
}


@pytest.fixture
def project(postgres: Cluster, tmp_path: Path) -> Iterator[Path]:
    store = Backing("postgresql", postgres.new_database(), postgres)
    yield write_project(tmp_path / "project", {**FILES, "lane.yaml": store.project_yaml(FILES["lane.yaml"])})
    if not (postgres.data / "postmaster.pid").exists():
        postgres.start()  # a failed test leaves the server as the next test needs it


def effects(root: Path) -> list[str]:
    path = root / "effects.log"
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(what: str, condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not (callable(condition) and condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.05)


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*LANE, *args, "--json"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def test_a_run_waits_through_a_short_stop_of_postgresql_and_goes_on(project: Path, postgres: Cluster) -> None:
    running = start(project, "run", "file")
    wait_for("the first call", lambda: effects(project) == ["start a"])
    postgres.stop("immediate")  # as a crash of the server: no goodbye to its clients
    time.sleep(1)
    postgres.start()
    (project / "go-a").touch()
    (project / "go-b").touch()
    out, err = running.communicate(timeout=120)

    assert running.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    assert effects(project) == ["start a", "done a", "start b", "done b"]


def test_a_run_stopped_by_postgresql_says_why_in_one_line_and_resumes_when_it_is_back(project: Path, postgres: Cluster) -> None:
    running = start(project, "run", "file")
    wait_for("the first call", lambda: effects(project) == ["start a"])
    postgres.stop("immediate")
    (project / "go-a").touch()  # the call takes effect; its result cannot be committed
    out, err = running.communicate(timeout=120)

    assert running.returncode == 1 and "Traceback" not in err, err
    [said] = err.strip().splitlines()
    assert "the store postgresql://lane@127.0.0.1:" in said and "cannot be reached" in said and "lane resume" in said, said
    assert effects(project) == ["start a", "done a"]

    postgres.start()
    [listed] = lane_json("runs", cwd=project)
    assert listed["status"] == "running"  # as committed before the server stopped: nobody executes it now
    resumed = lane("resume", listed["run_id"], "--json", cwd=project)
    assert resumed.returncode == 3, resumed.stderr  # the call in flight took effect or not: a person says which
    [pending] = lane_json("show", listed["run_id"], cwd=project)["pending"]
    assert pending["kind"] == "in_doubt" and pending["args"] == {"tag": "a"}
    told = lane("approve", listed["run_id"], "--call", pending["call_id"], "--result", '{"filed": "a"}', cwd=project)
    assert told.returncode == 0, told.stderr
    (project / "go-b").touch()
    done = lane("resume", listed["run_id"], "--json", cwd=project)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert effects(project) == ["start a", "done a", "start b", "done b"], "nothing executed twice"


def test_two_processes_resuming_one_run_at_once_execute_it_once(project: Path) -> None:
    paused = lane("run", "race", "--json", cwd=project)
    assert paused.returncode == 3, paused.stderr
    run_id = json.loads(paused.stdout)["run_id"]
    assert lane("approve", run_id, cwd=project).returncode == 0

    racers = [start(project, "resume", run_id), start(project, "resume", run_id)]
    wait_for("one to start the call", lambda: effects(project) == ["start r"])
    wait_for("the other to give up", lambda: any(r.poll() is not None for r in racers))
    (project / "go-r").touch()
    results = sorted(((r.communicate(timeout=120), r.returncode) for r in racers), key=lambda result: result[1])

    assert [code for _, code in results] == [0, 1], results
    (won, _), (_, refused) = results[0][0], results[1][0]
    assert json.loads(won)["status"] == "completed"
    assert f"run {run_id} is being executed by process " in refused and "Traceback" not in refused
    assert effects(project) == ["start r", "done r"], "exactly one process executed the call"


def test_a_process_that_lost_its_run_to_another_writes_nothing_more_for_it(project: Path, postgres: Cluster) -> None:
    # its lease session ended (a network cut) while a call ran; another process took the run over meanwhile:
    # the first one stops at its next commit, and does not mark the run failed under the new owner
    url = yaml.safe_load((project / "lane.yaml").read_text())["store"]
    outcome: list[object] = []
    first = Project.load(project)

    def execute() -> None:
        try:
            outcome.append(first.run("file"))
        except Exception as exc:  # noqa: BLE001 - what the caller sees is the test's subject
            outcome.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    other = open_store(url, project)
    try:
        wait_for("the first call", lambda: effects(project) == ["start a"])
        [record] = other.runs()
        postgres.cut_leases(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                other.claim(record.run_id, process_owner("bbbb"))
                break
            except RunBusy:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        (project / "go-a").touch()
        thread.join(60)

        [raised] = outcome
        assert isinstance(raised, RunBusy) and f"run {record.run_id} was taken over by process {process_owner('bbbb')}" in str(raised), raised
        now = other.run(record.run_id)
        assert (now.status, now.owner) == ("running", process_owner("bbbb"))
        journal = [e.type for e in other.events(record.run_id)]
        assert journal[-1] == "tool_started" and "run_failed" not in journal and "tool_finished" not in journal, journal
    finally:
        (project / "go-a").touch()
        thread.join(60)
        first.close()
        other.close()


def test_a_run_stopped_by_an_unreachable_store_can_be_claimed_again_by_the_same_process(postgres: Cluster, tmp_path: Path) -> None:
    # `lane serve` and `lane mcp` live on: once PostgreSQL is back, the run resumes there without a restart
    url = postgres.new_database()
    store = open_store(url, tmp_path)
    try:
        store.create_run("r1", "book", 1, {}, process_owner("aaaa"), first=Event(1, "run_started", None, None, now(), {}))
        postgres.stop("immediate")
        try:
            with pytest.raises(StoreUnavailable):
                store.append("r1", [Event(2, "step_started", "s", None, now(), {})])
        finally:
            postgres.start()
        with pytest.raises(StoreUnavailable, match="run r1 stopped when the store .* could not be reached; `lane resume r1` carries it on"):
            store.append("r1", [Event(2, "step_started", "s", None, now(), {})])  # not without its lease: claimed again first
        store.claim("r1", process_owner("bbbb"))
        assert store.run("r1").owner == process_owner("bbbb")
        store.append("r1", [Event(2, "step_started", "s", None, now(), {})])
    finally:
        store.close()


def test_a_lease_session_closed_by_a_server_restart_is_opened_again_without_an_error(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    store = open_store(url, tmp_path)
    try:
        store.create_run("r1", "book", 1, {}, process_owner("aaaa"))
        store.release("r1", process_owner("aaaa"))
        postgres.stop("fast")
        postgres.start()
        store.create_run("r2", "book", 1, {}, process_owner("aaaa"))  # its lease is taken on a session the restart closed
        store.release("r2", process_owner("aaaa"))
        postgres.stop("fast")
        postgres.start()
        store.claim("r1", process_owner("bbbb"))
        assert [store.run(r).owner for r in ("r1", "r2")] == [process_owner("bbbb"), None]
    finally:
        store.close()


def test_a_long_lived_process_resumes_a_run_the_stopped_database_stopped_without_a_restart(project: Path, postgres: Cluster) -> None:
    # as `lane serve` or `lane mcp`: one Project for the life of the process
    served = Project.load(project)
    outcome: list[object] = []

    def execute() -> None:
        try:
            outcome.append(served.run("file"))
        except Exception as exc:  # noqa: BLE001 - what the caller sees is the test's subject
            outcome.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    try:
        wait_for("the first call", lambda: effects(project) == ["start a"])
        postgres.stop("immediate")
        (project / "go-a").touch()
        thread.join(120)
        [raised] = outcome
        assert isinstance(raised, StoreUnavailable), raised
        postgres.start()

        [record] = served.runs()
        resumed = served.resume(record.run_id)  # the call in flight took effect or not: a person says which
        assert resumed.status == "paused", resumed
        [pending] = resumed.pending
        assert pending.kind == "in_doubt"
    finally:
        (project / "go-a").touch()
        thread.join(60)
        served.close()


def test_the_pool_is_sized_and_its_wait_set_by_the_url(postgres: Cluster) -> None:
    """pool_size and pool_wait are lane's: taken out of the URL before libpq (which would refuse them) reads it."""
    from lane.errors import UsageError
    from lane.store.url import parse_store_url

    url = postgres.new_database()
    joined = "&" if "?" in url else "?"
    store = open_store(f"{url}{joined}pool_size=1&pool_wait=0.5", Path("."))
    try:
        first = store.run  # a call holds the one connection; a second waits 0.5 s for it, then says so
        with store._pool.connection():  # noqa: SLF001 - the pool's only connection, taken by the test
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"no connection free within 0.5 seconds \(pool_size, pool_wait in store:\)"):
                first("nope")
            assert time.monotonic() - started < 5
    finally:
        store.close()
    for bad, said in [("pool_size=0", "pool_size must be a whole number from 1 to 1000"),
                      ("pool_wait=soon", "pool_wait must be seconds from 0.1 to 3600")]:
        with pytest.raises(UsageError, match=said):
            parse_store_url(f"postgresql://lane@127.0.0.1/db?{bad}")


def test_a_commit_for_a_run_whose_owner_changed_writes_nothing_of_it(postgres: Cluster, tmp_path: Path) -> None:
    # The lease came back (the other process let the run go again), but the row says another owner took the run
    # meanwhile: the commit's own check under the row lock refuses it, events, status and all, for every run it
    # carried (a shared commit is all or nothing).
    url = postgres.new_database()
    first, other = open_store(url, tmp_path), open_store(url, tmp_path)
    me = process_owner("aaaa")
    try:
        for run_id in ("r1", "r2", "r3"):
            first.create_run(run_id, "book", 1, {}, me, first=Event(1, "run_started", None, None, now(), {}))
        postgres.cut_leases(url)
        for run_id in ("r1", "r3"):
            other.claim(run_id, process_owner("bbbb"))
            other.release(run_id, process_owner("bbbb"))

        step = Event(2, "step_started", "s", None, now(), {})
        with pytest.raises(RunBusy, match="run r1 was taken over by another process while this process could not reach the store"):
            first.append_many([("r2", [step]), ("r1", [step])])
        with pytest.raises(RunBusy, match="run r1 was taken over"):
            first.append("r1", [step], status="completed", release=True)  # and every later commit for it
        with pytest.raises(RunBusy, match="run r3 was taken over"):
            first.append("r3", [step], status="completed", release=True)  # a commit of one run checks it the same way
        assert [[e.seq for e in other.events(run_id)] for run_id in ("r1", "r2", "r3")] == [[1], [1], [1]]
        assert [(other.run(run_id).status, other.run(run_id).owner) for run_id in ("r1", "r3")] == [("running", None)] * 2

        first.append("r2", [step], status="completed", release=True)  # a run still its own commits as before
        assert [e.seq for e in other.events("r2")] == [1, 2]
        assert (other.run("r2").status, other.run("r2").owner) == ("completed", None)
    finally:
        first.close()
        other.close()


def test_a_pooled_connection_the_server_ended_is_replaced_before_it_is_used(postgres: Cluster, tmp_path: Path) -> None:
    # the pool checks a connection without a round trip (its socket is readable: the server's last words): a
    # terminated session costs the next call nothing
    url = postgres.new_database()
    store = open_store(url, tmp_path)
    try:
        store.create_run("r1", "book", 1, {}, process_owner("aaaa"), first=Event(1, "run_started", None, None, now(), {}))
        database = url.rsplit("/", 1)[1]
        postgres.rows(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND backend_type = 'client backend'")
        time.sleep(0.2)
        store.append("r1", [Event(2, "step_started", "s", None, now(), {})], status="completed", release=True)
        assert [e.seq for e in store.events("r1")] == [1, 2] and store.run("r1").status == "completed"
    finally:
        store.close()
