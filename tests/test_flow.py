"""Flow: parallel branches, for_each over items, child runbooks, feedback loops and tool retries, through real runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import lane
from conftest import lane as lane_cli
from conftest import lane_json, write_project
from lane.testing import ScriptedModel

TOOLS = '''
    import json
    import threading
    import time
    from pathlib import Path

    from lane import tool

    HERE = Path(__file__).resolve().parent.parent
    _lock = threading.Lock()
    _now = {"n": 0, "most": 0}


    def _log(line: str) -> None:
        with open(HERE / "calls.log", "a") as f:
            f.write(line + "\\n")


    @tool(effect="read", idempotent=True)
    def add_one(n: int) -> int:
        """Add one."""
        _log(f"add_one {n}")
        return n + 1


    @tool(effect="read", idempotent=True)
    async def slow(n: int, wait: float = 0.0) -> int:
        """Return n after a wait, counting how many run at once."""
        import asyncio
        with _lock:
            _now["n"] += 1
            _now["most"] = max(_now["most"], _now["n"])
            (HERE / "most.txt").write_text(str(_now["most"]))
        await asyncio.sleep(wait)
        with _lock:
            _now["n"] -= 1
        return n


    @tool(effect="read", idempotent=True)
    def boom(why: str = "it broke") -> int:
        """Fail."""
        raise RuntimeError(why)


    @tool(effect="read", idempotent=True)
    def flaky(tag: str) -> str:
        """Fail the first two times for a tag."""
        log = HERE / f"flaky-{tag}.log"
        count = len(log.read_text().splitlines()) if log.exists() else 0
        log.write_text("x\\n" * (count + 1))
        if count < 2:
            raise RuntimeError(f"transient failure {count + 1}")
        return f"ok after {count + 1}"


    @tool(effect="write")
    def send(tag: str) -> str:
        """Send once (not idempotent); fails the first time."""
        log = HERE / f"send-{tag}.log"
        count = len(log.read_text().splitlines()) if log.exists() else 0
        log.write_text("x\\n" * (count + 1))
        if count < 1:
            raise RuntimeError("the line dropped")
        return "sent"
'''

BASE = {
    "lane.yaml": """
        project: flow
        models: {default: scripted:model.yaml}
        roles:
          lead: {kind: human}
          writer: {kind: agent}
        toolsets:
          t: {python: tools/t.py}
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: auto
        tools: [t.add_one]
        ---
        You propose numbers.
    """,
    "tools/t.py": TOOLS,
    "scripts/check.py": """
        import sys
        n = int(sys.argv[1])
        if n < 3:
            print(f"{n} is too small; need at least 3")
            sys.exit(1)
        print("ok")
    """,
    "model.yaml": "{}",
    "runbooks/child.yaml": """
        runbook: child
        inputs: {type: object, properties: {n: {type: integer}}, required: [n]}
        steps:
          - {id: inc, tool: t.add_one, args: {n: "${{ inputs.n }}"}}
    """,
}


def make(root: Path, files: dict[str, str], turns: dict[str, list[dict[str, Any]]] | None = None) -> lane.Project:
    write_project(root, {**BASE, **files})
    return lane.Project.load(root, models={"scripted:model.yaml": ScriptedModel(turns or {})})


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def step(view: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in view["steps"] if s["id"] == step_id)


THE_ISSUE_EXAMPLE = """
    runbook: main
    inputs: {type: object, properties: {items: {type: array}}}
    steps:
      - id: each
        for_each: ${{ inputs.items }}
        as: item
        max_concurrency: 3
        steps:
          - {id: inc, tool: t.add_one, args: {n: "${{ item }}"}}
      - id: both
        parallel:
          a: [{id: pa, tool: t.add_one, args: {n: 1}}]
          b: [{id: pb, tool: t.add_one, args: {n: 2}}]
      - id: child
        runbook: child
        with: {n: 5}
      - id: write
        agent: writer
        goal: Propose a number.
        output: {type: object, properties: {n: {type: integer}}, required: [n]}
      - id: verify
        check: [python3, scripts/check.py, "${{ steps.write.output.n }}"]
        on_fail: {back_to: write, attempts: 3}
