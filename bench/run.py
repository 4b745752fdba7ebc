"""Run lane's benchmark suite (W1-W9, the scale table) and the peer comparison; print a table, write bench/results.json.

    .venv/bin/python bench/run.py            # the full suite (about 8-9 minutes)
    .venv/bin/python bench/run.py --quick    # fewer repetitions, no extra variants (about 3 minutes)
    .venv/bin/python bench/run.py --no-peers # lane only
    .venv/bin/python bench/run.py --only w2,w5
    .venv/bin/python bench/run.py --only w8,w9,scale   # the flow workloads and the scale table

Every workload runs in a fresh subprocess. lane's side runs with this
interpreter (lane's venv); LangGraph's in bench/.peers-venv, created from
bench/peers/requirements.txt when it is missing or the requirements changed.
The machine is shared and noisy, so lane and LangGraph alternate, round after
round, and each figure is the median of all repetitions (each repetition
itself a mean over a batch of runs, after untimed warm-up runs).

W5-W7 are start-up costs: `lane --help`, `Project.load` of runbooks of 10, 100
and 1,000 steps, and the CPU time of `import lane.project` beside the peers'
imports (LangGraph, pydantic-ai, openai-agents, all in the peers venv), each
in fresh processes.

W8 is a fan-out (a for_each over 1,000 items, each one agent turn with a tool
call; LangGraph: `Send` to a subgraph), W9 1,000 concurrent W2 runs against a
model that waits 50 ms per answer, and the scale table the cost of one step
(or tool round trip) in runs of 10 to 1,000 steps (20 to 1,000 tool calls).

Targets are reported as pass/fail; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
PEERS_VENV = BENCH / ".peers-venv"
REQUIREMENTS = PEERS / "requirements.txt"
LANE_BENCH = BENCH / "lane_bench.py"
PEER_BENCH = PEERS / "langgraph_bench.py"

sys.path.insert(0, str(BENCH))
import import_cost  # noqa: E402  (bench/import_cost.py: fresh-process import timing, -X importtime by package)

TARGETS = {  # key: (comparison, value, text)
    "w2": ("<=", 300.0, "<= 300 us/step"),
    "w3": ("<=", 400.0, "<= 400 us/round trip"),
    "w4": (">=", 500.0, ">= 500 runs/s"),
    "w4_rss": ("<", 200.0, "< 200 MB"),
    "w5": ("<", 80.0, "< 80 ms"),
    "w6": ("<=", 500.0, "<= 500 ms"),
    "w7": ("<=", 150.0, "<= 150 ms CPU"),
    "w8": ("<=", 300.0, "<= 300 us/item"),
    "w9": ("<=", 1.5, "<= 1.5x ideal"),
}
FASTER_THAN_PEER = {"w8": 5.0}  # target key -> lane at least this many times faster than LangGraph (with peers)
WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "scale")
RUN_ORDER = ("w1", "w2", "w3", "w4", "w6", "w8", "w9", "scale")  # the workloads run as jobs (W5 and W7 are measured apart)
SCALE_STEPS = (10, 100, 1000)  # scale table: steps of a W2 chain
SCALE_CALLS = (20, 200, 1000)  # scale table: tool calls of a W3 agent step
W6_STEPS = (10, 100, 1000)  # runbook lengths for Project.load; the target is on the longest
IMPORTS = {  # W7: key -> (venv, module); lane's in lane's venv, the peers' in bench/.peers-venv
    "lane.w7": ("lane", "lane.project"),
    "lane.w7_package": ("lane", "lane"),
    "lane.w7_cli": ("lane", "lane.cli.app"),
    "langgraph.w7": ("peers", "langgraph.graph"),
    "pydantic_ai.w7": ("peers", "pydantic_ai"),
    "openai_agents.w7": ("peers", "agents"),
}
PUBLISHED = {  # LangGraph 1.2 with SQLite, as published (context only; not measured here)
    "w2": "1,237 us/step", "w3": "1,114 us/round trip", "w4": "178 runs/s", "w4_rss": "125 MB", "w5": "457 ms (import)",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- environments --------------------------------------------------------------------------


def lane_executable() -> Path:
    """The `lane` entry point of the venv running this script (.venv/bin/lane)."""
    for candidate in (Path(sys.executable).parent / "lane", ROOT / ".venv" / "bin" / "lane"):
        if candidate.exists():
            return candidate
    raise SystemExit("no `lane` entry point beside this Python; run with lane's venv: .venv/bin/python bench/run.py")


def peers_python() -> Path:
    """bench/.peers-venv's Python, creating the venv (or reinstalling) when requirements.txt changed."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    log(f"creating {PEERS_VENV.relative_to(ROOT)} from {REQUIREMENTS.relative_to(ROOT)} ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted + "\n")
    return python


