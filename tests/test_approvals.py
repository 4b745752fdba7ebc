"""Approval safety: bound to one call and its arguments, used once, decided only by allowed people."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lane
from conftest import lane as lane_cli
from conftest import write_project
from lane.store.records import Event, now

FILES = {
    "lane.yaml": """
        project: approvals
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human}
          auditor: {kind: human}
          mailer: {kind: agent}
        toolsets:
          mail: {python: tools/mail.py}
    """,
    "agents/mailer.md": """
        ---
        name: mailer
        autonomy: guarded
        tools: [mail.send]
        ---
        You send mail.
    """,
    "runbooks/mail.yaml": """
        runbook: mail
        approver: lead
        steps:
          - id: write
            agent: mailer
            goal: Send both letters.
            output: {type: object, properties: {sent: {type: integer}}, required: [sent]}
    """,
    "script.yaml": """
        write:
          - tool_calls: [{name: mail.send, args: {to: a@x.example, body: first}}]
          - tool_calls: [{name: mail.send, args: {to: b@x.example, body: second}}]
          - output: {sent: 2}
    """,
    "tools/mail.py": '''
        from pathlib import Path
        from lane import tool

        SENT = Path(__file__).resolve().parent.parent / "sent.txt"

        @tool(effect="external")
        def send(to: str, body: str) -> dict:
            """Send a letter."""
            with open(SENT, "a") as f:
                f.write(f"{to} {body}\\n")
            return {"to": to}
    ''',
}


def _sent(root: Path) -> list[str]:
    path = root / "sent.txt"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def project(project_dir: Path) -> lane.Project:
    with lane.Project.load(write_project(project_dir, FILES)) as proj:
        yield proj


def test_an_approval_covers_its_own_call_only(project: lane.Project) -> None:
    run = project.run("mail")
    assert [p["call_id"] for p in run.pending] == ["write:1"]
    run.approve()
    run = run.resume()
    assert _sent(project.root) == ["a@x.example first"]
    # The second call, to another address, waits for its own approval.
    assert run.status == "paused" and [p["call_id"] for p in run.pending] == ["write:2"]
    with pytest.raises(lane.DecisionError, match="no pending decision 'write:1'"):
        run.approve("write:1")
    # Resuming without a decision runs nothing and keeps waiting.
    assert run.resume().status == "paused"
    assert _sent(project.root) == ["a@x.example first"]


def test_an_approval_made_for_other_arguments_is_not_used(project: lane.Project) -> None:
    run = project.run("mail")
    [pending] = run.pending
    events = project.store.events(run.run_id)
    # A decision bound to different arguments (say, a stale or forged one) arrives for this call.
    forged = Event(events[-1].seq + 1, "decision", "write", "write:1", now(), {
        "kind": "tool_call", "decision": "approved", "by": "lead", "user": "mallory",
        "request_seq": events[-1].seq - 1, "args_hash": "0" * 32,
    })
    assert pending["args_hash"] != "0" * 32
    project.store.append(run.run_id, [forged])
    run = run.resume()
    assert run.status == "paused", "the call ran on an approval made for other arguments"
    assert _sent(project.root) == []
    types = [e.type for e in project.store.events(run.run_id)]
    assert "approval_refused" in types
    assert [p["call_id"] for p in run.pending] == ["write:1"]


def test_an_edit_is_journaled_before_the_tool_runs_with_the_edited_arguments(project: lane.Project) -> None:
    run = project.run("mail")
    run.approve(edit={"to": "a@x.example", "body": "first, reworded"})
    run.resume()
    assert _sent(project.root) == ["a@x.example first, reworded"]
    events = project.store.events(run.run_id)
    decision = next(e for e in events if e.type == "decision")
    started = next(e for e in events if e.type == "tool_started")
    assert decision.seq < started.seq
    assert decision.data["edited_args"] == {"to": "a@x.example", "body": "first, reworded"}
    assert decision.data["by"] == "lead" and decision.data["user"] and decision.at
    call = project.show(run.run_id)["steps"][0]["tool_calls"][0]
    assert call["decision"]["edited_args"]["body"] == "first, reworded"


def test_an_edit_that_does_not_fit_the_tool_is_refused_and_nothing_is_recorded(project: lane.Project) -> None:
    run = project.run("mail")
    before = len(project.store.events(run.run_id))
    with pytest.raises(lane.DecisionError, match="do not fit mail.send"):
        run.approve(edit={"to": "a@x.example"})
    assert len(project.store.events(run.run_id)) == before


def test_a_rejected_call_never_runs_and_the_agent_is_told(project: lane.Project) -> None:
    run = project.run("mail")
    run.reject(reason="wrong customer")
    run = run.resume()
    assert _sent(project.root) == []
    assert [p["call_id"] for p in run.pending] == ["write:2"]
    view = project.show(run.run_id)
    [first, _] = view["steps"][0]["tool_calls"]
    assert first["status"] == "rejected" and first["executions"] == []
    # the model heard of the rejection and went on to its next turn
    assert len(view["steps"][0]["turns"]) == 2
    assert not any(e.type == "tool_started" and e.ref == "write:1" for e in project.store.events(run.run_id))


def test_deciding_on_a_finished_run_is_refused(project: lane.Project) -> None:
    run = project.run("mail")
    run.approve()
    run = run.resume()
    run.approve()
    run = run.resume()
    assert run.status == "completed"
    with pytest.raises(lane.DecisionError, match="is completed; a finished run takes no decisions"):
        project.approve(run.run_id)
    with pytest.raises(lane.DecisionError, match="finished run"):
        project.reject(run.run_id, reason="too late")
    with pytest.raises(lane.UsageError, match="only paused, stopped or interrupted runs resume"):
        run.resume()


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("ceo", "role 'ceo' is not in the work chart"),
        ("mailer", "role 'mailer' is an agent role; only a person (a human role) can decide"),
        ("auditor", "role 'auditor' may not decide this; the work chart gives it to lead"),
    ],
)
def test_only_an_allowed_human_role_can_decide(project: lane.Project, role: str, message: str) -> None:
    run = project.run("mail")
    before = len(project.store.events(run.run_id))
    with pytest.raises(lane.DecisionError, match=re.escape(message)):
        run.approve(as_role=role)
    with pytest.raises(lane.DecisionError, match=re.escape(message)):
        run.reject(as_role=role, reason="no")
    assert len(project.store.events(run.run_id)) == before
    assert run.resume().status == "paused"
    assert _sent(project.root) == []


def test_the_cli_refuses_with_exit_2_and_says_why(project: lane.Project) -> None:
    run = project.run("mail")
    result = lane_cli("approve", run.run_id, "--as", "mailer", cwd=project.root)
    assert result.returncode == 2
    assert "only a person (a human role) can decide" in result.stderr
    result = lane_cli("approve", run.run_id, "--edit", "{not json", cwd=project.root)
    assert result.returncode == 2 and "--edit must be JSON" in result.stderr
    result = lane_cli("approve", "nosuchrun", cwd=project.root)
    assert result.returncode == 2 and "no run 'nosuchrun'" in result.stderr
    assert json.loads(lane_cli("show", run.run_id, "--json", cwd=project.root).stdout)["status"] == "paused"


def test_show_has_the_whole_conversation_the_agent_saw(project: lane.Project) -> None:
    run = project.run("mail")
    run.reject(reason="wrong customer")
    run = run.resume()
    messages = project.show(run.run_id)["steps"][0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[3] == {"role": "tool", "call_id": "write:1", "name": "mail.send", "content": {"rejected": True, "reason": "wrong customer"}}
    assert messages[4]["tool_calls"] == [{"name": "mail.send", "args": {"to": "b@x.example", "body": "second"}}]
