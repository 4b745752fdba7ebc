"""Crash safety of flow: SIGKILL a run that uses for_each, parallel, a child runbook and a feedback loop
at many random points, resume until it completes. Asserted: the right outputs; no non-idempotent call
ran twice (a person settles the calls left in doubt, looking at the world); finished items, branches
and children never ran again; the store is sound after every kill."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_crash import FILES as CRASH_FILES
from test_crash import _effects, _store_sound

from conftest import LANE, lane, lane_json, write_project

FILES = {
    "lane.yaml": CRASH_FILES["lane.yaml"],
    "agents/worker.md": CRASH_FILES["agents/worker.md"],
    "tools/log.py": CRASH_FILES["tools/log.py"],
    "scripts/check.py": """
        import sys
        sys.exit(0 if int(sys.argv[1]) >= 3 else 1)
    """,
    "runbooks/part.yaml": """
        runbook: part
        autonomy: auto
        inputs: {type: object, properties: {n: {type: integer}}, required: [n]}
        steps:
          - {id: mark, tool: log.once, args: {tag: "child-${{ inputs.n }}"}}
        output: ${{ inputs.n }}
    """,
    "runbooks/flow.yaml": """
        runbook: flow
        autonomy: auto
        steps:
          - id: each
            for_each: ${{ [1, 2, 3, 4] }}
            max_concurrency: 2
            steps:
              - {id: first, tool: log.once, args: {tag: "item-${{ item }}"}}
              - {id: second, tool: log.idem, args: {tag: "item-${{ item }}-b"}}
          - id: both
            parallel:
              a: [{id: pa, tool: log.once, args: {tag: pa}}]
              b: [{id: pb, tool: log.idem, args: {tag: pb}}]
          - id: kids
            for_each: ${{ [7, 8] }}
            runbook: part
            with: {n: "${{ item }}"}
          - id: write
            agent: worker
            goal: Propose a number.
            output: {type: object, properties: {n: {type: integer}}, required: [n]}
          - id: verify
            check: [python3, scripts/check.py, "${{ steps.write.output.n }}"]
            on_fail: {back_to: write, attempts: 3}
    """,
    "script.yaml": """
        write:
          - tool_calls: [{name: log.idem, args: {tag: w1}}]
          - output: {n: 1}
          - tool_calls: [{name: log.once, args: {tag: w2}}]
          - output: {n: 5}
    """,
}

ONCE = {"item-1", "item-2", "item-3", "item-4", "pa", "child-7", "child-8", "w2"}
IDEM = {"item-1-b", "item-2-b", "item-3-b", "item-4-b", "pb", "w1"}


def _parent(root: Path) -> dict | None:
    listed = [r for r in lane_json("runs", cwd=root) if not r.get("parent_id")]
    return listed[0] if listed else None


def _settle(root: Path, run_id: str) -> None:
    """The person's part: for each call left in doubt, say whether it took effect (the effects log shows it)."""
    for pending in lane_json("show", run_id, cwd=root)["pending"]:
        assert pending["kind"] == "in_doubt", pending
        tag = pending["args"]["tag"]
        took = any(kind == "once" and t == tag for kind, t, _ in _effects(root))
        extra = ["--result", json.dumps({"tag": tag})] if took else []
        answer = lane("approve", pending.get("run_id") or run_id, "--call", pending["call_id"], *extra, cwd=root)
        assert answer.returncode == 0, answer.stderr


def _run_with_kills(root: Path, rng: random.Random, wanted: int) -> tuple[str, int]:
    kills = 0
    for _ in range(200):
        parent = _parent(root)
        args = ["resume", parent["run_id"], "--json"] if parent else ["run", "flow", "--json"]
        proc = subprocess.Popen([*LANE, *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        if kills < wanted:
            time.sleep(rng.uniform(0.2, 1.1))  # most kills land after start-up, across the run's work
        if proc.poll() is None and kills < wanted:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
        else:
            out, err = proc.communicate(timeout=120)
            run_id = json.loads(out)["run_id"]
            if proc.returncode == 0:
                return run_id, kills
            assert proc.returncode == 3, f"exit {proc.returncode}: {err}"
            _settle(root, run_id)
        parent = _parent(root)
        _store_sound(root, parent["run_id"] if parent else None)
        if parent and parent["status"] == "completed":  # killed on its way out
            return parent["run_id"], kills
    raise AssertionError("the run did not complete after 200 attempts")


@pytest.mark.slow
def test_sigkill_anywhere_in_a_flow_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261205)
    total = 0
    attempt = 0
    while total < 50:
        attempt += 1
        assert attempt <= 40, f"only {total} kills landed in {attempt - 1} runs"
        root = write_project(tmp_path / f"p{attempt}", FILES)
        run_id, kills = _run_with_kills(root, rng, wanted=8)
        total += kills
        view = lane_json("show", run_id, cwd=root)
        assert view["status"] == "completed"
        outputs = {s["id"]: s["output"] for s in view["steps"]}
        assert outputs["each"] == [{"tag": f"item-{n}-b"} for n in (1, 2, 3, 4)]
        assert outputs["both"] == {"a": {"tag": "pa"}, "b": {"tag": "pb"}}
        assert outputs["kids"] == [7, 8]
        assert outputs["write"] == {"n": 5}
        once = sorted(tag for kind, tag, _ in _effects(root) if kind == "once")
        assert once == sorted(ONCE), f"run {attempt} ({kills} kills): non-idempotent calls ran {once}"
        assert {tag for kind, tag, _ in _effects(root) if kind == "idem"} == IDEM
        assert len(view["children"]) == 2, "a child run was started again"
        _store_sound(root, run_id)
    print(f"{total} kills in {attempt} runs")
