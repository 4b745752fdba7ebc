"""Earned autonomy (issue 16, part 7): a level proposed from a made-up record of real runs, accepted as a new
version that the next run obeys. Real runs on a real SQLite store; the only model is the public scripted one."""

from __future__ import annotations

from pathlib import Path

import pytest

import lane as lane_api
from conftest import lane, lane_json, write_project
from lane.errors import UsageError

FILES = {
    "lane.yaml": """
        project: desk
        models: {default: scripted:model.yaml}
        roles:
          lead: {kind: human}
          writer: {kind: agent}
        toolsets:
          mail: {python: tools/mail.py}
    """,
    "model.yaml": """
        draft:
          - tool_calls: [{name: mail.note, args: {text: drafted}}]
          - output: {body: Hello}
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: ask          # every write is approved first
        tools: [mail.note]
        ---
        You write replies.
    """,
    "tools/mail.py": """
        from lane import tool

        @tool(effect="external", idempotent=True)
        def send(to: str, body: str) -> str:
            '''Send a reply.'''
            return f"sent to {to}"

        @tool(effect="write", idempotent=True)
        def note(text: str) -> str:
            '''Keep a note.'''
            return "noted"
    """,
    "runbooks/reply.yaml": """
        runbook: reply   # answers one customer
        approver: lead
        inputs: {type: object, properties: {to: {type: string}}, required: [to]}
        steps:
          - {id: draft, agent: writer, goal: Write a reply., output: {type: object, properties: {body: {type: string}}, required: [body]}}
          - id: send     # the lead signs off every reply
            tool: mail.send
            autonomy: guarded
            args: {to: "${{ inputs.to }}", body: "${{ steps.draft.output.body }}"}
    """,
}


def record(root: Path, decide: list[str]) -> None:
    """A run per entry, each decision on `send` as given: approve, edit, reject or yes (approved by no person)."""
    with lane_api.Project.load(root) as project:
        for i, how in enumerate(decide):
            run = project.run("reply", {"to": f"c{i}@example.com"})
            while run.status == "paused":
                pending = run.pending[0]
                if pending.step_id != "send":
                    run.approve(pending.call_id, as_role="lead")
                elif how == "approve":
                    run.approve(pending.call_id, as_role="lead")
                elif how == "edit":
                    run.approve(pending.call_id, as_role="lead", patch={"body": "Hello!"})
                elif how == "yes":
                    run.approve(pending.call_id, automatic="--yes")
                else:
                    run.reject(pending.call_id, as_role="lead", reason="wrong tone")
                run = run.resume()


def send_site(found: dict) -> dict:
    return next(s for s in found["sites"] if s["step"] == "send")