"""


def test_the_four_constructs_run_end_to_end_and_show_their_nesting(tmp_path: Path) -> None:
    turns = {"write": [{"output": {"n": 1}}, {"output": {"n": 2}}, {"output": {"n": 5}}]}
    root = tmp_path / "p"
    with make(root, {"runbooks/main.yaml": THE_ISSUE_EXAMPLE}, turns) as project:
        run = project.run("main", {"items": [10, 20, 30, 40, 50]})
        assert run.status == "completed", run.reason
        view = run.show()
    each, both, child = step(view, "each"), step(view, "both"), step(view, "child")
    assert each["output"] == [11, 21, 31, 41, 51]  # input order, whatever order they finished in
    assert [i["id"] for i in each["items"]] == [f"each[{n}]" for n in range(5)]
    assert each["items"][2]["steps"][0]["id"] == "each[2].inc"
    assert both["output"] == {"a": 2, "b": 3}
    assert both["branches"]["a"]["steps"][0]["id"] == "both.a.pa"
    assert child["output"] == 6 and child["child"]["status"] == "completed"
    [linked] = view["children"]
    assert linked["run_id"] == child["child"]["run_id"] and linked["parent_id"] == run.run_id
    write = step(view, "write")
    assert write["output"] == {"n": 5}
    assert [(loop["attempt"], loop["of"]) for loop in write["loops"]] == [(2, 3), (3, 3)]
    assert "1 is too small" in write["loops"][0]["failure"]
    # The agent was told why, in its own conversation.
    told = [m["content"] for m in write["messages"] if m["role"] == "user" and "attempt 2 of 3" in str(m["content"])]
    assert told and "1 is too small; need at least 3" in told[0]
    verify = step(view, "verify")
    assert verify["status"] == "completed" and len(verify["previous_attempts"]) == 2
    assert run.output == {"exit_code": 0, "stdout": "ok\n", "stderr": "", "seconds": verify["output"]["seconds"], "timed_out": False, "truncated": False}
    shown = lane_cli("show", run.run_id, cwd=root).stdout
    assert "each[2].inc" in shown and "both.a.pa" in shown and "attempt 2 of 3" in shown
    listed = lane_cli("runs", cwd=root).stdout.splitlines()
    parent_line = next(i for i, line in enumerate(listed) if line.startswith(run.run_id))
    assert listed[parent_line + 1].strip().startswith(linked["run_id"]), "the child is listed under its parent"


def test_for_each_keeps_input_order_and_at_most_max_concurrency_at_once(tmp_path: Path) -> None:
    book = """
        runbook: fan
        inputs: {type: object}
        steps:
          - id: each
            for_each: ${{ inputs.items }}
            max_concurrency: 2
            steps:
              - {id: s, tool: t.slow, args: {n: "${{ item.n }}", wait: "${{ item.wait }}"}}
    """
    root = tmp_path / "p"
    items = [{"n": i, "wait": 0.05 * (6 - i)} for i in range(6)]
    with make(root, {"runbooks/fan.yaml": book}) as project:
        run = project.run("fan", {"items": items})
    assert run.status == "completed" and run.output == [0, 1, 2, 3, 4, 5]
    assert (root / "most.txt").read_text() == "2"


@pytest.mark.parametrize("count", [1000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_many_items_work(tmp_path: Path, count: int) -> None:
    """1,000 items, and 10,000 (whose finished items the journal lets go of as it goes)."""
    book = """
        runbook: many
        inputs: {type: object}
        steps:
          - id: each
            for_each: ${{ inputs.items }}
            max_concurrency: 16
            steps:
              - {id: inc, tool: t.slow, args: {n: "${{ item }}"}}
    """
    with make(tmp_path / "p", {"runbooks/many.yaml": book}) as project:
        run = project.run("many", {"items": list(range(count))})
        assert run.status == "completed" and run.output == list(range(count))


def test_a_branch_that_waits_for_a_person_pauses_only_itself(tmp_path: Path) -> None:
    book = """
        runbook: split
        steps:
          - id: both
            parallel:
              a:
                - {id: ok, human: lead, approve: {amount: 10}}
              b:
                - {id: one, tool: t.add_one, args: {n: 1}}
                - {id: two, tool: t.add_one, args: {n: "${{ steps.one.output }}"}}
          - {id: after, tool: t.add_one, args: {n: "${{ steps.both.output.b }}"}}
    """
    root = tmp_path / "p"
    with make(root, {"runbooks/split.yaml": book}) as project:
        run = project.run("split")
        assert run.status == "paused"
        assert [p.step_id for p in run.pending] == ["both.a.ok"]
        assert calls(root) == ["add_one 1", "add_one 2"], "branch b went on while a waited"
        run.approve(as_role="lead")
        run = run.resume()
        assert run.status == "completed", run.reason
        assert calls(root) == ["add_one 1", "add_one 2", "add_one 3"], "branch b's finished steps did not run again"
        assert project.show(run.run_id)["steps"][0]["output"] == {"a": {"amount": 10}, "b": 3}


def test_on_error_continue_records_the_failure_and_later_steps_read_it(tmp_path: Path) -> None:
    book = """
        runbook: cont
        steps:
          - id: both
            on_error: continue
            parallel:
              a: [{id: fine, tool: t.add_one, args: {n: 1}}]
              b: [{id: bad, tool: t.boom, args: {why: no disk}}]
          - id: after
            when: steps.both.output.b.status == 'failed'
            tool: t.add_one
            args: {n: "${{ steps.both.output.a.output }}"}
    """
    with make(tmp_path / "p", {"runbooks/cont.yaml": book}) as project:
        run = project.run("cont")
        assert run.status == "completed", run.reason
        both = project.show(run.run_id)["steps"][0]["output"]
        assert both["a"] == {"status": "completed", "output": 2}
        assert both["b"]["status"] == "failed" and "no disk" in both["b"]["error"]
        assert run.output == 3


def test_on_error_fail_fails_the_run_with_the_branch_failure(tmp_path: Path) -> None:
    book = """
        runbook: stop
        steps:
          - id: each
            for_each: ${{ [1, 2, 3] }}
            steps:
              - {id: bad, tool: t.boom, args: {why: "item ${{ item }}"}}
          - {id: never, tool: t.add_one, args: {n: 1}}
    """
    root = tmp_path / "p"
    with make(root, {"runbooks/stop.yaml": book}) as project:
        run = project.run("stop")
        assert run.status == "failed" and "item" in (run.reason or "")
        view = project.show(run.run_id)
        assert step(view, "each")["status"] == "failed"
        assert step(view, "never")["status"] == "pending"
        assert "add_one 1" not in calls(root)


def test_a_rejection_with_a_reason_goes_back_to_the_writer(tmp_path: Path) -> None:
    book = """
        runbook: draft
        steps:
          - id: write
            agent: writer
            goal: Propose a number.
            output: {type: object, properties: {n: {type: integer}}, required: [n]}
          - id: review
            human: lead
            approve: ${{ steps.write.output }}
            on_fail: {back_to: write, attempts: 3}
    """
    turns = {"write": [{"output": {"n": 1}}, {"output": {"n": 7}}]}
    with make(tmp_path / "p", {"runbooks/draft.yaml": book}, turns) as project:
        run = project.run("draft")
        assert run.status == "paused"
        run.reject(as_role="lead", reason="too low, make it bigger than 5")
        run = run.resume()
        assert run.status == "paused", "the writer answered again and the reviewer is asked again"
        assert run.pending[0].value == {"n": 7}
        run.approve(as_role="lead")
        run = run.resume()
        assert run.status == "completed" and run.output == {"n": 7}
        messages = step(run.show(), "write")["messages"]
        assert any("too low, make it bigger than 5" in str(m.get("content")) and "attempt 2 of 3" in str(m.get("content")) for m in messages)


def test_when_the_attempts_run_out_a_person_grants_more_or_fails_the_run(tmp_path: Path) -> None:
    book = """
        runbook: tries
        steps:
          - id: write
            agent: writer
            goal: Propose a number.
            output: {type: object, properties: {n: {type: integer}}, required: [n]}
          - id: verify
            check: [python3, scripts/check.py, "${{ steps.write.output.n }}"]
            on_fail: {back_to: write, attempts: 2}
    """
    turns = {"write": [{"output": {"n": 0}}, {"output": {"n": 1}}, {"output": {"n": 2}}, {"output": {"n": 4}}]}
    root = tmp_path / "p"
    with make(root, {"runbooks/tries.yaml": book}, turns) as project:
        run = project.run("tries")
        assert run.status == "paused"
        [asked] = run.pending
        assert asked.kind == "loop" and asked.attempts == 2 and "1 is too small" in (asked.failure or "")
        time.sleep(1.5)  # the person takes a while: the agent step's seconds leave the wait out
        run.approve(as_role="lead")
        run = run.resume()
        assert run.status == "completed", run.reason
        assert step(run.show(), "write")["output"] == {"n": 4}
        assert step(run.show(), "write")["seconds"] < 1.0
        # the attempt that waited for the person is behind it now: it failed, it does not still wait
        assert [a["status"] for a in step(run.show(), "verify")["previous_attempts"]] == ["failed"] * 3
    with make(root, {"runbooks/tries.yaml": book}, turns) as project:
        run = project.run("tries")
        run.reject(as_role="lead", reason="this is going nowhere")
        run = run.resume()
        assert run.status == "failed" and "ended the feedback loop: this is going nowhere" in (run.reason or "")


def test_tool_retry_runs_an_idempotent_tool_again_and_asks_before_a_non_idempotent_one(tmp_path: Path) -> None:
    book = """
        runbook: again
        autonomy: auto
        steps:
          - {id: get, tool: t.flaky, args: {tag: a}, retry: {attempts: 3, delay: 0}}
          - {id: post, tool: t.send, args: {tag: b}, retry: {attempts: 2, delay: 0}}
          - {id: post2, tool: t.send, args: {tag: c}, retry: {attempts: 2, delay: 0, unsafe: true}}
    """
    root = tmp_path / "p"
    with make(root, {"runbooks/again.yaml": book}) as project:
        run = project.run("again")
        assert run.status == "paused"
        [asked] = run.pending
        assert asked.kind == "retry" and asked.tool == "t.send" and "the line dropped" in (asked.error or "")
        assert step(run.show(), "get")["output"] == "ok after 3"
        run.approve(as_role="lead")
        run = run.resume()
        assert run.status == "completed", run.reason
    assert (root / "send-b.log").read_text().count("x") == 2
    assert (root / "send-c.log").read_text().count("x") == 2, "unsafe: true retries without asking"


def test_a_child_that_waits_pauses_the_parent_and_is_decided_from_either_id(tmp_path: Path) -> None:
    files = {
        "runbooks/signoff.yaml": """
            runbook: signoff
            inputs: {type: object, properties: {n: {type: integer}}, required: [n]}
            steps:
              - {id: ok, human: lead, approve: {n: "${{ inputs.n }}"}}
            output: ${{ steps.ok.output.n }}
        """,
        "runbooks/parent.yaml": """
            runbook: parent
            steps:
              - id: each
                for_each: ${{ [1, 2] }}
                runbook: signoff
                with: {n: "${{ item }}"}
              - {id: total, tool: t.add_one, args: {n: "${{ steps.each.output[0] + steps.each.output[1] }}"}}
        """,
    }
    with make(tmp_path / "p", files) as project:
        run = project.run("parent")
        assert run.status == "paused"
        waiting = run.pending
        assert len(waiting) == 2 and all(p.run_id and p.run_id != run.run_id for p in waiting)
        first, second = waiting
        assert project.get(first.run_id).status == "paused"
        project.approve(first.run_id, as_role="lead")
        project.approve(second.run_id, as_role="lead")
        resumed = project.resume(second.run_id)  # resuming a child takes up its parent
        assert resumed.run_id == run.run_id and resumed.status == "completed", resumed.reason
        assert resumed.output == 4
        assert sorted(c["status"] for c in resumed.show()["children"]) == ["completed", "completed"]


def test_a_child_decided_from_the_parent_id(tmp_path: Path) -> None:
    files = {
        "runbooks/signoff.yaml": """
            runbook: signoff
            steps:
              - {id: ok, human: lead, approve: true}
        """,
        "runbooks/parent.yaml": """
            runbook: parent
            steps:
              - {id: sub, runbook: signoff}
        """,
    }
    root = tmp_path / "p"
    with make(root, files) as project:
        run = project.run("parent")
        assert run.status == "paused"
        result = lane_cli("approve", run.run_id, "--as", "lead", cwd=root)
        assert result.returncode == 0, result.stderr
        done = lane_json("resume", run.run_id, cwd=root)
        assert done["status"] == "completed"
        assert project.output(run.run_id) is True


@pytest.mark.parametrize(("steps", "expected"), [
    ("""
      - {id: w, agent: writer, goal: G}
      - {id: c, check: [python3, scripts/check.py, "1"], on_fail: {back_to: nope}}
     """, "back_to 'nope' is not a step of this block"),
    ("""
      - {id: c, check: [python3, scripts/check.py, "1"], on_fail: {back_to: w}}
      - {id: w, agent: writer, goal: G}
     """, "back_to 'w' is not before this step"),
    ("""
      - {id: t1, tool: t.add_one, args: {n: 1}}
      - {id: c, check: [python3, scripts/check.py, "1"], on_fail: {back_to: t1}}
     """, "back_to 't1' is a tool step; a feedback loop goes back to an agent step"),
    ("""
      - {id: sub, runbook: nowhere}
     """, "no runbook 'nowhere'"),
    ("""
      - {id: sub, runbook: child}
     """, "runbook 'child' needs input n; give it in 'with'"),
    ("""
      - {id: each, for_each: "${{ inputs.xs }}", max_concurrency: 0, steps: [{id: s, tool: t.add_one, args: {n: 1}}]}
     """, "'max_concurrency' must be at least 1"),
    ("""
      - {id: each, for_each: "${{ inputs.xs | }}", steps: [{id: s, tool: t.add_one, args: {n: 1}}]}
     """, "does not parse"),
    ("""
      - {id: s, tool: t.add_one, args: {n: "${{ item }}"}}
     """, "unknown name 'item'"),
    ("""
      - {id: each, for_each: "${{ inputs.xs }}", steps: [{id: s, tool: t.add_one, args: {n: "${{ thing }}"}}]}
     """, "unknown name 'thing'"),
    ("""
      - {id: both, parallel: {a: [{id: s, tool: t.add_one, args: {n: 1}}], b: [{id: r, tool: t.add_one, args: {n: "${{ steps.s.output }}"}}]}}
     """, "no earlier step 's'"),
    ("""
      - {id: each, for_each: "${{ inputs.xs }}"}
     """, "needs exactly one of 'steps' (run for each item) or 'runbook'"),
])
def test_validate_checks_every_flow_key(tmp_path: Path, steps: str, expected: str) -> None:
    book = "runbook: bad\ninputs: {type: object, properties: {xs: {type: array}}}\nsteps:" + steps
    root = write_project(tmp_path / "p", {**BASE, "runbooks/bad.yaml": book})
    result = lane_cli("validate", cwd=root)
    assert result.returncode == 2, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("runbooks/bad.yaml:")]
    assert any(expected in line for line in lines), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_refuses_runbooks_that_run_each_other(tmp_path: Path) -> None:
    files = {
        "runbooks/ping.yaml": "runbook: ping\nsteps:\n  - {id: go, runbook: pong}\n",
        "runbooks/pong.yaml": "runbook: pong\nsteps:\n  - {id: go, runbook: ping}\n",
    }
    root = write_project(tmp_path / "p", {**BASE, **files})
    result = lane_cli("validate", cwd=root)
    assert result.returncode == 2
    assert "runbooks run each other in a cycle: ping -> pong -> ping" in result.stdout


def test_show_json_nests_items_and_branches(tmp_path: Path) -> None:
    root = tmp_path / "p"
    turns = {"write": [{"output": {"n": 5}}]}
    with make(root, {"runbooks/main.yaml": THE_ISSUE_EXAMPLE}, turns) as project:
        run = project.run("main", {"items": [1, 2]})
    view = lane_json("show", run.run_id, cwd=root)
    each = step(view, "each")
    assert [(i["index"], i["status"], i["output"]) for i in each["items"]] == [(0, "completed", 2), (1, "completed", 3)]
    assert set(step(view, "both")["branches"]) == {"a", "b"}
    assert [s["id"] for s in view["steps"]] == ["each", "both", "child", "write", "verify"], "nested steps are not at the top"
    json.dumps(view)


def test_a_finished_item_lets_go_of_what_its_steps_recorded(tmp_path: Path) -> None:
    """A for_each over many items must not hold every item's conversation: once an item finishes, the journal
    keeps only the item's own events (its output), not those of the steps inside it."""
    from lane.engine.journal import Journal
    from lane.store.memory import MemoryStore

    store = MemoryStore()
    store.create_run("r", "book", 1, {}, "me")
    journal = Journal(store, "r")
    journal.compact()
    journal.record("step_started", "each", kind="for_each")
    for i in range(3):
        journal.record("step_started", f"each[{i}]", kind="item")
        journal.record("step_started", f"each[{i}].work", kind="agent")
        journal.record("context_assembled", f"each[{i}].work", messages=[{"role": "user", "content": "x" * 10_000}])
        journal.record("step_finished", f"each[{i}].work", output=i)
        if i < 2:
            journal.record("step_finished", f"each[{i}]", output=i)
    kept = [e for e in journal.events if e.type == "context_assembled"]
    assert [e.step_id for e in kept] == ["each[2].work"], "only the unfinished item's conversation is held"
    assert journal.find("step_finished", "each[0]").data["output"] == 0
    assert journal.find("context_assembled", "each[0].work") is None
    assert journal.find("context_assembled", "each[2].work") is not None
    journal.flush()
    assert len(store.events("r")) == journal.next_seq - 1, "everything is still stored"


