"""The main path through the CLI: an agent, a tool call that needs approval, a command check."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from conftest import lane, lane_json, write_project

FILES = {
    "lane.yaml": """
        project: gate-flow
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human, description: Signs off what leaves the building.}
          summarizer: {kind: agent}
        toolsets:
          notes: {python: tools/notes.py}
    """,
    "agents/summarizer.md": """
        ---
        name: summarizer
        description: Summarises a ticket.
        autonomy: guarded
        ---
        You summarise tickets in one line.
    """,
    "runbooks/ticket.yaml": """
        runbook: ticket
        version: 3
        inputs:
          type: object
          properties: {ticket: {type: string}}
          required: [ticket]
        steps:
          - id: summarize
            agent: summarizer
            goal: Summarise the ticket.
            with: {ticket: "${{ inputs.ticket }}"}
            output: {type: object, properties: {summary: {type: string}}, required: [summary]}
          - id: publish
            tool: notes.publish
            args: {text: "${{ steps.summarize.output.summary }}"}
          - id: published
            check: [grep, -q, "${{ steps.summarize.output.summary }}", published.txt]
    """,
    "script.yaml": """
        summarize:
          - output: {summary: printer on fire}
    """,
    "tools/notes.py": '''
        from pathlib import Path
        from lane import tool

        @tool(effect="external")
        def publish(text: str) -> dict:
            """Publish a note where everyone sees it."""
            with open(Path(__file__).parent.parent / "published.txt", "a") as f:
                f.write(text + "\\n")
            return {"published": text}
    ''',
}


def test_run_pauses_at_the_gate_then_approve_and_resume_complete_it(project_dir: Path) -> None:
    write_project(project_dir, FILES)

    started = lane("run", "ticket", "--input", "ticket=The printer is on fire", "--json", cwd=project_dir)
    assert started.returncode == 3, started.stderr
    run_id = __import__("json").loads(started.stdout)["run_id"]
    assert not (project_dir / "published.txt").exists(), "the external call ran before approval"

    waiting = lane_json("show", run_id, cwd=project_dir)
    assert waiting["status"] == "paused"
    assert [p["call_id"] for p in waiting["pending"]] == ["publish:1"]
    assert waiting["pending"][0]["args"] == {"text": "printer on fire"}

    approved = lane("approve", run_id, "--as", "lead", cwd=project_dir)
    assert approved.returncode == 0, approved.stderr
    assert not (project_dir / "published.txt").exists(), "approve must only record; resume runs"

    resumed = lane("resume", run_id, "--json", cwd=project_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert (project_dir / "published.txt").read_text() == "printer on fire\n"

    view = lane_json("show", run_id, cwd=project_dir)
    assert (view["run_id"], view["runbook"], view["version"], view["status"]) == (run_id, "ticket", 3, "completed")
    assert view["inputs"] == {"ticket": "The printer is on fire"}
    assert [(s["id"], s["kind"], s["status"]) for s in view["steps"]] == [
        ("summarize", "agent", "completed"), ("publish", "tool", "completed"), ("published", "check", "completed"),
    ]
    summarize, publish, check = view["steps"]
    assert summarize["output"] == {"summary": "printer on fire"}
    sent = summarize["context"]["messages"]
    assert sent[0] == {"role": "system", "content": "You summarise tickets in one line."}
    assert "Summarise the ticket." in sent[1]["content"] and "The printer is on fire" in sent[1]["content"]
    assert summarize["usage"] == {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "unpriced_calls": 0}

    [call] = publish["tool_calls"]
    assert (call["call_id"], call["tool"], call["args"], call["effect"]) == ("publish:1", "notes.publish", {"text": "printer on fire"}, "external")
    decision = call["decision"]
    assert (decision["by"], decision["decision"]) == ("lead", "approved")
    assert datetime.fromisoformat(decision["at"]) <= datetime.fromisoformat(call["executions"][0]["started_at"])
    [execution] = call["executions"]
    assert execution["status"] == "ok" and execution["result"] == {"published": "printer on fire"}
    assert execution["seconds"] >= 0 and len(execution["idempotency_key"]) == 32
    assert check["output"]["exit_code"] == 0
    for step in view["steps"]:
        assert step["seconds"] is not None and step["seconds"] >= 0

    listed = lane_json("runs", cwd=project_dir)
    assert listed[0]["run_id"] == run_id and listed[0]["status"] == "completed"
    human = lane("show", run_id, cwd=project_dir)
    assert "approved by lead" in human.stdout and "publish:1 notes.publish" in human.stdout


def test_rejected_gate_ends_the_run_rejected_and_never_runs_the_call(project_dir: Path) -> None:
    write_project(project_dir, FILES)
    run_id = lane_json("run", "ticket", "--input", "ticket=x", cwd=project_dir)["run_id"]
    rejected = lane("reject", run_id, "--reason", "not today", cwd=project_dir)
    assert rejected.returncode == 0, rejected.stderr
    resumed = lane("resume", run_id, cwd=project_dir)
    assert resumed.returncode == 4  # rejected by a person: its own exit code, not a failure
    assert "rejected" in resumed.stdout and "not today" in resumed.stdout
    assert not (project_dir / "published.txt").exists()
    view = lane_json("show", run_id, cwd=project_dir)
    assert view["status"] == "rejected"
    assert lane_json("runs", cwd=project_dir)[0]["status"] == "rejected"
    assert view["steps"][1]["tool_calls"][0]["status"] == "rejected"
    assert view["steps"][1]["tool_calls"][0]["executions"] == []
    assert view["steps"][2]["status"] == "pending"


def test_failing_check_fails_the_run_with_exit_1(project_dir: Path) -> None:
    files = dict(FILES)
    files["runbooks/ticket.yaml"] = FILES["runbooks/ticket.yaml"].replace("published.txt]", "missing.txt]")
    write_project(project_dir, files)
    run_id = lane_json("run", "ticket", "--input", "ticket=x", cwd=project_dir)["run_id"]
    lane("approve", run_id, cwd=project_dir)
    resumed = lane("resume", run_id, cwd=project_dir)
    assert resumed.returncode == 1
    view = lane_json("show", run_id, cwd=project_dir)
    assert view["status"] == "failed" and view["steps"][2]["status"] == "failed"
    assert "check published (grep -q printer on fire missing.txt) exited 2" in view["reason"]


def test_inputs_that_do_not_fit_the_runbook_are_refused_before_a_run_exists(project_dir: Path) -> None:
    write_project(project_dir, FILES)
    result = lane("run", "ticket", "--input", "ticket=5", cwd=project_dir)
    assert result.returncode == 2
    assert "inputs.ticket: 5 is not of type 'string'" in result.stderr
    assert lane_json("runs", cwd=project_dir) == []
