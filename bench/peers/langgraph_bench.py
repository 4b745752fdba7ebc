"""LangGraph's side of the benchmarks: W2-W4, W8 and W9 with graphs equivalent to lane's runbooks.

Runs in bench/.peers-venv (bench/peers/requirements.txt), started by bench/run.py,
one workload per fresh process:

    python bench/peers/langgraph_bench.py w2|w3 [--reps R] [--runs K] [--warmup W] [--durability sync|async]
    python bench/peers/langgraph_bench.py w4 [--concurrency N] [--warmup W] [--durability sync|async]
    python bench/peers/langgraph_bench.py w8 [--items N] [--max-concurrency C] [--reps R] [--warmup-items W] [--durability sync|async]
    python bench/peers/langgraph_bench.py w9 [--concurrency N] [--latency S] [--warmup W] [--alone A] [--durability sync|async]

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
  w8  fan-out: a conditional edge from START returns `[Send("work", ...) for i
      in items]`; `work` is a compiled subgraph, w3's tool loop for one call:
      the fake model's AIMessage with one tool call `add_one(n=i)`, the
      prebuilt ToolNode, then the final answer, which adds `i + 1` to the
      parent's `results` (an `operator.add` channel). SqliteSaver on a file,
      `graph.invoke` with `max_concurrency` C (the thread pool that runs the
      pushed tasks, as lane's for_each runs C items at once). Each item's
      subgraph is checkpointed under the parent's thread. An untimed
      invocation over W items first, then R timed ones over N items.
  w9  w2's graph whose nodes await a fake model that waits S seconds
      (`asyncio.sleep`) before answering, as a hosted model does, and counts
      the requests in flight; AsyncSqliteSaver, `asyncio.gather` over N
      `graph.ainvoke`. First, A runs awaited one after another with the
      model answering at once give one run's CPU for the ideal: 10 x S +
      N x one run's CPU.

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
import operator
import resource
import sqlite3
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Send

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


# -- W8: fan-out with Send, each item a subgraph doing one model turn with a tool call ------


class FanState(TypedDict):
    items: list[int]
    results: Annotated[list[int], operator.add]


class ItemState(MessagesState):
    n: int
    results: Annotated[list[int], operator.add]


class ItemOutput(TypedDict):
    results: list[int]


def item_model(state: ItemState) -> dict[str, Any]:
    """The instant model for one item: a tool call `add_one(n)`, then the answer with its result."""
    last = state["messages"][-1]
    if not isinstance(last, ToolMessage):
        call = {"name": "add_one", "args": {"n": state["n"]}, "id": "call_0", "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    return {"messages": [AIMessage(content="done")], "results": [int(last.content)]}


def fan_graph() -> StateGraph:
    item = StateGraph(ItemState, output_schema=ItemOutput)
    item.add_node("agent", item_model)
    item.add_node("tools", ToolNode([add_one]))
    item.add_edge(START, "agent")
    item.add_conditional_edges("agent", tools_condition)
    item.add_edge("tools", "agent")

    def fan_out(state: FanState) -> list[Send]:
        return [Send("work", {"n": n, "messages": [HumanMessage(content="Add one.")]}) for n in state["items"]]

    builder = StateGraph(FanState)
    builder.add_node("work", item.compile())  # checkpointed under the parent's thread and checkpointer
    builder.add_conditional_edges(START, fan_out, ["work"])
    builder.add_edge("work", END)
    return builder


# -- W9: W2's chain, each node awaiting a model that waits as a hosted one does -------------


class WaitingModel:
    """Answers after `latency` seconds (at once, awaiting nothing, when 0); counts the requests in flight."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.current = self.peak = self.requests = 0

    async def __call__(self, i: int) -> dict[str, Any]:
        self.current += 1
        self.requests += 1
        self.peak = max(self.peak, self.current)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
        finally:
            self.current -= 1
        return {"n": i}


def waiting_chain_graph(model: WaitingModel) -> StateGraph:
    def step(i: int):
        prev_key = "seed" if i == 1 else f"s{i - 1}"

        async def node(state: ChainState) -> dict[str, Any]:
            assert state[prev_key]["n"] == i - 1  # the handoff from the previous step
            return {f"s{i}": await model(i)}

        node.__name__ = f"s{i}"
        return node

    builder = StateGraph(ChainState)
    for i in range(1, STEPS + 1):
        builder.add_node(f"s{i}", step(i))
    builder.add_edge(START, "s1")
    for i in range(1, STEPS):
        builder.add_edge(f"s{i}", f"s{i + 1}")
    builder.add_edge(f"s{STEPS}", END)
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