def test_items_at_once_share_commits_and_each_effect_follows_its_event_on_disk(tmp_path: Path) -> None:
    """Group commit: items running at once wait for one shared commit, yet a tool never starts before
    its `tool_started` event is on disk (read here from the SQLite file by another connection)."""
    probe = '''
        import asyncio
        import sqlite3
        from pathlib import Path

        from lane import ToolContext, tool

        DB = Path(__file__).resolve().parent.parent / ".lane" / "lane.db"


        @tool(effect="read", idempotent=True)
        async def probe(n: int, ctx: ToolContext) -> bool:
            """Whether this call's start is committed."""
            con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
            try:
                row = con.execute("SELECT 1 FROM events WHERE run_id = ? AND type = 'tool_started' AND ref = ?", (ctx.run_id, ctx.call_id)).fetchone()
            finally:
                con.close()
            await asyncio.sleep(0.01)
            return row is not None
    '''
    book = """
        runbook: probe
        steps:
          - id: each
            for_each: ${{ inputs.items }}
            max_concurrency: 10
            steps:
              - {id: p, tool: p.probe, args: {n: "${{ item }}"}}
    """
    files = {"tools/p.py": probe, "runbooks/probe.yaml": book,
             "lane.yaml": BASE["lane.yaml"].replace("t: {python: tools/t.py}", "t: {python: tools/t.py}\n          p: {python: tools/p.py}")}
    with make(tmp_path / "p", files) as project:
        run = project.run("probe", {"items": list(range(40))})
        assert run.status == "completed", run.reason
        assert run.output == [True] * 40


