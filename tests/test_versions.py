"""Kept versions (issue 16, part 1): a run resumes on its own version whatever the files say later; a version with
runs is immutable; `lane versions` and `lane diff` show them. Real runs on the scripted model, a real SQLite store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import lane, lane_json, write_project

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
    "agents/writer.md": """
        ---
        name: writer
        context: {always: [STYLE.md]}
        ---
        You write replies.
    """,
    "STYLE.md": "Be brief.\n",
    "tools/mail.py": """
        from lane import tool

        @tool(effect="external", idempotent=True)
        def send(to: str, body: str) -> str:
            '''Send a reply.'''
            with open("sent.log", "a") as log:
                log.write(f"{to}: {body}\\n")
            return f"sent to {to}"
    """,
    "model.yaml": """
        draft:
          - output: {body: "Hello"}
    """,
    "runbooks/reply.yaml": """
        runbook: reply
        version: 1
        approver: lead
        inputs: {type: object, properties: {to: {type: string}}, required: [to]}
        steps:
          - {id: draft, agent: writer, goal: Write a reply., output: {type: object, properties: {body: {type: string}}, required: [body]}}
          - {id: send, tool: mail.send, args: {to: "${{ inputs.to }}", body: "${{ steps.draft.output.body }}"}}
        kpis:
          sent:
            value: steps.send.status == 'completed'
    """,
}

V2 = """
runbook: reply
version: 2
approver: lead
inputs: {type: object, properties: {to: {type: string}}, required: [to]}
steps:
  - {id: draft, agent: writer, goal: Write a short reply., output: {type: object, properties: {body: {type: string}}, required: [body]}}
  - {id: check, check: [test, -e, nowhere]}
  - {id: send, tool: mail.send, args: {to: "${{ inputs.to }}", body: "v2 ${{ steps.draft.output.body }}"}}