def fan_out(items: int, max_concurrency: int, reps: int, warmup_items: int, durability: str, synchronous: str) -> dict[str, Any]:
    """W8: one untimed invocation over `warmup_items` items, then R timed ones over `items` items, each checked; us per item."""
    with tempfile.TemporaryDirectory(prefix="langgraph-bench-w8-") as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "checkpoints.sqlite"), check_same_thread=False)
        if synchronous != "default":
            conn.execute(f"PRAGMA synchronous={synchronous}")
        try:
            graph = fan_graph().compile(checkpointer=SqliteSaver(conn))

            def invoke(n: int) -> None:
                config = {**_config(), "max_concurrency": max_concurrency}
                out = graph.invoke({"items": list(range(n)), "results": []}, config, durability=durability)
                assert sorted(out["results"]) == [i + 1 for i in range(n)], str(out["results"])[:200]

            if warmup_items:
                invoke(warmup_items)
            samples, cpu = [], []
            for _ in range(reps):
                gc.collect()
                began, cpu_began = time.perf_counter(), time.process_time()
                invoke(items)
                elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
                samples.append(elapsed / items * 1e6)
                cpu.append(cpu_used / items * 1e6)
        finally:
            conn.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"workload": "w8", "unit": "us", "per": "item", "items": items, "max_concurrency": max_concurrency, "samples": samples,
            "cpu_samples": cpu, "peak_rss_mb": rss_mb, "runs_per_rep": 1, "warmup_items": warmup_items,
            "durability": durability, "sqlite_synchronous": synchronous}


async def latency_bound(concurrency: int, latency: float, warmup: int, alone: int, durability: str) -> dict[str, Any]:
    """W9: N W2 runs at once, the model waiting `latency` s per node; wall, CPU, the ideal, the most in flight."""
    model = WaitingModel(0)
    with tempfile.TemporaryDirectory(prefix="langgraph-bench-w9-") as tmp:
        async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "checkpoints.sqlite")) as saver:
            graph = waiting_chain_graph(model).compile(checkpointer=saver)
            for _ in range(max(1, warmup)):
                out = await graph.ainvoke({"seed": {"n": 0}}, _config(), durability=durability)
                assert out[f"s{STEPS}"] == {"n": STEPS}
            cpu_began = time.process_time()
            for _ in range(alone):
                await graph.ainvoke({"seed": {"n": 0}}, _config(), durability=durability)
            cpu_alone = (time.process_time() - cpu_began) / alone
            model.latency, model.peak, model.requests = latency, 0, 0
            gc.collect()
            began, cpu_began = time.perf_counter(), time.process_time()
            outs = await asyncio.gather(
                *(graph.ainvoke({"seed": {"n": 0}}, _config(), durability=durability) for _ in range(concurrency))
            )
            elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu_began
            assert all(o[f"s{STEPS}"] == {"n": STEPS} for o in outs)
            assert model.requests == concurrency * STEPS, model.requests
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ideal = STEPS * latency + concurrency * cpu_alone
    return {"workload": "w9", "concurrency": concurrency, "latency_s": latency, "turns_per_run": STEPS, "seconds": elapsed,
            "cpu_seconds": cpu_used, "cpu_ms_per_run": cpu_used * 1000 / concurrency, "cpu_ms_per_run_alone": cpu_alone * 1000,
            "alone_runs": alone, "ideal_seconds": ideal, "ratio_to_ideal": elapsed / ideal, "max_in_flight": model.peak,
            "requests": model.requests, "peak_rss_mb": rss_mb, "warmup_runs": warmup, "durability": durability}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["w2", "w3", "w4", "w8", "w9"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--durability", choices=["sync", "async"], default="sync")
    parser.add_argument("--synchronous", choices=["default", "normal", "full"], default="default",
                        help="PRAGMA synchronous on the checkpoint connection (default: SQLite's, FULL)")
    parser.add_argument("--items", type=int, default=1000, help="w8: items fanned out")
    parser.add_argument("--warmup-items", type=int, default=50, help="w8: items of the untimed first invocation")
    parser.add_argument("--max-concurrency", type=int, default=16, help="w8: config max_concurrency (the thread pool's workers)")
    parser.add_argument("--latency", type=float, default=0.05, help="w9: seconds the model waits before each answer")
    parser.add_argument("--alone", type=int, default=20, help="w9: runs timed one after another (model answering at once) for one run's CPU")
    args = parser.parse_args()
    if args.workload == "w8":
        result = fan_out(args.items, args.max_concurrency, args.reps, args.warmup_items, args.durability, args.synchronous)
    elif args.workload == "w9":
        result = asyncio.run(latency_bound(args.concurrency, args.latency, args.warmup, args.alone, args.durability))
    elif args.workload == "w4":
        result = asyncio.run(concurrent(args.concurrency, args.warmup, args.durability, args.synchronous))
    else:
        result = sequential(args.workload, args.reps, args.runs, args.warmup, args.durability, args.synchronous)
    result["versions"] = {p: version(p) for p in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite",
                                                  "langchain-core", "aiosqlite")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