PEER_DISTRIBUTIONS = ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "langchain-core",
                      "aiosqlite", "pydantic-ai-slim", "openai-agents", "pydantic")


def peer_versions() -> dict[str, str]:
    """The peers venv's versions of the packages compared."""
    code = f"import json; from importlib.metadata import version; print(json.dumps({{p: version(p) for p in {PEER_DISTRIBUTIONS!r}}}))"
    return run_json([str(peers_python()), "-c", code])


def run_json(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pycache_env(cache: str) -> dict[str, str]:
    """This environment with a warm bytecode cache kept in `cache`, as an installed package has; nothing written into src/."""
    return import_cost.cached_env(cache)


# -- the plan ------------------------------------------------------------------------------


def plan(quick: bool, peers: bool, only: set[str]) -> tuple[list[tuple[str, str, list[str]]], int, int]:
    """Jobs as (key, workload, argv), run once per round; and the rounds for W1-W3 and W4."""
    reps = "2" if quick else "3"
    lane_py, lane_args = [sys.executable, str(LANE_BENCH)], ["--reps", reps]
    jobs: list[tuple[str, str, list[str]]] = [
        ("lane.w1", "w1", [*lane_py, "w1", *lane_args, "--runs", "10" if quick else "50", "--warmup", "20"]),
        ("lane.w2", "w2", [*lane_py, "w2", *lane_args, "--runs", "10" if quick else "50", "--warmup", "20"]),
        ("lane.w3", "w3", [*lane_py, "w3", *lane_args, "--runs", "5" if quick else "20", "--warmup", "10"]),
        ("lane.w4", "w4", [*lane_py, "w4", "--warmup", "5"]),
    ]
    if not quick:
        jobs += [
            ("lane.w2_fsync", "w2", [*lane_py, "w2-full", *lane_args, "--runs", "30", "--warmup", "10"]),
            ("lane.w3_async_tool", "w3", [*lane_py, "w3-async", *lane_args, "--runs", "20", "--warmup", "10"]),
        ]
    for steps in W6_STEPS:  # a fresh process each: the first load is what `lane run` pays
        loads = "2" if steps >= 1000 else "5"
        jobs.append((f"lane.w6_{steps}", "w6", [*lane_py, "w6", "--steps", str(steps), "--loads", loads]))
    jobs += [
        ("lane.w8", "w8", [*lane_py, "w8", "--reps", reps, "--items", "1000", "--warmup-items", "50"]),
        ("lane.w9", "w9", [*lane_py, "w9", "--concurrency", "1000", "--latency", "0.05", "--warmup", "20", "--alone", "50"]),
    ]
    for kind, lengths, unit_runs in (("steps", SCALE_STEPS, 200), ("calls", SCALE_CALLS, 400)):
        for n in lengths:  # about the same work per repetition: `unit_runs` steps or round trips, at least one run
            runs = max(1, (unit_runs // 4 if quick else unit_runs) // n)
            jobs.append((f"lane.scale_{kind}_{n}", "scale", [*lane_py, f"scale-{kind}", "--length", str(n), *lane_args,
                                                           "--runs", str(runs), "--warmup", str(max(1, 40 // n))]))
    if peers:
        peer_py = [str(peers_python()), str(PEER_BENCH)]
        jobs += [
            ("langgraph.w2", "w2", [*peer_py, "w2", *lane_args, "--runs", "5" if quick else "20", "--warmup", "10"]),
            ("langgraph.w3", "w3", [*peer_py, "w3", *lane_args, "--runs", "2" if quick else "10", "--warmup", "5"]),
            ("langgraph.w4", "w4", [*peer_py, "w4", "--warmup", "5"]),
        ]
        if not quick:
            jobs += [
                ("langgraph.w2_sync_normal", "w2", [*peer_py, "w2", *lane_args, "--runs", "20", "--warmup", "10", "--synchronous", "normal"]),
                ("langgraph.w2_durability_async", "w2", [*peer_py, "w2", *lane_args, "--runs", "20", "--warmup", "10", "--durability", "async"]),
                ("langgraph.w4_durability_async", "w4", [*peer_py, "w4", "--warmup", "5", "--durability", "async"]),
            ]
        jobs += [  # about 10 s per 1,000-item invocation: one timed invocation per process
            ("langgraph.w8", "w8", [*peer_py, "w8", "--reps", "1", "--items", "1000", "--warmup-items", "50"]),
            ("langgraph.w9", "w9", [*peer_py, "w9", "--concurrency", "1000", "--latency", "0.05", "--warmup", "5", "--alone", "20"]),
        ]
        if not quick:
            jobs += [
                ("langgraph.w8_durability_async", "w8", [*peer_py, "w8", "--reps", "1", "--items", "1000", "--warmup-items", "50",
                                                         "--durability", "async"]),
                ("langgraph.w9_durability_async", "w9", [*peer_py, "w9", "--concurrency", "1000", "--latency", "0.05", "--warmup", "5",
                                                         "--alone", "20", "--durability", "async"]),
            ]
    jobs = [j for j in jobs if j[1] in only]
    # lane and LangGraph alternate within a workload, so a noisy spell hits both sides alike
    order = {w: i for i, w in enumerate(RUN_ORDER)}
    jobs.sort(key=lambda j: order[j[1]])
    return jobs, (2 if quick else 3), (1 if quick else 3)


def rounds_of(workload: str, rounds: int, w4_rounds: int, quick: bool) -> int:
    """W4, W8 and W9 (one 1,000-run or 1,000-item figure per process): 3 rounds, 1 with --quick; W6 5 (2)."""
    return w4_rounds if workload in ("w4", "w8", "w9") else (2 if quick else 5) if workload == "w6" else rounds


def measure_startup(quick: bool, peers: bool) -> dict[str, Any]:
    """W5: `lane --help`, the whole process, cold; LangGraph's import and a bare interpreter for context.

    Measured with a warm bytecode cache, as an installed package has: PYTHONPYCACHEPREFIX
    points at a temporary folder (filled by the warm-up runs), so nothing is written into
    the source tree. `lane.w5_env` is the same command in this environment unchanged (where
    PYTHONDONTWRITEBYTECODE=1 and lane's editable sources have no .pyc, every start compiles them).
    """
    n, warm = (7, 2) if quick else (21, 3)
    commands: dict[str, tuple[list[str], bool]] = {
        "lane.w5": ([str(lane_executable()), "--help"], True),
        "lane.w5_env": ([str(lane_executable()), "--help"], False),
        "python.startup": ([sys.executable, "-c", "pass"], True),
    }
    if peers:
        commands["langgraph.w5_import"] = ([str(peers_python()), "-c",
                                            "import langgraph.graph, langgraph.checkpoint.sqlite, langgraph.prebuilt"], True)
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory(prefix="lane-bench-pycache-") as cache:
        envs = {True: pycache_env(cache), False: dict(os.environ)}
        for argv, cached in commands.values():
            for _ in range(warm):
                import_cost.process_cpu(argv, envs[cached])
        for _ in range(n):
            for key, (argv, cached) in commands.items():
                samples[key].append(import_cost.process_cpu(argv, envs[cached]))
    env_note = f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}"
    return {key: {"unit": "ms", "samples": [x["wall_ms"] for x in s], "cpu_samples": [x["cpu_ms"] for x in s], "warmup_runs": warm,
                  "bytecode_cache": "warm (PYTHONPYCACHEPREFIX)" if commands[key][1] else f"as the environment is ({env_note})"}
            for key, s in samples.items()}


def measure_imports(quick: bool, peers: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """W7: CPU time of `import MODULE` in fresh interpreters, lane's and the peers' in turn; and lane.project by package.

    Each sample is one fresh process timing its own import (`time.process_time` around the
    import statement, so the interpreter's start is left out; the whole process's CPU is kept
    too), with a warm bytecode cache. The breakdown is `-X importtime`, median per module.
    """
    n, warm = (7, 2) if quick else (21, 3)
    pythons = {"lane": sys.executable, **({"peers": str(peers_python())} if peers else {})}
    commands = {key: (pythons[venv], module) for key, (venv, module) in IMPORTS.items() if venv in pythons}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory(prefix="lane-bench-pycache-") as cache:
        env = pycache_env(cache)
        for python, module in commands.values():
            for _ in range(warm):
                import_cost.import_cpu(python, module, env)
        for _ in range(n):
            for key, (python, module) in commands.items():
                samples[key].append(import_cost.import_cpu(python, module, env))
        trees = [import_cost.importtime(sys.executable, ["-c", "import lane.project"], env) for _ in range(3 if quick else 7)]
    out = {key: {"unit": "ms", "module": commands[key][1], "venv": IMPORTS[key][0], "warmup_runs": warm,
                 "cpu_samples": [x["cpu_ms"] for x in s], "wall_samples": [x["wall_ms"] for x in s],
                 "process_cpu_samples": [x["process_cpu_ms"] for x in s]} for key, s in samples.items()}
    return out, import_cost.breakdown(trees, top=15)


# -- summary -------------------------------------------------------------------------------


def summarize(raw: dict[str, list[dict[str, Any]]], startup: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, results in raw.items():
        if key.startswith("lane.w6_"):  # one fresh process per result: its first load, then loads again
            first = [r["first_ms"] for r in results]
            first_cpu = [r["first_cpu_ms"] for r in results]
            again = [s for r in results for s in r["samples"][1:]]
            steps = results[0]["steps"]
            out[key] = {"unit": "ms", "steps": steps, "median": statistics.median(first), "min": min(first), "max": max(first),
                        "cpu_median": statistics.median(first_cpu), "again_median": statistics.median(again) if again else None,
                        "us_per_step": statistics.median(first) * 1000 / steps, "samples": first, "cpu_samples": first_cpu,
                        "again_samples": again, "import_cpu_ms": [r["import"]["cpu_ms"] for r in results]}
        elif ".w9" in key:  # one fresh process per result: 1,000 runs at once against a waiting model
            fields = ("seconds", "cpu_seconds", "ideal_seconds", "ratio_to_ideal", "max_in_flight", "cpu_ms_per_run",
                      "cpu_ms_per_run_alone", "peak_rss_mb")
            out[key] = {f: statistics.median(r[f] for r in results) for f in fields}
            out[key].update({f"{f}_samples": [r[f] for r in results] for f in fields})
            out[key].update(concurrency=results[0]["concurrency"], latency_s=results[0]["latency_s"], turns_per_run=results[0]["turns_per_run"])
        elif key.endswith(("w4", "w4_durability_async")):
            rates = [r["runs_per_s"] for r in results]
            cpu = [r["cpu_seconds"] for r in results]
            rss = [r["peak_rss_mb"] for r in results]
            out[key] = {"runs_per_s": statistics.median(rates), "runs_per_s_samples": rates,
                        "peak_rss_mb": statistics.median(rss), "peak_rss_mb_max": max(rss), "peak_rss_mb_samples": rss,
                        "cpu_seconds": statistics.median(cpu), "concurrency": results[0]["concurrency"]}
        else:
            samples = [s for r in results for s in r["samples"]]
            cpu = [s for r in results for s in r["cpu_samples"]]
            out[key] = {"unit": "us", "per": results[0]["per"], "median": statistics.median(samples),
                        "min": min(samples), "max": max(samples), "cpu_median": statistics.median(cpu),
                        "samples": samples, "cpu_samples": cpu}
            if "peak_rss_mb" in results[0]:  # W8
                rss = [r["peak_rss_mb"] for r in results]
                out[key].update(peak_rss_mb=statistics.median(rss), peak_rss_mb_samples=rss, items=results[0]["items"])
            if "length" in results[0]:  # the scale table
                out[key]["length"] = results[0]["length"]
    for key, data in startup.items():
        if "cpu_samples" in data and "wall_samples" in data:  # W7: the figure is CPU time
            out[key] = {"unit": "ms", "module": data["module"], "venv": data["venv"], "median": statistics.median(data["cpu_samples"]),
                        "min": min(data["cpu_samples"]), "max": max(data["cpu_samples"]), "wall_median": statistics.median(data["wall_samples"]),
                        "process_cpu_median": statistics.median(data["process_cpu_samples"]), "samples": data["cpu_samples"],
                        "wall_samples": data["wall_samples"], "process_cpu_samples": data["process_cpu_samples"]}
            continue
        out[key] = {"unit": "ms", "median": statistics.median(data["samples"]), "min": min(data["samples"]),
                    "max": max(data["samples"]), "cpu_median": statistics.median(data["cpu_samples"]),
                    "bytecode_cache": data["bytecode_cache"], "samples": data["samples"], "cpu_samples": data["cpu_samples"]}
    return out


def verdict(key: str, value: float | None, peer: float | None = None) -> str | None:
    """pass or FAIL against TARGETS[key]; with FASTER_THAN_PEER[key] and a peer figure, both must hold (the miss is named)."""
    if value is None or key not in TARGETS:
        return None
    op, limit, _ = TARGETS[key]
    ok = value <= limit if op == "<=" else value >= limit if op == ">=" else value < limit
    if key in FASTER_THAN_PEER and peer is not None:
        faster = peer / value >= FASTER_THAN_PEER[key]
        missed = [what for what, fine in ((TARGETS[key][2], ok), (f">= {FASTER_THAN_PEER[key]:g}x faster", faster)) if not fine]
        return "pass" if not missed else f"FAIL ({'; '.join(missed)})"
    return "pass" if ok else "FAIL"


def target_text(key: str) -> str:
    text = TARGETS[key][2]
    return text + (f", >= {FASTER_THAN_PEER[key]:g}x faster than LG" if key in FASTER_THAN_PEER else "")


def rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: lane's figure, LangGraph's, lane/LangGraph, the target."""

    def med(key: str, field: str = "median") -> float | None:
        return summary.get(key, {}).get(field)

    spec = [
        # label, target key, lane key, lane field, peer key, peer field, unit, lower is better
        ("W1 10 steps, memory store", None, "lane.w1", "median", None, None, "us/step", True),
        ("W2 10 steps, SQLite journal", "w2", "lane.w2", "median", "langgraph.w2", "median", "us/step", True),
        ("W3 20 tool round trips, SQLite", "w3", "lane.w3", "median", "langgraph.w3", "median", "us/round trip", True),
        ("W4 1,000 concurrent W2 runs", "w4", "lane.w4", "runs_per_s", "langgraph.w4", "runs_per_s", "runs/s", False),
        ("W4 peak RSS", "w4_rss", "lane.w4", "peak_rss_mb", "langgraph.w4", "peak_rss_mb", "MB", True),
        ("W5 lane --help (LangGraph: import)", "w5", "lane.w5", "median", "langgraph.w5_import", "median", "ms", True),
        ("W6 Project.load, 10 steps", None, "lane.w6_10", "median", None, None, "ms", True),
        ("W6 Project.load, 100 steps", None, "lane.w6_100", "median", None, None, "ms", True),
        ("W6 Project.load, 1,000 steps", "w6", "lane.w6_1000", "median", None, None, "ms", True),
        ("W7 import lane.project, CPU (LangGraph: langgraph.graph)", "w7", "lane.w7", "median", "langgraph.w7", "median", "ms", True),
        ("W8 fan-out, 1,000 items (1 turn + 1 tool call each), SQLite", "w8", "lane.w8", "median", "langgraph.w8", "median", "us/item", True),
        ("W8 peak RSS", None, "lane.w8", "peak_rss_mb", "langgraph.w8", "peak_rss_mb", "MB", True),
        ("W9 1,000 concurrent W2 runs, model waits 50 ms", None, "lane.w9", "seconds", "langgraph.w9", "seconds", "s", True),
        ("W9 ideal: 10 x 50 ms + 1,000 x CPU of one run", None, "lane.w9", "ideal_seconds", "langgraph.w9", "ideal_seconds", "s", True),
        ("W9 wall / ideal", "w9", "lane.w9", "ratio_to_ideal", "langgraph.w9", "ratio_to_ideal", "x", True),
        ("W9 most model requests in flight at once", None, "lane.w9", "max_in_flight", "langgraph.w9", "max_in_flight", "requests", False),
        # extra variants: the same workloads under other settings, for context
        ("W2 both fsync each commit (lane ?synchronous=full)", None, "lane.w2_fsync", "median", "langgraph.w2", "median", "us/step", True),
        ("W2 neither fsyncs (LangGraph synchronous=NORMAL)", None, "lane.w2", "median", "langgraph.w2_sync_normal", "median", "us/step", True),
        ("W2 LangGraph's default durability=async", None, "lane.w2", "median", "langgraph.w2_durability_async", "median", "us/step", True),
        ("W3 lane with an async def tool", None, "lane.w3_async_tool", "median", "langgraph.w3", "median", "us/round trip", True),
        ("W4 LangGraph's default durability=async", None, "lane.w4", "runs_per_s", "langgraph.w4_durability_async", "runs_per_s", "runs/s", False),
        ("W4 peak RSS, LangGraph durability=async", None, "lane.w4", "peak_rss_mb", "langgraph.w4_durability_async", "peak_rss_mb", "MB", True),
        ("W8 LangGraph's default durability=async", None, "lane.w8", "median", "langgraph.w8_durability_async", "median", "us/item", True),
        ("W9 LangGraph's default durability=async", None, "lane.w9", "seconds", "langgraph.w9_durability_async", "seconds", "s", True),
        ("W9 wall / ideal, LangGraph durability=async", None, "lane.w9", "ratio_to_ideal", "langgraph.w9_durability_async", "ratio_to_ideal", "x", True),
        ("W9 in flight, LangGraph durability=async", None, "lane.w9", "max_in_flight", "langgraph.w9_durability_async", "max_in_flight", "requests", False),
        ("W5 lane --help, no .pyc for lane (this env)", None, "lane.w5_env", "median", None, None, "ms", True),
        ("python -c pass (interpreter floor)", None, "python.startup", "median", None, None, "ms", True),
    ]
    # rows shown without their peer (--no-peers), and CPU columns that are not the figure's own unit
    alone = {"W8 peak RSS", "W9 1,000 concurrent W2 runs, model waits 50 ms", "W9 ideal: 10 x 50 ms + 1,000 x CPU of one run",
             "W9 most model requests in flight at once"}
    cpu_of = {"W9 1,000 concurrent W2 runs, model waits 50 ms": ("cpu_seconds", "s"),
              "W9 ideal: 10 x 50 ms + 1,000 x CPU of one run": ("cpu_ms_per_run_alone", "ms/run"),
              "W9 LangGraph's default durability=async": ("cpu_seconds", "s")}
    table = []
    for label, target, lane_key, lane_field, peer_key, peer_field, unit, lower in spec:
        lane_value = med(lane_key, lane_field)
        peer_value = med(peer_key, peer_field) if peer_key else None
        if lane_value is None or (peer_key and peer_value is None and target is None and label not in alone):
            continue
        ratio = lane_value / peer_value if peer_value and unit != "x" and "ideal" not in label else None  # no ratio of ideals
        if ratio is None:
            says = ""
        elif lower:
            says = f"{1 / ratio:.1f}x faster" if unit != "MB" else f"{1 / ratio:.1f}x less"
            if ratio > 1:
                says = f"{ratio:.1f}x {'slower' if unit != 'MB' else 'more'}"
        else:
            says = f"{ratio:.1f}x more" if ratio >= 1 else f"{1 / ratio:.1f}x fewer"
        cpu_field = "cpu_median" if unit.startswith("us") or unit == "ms" else "cpu_seconds" if unit == "runs/s" else None
        cpu_unit = "ms/run" if unit == "runs/s" else unit if cpu_field else None
        if label in cpu_of:
            cpu_field, cpu_unit = cpu_of[label]
        lane_cpu = med(lane_key, cpu_field) if cpu_field else None
        peer_cpu = med(peer_key, cpu_field) if cpu_field and peer_key else None
        if unit == "runs/s":  # CPU ms per run
            lane_cpu = lane_cpu * 1000 / summary[lane_key]["concurrency"] if lane_cpu is not None else None
            peer_cpu = peer_cpu * 1000 / summary[peer_key]["concurrency"] if peer_cpu is not None else None
        table.append({
            "workload": label, "unit": unit, "lane": lane_value, "langgraph": peer_value,
            "lane_cpu": lane_cpu, "langgraph_cpu": peer_cpu, "cpu_unit": cpu_unit, "ratio_lane_to_langgraph": ratio,
            "ratio_says": says, "target": target_text(target) if target else None,
            "verdict": verdict(target, lane_value, peer_value) if target else None,
            "langgraph_published": PUBLISHED.get(target) if target else None, "lane_key": lane_key, "langgraph_key": peer_key,
        })
    return table


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("runs/s", "requests") or unit.startswith("us"):
        return f"{value:,.0f}"
    if unit in ("s", "x"):
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def print_table(table: list[dict[str, Any]]) -> None:
    headers = ["workload", "unit", "lane", "LangGraph", "lane/LG", "", "target", "", "LG published", "CPU: lane", "LG"]
    cpu = lambda v, r: "" if v is None else f"{v:,.2f}" if r["cpu_unit"] == "s" else f"{v:,.0f}" if r["cpu_unit"] not in ("ms/run", "ms") else f"{v:,.1f}"  # noqa: E731
    lines = [[r["workload"], r["unit"], fmt(r["lane"], r["unit"]), fmt(r["langgraph"], r["unit"]),
              f"{r['ratio_lane_to_langgraph']:.2f}" if r["ratio_lane_to_langgraph"] else "-", r["ratio_says"],
              r["target"] or "", r["verdict"] or "", r["langgraph_published"] or "",
              cpu(r["lane_cpu"], r), cpu(r["langgraph_cpu"], r)] for r in table]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=False)]
    for i, line in enumerate([headers, *lines]):
        print("  ".join(str(x).ljust(w) if j in (0, 1, 5, 6, 7, 8) else str(x).rjust(w) for j, (x, w) in enumerate(zip(line, widths, strict=False))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_startup(summary: dict[str, Any], breakdown: dict[str, Any] | None) -> None:
    """W6 per step (linear if flat) and W7 with every peer, then where lane.project's import time goes."""
    loads = [summary[f"lane.w6_{n}"] for n in W6_STEPS if f"lane.w6_{n}" in summary]
    if loads:
        print("\nW6 Project.load, first load in a fresh process (median): "
              + "; ".join(f"{d['steps']:,} steps {d['median']:,.1f} ms = {d['us_per_step']:,.0f} us/step" for d in loads)
              + ". Loaded again in the same process: " + "; ".join(f"{d['again_median']:,.1f} ms" for d in loads if d["again_median"]))
    imports = [(k, summary[k]) for k in IMPORTS if k in summary]
    if imports:
        print("\nW7 imports, fresh interpreters, warm bytecode cache (median ms):")
        print(f"  {'import':<22} {'venv':<6} {'CPU':>8} {'wall':>8} {'process CPU':>12}")
        for _, d in imports:
            print(f"  {d['module']:<22} {d['venv']:<6} {d['median']:>8,.1f} {d['wall_median']:>8,.1f} {d['process_cpu_median']:>12,.1f}")
    if breakdown:
        print(f"\nimport lane.project by package (-X importtime, median of {breakdown['runs']} runs, cumulative ms; bench/import_cost.py for more):")
        for g in breakdown["packages"][:10]:
            print(f"  {g['cum_us'] / 1000:>7,.1f}  {g['package']:<18} first imported by {g['imported_by']}")


def scale_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The scale table: lane's cost of one step (one tool round trip) against the run's length, SQLite journal."""
    out = []
    for kind, lengths, what, per in (("steps", SCALE_STEPS, "agent steps in a runbook (W2's chain)", "step"),
                                     ("calls", SCALE_CALLS, "tool calls of one agent step (W3's agent)", "round trip")):
        found = [summary[f"lane.scale_{kind}_{n}"] for n in lengths if f"lane.scale_{kind}_{n}" in summary]
        for d in found:
            out.append({"run": f"{d['length']:,} {what}", "length": d["length"], "unit": f"us/{per}", "median": d["median"],
                        "cpu_median": d["cpu_median"], "to_shortest": d["median"] / found[0]["median"],
                        "cpu_to_shortest": d["cpu_median"] / found[0]["cpu_median"]})
    return out


def print_scale(scale: list[dict[str, Any]]) -> None:
    if not scale:
        return
    print("\nScale: lane's cost of one step against the run's length (SQLite journal, median; x shortest: against the shortest run):")
    width = max(len(r["run"]) for r in scale)
    print(f"  {'run':<{width}}  {'unit':<13} {'wall':>6} {'CPU':>6} {'wall x shortest':>16} {'CPU x shortest':>15}")
    for r in scale:
        print(f"  {r['run']:<{width}}  {r['unit']:<13} {r['median']:>6,.0f} {r['cpu_median']:>6,.0f}"
              f" {r['to_shortest']:>16.2f} {r['cpu_to_shortest']:>15.2f}")


def machine(peers: dict[str, str] | None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout
    except OSError:
        commit, dirty = "", ""
    return {
        "git": {"commit": commit or None, "src_changed_files": len(dirty.splitlines())},
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
        "lane": version("lane"), "sqlite": sqlite3.sqlite_version, "peers": peers or {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and no extra variants")
    parser.add_argument("--no-peers", action="store_true", help="lane only: no LangGraph, no peers venv")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated workloads, of {','.join(WORKLOADS)} (default: all)")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    args = parser.parse_args()
    only = {w.strip().lower() for w in args.only.split(",") if w.strip()}
    if only - set(WORKLOADS):
        parser.error(f"unknown workload(s) {', '.join(sorted(only - set(WORKLOADS)))}; known: {', '.join(WORKLOADS)}")
    peers = not args.no_peers

    began = time.time()
    jobs, rounds, w4_rounds = plan(args.quick, peers, only)
    raw: dict[str, list[dict[str, Any]]] = {}
    for workload in RUN_ORDER:
        group = [j for j in jobs if j[1] == workload]
        for r in range(rounds_of(workload, rounds, w4_rounds, args.quick) if group else 0):
            for key, _, argv in group:
                log(f"[{workload} round {r + 1}] {key}")
                raw.setdefault(key, []).append(run_json(argv))
    startup = {}
    if "w5" in only:
        log("[w5] startup")
        startup = measure_startup(args.quick, peers)
    breakdown = None
    if "w7" in only:
        log("[w7] imports")
        imports, breakdown = measure_imports(args.quick, peers)
        startup.update(imports)

    summary = summarize(raw, startup)
    table = rows(summary)
    scale = scale_rows(summary)
    versions = peer_versions() if peers else None
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.time() - began, 1), "quick": args.quick,
        "machine": machine(versions), "table": table, "scale": scale, "summary": summary, "w7_lane_project_by_package": breakdown,
        "targets": {k: v[2] for k, v in TARGETS.items()}, "langgraph_published": PUBLISHED,
        "settings": {key: argv[2:] for key, _, argv in jobs},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    print(f"lane {m['lane']} ({m['git']['commit']}, {m['git']['src_changed_files']} uncommitted files in src/)"
          f" | Python {m['python']} | SQLite {m['sqlite']} | {m['nproc']} CPUs: {m['cpu']}"
          + (f" | langgraph {m['peers'].get('langgraph')}, pydantic-ai {m['peers'].get('pydantic-ai-slim')},"
             f" openai-agents {m['peers'].get('openai-agents')}" if m["peers"] else ""))
    print_table(table)
    print_startup(summary, breakdown)
    print_scale(scale)
    print(f"\n{len(table)} rows in {result['seconds']} s. Figures are wall-clock medians; lane/LG < 1 means lane is faster"
          " (or smaller), except runs/s where > 1 is better. CPU columns: process CPU time in the same unit"
          " (W4: CPU ms per run; W9: CPU s of the 1,000 runs, and for its ideal one run's CPU ms),"
          " steadier than wall time on a busy machine.")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
