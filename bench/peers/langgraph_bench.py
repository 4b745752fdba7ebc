"""LangGraph's side of the benchmarks: W2-W4 with graphs equivalent to lane's runbooks.

Runs in bench/.peers-venv (bench/peers/requirements.txt), started by bench/run.py,
one workload per fresh process:

    python bench/peers/langgraph_bench.py w2|w3 [--reps R] [--runs K] [--warmup W] [--durability sync|async]
    python bench/peers/langgraph_bench.py w4 [--concurrency N] [--warmup W] [--durability sync|async]

Prints one JSON object on stdout. The "model" is a plain node function that
returns the next output at once, so every figure is LangGraph's own overhead.

  w2  a StateGraph of 10 nodes s1 -> ... -> s10; node sN reads the previous
      node's output from the state and returns `{"sN": {"n": N}}`. SqliteSaver
      (sync) on a file, a fresh thread_id per run, `graph.invoke`.
  w3  the standard tool loop: an `agent` node (the fake model: an AIMessage
      with one tool call `add_one(n=i)` for i = 0..19, then a final answer)
      and a prebuilt `ToolNode([add_one])`, joined by `tools_condition`;
      `add_one` is a langchain `@tool` that adds 1. 20 round trips = 41
      supersteps (recursion_limit raised to 100). SqliteSaver, `graph.invoke`.
  w4  w2's graph with AsyncSqliteSaver; `asyncio.gather` over N `graph.ainvoke`.

`--synchronous normal` sets SQLite's PRAGMA synchronous=NORMAL on the
checkpoint connection, lane's own setting (WAL, no fsync per commit);
LangGraph leaves SQLite's default, FULL (an fsync of the WAL per commit).

`--durability sync` makes each superstep's checkpoint committed before the
next one starts (the guarantee lane gives: every event committed before the
next effect); `async` is LangGraph's default (checkpoints written in the
background while the next step runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sqlite3
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

STEPS = 10
CALLS = 20


# -- W2 / W4: ten sequential "agent" steps, each handing its output on ---------------------


class ChainState(TypedDict, total=False):
    seed: dict[str, Any]
    s1: dict[str, Any]
    s2: dict[str, Any]
    s3: dict[str, Any]
    s4: dict[str, Any]
    s5: dict[str, Any]
    s6: dict[str, Any]
    s7: dict[str, Any]
    s8: dict[str, Any]
    s9: dict[str, Any]
    s10: dict[str, Any]


def _chain_node(i: int):
    prev_key = "seed" if i == 1 else f"s{i - 1}"

    def node(state: ChainState) -> dict[str, Any]:
        prev = state[prev_key]  # the handoff from the previous step
        assert prev["n"] == i - 1
        return {f"s{i}": {"n": i}}  # the instant model's answer

    node.__name__ = f"s{i}"
    return node


def chain_graph() -> StateGraph:
    builder = StateGraph(ChainState)
    for i in range(1, STEPS + 1):
        builder.add_node(f"s{i}", _chain_node(i))
    builder.add_edge(START, "s1")
    for i in range(1, STEPS):
        builder.add_edge(f"s{i}", f"s{i + 1}")
    builder.add_edge(f"s{STEPS}", END)
    return builder


# -- W3: an agent node calling a tool 20 times through ToolNode ------------------------------


@tool
def add_one(n: int) -> int:
    """Add one to an integer."""
    return n + 1


def fake_model(state: MessagesState) -> dict[str, Any]:
    """The instant model: the next tool call, or the final answer after CALLS results."""
    done = sum(1 for m in state["messages"] if isinstance(m, ToolMessage))
    if done < CALLS:
        call = {"name": "add_one", "args": {"n": done}, "id": f"call_{done}", "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    last = state["messages"][-1]
    return {"messages": [AIMessage(content=json.dumps({"n": int(last.content)}))]}


def counter_graph() -> StateGraph:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", fake_model)
    builder.add_node("tools", ToolNode([add_one]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder


# -- measuring -----------------------------------------------------------------------------


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 100}


def sequential(name: str, reps: int, runs: int, warmup: int, durability: str, synchronous: str) -> dict[str, Any]:
    if name == "w2":
        builder, units = chain_graph(), STEPS
        make_input = lambda: {"seed": {"n": 0}}  # noqa: E731

        def check(out: dict[str, Any]) -> None:
            assert out[f"s{STEPS}"] == {"n": STEPS}, out
    else:
        builder, units = counter_graph(), CALLS
        make_input = lambda: {"messages": [HumanMessage(content=f"Add one {CALLS} times.")]}  # noqa: E731

        def check(out: dict[str, Any]) -> None:
            assert json.loads(out["messages"][-1].content) == {"n": CALLS}, out["messages"][-1]
            assert sum(isinstance(m, ToolMessage) for m in out["messages"]) == CALLS

    with tempfile.TemporaryDirectory(prefix=f"langgraph-bench-{name}-") as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "checkpoints.sqlite"), check_same_thread=False)
        if synchronous != "default":
            conn.execute(f"PRAGMA synchronous={synchronous}")
        try:
            graph = builder.compile(checkpointer=SqliteSaver(conn))
            check(graph.invoke(make_input(), _config(), durability=durability))
            for _ in range(warmup):
                graph.invoke(make_input(), _config(), durability=durability)
            samples, cpu = [], []
            for _ in range(reps):
                began, cpu_began = time.perf_counter(), time.process_time()
                for _ in range(runs):
                    out = graph.invoke(make_input(), _config(), durability=durability)
                elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
                check(out)
                samples.append(elapsed / (runs * units) * 1e6)
                cpu.append(cpu_used / (runs * units) * 1e6)
        finally:
            conn.close()
    return {"workload": name, "unit": "us", "per": "step" if name == "w2" else "round trip", "samples": samples, "cpu_samples": cpu,
            "runs_per_rep": runs, "units_per_run": units, "warmup_runs": warmup, "durability": durability,
            "sqlite_synchronous": synchronous}


async def concurrent(concurrency: int, warmup: int, durability: str, synchronous: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="langgraph-bench-w4-") as tmp:
        async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "checkpoints.sqlite")) as saver:
            if synchronous != "default":
                await saver.conn.execute(f"PRAGMA synchronous={synchronous}")
            graph = chain_graph().compile(checkpointer=saver)
            for _ in range(max(1, warmup)):
                out = await graph.ainvoke({"seed": {"n": 0}}, _config(), durability=durability)
                assert out[f"s{STEPS}"] == {"n": STEPS}
            gc.collect()
            began, cpu_began = time.perf_counter(), time.process_time()
            outs = await asyncio.gather(
                *(graph.ainvoke({"seed": {"n": 0}}, _config(), durability=durability) for _ in range(concurrency))
            )
            elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
            assert all(o[f"s{STEPS}"] == {"n": STEPS} for o in outs)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"workload": "w4", "concurrency": concurrency, "seconds": elapsed, "cpu_seconds": cpu_used, "runs_per_s": concurrency / elapsed,
            "peak_rss_mb": rss_mb, "warmup_runs": warmup, "durability": durability, "sqlite_synchronous": synchronous}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["w2", "w3", "w4"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--durability", choices=["sync", "async"], default="sync")
    parser.add_argument("--synchronous", choices=["default", "normal", "full"], default="default",
                        help="PRAGMA synchronous on the checkpoint connection (default: SQLite's, FULL)")
    args = parser.parse_args()
    if args.workload == "w4":
        result = asyncio.run(concurrent(args.concurrency, args.warmup, args.durability, args.synchronous))
    else:
        result = sequential(args.workload, args.reps, args.runs, args.warmup, args.durability, args.synchronous)
    result["versions"] = {p: version(p) for p in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite",
                                                  "langchain-core", "aiosqlite")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