def test_runs_at_once_share_one_commit() -> None:
    import asyncio

    from lane.engine.journal import GroupCommit, Journal
    from lane.store.memory import MemoryStore

    class Counting(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.transactions = 0

        def append(self, *args: Any, **kwargs: Any) -> None:
            self.transactions += 1
            super().append(*args, **kwargs)

        def append_many(self, batches: list[Any]) -> None:
            self.transactions += 1
            for run_id, events in batches:
                MemoryStore.append(self, run_id, events)

    store = Counting()
    group = GroupCommit(store)
    journals = []
    for n in range(5):
        store.create_run(f"r{n}", "book", 1, {}, "me")
        journals.append(Journal(store, f"r{n}", [], group=group))

    async def one(journal: Journal) -> None:
        journal.record("step_started", "s", kind="tool")
        await journal.commit()
        assert store.events(journal.run_id), "on disk when commit returns"

    async def main() -> None:
        group.active = len(journals)
        await asyncio.gather(*(one(j) for j in journals))

    asyncio.run(main())
    assert store.transactions == 1


def test_retry_of_a_failed_item_runs_only_what_did_not_finish(tmp_path: Path) -> None:
    """lane retry of a run whose for_each failed in one item: the finished items keep their outputs and their
    effects (a tool that is not idempotent is not called again for them); only the failed item runs again."""
    tools = TOOLS + '''

    @tool(effect="write")
    def once(n: int) -> int:
        """Record an effect (not idempotent); item 2 fails the first time."""
        marker = HERE / "failed-once"
        if n == 2 and not marker.exists():
            marker.write_text("x")
            raise RuntimeError("item 2 broke")
        _log(f"once {n}")
        return n * 10
'''
    book = """
        runbook: items
        autonomy: auto
        steps:
          - id: each
            for_each: ${{ [1, 2, 3] }}
            max_concurrency: 1
            steps:
              - {id: act, tool: t.once, args: {n: "${{ item }}"}}
          - {id: after, tool: t.add_one, args: {n: "${{ steps.each.output[1] }}"}}
    """
    root = tmp_path / "p"
    with make(root, {"tools/t.py": tools, "runbooks/items.yaml": book}) as project:
        run = project.run("items")
        assert run.status == "failed" and "item 2 broke" in (run.reason or "")
        run = run.retry()
        assert run.status == "completed", run.reason
        assert run.output == 21
        assert sorted(calls(root)) == ["add_one 20", "once 1", "once 2", "once 3"], "no item's effect ran twice"
        each = project.show(run.run_id)["steps"][0]
        assert each["output"] == [10, 20, 30]
        assert [i["status"] for i in each["items"]] == ["completed"] * 3


CHILD_WITH_EFFECT = {
    "tools/t.py": TOOLS + '''

    @tool(effect="write")
    def once(n: int) -> int:
        """Record an effect (not idempotent); fails while the file `broken` exists."""
        if (HERE / "broken").exists() and n == 99:
            raise RuntimeError("the second call broke")
        _log(f"once {n}")
        return n
''',
    "runbooks/kid.yaml": """
        runbook: kid
        autonomy: auto
        steps:
          - {id: pay, tool: t.once, args: {n: 1}}
          - {id: then, tool: t.once, args: {n: 99}}
    """,
    "runbooks/mom.yaml": """
        runbook: mom
        steps:
          - {id: sub, runbook: kid}
    """,
}


def test_retrying_a_parent_retries_its_failed_child_in_place(tmp_path: Path) -> None:
    root = tmp_path / "p"
    with make(root, CHILD_WITH_EFFECT) as project:
        (root / "broken").write_text("x")
        run = project.run("mom")
        assert run.status == "failed" and "the second call broke" in (run.reason or "")
        [child] = run.show()["children"]
        (root / "broken").unlink()
        run = run.retry()
        assert run.status == "completed", run.reason
        assert [c["run_id"] for c in run.show()["children"]] == [child["run_id"]], "the same child, retried in place"
        assert calls(root) == ["once 1", "once 99"], "the child's finished call was not made again"
        audited = [(row.get("run_id"), row["tool"]) for row in project.audit(run.run_id)]
        assert audited.count((child["run_id"], "t.once")) >= 2, "the parent's audit lists its child's calls, saying whose"
        assert "in child run " + child["run_id"] in lane_cli("audit", run.run_id, cwd=root).stdout


def test_a_parent_budget_holds_for_its_children(tmp_path: Path) -> None:
    files = {**CHILD_WITH_EFFECT, "runbooks/mom.yaml": """
        runbook: mom
        budgets: {tool_calls: 3}
        steps:
          - id: each
            for_each: ${{ [1, 2, 3] }}
            max_concurrency: 1
            runbook: kid
    """}
    root = tmp_path / "p"
    with make(root, files) as project:
        run = project.run("mom")
        assert run.status == "stopped" and "tool_calls 3 reached (the parent run" in (run.reason or ""), run.reason
        assert len(calls(root)) == 3, "three children of two calls each may not make six calls under a limit of three"
        run = run.resume(budget={"tool_calls": 10})
        assert run.status == "completed", run.reason
        assert sorted(calls(root)) == sorted(["once 1", "once 99"] * 3), "nothing ran twice"


def test_a_failing_branch_ends_the_child_runs_of_the_others(tmp_path: Path) -> None:
    files = {**CHILD_WITH_EFFECT,
             "runbooks/slowkid.yaml": """
                runbook: slowkid
                steps:
                  - {id: wait, tool: t.slow, args: {n: 1, wait: 5}}
             """,
             "runbooks/mom.yaml": """
                runbook: mom
                steps:
                  - id: both
                    parallel:
                      a: [{id: kid, runbook: slowkid}]
                      b: [{id: bad, tool: t.boom, args: {why: b failed}}]
             """}
    with make(tmp_path / "p", files) as project:
        run = project.run("mom")
        assert run.status == "failed" and "b failed" in (run.reason or "")
        [child] = run.show()["children"]
        assert child["status"] == "failed" and "cancelled" in (child["reason"] or "")
        branch = run.show()["steps"][0]["branches"]["a"]
        assert branch["status"] == "failed" and "cancelled" in branch["error"]


def test_two_children_waiting_on_the_same_call_id_are_decided_by_their_own_ids(tmp_path: Path) -> None:
    files = {
        "runbooks/gate.yaml": "runbook: gate\nsteps:\n  - {id: ok, human: lead, approve: 1}\n",
        "runbooks/kids.yaml": "runbook: kids\nsteps:\n  - {id: each, for_each: '${{ [1, 2] }}', runbook: gate}\n",
    }
    root = tmp_path / "p"
    with make(root, files) as project:
        run = project.run("kids")
        first, second = run.pending
        assert first.call_id == second.call_id == "ok" and first.run_id != second.run_id
        shown = lane_cli("resume", run.run_id, "--no-ask", cwd=root).stdout
        assert f"lane approve {first.run_id} --call ok" in shown and f"lane approve {second.run_id} --call ok" in shown
        ambiguous = lane_cli("approve", run.run_id, "--call", "ok", "--as", "lead", cwd=root)
        assert ambiguous.returncode != 0 and "decide it with the child's id" in ambiguous.stderr
        unnamed = lane_cli("approve", run.run_id, "--as", "lead", cwd=root)
        assert unnamed.returncode != 0 and "waits for 2 decisions" in unnamed.stderr
        for item in (first, second):
            assert lane_cli("approve", item.run_id or "", "--call", "ok", "--as", "lead", cwd=root).returncode == 0
        assert lane_json("resume", run.run_id, cwd=root)["status"] == "completed"


def test_a_loop_request_shows_as_the_step_waiting_not_as_a_call(tmp_path: Path) -> None:
    book = """
        runbook: tries
        steps:
          - {id: write, agent: writer, goal: G, output: {type: object, properties: {n: {type: integer}}, required: [n]}}
          - {id: verify, check: [python3, scripts/check.py, "${{ steps.write.output.n }}"], on_fail: {back_to: write, attempts: 2}}
    """
    turns = {"write": [{"output": {"n": 0}}, {"output": {"n": 1}}, {"output": {"n": 9}}]}
    with make(tmp_path / "p", {"runbooks/tries.yaml": book}, turns) as project:
        run = project.run("tries")
        verify = step(run.show(), "verify")
        assert verify["status"] == "waiting" and verify["tool_calls"] == []
        run.reject(as_role="lead", reason="no")
        run = run.resume()
        assert run.status == "failed"
        run = run.retry()  # the retry gives the loop its attempts afresh: the agent is asked again, not the person
        assert run.status == "completed", run.reason
        assert step(run.show(), "write")["output"] == {"n": 9}


def test_branches_and_items_are_not_steps_of_the_steps_budget(tmp_path: Path) -> None:
    book = """
        runbook: counted
        budgets: {steps: 3}
        steps:
          - {id: each, for_each: "${{ [1, 2, 3, 4, 5] }}", max_concurrency: 1, steps: [{id: s, tool: t.add_one, args: {n: 1}}]}
    """
    with make(tmp_path / "p", {"runbooks/counted.yaml": book}) as project:
        run = project.run("counted")
        assert run.status == "stopped" and "steps 3 reached" in (run.reason or "")
        assert len(calls(tmp_path / "p")) == 2, "the group and two item steps: three steps, not five items and more"


def test_validate_stays_quick_on_deep_trees_of_runbooks(tmp_path: Path) -> None:
    files = {f"runbooks/r{i}.yaml": f"runbook: r{i}\nsteps:\n" + "".join(f"  - {{id: s{j}, runbook: r{i + 1}}}\n" for j in range(3))
             for i in range(25)}
    files["runbooks/r25.yaml"] = "runbook: r25\nsteps:\n  - {id: s, tool: t.add_one, args: {n: 1}}\n"
    root = write_project(tmp_path / "p", {**BASE, **files})
    assert lane_cli("validate", cwd=root, timeout=60).returncode == 0  # 3^25 paths if each were walked


@pytest.mark.parametrize(("snippet", "expected"), [
    ('{id: each, for_each: "${{ [1] }}", as: none, steps: [{id: s, tool: t.add_one, args: {n: 1}}]}', "'as: none' is a name expressions already give a meaning"),
    ('{id: each, for_each: "${{ [1] }}", max_concurrency: "3", steps: [{id: s, tool: t.add_one, args: {n: 1}}]}', "'max_concurrency' must be an integer"),
    ('{id: both, parallel: {"c\\n": [{id: s, tool: t.add_one, args: {n: 1}}]}}', "must be a name of letters"),
])
def test_validate_refuses_odd_flow_values(tmp_path: Path, snippet: str, expected: str) -> None:
    root = write_project(tmp_path / "p", {**BASE, "runbooks/bad.yaml": f"runbook: bad\nsteps:\n  - {snippet}\n"})
    result = lane_cli("validate", cwd=root)
    assert result.returncode == 2 and expected in result.stdout, result.stdout
