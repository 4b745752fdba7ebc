"""What an import costs and where the time goes: CPU time in fresh interpreters, and `-X importtime` by package.

    .venv/bin/python bench/import_cost.py                          # import lane.project
    .venv/bin/python bench/import_cost.py lane.cli.app --runs 11 --top 30
    .venv/bin/python bench/import_cost.py --argv -m lane --help     # a whole command instead of one import
    bench/.peers-venv/bin/python bench/import_cost.py langgraph.graph

Standard library only, so it runs in any venv (the peers' too). Every figure comes
from fresh processes with a warm bytecode cache (PYTHONPYCACHEPREFIX points at a
temporary folder that untimed warm-ups fill), as an installed package has; nothing
is written into src/.

It prints the median CPU time (`time.process_time`) and wall time of the import in
N processes, then the costs grouped by package: every place where a package is
first imported, with its cumulative microseconds (median over N `-X importtime`
runs; these run slower than plain imports, so the shares matter more than the
sum), and the lane module that pulled it in. Then lane's own modules by self time
(their bodies: class definitions, pydantic models built at import).

bench/run.py's W7 uses `import_cpu` and `breakdown` from here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runs in the measured interpreter: the import's own CPU and wall time, after the interpreter started.
SNIPPET = (
    "import time, json\n"
    "c, w = time.process_time(), time.perf_counter()\n"
    "import {module}\n"
    "print(json.dumps({{'cpu_ms': (time.process_time() - c) * 1000, 'wall_ms': (time.perf_counter() - w) * 1000}}))\n"
)
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
STDLIB = frozenset(sys.stdlib_module_names)


def cached_env(cache: str) -> dict[str, str]:
    """This environment with a bytecode cache in `cache` (and bytecode writing on, to fill it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def import_cpu(python: str, module: str, env: dict[str, str]) -> dict[str, float]:
    """CPU and wall milliseconds of `import module` in a fresh `python`, and the whole process's CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([python, "-c", SNIPPET.format(module=module)], capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{python} -c 'import {module}' failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_cpu_ms"] = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return result


def process_cpu(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU milliseconds (user + system) of a whole command, exec to exit."""
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    wall, after = (time.perf_counter() - began) * 1000, resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_ms": wall, "cpu_ms": ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000}


# -- -X importtime ---------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    self_us: int
    cum_us: int
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    @property
    def package(self) -> str:
        return self.name.split(".")[0]


def importtime(python: str, argv: list[str], env: dict[str, str]) -> list[Node]:
    """The import tree of one run of `python -X importtime ARGV`: its top-level imports, in order."""
    proc = subprocess.run([python, "-X", "importtime", *argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{python} -X importtime {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    pending: dict[int, list[Node]] = {}  # children are printed before their parent, one level deeper
    for line in proc.stderr.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        depth = len(match[3]) // 2
        node = Node(match[4], int(match[1]), int(match[2]), pending.pop(depth + 1, []))
        for child in node.children:
            child.parent = node
        pending.setdefault(depth, []).append(node)
    return pending.get(0, [])


def walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from walk(node.children)


def _outermost_others(root: Node) -> Iterator[Node]:
    """The first-imported nodes of other packages inside `root`, not counting those nested in one of them."""
    for child in root.children:
        if child.package != root.package:
            yield child
        else:
            yield from _outermost_others(child)


def breakdown(runs: list[list[Node]], top: int = 25) -> dict[str, Any]:
    """Median self/cumulative microseconds per module over runs; packages by where they are first imported."""
    cum: dict[str, list[int]] = {}
    own: dict[str, list[int]] = {}
    for roots in runs:
        for node in walk(roots):
            cum.setdefault(node.name, []).append(node.cum_us)
            own.setdefault(node.name, []).append(node.self_us)
    med_cum = {k: statistics.median(v) for k, v in cum.items()}
    med_self = {k: statistics.median(v) for k, v in own.items()}
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for node in walk(runs[0]):
        if node.package == "lane" or (node.parent is not None and node.parent.package != "lane"):
            continue  # lane's own modules, or pulled in by another package (counted in that one's time)
        key = (node.package, node.parent.name if node.parent is not None else "(top level)")
        group = groups.setdefault(key, {"package": node.package, "imported_by": key[1], "cum_us": 0, "modules": [],
                                        "stdlib": node.package in STDLIB, "includes": {}})
        group["cum_us"] += med_cum[node.name]
        group["modules"].append(node.name)
        for inner in _outermost_others(node):  # other packages first imported inside this one
            group["includes"][inner.package] = group["includes"].get(inner.package, 0) + med_cum[inner.name]
    by_package = sorted(groups.values(), key=lambda g: -g["cum_us"])
    lane_self = sorted(((k, v) for k, v in med_self.items() if k.split(".")[0] == "lane"), key=lambda kv: -kv[1])
    total = sum(med_cum.get(root.name, 0) for root in runs[0])
    return {"runs": len(runs), "total_us": total, "packages": by_package[:top],
            "lane_self_us": [{"module": k, "self_us": v, "cum_us": med_cum[k]} for k, v in lane_self[:top]]}


def print_breakdown(result: dict[str, Any]) -> None:
    print(f"-X importtime, median of {result['runs']} runs: {result['total_us'] / 1000:,.1f} ms in all (importtime's own overhead included)")
    print(f"\n{'cumulative us':>14}  {'package (first import)':<28} imported by")
    for g in result["packages"]:
        first = g["modules"][0] + (f" +{len(g['modules']) - 1}" if len(g["modules"]) > 1 else "")
        inside = sorted(g["includes"].items(), key=lambda kv: -kv[1])[:4]
        print(f"{g['cum_us']:>14,.0f}  {first + (' (stdlib)' if g['stdlib'] else ''):<28} {g['imported_by']}"
              + (f"  [incl. {', '.join(f'{k} {v / 1000:.1f}' for k, v in inside)} ms]" if inside else ""))
    print(f"\n{'self us':>14}  {'cumulative':>10}  lane module")
    for m in result["lane_self_us"]:
        print(f"{m['self_us']:>14,.0f}  {m['cum_us']:>10,.0f}  {m['module']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", nargs="?", default="lane.project")
    parser.add_argument("--argv", nargs=argparse.REMAINDER, help="break down a whole command instead (e.g. -m lane --help); put it last")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    target = args.argv or ["-c", f"import {args.module}"]
    with tempfile.TemporaryDirectory(prefix="lane-bench-pycache-") as cache:
        env = cached_env(cache)
        for _ in range(args.warmup):
            process_cpu([args.python, *target], env)
        if args.argv:
            timed = [process_cpu([args.python, *target], env) for _ in range(args.runs)]
        else:
            timed = [import_cpu(args.python, args.module, env) for _ in range(args.runs)]
        result = breakdown([importtime(args.python, target, env) for _ in range(args.runs)], args.top)
    figures = {k: statistics.median(t[k] for t in timed) for k in timed[0]}
    result.update({"what": " ".join(target), "python": args.python, **{f"median_{k}": v for k, v in figures.items()}})
    if args.json:
        print(json.dumps(result))
        return
    what = " ".join(args.argv) if args.argv else f"import {args.module}"
    print(f"{what}: " + ", ".join(f"{k.replace('_ms', '')} {v:,.1f} ms" for k, v in figures.items())
          + f" (median of {args.runs} fresh processes, warm bytecode cache; {Path(args.python)})\n")
    print_breakdown(result)


if __name__ == "__main__":
    main()
