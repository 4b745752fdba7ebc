"""Load on `lane serve`'s HTTP API: N runs started and N approvals made through it, at once.

    .venv/bin/python bench/serve_load.py [--runs N] [--clients C] [--rate R] [--quick] [--profile FILE]

Writes a throw-away project into a temporary folder (one agent step on the
scripted model, then a tool step `outbox.send` of effect `external` that the
human role `lead` must approve; one person, alice, holds `lead`), creates
alice's token with `lane token create alice`, and starts a real `lane serve` on
a free loopback port. Then C client threads POST /api/runs N times, while C
other threads approve each run through POST /api/runs/ID/decisions as soon as
the event stream (GET /api/events) says it paused, while starts go on. Each
starter sends its next start at once, or with --rate R on a schedule of R
starts per second (all at once, the server reaches the first pauses near the
end of the starts; paced, nearly every decision overlaps later starts). The
bench waits until the stream says every run completed.

Measured: runs per second (the N completed runs over the wall time from the
first start sent to the last completion seen), the latency of a start and of a
decision (p50, p95, max), the time from a decision sent to its run's
completion, and the server process's CPU time and peak RSS.

Checked after the timing: every started run is listed by GET /api/runs and
completed (none lost), the tool appended exactly one line per run to sent.log
with the run's own inputs (none executed twice or never), and each run's
journal (GET /api/runs/ID) shows one execution of the call. No request may be
answered with an error. The table goes to stderr, a JSON summary to stdout;
the exit status is 1 if anything is lost, doubled or refused.

--profile FILE runs the server under cProfile and writes its profile to FILE
(the event loop's thread only; sync tools run on threads of their own).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

FILES = {
    "lane.yaml": """
        project: serve-load
        models: {default: scripted:model.yaml}
        roles:
          lead: {kind: human}
          writer: {kind: agent}
        toolsets:
          outbox: {python: tools/outbox.py}
        people:
          alice: {roles: [lead]}
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: auto
        ---
        You write.
    """,
    "tools/outbox.py": """
        from pathlib import Path

        from lane import ToolContext, tool

        SENT = Path(__file__).resolve().parent.parent / "sent.log"


        @tool(effect="external")
        def send(to: str, body: str, ctx: ToolContext) -> str:
            '''Send a reply: one line in sent.log per call.'''
            with SENT.open("a") as log:  # one short write in append mode: lines from parallel calls do not mix
                log.write(f"{ctx.run_id} {ctx.call_id} {ctx.idempotency_key} {to}\\n")
            return f"sent to {to}"
    """,
    "model.yaml": """
        draft:
          - output: {body: "Hello"}
    """,
    "runbooks/reply.yaml": """
        runbook: reply
        approver: lead
        inputs: {type: object, properties: {to: {type: string}}, required: [to]}
        steps:
          - {id: draft, agent: writer, goal: Write., output: {type: object, properties: {body: {type: string}}, required: [body]}}
          - {id: send, tool: outbox.send, args: {to: "${{ inputs.to }}", body: "${{ steps.draft.output.body }}"}}
    """,
}
CALL = "send:1"  # the call each run waits on
LANE = [sys.executable, "-m", "lane"]


def write_project(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect(base: str, token: str, **options: Any) -> httpx2.Client:
    return httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60, **options)


class Server:
    """`lane serve` in a subprocess on a free loopback port; what it prints goes to serve.log in the project."""

    def __init__(self, root: Path, profile: Path | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = root / "serve.log"
        python = [sys.executable, "-m", "cProfile", "-o", str(profile.resolve())] if profile else [sys.executable]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([*python, "-m", "lane", "serve", "--port", str(self.port)], cwd=root,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx2.get(self.base + "/api/openapi.json", timeout=5).raise_for_status()
                return
            except httpx2.HTTPError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"lane serve did not answer:\n{self.log.read_text()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down, then re-raises it, and cProfile writes its file
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Timing:
    """One run, seen from the clients (time.perf_counter)."""

    index: int = -1
    start_sent: float | None = None
    start_answered: float | None = None
    paused: float | None = None
    decision_sent: float | None = None
    decision_answered: float | None = None
    completed: float | None = None
    ended_as: str | None = None  # a status other than completed that ended the run (failed, rejected, ...)


@dataclass
class Load:
    """The clients: a pool that starts runs, a pool that decides, and one reader of the event stream."""

    base: str
    token: str
    clients: int
    rate: float | None = None  # starts per second, paced; None: each starter thread starts its next run at once
    runs: dict[str, Timing] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.began = 0.0
        self.changed = threading.Condition(self.lock)
        self.starters = ThreadPoolExecutor(self.clients, thread_name_prefix="start")
        self.deciders = ThreadPoolExecutor(self.clients, thread_name_prefix="decide")
        # one client for every thread (it is thread-safe): building one costs about 30 ms of CPU, its TLS context
        self.http = connect(self.base, self.token, limits=httpx2.Limits(max_connections=2 * self.clients + 1))  # and the event stream

    def timing(self, run_id: str) -> Timing:
        return self.runs.setdefault(run_id, Timing())  # the stream may name a run before its start is answered

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any, float, float]:
        sent = time.perf_counter()
        try:
            answer = self.http.post(path, json=body)
        except httpx2.HTTPError as exc:
            return 0, {"error": f"{type(exc).__name__}: {exc}"}, sent, time.perf_counter()
        return answer.status_code, answer.json() if answer.content else None, sent, time.perf_counter()

    def start(self, index: int) -> None:
        if self.rate:
            time.sleep(max(0.0, self.began + index / self.rate - time.perf_counter()))
        code, data, sent, answered = self.post("/api/runs", {"runbook": "reply", "inputs": {"to": f"c{index}@example.com"}})
        with self.lock:
            if code != 201:
                self.errors.append(f"POST /api/runs #{index}: {code} {data}")
                return
            t = self.timing(data["run_id"])
            t.index, t.start_sent, t.start_answered = index, sent, answered

    def decide(self, run_id: str) -> None:
        code, data, sent, answered = self.post(f"/api/runs/{run_id}/decisions", {"approve": True, "call": CALL})
        with self.lock:
            if code != 200:
                self.errors.append(f"POST /api/runs/{run_id}/decisions: {code} {data}")
                return
            t = self.timing(run_id)
            t.decision_sent, t.decision_answered = sent, answered

    def on_status(self, run_id: str, status: str, at: float) -> None:
        with self.lock:
            t = self.timing(run_id)
            if status == "paused" and t.paused is None:
                t.paused = at
                self.deciders.submit(self.decide, run_id)
            elif status == "paused" and t.decision_sent is not None:
                self.errors.append(f"run {run_id}: paused again after its decision")
            elif status == "completed" and t.completed is None:
                t.completed = at
            elif status not in ("running", "paused", "completed"):
                t.ended_as = status
                self.errors.append(f"run {run_id}: {status}")
            self.changed.notify_all()

    def listen(self, ready: threading.Event) -> None:
        """Read GET /api/events until the process ends: every `status` event, with when it arrived."""
        try:
            with self.http.stream("GET", "/api/events", timeout=httpx2.Timeout(60, read=None)) as stream:
                for line in stream.iter_lines():
                    ready.set()  # the first line is the stream's greeting: it is subscribed
                    if line.startswith("data: "):
                        event = json.loads(line[len("data: "):])
                        if event["type"] == "status":
                            self.on_status(event["run_id"], event["status"], time.perf_counter())
        except httpx2.HTTPError:
            pass  # the server stopped: the stream ends with it

    def drive(self, n: int, stall: float) -> tuple[float, float]:
        """Start n runs and approve each; wall time from the first start to the last completion (or the stall)."""
        ready = threading.Event()
        threading.Thread(target=self.listen, args=(ready,), daemon=True).start()
        if not ready.wait(30):
            raise SystemExit("GET /api/events sent nothing in 30 s")
        began = self.began = time.perf_counter()
        starts = [self.starters.submit(self.start, i) for i in range(n)]
        wait(starts)
        with self.changed:
            done, progressed = -1, time.monotonic()
            while not self._all_done(n):
                now_done = sum(t.completed is not None for t in self.runs.values())
                if now_done != done:
                    done, progressed = now_done, time.monotonic()
                elif time.monotonic() - progressed > stall:
                    break  # nothing completed for `stall` seconds: what is missing is reported as lost
                self.changed.wait(1)
        self.deciders.shutdown(wait=True)
        self.starters.shutdown(wait=True)
        ends = [t.completed for t in self.runs.values() if t.completed is not None]
        return began, max(ends, default=time.perf_counter())

    def _all_done(self, n: int) -> bool:
        started = sum(t.index >= 0 for t in self.runs.values())
        return started + len(self.errors) >= n and all(t.completed or t.ended_as for t in self.runs.values())

    def close(self) -> None:
        self.http.close()


def check(load: Load, root: Path, n: int) -> dict[str, Any]:
    """What a user would notice: lost runs, runs executed twice or never, refused requests."""
    listed = {r["run_id"]: r["status"] for r in load.http.get("/api/runs").json()}
    executions = {}
    for run_id in load.runs:
        view = load.http.get(f"/api/runs/{run_id}").json()
        calls = [c for s in view.get("steps", []) if s["id"] == "send" for c in s.get("tool_calls", [])]
        executions[run_id] = sum(len(c.get("executions", [])) for c in calls)
    lines = [line.split() for line in (root / "sent.log").read_text().splitlines()] if (root / "sent.log").exists() else []
    per_run = Counter(line[0] for line in lines)
    keys = Counter(line[2] for line in lines)
    wrong_inputs = [line[0] for line in lines if line[0] in load.runs and line[3] != f"c{load.runs[line[0]].index}@example.com"]
    started = {run_id for run_id, t in load.runs.items() if t.index >= 0}
    return {
        "started": len(started),
        "completed": sum(status == "completed" for status in listed.values()),
        "lost": sorted(started - {run_id for run_id, status in listed.items() if status == "completed"}),  # started, not completed
        "not_started": n - len(started),
        "unknown_runs": sorted(set(listed) - started),  # runs nobody started through the API
        "executed_twice": sorted(run_id for run_id, count in per_run.items() if count > 1),
        "never_executed": sorted(started - set(per_run)),
        "duplicate_keys": sorted(key for key, count in keys.items() if count > 1),
        "wrong_inputs": sorted(wrong_inputs),
        "journal_not_one_execution": sorted(run_id for run_id, count in executions.items() if count != 1),
        "tool_calls": len(lines),
        "errors": load.errors[:20],
        "error_count": len(load.errors),
    }


def percentiles(values: list[float]) -> dict[str, float | int]:
    """p50, p95 and max in milliseconds (nearest rank)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: int) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000, 2)

    return {"n": len(ordered), "p50_ms": rank(50), "p95_ms": rank(95), "max_ms": rank(100)}


