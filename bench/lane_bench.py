"""lane's side of the benchmarks. Run by bench/run.py, one workload per fresh process.

    python bench/lane_bench.py w1|w2|w2-full|w3|w3-async [--reps R] [--runs K] [--warmup W]
    python bench/lane_bench.py w4 [--concurrency N] [--warmup W]
    python bench/lane_bench.py w6 --steps N [--loads L]
    python bench/lane_bench.py w8 [--items N] [--max-concurrency C] [--reps R] [--warmup-items W]
    python bench/lane_bench.py w9 [--concurrency N] [--latency S] [--warmup W] [--alone A]
    python bench/lane_bench.py scale-steps|scale-calls --length N [--reps R] [--runs K] [--warmup W]

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

w8 (fan-out) times R runs of a runbook whose for_each maps N items (one agent
step each: a tool call, then the answer; C items at once), after an untimed
run over W items, and reports microseconds per item. w9 (latency-bound
concurrency) runs N W2 runs at once with a model object that waits S seconds
before each answer, as a hosted model does, and counts the requests in
flight. scale-steps / scale-calls are W2 with N steps and W3 with N tool
calls: the cost of one step against the run's length.
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
from lane import ModelRequest, ModelResponse  # noqa: E402
from lane.testing import ScriptedModel  # noqa: E402

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


async def _check(project: lane.Project, runbook: str, inputs: dict, expected: int | None = None) -> None:
    """One run, checked: it completed and handed on what the script says."""
    run = await project.run_async(runbook, inputs)
    if run.status != "completed":
        raise SystemExit(f"bench run {run.run_id} ended {run.status}: {run.reason}")
    shown = project.show(run.run_id)
    last = shown["steps"][-1]
    if expected is None:
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


async def fan_out(items: int, max_concurrency: int, reps: int, warmup_items: int) -> dict[str, Any]:
    """W8: one untimed run over `warmup_items` items, then R timed runs of a for_each over `items` items; us per item.

    Every run is checked (completed, an answer per item); the first timed one also item by
    item from `lane show` (one tool call each), after its timing.
    """
    with tempfile.TemporaryDirectory(prefix="lane-bench-w8-") as tmp:
        root = projects.write_fan(Path(tmp) / "fan", store=SQLITE, max_concurrency=max_concurrency)
        with lane.Project.load(root) as project:
            if warmup_items:
                _check_fan(project, await project.run_async("fan", {"items": list(range(warmup_items))}), warmup_items)
            samples, cpu = [], []
            for rep in range(reps):
                gc.collect()
                began, cpu_began = time.perf_counter(), time.process_time()
                run = await project.run_async("fan", {"items": list(range(items))})
                elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
                _check_fan(project, run, items, show=rep == 0)
                samples.append(elapsed / items * 1e6)
                cpu.append(cpu_used / items * 1e6)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"workload": "w8", "unit": "us", "per": "item", "items": items, "max_concurrency": max_concurrency, "samples": samples,
            "cpu_samples": cpu, "peak_rss_mb": rss_mb, "runs_per_rep": 1, "warmup_items": warmup_items}


def _check_fan(project: lane.Project, run: lane.Run, items: int, show: bool = True) -> None:
    """The fan-out run completed with an answer per item; with `show`, every item's agent step made one tool call."""
    if run.status != "completed":
        raise SystemExit(f"w8 run {run.run_id} ended {run.status}: {run.reason}")
    if run.output != ["done"] * items:
        raise SystemExit(f"w8 run {run.run_id}: output {str(run.output)[:200]}, expected {items} x 'done'")
    if not show:
        return
    shown = project.show(run.run_id)["steps"][0]["items"]
    calls = [len(item["steps"][0]["tool_calls"]) for item in shown]
    if len(shown) != items or any(c != 1 for c in calls):
        raise SystemExit(f"w8 run {run.run_id}: {len(shown)} items shown, tool calls per item {sorted(set(calls))}")


class WaitingModel(ScriptedModel):
    """W9: the scripted model, waiting `latency` seconds before each answer, as a hosted model does.

    Counts the requests in flight (`current`) and the most at once (`peak`). With
    `latency` 0 it answers at once, awaiting nothing (the plain scripted model).
    """

    def __init__(self, script: Any, *, name: str, latency: float) -> None:
        super().__init__(script, name=name)
        self.latency = latency
        self.current = self.peak = self.requests = 0

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.current += 1
        self.requests += 1
        self.peak = max(self.peak, self.current)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
        finally:
            self.current -= 1
        return await super().request(request)