"""


def paused_run(root: Path, to: str = "ann@example.com") -> str:
    ran = lane("run", "reply", "--input", f"to={to}", "--json", cwd=root)
    assert ran.returncode == 3, ran.stdout + ran.stderr
    return str(json.loads(ran.stdout)["run_id"])


def test_a_run_paused_on_v1_resumes_on_v1_after_v2_is_written(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    run_id = paused_run(root)
    (root / "runbooks" / "reply.yaml").write_text(V2)  # v2: a new goal, a check that fails, another body
    (root / "agents" / "writer.md").write_text("---\nname: writer\n---\nYou write long replies.\n")
    (root / "STYLE.md").unlink()  # v1's context file is gone from the disk
    assert lane("validate", cwd=root).returncode == 0, "v2 is a new number: valid"
    assert lane("approve", run_id, cwd=root).returncode == 0
    resumed = lane("resume", run_id, "--json", cwd=root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    view = lane_json("show", run_id, cwd=root)
    assert view["version"] == 1 and [s["id"] for s in view["steps"]] == ["draft", "send"], "v1's steps, not v2's"
    assert (root / "sent.log").read_text() == "ann@example.com: Hello\n"
    assert view["kpis"]["sent"] is True, "v1's KPIs"

    second = lane("run", "reply", "--input", "to=bo@example.com", "--json", cwd=root)  # a new run starts on v2
    view = lane_json("show", json.loads(second.stdout)["run_id"], cwd=root)
    assert second.returncode == 1 and view["version"] == 2 and [s["id"] for s in view["steps"]][:2] == ["draft", "check"]


def test_a_run_resumed_on_its_version_sees_that_versions_context_files(tmp_path: Path) -> None:
    files = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"].replace(
        "- {id: draft", "- {id: hold, human: lead, prompt: Go on?, approve: yes}\n          - {id: draft")}
    root = write_project(tmp_path / "desk", files)
    run_id = paused_run(root)  # waits at `hold`, before the agent's context is assembled
    (root / "STYLE.md").write_text("Write in capitals.\n")
    book = (root / "runbooks" / "reply.yaml").read_text().replace("version: 1", "version: 2")
    (root / "runbooks" / "reply.yaml").write_text(book)
    assert lane("approve", run_id, cwd=root).returncode == 0
    assert lane("resume", run_id, "--json", cwd=root).returncode == 3  # now at send
    view = lane_json("show", run_id, cwd=root)
    draft = next(s for s in view["steps"] if s["id"] == "draft")
    system = draft["context"]["messages"][0]["content"]
    assert "Be brief." in system and "capitals" not in system, "the context file as v1 had it"


def test_changing_a_version_that_has_runs_is_refused_until_its_number_is_raised(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    paused_run(root)
    (root / "agents" / "writer.md").write_text("---\nname: writer\ncontext: {always: [STYLE.md]}\n---\nYou write long replies.\n")
    checked = lane("validate", cwd=root)
    assert checked.returncode == 2
    assert "runbooks/reply.yaml:2:10: runbook" in checked.stdout and "reply v1 has runs, and its files changed since (agents/writer.md changed)" in checked.stdout
    refused = lane("run", "reply", "--input", "to=x@example.com", cwd=root)
    assert refused.returncode == 2 and "raise `version:` in runbooks/reply.yaml" in refused.stderr
    (root / "STYLE.md").write_text("Be warm.\n")
    assert "STYLE.md changed" in lane("validate", cwd=root).stdout, "a context file is part of the version"
    book = root / "runbooks" / "reply.yaml"
    book.write_text(book.read_text().replace("version: 1", "version: 2"))
    assert lane("validate", cwd=root).returncode == 0
    paused_run(root)


def test_a_changed_tool_is_shown_not_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    paused_run(root)
    tools = root / "tools" / "mail.py"
    tools.write_text(tools.read_text().replace("'''Send a reply.'''", "'''Send a reply to a customer.'''"))
    assert lane("validate", cwd=root).returncode == 0, "tools are code deployed with the project"
    paused_run(root)
    book = root / "runbooks" / "reply.yaml"
    book.write_text(book.read_text().replace("version: 1", "version: 2").replace("Write a reply.", "Write a kind reply."))
    paused_run(root)
    shown = lane("diff", "reply", "1", "2", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "runbooks/reply.yaml changed" in shown.stdout
    assert "-  - {id: draft, agent: writer, goal: Write a reply." in shown.stdout.replace("    ", "  ")
    found = lane_json("diff", "reply", "1", "2", cwd=root)
    assert found["changes"] == ["runbooks/reply.yaml changed"], "v1's last kept snapshot has the new tool already"


def test_versions_lists_each_version_with_its_runs_and_kpis(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    done = paused_run(root)
    assert lane("approve", done, cwd=root).returncode == 0 and lane("resume", done, cwd=root).returncode == 0
    paused_run(root)
    book = root / "runbooks" / "reply.yaml"
    book.write_text(book.read_text().replace("version: 1", "version: 2"))
    paused_run(root)
    rows = lane_json("versions", "reply", cwd=root)
    assert [(r["version"], r["runs"], r["statuses"], r["current"]) for r in rows] == [
        (2, 1, {"paused": 1}, True), (1, 2, {"completed": 1, "paused": 1}, False)]
    assert rows[1]["kpis"]["sent"].startswith("1 of 1") or "1" in rows[1]["kpis"]["sent"]
    text = lane("versions", "reply", cwd=root)
    assert text.returncode == 0 and "v2 (current) · 1 run: 1 paused" in text.stdout and "v1 · 2 runs: 1 completed, 1 paused" in text.stdout
    missing = lane("diff", "reply", "1", "7", cwd=root)
    assert missing.returncode == 2 and "has no kept version v7 (kept: v1, v2)" in missing.stderr
    assert lane("versions", "nope", cwd=root).returncode == 2


def test_the_store_keeps_each_file_once(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    for i in range(3):
        paused_run(root, f"c{i}@example.com")
    with sqlite3.connect(root / ".lane" / "lane.db") as db:
        assert db.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 3  # the runbook, the agent, its context file
        assert {r[0] for r in db.execute("SELECT snapshot FROM runs")} == {db.execute("SELECT digest FROM snapshots").fetchone()[0]}


def test_a_file_of_the_version_gone_under_a_running_server_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    import pytest

    from lane import Project
    from lane.errors import UsageError

    root = write_project(tmp_path / "desk", FILES)
    with Project.load(root) as project:  # as lane serve holds it
        (root / "STYLE.md").unlink()
        with pytest.raises(UsageError, match="needs STYLE.md, which cannot be read"):
            project.start("reply", {"to": "b@example.com"})
        assert project.runs() == []
    assert "agents/writer.md:3:20: no file STYLE.md" in lane("run", "reply", "--input", "to=b@example.com", cwd=root).stdout
