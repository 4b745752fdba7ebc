"""lane's side of the benchmarks. Run by bench/run.py, one workload per fresh process.

    python bench/lane_bench.py w1|w2|w2-full|w3|w3-async [--reps R] [--runs K] [--warmup W]
    python bench/lane_bench.py w4 [--concurrency N] [--warmup W]
    python bench/lane_bench.py w6 --steps N [--loads L]

Prints one JSON object on stdout. Each project is written into a temporary
folder by bench/projects.py and removed afterwards. The model is the scripted
model (instant canned turns), so every figure is lane's own overhead.

w1..w3 time batches of K runs, one after another in one event loop
(`await project.run_async(...)`), and report for each repetition the mean
microseconds per step (W1/W2) or per tool round trip (W3); run.py takes the
median of the repetitions. w4 times `asyncio.gather` over N concurrent runs.
w6 times `Project.load` of a project whose one runbook has N steps (tool and
check steps: no model), L times in this process; the first load is the one a
fresh `lane run` pays (run.py takes its median over fresh processes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import projects  # noqa: E402  (bench/projects.py, beside this file)

import lane  # noqa: E402

SQLITE = "sqlite:///.lane/lane.db"  # lane's default store
WORKLOADS = {
    # name: (writer, store, runbook, inputs, units per run)
    "w1": (projects.write_chain, "memory", "chain", {"seed": {"n": 0}}, projects.STEPS),
    "w2": (projects.write_chain, SQLITE, "chain", {"seed": {"n": 0}}, projects.STEPS),
    "w2-full": (projects.write_chain, SQLITE + "?synchronous=full", "chain", {"seed": {"n": 0}}, projects.STEPS),
    "w3": (projects.write_counter, SQLITE, "count", {}, projects.CALLS),
    "w3-async": (projects.write_counter, SQLITE, "count", {}, projects.CALLS),
}


def make_project(name: str, root: Path) -> tuple[lane.Project, str, dict, int]:
    writer, store, runbook, inputs, units = WORKLOADS[name]
    kwargs = {"async_tool": True} if name == "w3-async" else {}
    writer(root / name, store=store, **kwargs)
    return lane.Project.load(root / name), runbook, inputs, units


async def _check(project: lane.Project, runbook: str, inputs: dict) -> None:
    """One run, checked: it completed and handed on what the script says."""
    run = await project.run_async(runbook, inputs)
    if run.status != "completed":
        raise SystemExit(f"bench run {run.run_id} ended {run.status}: {run.reason}")
    shown = project.show(run.run_id)
    last = shown["steps"][-1]
    expected = projects.STEPS if runbook == "chain" else projects.CALLS
    if last["output"] != {"n": expected}:
        raise SystemExit(f"bench run {run.run_id}: last output {last['output']!r}, expected {{'n': {expected}}}")


async def sequential(name: str, reps: int, runs: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"lane-bench-{name}-") as tmp:
        project, runbook, inputs, units = make_project(name, Path(tmp))
        with project:
            await _check(project, runbook, inputs)
            for _ in range(warmup):
                await project.run_async(runbook, inputs)
            samples, cpu = [], []
            for _ in range(reps):
                began, cpu_began = time.perf_counter(), time.process_time()
                for _ in range(runs):
                    run = await project.run_async(runbook, inputs)
                elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
                if run.status != "completed":
                    raise SystemExit(f"bench run ended {run.status}: {run.reason}")
                samples.append(elapsed / (runs * units) * 1e6)
                cpu.append(cpu_used / (runs * units) * 1e6)
    return {"workload": name, "unit": "us", "per": "step" if units == projects.STEPS else "round trip",
            "samples": samples, "cpu_samples": cpu, "runs_per_rep": runs, "units_per_run": units, "warmup_runs": warmup}


async def concurrent(concurrency: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lane-bench-w4-") as tmp:
        project, runbook, inputs, _ = make_project("w2", Path(tmp))
        with project:
            await _check(project, runbook, inputs)
            for _ in range(warmup):
                await project.run_async(runbook, inputs)
            gc.collect()
            began, cpu_began = time.perf_counter(), time.process_time()
            results = await asyncio.gather(*(project.run_async(runbook, inputs) for _ in range(concurrency)))
            elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
            bad = [r for r in results if r.status != "completed"]
            if bad:
                raise SystemExit(f"{len(bad)} of {concurrency} runs did not complete; first: {bad[0].status}: {bad[0].reason}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"workload": "w4", "concurrency": concurrency, "seconds": elapsed, "cpu_seconds": cpu_used, "runs_per_s": concurrency / elapsed,
            "peak_rss_mb": rss_mb, "warmup_runs": warmup}


def load_times(steps: int, loads: int) -> dict[str, Any]:
    """W6: `Project.load` of a runbook of `steps` steps, `loads` times; checked, and for a short one, run."""
    began, cpu_began = time.perf_counter(), time.process_time()
    import lane.project  # noqa: F401  (timed apart from the loads)

    imported = {"wall_ms": (time.perf_counter() - began) * 1000, "cpu_ms": (time.process_time() - cpu_began) * 1000}
    samples, cpu = [], []
    with tempfile.TemporaryDirectory(prefix="lane-bench-w6-") as tmp:
        root = projects.write_long(Path(tmp) / "long", steps=steps)
        for _ in range(loads):
            began, cpu_began = time.perf_counter(), time.process_time()
            project = lane.Project.load(root)
            samples.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - cpu_began) * 1000)
        loaded = len(project.spec.runbooks["long"].steps)
        if loaded != steps:
            raise SystemExit(f"w6: loaded {loaded} steps, expected {steps}")
        if steps <= 10:  # the generated runbook works: every check of the count passes
            with project:
                run = project.run("long", {})
            if run.status != "completed":
                raise SystemExit(f"w6 run {run.run_id} ended {run.status}: {run.reason}")
    return {"workload": "w6", "steps": steps, "unit": "ms", "samples": samples, "cpu_samples": cpu,
            "first_ms": samples[0], "first_cpu_ms": cpu[0], "import": imported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=[*WORKLOADS, "w4", "w6"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50, help="runs timed per repetition")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000, help="w6: steps in the runbook")
    parser.add_argument("--loads", type=int, default=3, help="w6: loads timed in this process (the first is a fresh one)")
    args = parser.parse_args()
    if args.workload == "w6":
        result = load_times(args.steps, args.loads)
    elif args.workload == "w4":
        result = asyncio.run(concurrent(args.concurrency, args.warmup))
    else:
        result = asyncio.run(sequential(args.workload, args.reps, args.runs, args.warmup))
    result["lane_version"] = lane.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