def latencies(runs: dict[str, Timing]) -> dict[str, Any]:
    def spans(a: str, b: str) -> list[float]:
        pairs = [(getattr(t, a), getattr(t, b)) for t in runs.values()]
        return [y - x for x, y in pairs if x is not None and y is not None]

    return {
        "start": percentiles(spans("start_sent", "start_answered")),
        "decision": percentiles(spans("decision_sent", "decision_answered")),
        "start_to_paused": percentiles(spans("start_sent", "paused")),
        "paused_to_decision_sent": percentiles(spans("paused", "decision_sent")),
        "decision_to_completed": percentiles(spans("decision_sent", "completed")),
    }


def overlap(runs: dict[str, Timing], began: float) -> dict[str, Any]:
    """How far approvals and starts interleaved: decisions answered before the last start was answered, and when
    (seconds from the first start) the last start was answered and the first pause was seen."""
    last_start = max((t.start_answered for t in runs.values() if t.start_answered), default=began)
    first_pause = min((t.paused for t in runs.values() if t.paused), default=began)
    return {"decisions_before_last_start": sum(1 for t in runs.values() if t.decision_answered and t.decision_answered < last_start),
            "last_start_answered_s": round(last_start - began, 3), "first_pause_seen_s": round(first_pause - began, 3)}


