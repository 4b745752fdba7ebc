"""What a resumed run may not do: run other arguments than were approved, run what was only
proposed, slip past an allowlist, or take a decision while another process runs it.

Each test here reproduces a defect found in review; each failed before its fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import lane
from conftest import lane as lane_cli
from conftest import lane_json, write_project
from lane.store.sqlite import process_owner
from lane.testing import ScriptedModel

TOOLS = '''
    import json
    from pathlib import Path
    from lane import tool

    PAID = Path(__file__).resolve().parent.parent / "paid.jsonl"

    @tool(effect="external")
    def pay(amount: int) -> dict:
        """Pay someone."""
        with open(PAID, "a") as f:
            f.write(json.dumps({"amount": amount}) + "\\n")
        return {"paid": amount}

    @tool(effect="read")
    def look() -> dict:
        """Look around."""
        return {"seen": True}
'''


def _project(root: Path, *, runbook: str, agent: str = "", lane_yaml_extra: str = "") -> Path:
    files = {
        "lane.yaml": f"""
            project: replay
            models: {{default: scripted:model}}
            roles:
              lead: {{kind: human}}
              clerk: {{kind: agent}}
            toolsets:
              ops: {{python: tools/ops.py}}
            {lane_yaml_extra}
        """,
        "agents/clerk.md": agent or """
            ---
            name: clerk
            autonomy: auto
            tools: [ops.*]
            ---
            You work.
        """,
        "runbooks/book.yaml": runbook,
        "tools/ops.py": TOOLS,
    }
    return write_project(root, files)


def _paid(root: Path) -> list[str]:
    path = root / "paid.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_a_tool_step_runs_the_arguments_that_were_approved_even_if_the_runbook_changed(tmp_path: Path) -> None:
    book = """
        runbook: book
        steps:
          - id: settle
            tool: ops.pay
            args: {amount: 5}
    """
    root = _project(tmp_path / "p", runbook=book)
    with lane.Project.load(root, models={"scripted:model": ScriptedModel([])}) as project:
        run = project.run("book")
        assert run.pending[0]["args"] == {"amount": 5}
        run.approve()
    (root / "runbooks" / "book.yaml").write_text((root / "runbooks" / "book.yaml").read_text().replace("amount: 5", "amount: 5000"))
    with lane.Project.load(root, models={"scripted:model": ScriptedModel([])}) as project:
        assert project.resume(run.run_id).status == "completed"
    assert _paid(root) == ['{"amount": 5}']


def test_a_proposal_stays_a_proposal_when_the_agent_is_given_more_autonomy(tmp_path: Path) -> None:
    observe = """
        ---
        name: clerk
        autonomy: observe
        tools: [ops.*]
        repairs: 0
        ---
        You work.
    """
    book = """
        runbook: book
        steps:
          - id: work
            agent: clerk
            goal: Pay.
            output: {type: object, properties: {done: {type: boolean}}, required: [done]}
    """
    turns = [{"tool_calls": [{"name": "ops.pay", "args": {"amount": 999}}]}, {"output": {"done": "yes"}}]
    root = _project(tmp_path / "p", runbook=book, agent=observe)
    with lane.Project.load(root, models={"scripted:model": ScriptedModel(turns)}) as project:
        run = project.run("book")
        assert run.pending[0]["kind"] == "handoff"
    (root / "agents" / "clerk.md").write_text((root / "agents" / "clerk.md").read_text().replace("observe", "auto"))
    with lane.Project.load(root, models={"scripted:model": ScriptedModel(turns)}) as project:
        project.approve(run.run_id, edit={"done": True})
        assert project.resume(run.run_id).status == "completed"
        [call] = project.show(run.run_id)["steps"][0]["tool_calls"]
        assert call["status"] == "proposed" and call["executions"] == []
    assert _paid(root) == []


def test_a_step_cannot_widen_its_agents_allowlist(tmp_path: Path) -> None:
    narrow = """
        ---
        name: clerk
        autonomy: auto
        tools: ["ops.[!p]*"]
        ---
        You work.
    """
    book = """
        runbook: book
        steps:
          - id: work
            agent: clerk
            goal: Pay.
            tools: [ops.*]
    """
    turns = [{"tool_calls": [{"name": "ops.pay", "args": {"amount": 1}}, {"name": "ops.look", "args": {}}]}, {"text": "done"}]
    root = _project(tmp_path / "p", runbook=book, agent=narrow)
    with lane.Project.load(root, models={"scripted:model": ScriptedModel(turns)}) as project:
        run = project.run("book")
        assert run.status == "completed"
        pay, look = project.show(run.run_id)["steps"][0]["tool_calls"]
        assert pay["status"] == "refused" and pay["reason"] == "'ops.pay' is not in this agent's tools (ops.[!p]*)"
        assert look["status"] == "ok"
    assert _paid(root) == []


def test_no_decision_is_taken_while_a_live_process_runs_the_run(tmp_path: Path) -> None:
    book = """
        runbook: book
        steps:
          - {id: settle, tool: ops.pay, args: {amount: 5}}
    """
    root = _project(tmp_path / "p", runbook=book)
    with lane.Project.load(root, models={"scripted:model": ScriptedModel([])}) as project:
        run = project.run("book")
        holder = subprocess.Popen(["sleep", "30"])
        try:
            project.store.claim(run.run_id, process_owner("other").replace(str(__import__("os").getpid()), str(holder.pid)))
            assert project.store.run(run.run_id).status == "running"
            with pytest.raises(lane.DecisionError, match="is running; decisions are taken when it pauses"):
                run.approve()
            with pytest.raises(lane.RunError, match="is being executed by process"):
                project.resume(run.run_id)
        finally:
            holder.kill()
            holder.wait()
        assert project.resume(run.run_id).status == "paused"  # the holder is gone: the run is taken over
        run.approve()
        assert project.resume(run.run_id).status == "completed"


def test_an_interrupted_run_resumes_in_the_same_process(tmp_path: Path) -> None:
    book = """
        runbook: book
        steps:
          - {id: first, tool: ops.look}
          - {id: second, tool: ops.stop_once}
    """
    root = _project(tmp_path / "p", runbook=book)
    (root / "tools" / "ops.py").write_text((root / "tools" / "ops.py").read_text() + '''

@tool(effect="read", idempotent=True)
def stop_once() -> dict:
    """Interrupted the first time, as by Ctrl-C."""
    marker = PAID.parent / "interrupted"
    if not marker.exists():
        marker.touch()
        raise KeyboardInterrupt
    return {"ok": True}
''')
    with lane.Project.load(root, models={"scripted:model": ScriptedModel([])}) as project:
        with pytest.raises(KeyboardInterrupt):
            project.run("book")
        [record] = project.runs()
        assert record.status == "running" and record.owner is None
        assert project.resume(record.run_id).status == "completed"
        second = project.show(record.run_id)["steps"][1]
        assert [e["status"] for e in second["tool_calls"][0]["executions"]] == ["interrupted", "ok"]


def test_show_prints_names_from_model_output_as_they_are(tmp_path: Path) -> None:
    book = """
        runbook: book
        steps:
          - {id: work, agent: clerk, goal: Work.}
    """
    root = _project(tmp_path / "p", runbook=book, lane_yaml_extra="")
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace("scripted:model", "scripted:script.yaml"))
    with open(root / "tools/ops.py", "a") as tools:  # a tool whose name is Rich markup
        tools.write('\n@tool(effect="read", name="look[/]")\ndef look_markup() -> dict:\n    return {"seen": True}\n')
    (root / "script.yaml").write_text("- tool_calls: [{name: 'ops.look[/]', args: {}}]\n- text: '[bold]done[/bold]'\n")
    result = lane_cli("run", "book", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    run_id = lane_json("runs", cwd=root)[0]["run_id"]
    shown = lane_cli("show", run_id, cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "ops.look[/]" in shown.stdout and "[bold]done[/bold]" in shown.stdout


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    book = """
        runbook: book
        steps:
          - {id: first, tool: ops.look}
    """
    root = _project(tmp_path / "p", runbook=book)
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace("scripted:model", "scripted:script.yaml"))
    (root / "script.yaml").write_text("- text: unused\n")
    (root / ".lane").mkdir()
    (root / ".lane" / "lane.db").write_text("not a database, just text\n" * 100)
    result = lane_cli("runs", cwd=root)
    assert result.returncode == 2
    assert "is not a lane store lane can read (file is not a database); move it aside" in result.stderr
    assert "Traceback" not in result.stderr