async def latency_bound(concurrency: int, latency: float, warmup: int, alone: int) -> dict[str, Any]:
    """W9: N W2 runs at once in one process, the model waiting `latency` s per turn; wall, CPU, the most in flight.

    The ideal is one run's waits (10 turns x latency) plus the CPU time of N runs, one run's
    CPU measured first in this process: `alone` runs awaited one after another with the model
    answering at once (W2's CPU per run). The N runs' CPU shares one thread; their waits overlap.
    """
    model_id = "scripted:scripts/model.yaml"  # what write_chain's lane.yaml names
    with tempfile.TemporaryDirectory(prefix="lane-bench-w9-") as tmp:
        root = projects.write_chain(Path(tmp) / "w9", store=SQLITE)
        model = WaitingModel(ScriptedModel.from_file(root / "scripts" / "model.yaml").script, name=model_id.removeprefix("scripted:"), latency=0)
        with lane.Project.load(root, models={model_id: model}) as project:
            inputs = {"seed": {"n": 0}}
            await _check(project, "chain", inputs)
            for _ in range(warmup):
                await project.run_async("chain", inputs)
            cpu_began = time.process_time()
            for _ in range(alone):
                await project.run_async("chain", inputs)
            cpu_alone = (time.process_time() - cpu_began) / alone
            model.latency, model.peak, model.requests = latency, 0, 0
            gc.collect()
            began, cpu_began = time.perf_counter(), time.process_time()
            results = await asyncio.gather(*(project.run_async("chain", inputs) for _ in range(concurrency)))
            elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
            bad = [r for r in results if r.status != "completed"]
            if bad:
                raise SystemExit(f"{len(bad)} of {concurrency} runs did not complete; first: {bad[0].status}: {bad[0].reason}")
            if model.requests != concurrency * projects.STEPS:
                raise SystemExit(f"w9: the model answered {model.requests} requests, expected {concurrency * projects.STEPS}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ideal = projects.STEPS * latency + concurrency * cpu_alone
    return {"workload": "w9", "concurrency": concurrency, "latency_s": latency, "turns_per_run": projects.STEPS, "seconds": elapsed,
            "cpu_seconds": cpu_used, "cpu_ms_per_run": cpu_used * 1000 / concurrency, "cpu_ms_per_run_alone": cpu_alone * 1000,
            "alone_runs": alone, "ideal_seconds": ideal, "ratio_to_ideal": elapsed / ideal, "max_in_flight": model.peak,
            "requests": model.requests, "peak_rss_mb": rss_mb, "warmup_runs": warmup}


async def scale(kind: str, length: int, reps: int, runs: int, warmup: int) -> dict[str, Any]:
    """The scale table: W2 with `length` steps (scale-steps) or W3 with `length` tool calls (scale-calls); us per unit."""
    with tempfile.TemporaryDirectory(prefix=f"lane-bench-{kind}-") as tmp:
        if kind == "scale-steps":
            root, runbook, inputs = projects.write_chain(Path(tmp) / "p", store=SQLITE, steps=length), "chain", {"seed": {"n": 0}}
        else:
            root, runbook, inputs = projects.write_counter(Path(tmp) / "p", store=SQLITE, calls=length), "count", {}
        with lane.Project.load(root) as project:
            await _check(project, runbook, inputs, expected=length)
            for _ in range(warmup):
                await project.run_async(runbook, inputs)
            samples, cpu = [], []
            for _ in range(reps):
                gc.collect()
                began, cpu_began = time.perf_counter(), time.process_time()
                for _ in range(runs):
                    run = await project.run_async(runbook, inputs)
                elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
                if run.status != "completed":
                    raise SystemExit(f"{kind} run ended {run.status}: {run.reason}")
                samples.append(elapsed / (runs * length) * 1e6)
                cpu.append(cpu_used / (runs * length) * 1e6)
    return {"workload": kind, "unit": "us", "per": "step" if kind == "scale-steps" else "round trip", "length": length,
            "samples": samples, "cpu_samples": cpu, "runs_per_rep": runs, "units_per_run": length, "warmup_runs": warmup}


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
    parser.add_argument("workload", choices=[*WORKLOADS, "w4", "w6", "w8", "w9", "scale-steps", "scale-calls"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50, help="runs timed per repetition")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000, help="w6: steps in the runbook")
    parser.add_argument("--loads", type=int, default=3, help="w6: loads timed in this process (the first is a fresh one)")
    parser.add_argument("--items", type=int, default=1000, help="w8: items of the for_each")
    parser.add_argument("--warmup-items", type=int, default=50, help="w8: items of the untimed first run")
    parser.add_argument("--max-concurrency", type=int, default=projects.FAN_CONCURRENCY, help="w8: the for_each's max_concurrency")
    parser.add_argument("--latency", type=float, default=0.05, help="w9: seconds the model waits before each answer")
    parser.add_argument("--alone", type=int, default=50, help="w9: runs timed one after another (model answering at once) for one run's CPU")
    parser.add_argument("--length", type=int, default=100, help="scale-steps: steps of the runbook; scale-calls: tool calls of the agent")
    args = parser.parse_args()
    if args.workload == "w8":
        result = asyncio.run(fan_out(args.items, args.max_concurrency, args.reps, args.warmup_items))
    elif args.workload == "w9":
        result = asyncio.run(latency_bound(args.concurrency, args.latency, args.warmup, args.alone))
    elif args.workload.startswith("scale-"):
        result = asyncio.run(scale(args.workload, args.length, args.reps, args.runs, args.warmup))
    elif args.workload == "w6":
        result = load_times(args.steps, args.loads)
    elif args.workload == "w4":
        result = asyncio.run(concurrent(args.concurrency, args.warmup))
    else:
        result = asyncio.run(sequential(args.workload, args.reps, args.runs, args.warmup))
    result["lane_version"] = lane.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