def test_a_clean_record_proposes_a_level_up_and_accepting_it_writes_a_new_version(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    record(root, ["approve"] * 8)
    found = lane_json("autonomy", "reply", cwd=root)
    site = send_site(found)
    assert site["record"] == {"decided": 8, "approved_without_edit": 8, "edited": 0, "rejected": 0, "ran_unattended": 0,
                              "failed_checks": 0, "runs": 8}
    proposal = site["proposal"]
    assert (proposal["from"], proposal["to"], proposal["direction"]) == ("guarded", "auto", "up")
    assert "mail.send (step send) in reply v1: 8 of 8 approved without edit in 30 days, 0 rejections" in proposal["text"]
    assert site["approved_low"] == pytest.approx(0.6756, abs=1e-3)  # Wilson, 8 of 8
    writer = next(s for s in found["sites"] if s["kind"] == "agent")
    assert writer["proposal"]["to"] == "guarded" and writer["record"]["decided"] == 8  # mail.note approved 8 times

    shown = lane("autonomy", cwd=root)
    assert shown.returncode == 0 and f"{proposal['id']} mail.send (step send)" in shown.stdout and "lane autonomy accept ID" in shown.stdout

    accepted = lane_json("autonomy", "accept", proposal["id"], "--by", "ann", cwd=root)
    assert accepted["versions"] == {"reply": 2} and accepted["files"] == ["runbooks/reply.yaml"]
    text = (root / "runbooks" / "reply.yaml").read_text()
    assert "autonomy: auto" in text and "version: 2" in text
    assert "# the lead signs off every reply" in text and "# answers one customer" in text  # the person's comments stay
    assert lane("validate", cwd=root).returncode == 0
    with lane_api.Project.load(root) as project:  # the next run obeys the new level: send runs without asking
        run = project.run("reply", {"to": "new@example.com"})
        assert [p.step_id for p in run.pending] == ["draft"]
        run.approve(run.pending[0].call_id, as_role="lead")
        done = run.resume()
        assert done.status == "completed" and project.store.run(done.run_id).version == 2
        journal = project.release_status("reply")["log"]
    changed = [e for e in journal if e["type"] == "autonomy_changed"]
    assert len(changed) == 1 and changed[0]["data"]["by"] == "ann" and changed[0]["data"]["to"] == "auto" and changed[0]["data"]["version"] == 2
    again = lane("autonomy", "accept", proposal["id"], cwd=root)
    assert again.returncode == 2 and "no autonomy proposal" in again.stderr


def test_rejections_propose_a_level_down(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    record(root, ["approve", "reject", "approve", "reject", "approve"])
    site = send_site(lane_json("autonomy", cwd=root))
    assert site["record"]["rejected"] == 2
    assert (site["proposal"]["from"], site["proposal"]["to"], site["proposal"]["direction"]) == ("guarded", "ask", "down")
    assert "2 rejections" in site["proposal"]["text"]


def test_edits_count_against_and_approvals_by_no_person_do_not_count(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    record(root, ["yes"] * 10)
    site = send_site(lane_json("autonomy", cwd=root))
    assert site["record"]["decided"] == 0 and site["proposal"] is None  # --yes is no person's judgement
    record(root, ["approve", "edit", "edit", "approve", "approve"])
    site = send_site(lane_json("autonomy", cwd=root))
    assert site["record"]["edited"] == 2 and site["proposal"]["to"] == "ask"  # 2 of 5 edited: 40%


def test_accepting_an_agent_proposal_changes_its_file_and_raises_each_runbook_that_uses_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    record(root, ["approve"] * 8)
    writer = next(s for s in lane_json("autonomy", cwd=root)["sites"] if s["kind"] == "agent")
    write_project(root, {"runbooks/batch.yaml": """
        runbook: batch
        steps:
          - {id: one, runbook: reply, with: {to: "a@example.com"}}
    """})  # a runbook that starts one using the agent: its version holds the agent's file too
    accepted = lane_json("autonomy", "accept", writer["proposal"]["id"], "--by", "ann", cwd=root)
    assert accepted["files"] == ["agents/writer.md", "runbooks/batch.yaml", "runbooks/reply.yaml"]
    assert accepted["versions"] == {"batch": 2, "reply": 2}
    agent = (root / "agents" / "writer.md").read_text()
    assert agent.startswith("---\n") and "autonomy: guarded" in agent and "You write replies." in agent
    assert lane("validate", cwd=root).returncode == 0


def test_autonomy_errors_are_one_line(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    missing = lane("autonomy", "accept", cwd=root)
    assert missing.returncode == 2 and "lane autonomy accept ID" in missing.stderr
    nobook = lane("autonomy", "nope", cwd=root)
    assert nobook.returncode == 2 and "no runbook 'nope'" in nobook.stderr and "Traceback" not in nobook.stderr
    assert lane_json("autonomy", cwd=root) == {"days": 30, "sites": [], "proposals": []}
    with lane_api.Project.load(root) as project, pytest.raises(UsageError, match="no autonomy proposal 'abc'"):
        project.accept_autonomy("abc")