def inventory(load: Load) -> dict[str, float]:
    """GET /api/runs and GET /api/pending once each, with every run in the store."""
    timed = {}
    for path in ("/api/runs", "/api/pending"):
        sent = time.perf_counter()
        load.http.get(path).raise_for_status()
        timed[path] = round((time.perf_counter() - sent) * 1000, 2)
    return timed


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=Path(__file__).parent)
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0], "commit": commit.stdout.strip(),
            "uncommitted_changes": bool(dirty.stdout.strip()), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(summary: dict[str, Any]) -> str:
    lat, ok = summary["latency"], summary["checks"]
    rows = [("runs/s (N completed / first start to last completion)", f"{summary['runs_per_s']:.1f}", f"{summary['wall_s']:.2f} s wall")]
    for name, label in (("start", "POST /api/runs"), ("decision", "POST .../decisions"), ("start_to_paused", "start sent -> paused seen"),
                        ("paused_to_decision_sent", "paused seen -> decision sent"), ("decision_to_completed", "decision sent -> completed seen")):
        p = lat[name]
        rows.append((label, f"p50 {p.get('p50_ms', '-')} ms", f"p95 {p.get('p95_ms', '-')} ms, max {p.get('max_ms', '-')} ms (n={p['n']})"))
    rows += [
        ("server CPU per run", f"{summary['server_cpu_ms_per_run']:.2f} ms", f"peak RSS {summary['server_peak_rss_mb']:.1f} MB"),
        ("client CPU per run", f"{summary['client_cpu_ms_per_run']:.2f} ms", "(the clients share the machine)"),
        ("decisions answered before the last start was", str(summary["interleaved"]["decisions_before_last_start"]),
         f"first pause seen at {summary['interleaved']['first_pause_seen_s']} s, "
         f"last start answered at {summary['interleaved']['last_start_answered_s']} s"),
        ("GET /api/runs, GET /api/pending afterwards", f"{summary['inventory_ms']['/api/runs']} ms", f"{summary['inventory_ms']['/api/pending']} ms"),
        ("completed / started / asked", f"{ok['completed']} / {ok['started']} / {summary['runs']}", ""),
        ("lost, executed twice, never executed", f"{len(ok['lost'])}, {len(ok['executed_twice'])}, {len(ok['never_executed'])}",
         f"{ok['error_count']} errors"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a.ljust(width)}  {b:>18}  {c}" for a, b, c in rows)


def failed(checks: dict[str, Any], n: int) -> bool:
    problems = ("lost", "unknown_runs", "executed_twice", "never_executed", "duplicate_keys", "wrong_inputs", "journal_not_one_execution")
    return any(checks[k] for k in problems) or checks["error_count"] > 0 or checks["started"] != n or checks["completed"] != n


def bench(n: int, clients: int, rate: float | None, stall: float, profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lane-serve-load-") as tmp:
        root = write_project(Path(tmp) / "desk")
        made = subprocess.run([*LANE, "token", "create", "alice"], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if made.returncode != 0:
            raise SystemExit(f"lane token create failed:\n{made.stderr}")
        server = Server(root, profile)
        load = Load(server.base, made.stdout.strip(), clients, rate)
        try:
            cpu0, client0 = server.cpu_seconds(), time.process_time()
            began, ended = load.drive(n, stall)
            cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
            checks, rss, listed = check(load, root, n), server.peak_rss_mb(), inventory(load)
        finally:
            server.stop()  # first: the event stream's reader ends with the server
            load.close()
        completed = sum(t.completed is not None for t in load.runs.values())
        return {"runs": n, "clients": clients, "rate": rate, "wall_s": round(ended - began, 3), "runs_per_s": round(completed / (ended - began), 1),
                "latency": latencies(load.runs), "interleaved": overlap(load.runs, began),
                "server_cpu_ms_per_run": round(cpu / n * 1000, 3), "client_cpu_ms_per_run": round(client_cpu / n * 1000, 3),
                "server_peak_rss_mb": round(rss, 1), "inventory_ms": listed, "checks": checks, "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="runs to start and approve (default 500)")
    parser.add_argument("--quick", action="store_true", help="100 runs, for a short check")
    parser.add_argument("--clients", type=int, default=16, help="threads that start runs, and as many that decide (default 16)")
    parser.add_argument("--rate", type=float, help="pace the starts at this many per second (default: as fast as the starters go)")
    parser.add_argument("--stall", type=float, default=60, help="give up after this many seconds with no run completing (default 60)")
    parser.add_argument("--profile", type=Path, help="run the server under cProfile and write its profile here")
    args = parser.parse_args()
    n = 100 if args.quick else args.runs
    summary = bench(n, args.clients, args.rate, args.stall, args.profile)
    print(table(summary), file=sys.stderr)
    print(json.dumps(summary, indent=1))
    sys.exit(1 if failed(summary["checks"], n) else 0)


if __name__ == "__main__":
    main()
