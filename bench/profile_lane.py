"""Profile one lane workload with cProfile (standard library: nothing is installed into lane's venv).

    .venv/bin/python bench/profile_lane.py w2 [--runs 200] [--top 30] [--sort tottime|cumulative]
    .venv/bin/python bench/profile_lane.py w4 [--concurrency 1000]

Builds the same project as bench/lane_bench.py in a temporary folder, warms up,
then profiles only the timed part. Prints the top functions and a share-of-time
summary grouped by area (SQLite, JSON, jsonschema, pydantic, asyncio, lane.*).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lane_bench import WORKLOADS, make_project  # noqa: E402

AREAS = [  # (label, substrings of "file:function"), first match wins
    ("sqlite3 (execute/commit)", ("sqlite3.Connection", "sqlite3.Cursor", "method 'execute", "method 'executemany", "method 'commit")),
    ("json encode/decode", ("json/", "_json.", "method 'encode' of", "c_make_encoder", "scanner")),
    ("jsonschema / referencing", ("jsonschema", "referencing", "rpds")),
    ("pydantic", ("pydantic",)),
    ("asyncio / threads", ("asyncio", "threading", "concurrent/futures", "selectors", "method 'acquire'", "method 'poll'")),
    ("lane.engine", ("lane/engine",)),
    ("lane.store", ("lane/store",)),
    ("lane.spec (expressions)", ("lane/spec",)),
    ("lane.context", ("lane/context",)),
    ("lane.models", ("lane/models",)),
    ("lane.tools", ("lane/tools",)),
    ("lane.project", ("lane/project",)),
    ("hashlib / secrets", ("hashlib", "secrets", "sha256", "token_hex", "urandom")),
    ("dataclasses / copy", ("dataclasses", "copy.py")),
]


def area_of(key: tuple[str, int, str]) -> str:
    name = f"{key[0]}:{key[2]}"
    for label, needles in AREAS:
        if any(n in name for n in needles):
            return label
    return "other"


async def workload(name: str, runs: int, concurrency: int, profiler: cProfile.Profile) -> None:
    with tempfile.TemporaryDirectory(prefix=f"lane-profile-{name}-") as tmp:
        project, runbook, inputs, _ = make_project("w2" if name == "w4" else name, Path(tmp))
        with project:
            for _ in range(20):
                await project.run_async(runbook, inputs)
            profiler.enable()
            if name == "w4":
                await asyncio.gather(*(project.run_async(runbook, inputs) for _ in range(concurrency)))
            else:
                for _ in range(runs):
                    await project.run_async(runbook, inputs)
            profiler.disable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=[*WORKLOADS, "w4"])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    args = parser.parse_args()
    profiler = cProfile.Profile()
    asyncio.run(workload(args.workload, args.runs, args.concurrency, profiler))
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # tottime over all functions
    by_area: dict[str, float] = defaultdict(float)
    for key, (_, _, tottime, _, _) in stats.stats.items():
        by_area[area_of(key)] += tottime
    print(f"profiled {args.workload}: {total:.3f} s of own time in all functions\n")
    print("share of own time by area:")
    for label, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / total:6.1%}  {label}")
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
