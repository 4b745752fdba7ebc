"""`lane audit`: every tool call in order, what let it through or stopped it, and who decided."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lane, write_project
from lane.engine.approvals import args_hash


def test_audit_lists_approved_rejected_refused_and_automatic_calls(tmp_path: Path) -> None:
    root = write_project(tmp_path, {
        "lane.yaml": """
            project: audit
            roles:
              lead: {kind: human}
              clerk: {kind: agent}
            toolsets:
              outbox: {python: tools/outbox.py}
            rules:
              deny: ["outbox.send(to=*@evil.example)"]
              allow: ["outbox.draft"]
        """,
        "agents/clerk.md": """
            ---
            name: clerk
            model: scripted:script.yaml
            autonomy: guarded
            tools: [outbox.*]
            ---
            You send mail.
        """,
        "script.yaml": """
            - tool_calls:
                - {name: outbox.send, args: {to: ann@acme.example}}
                - {name: outbox.send, args: {to: leak@evil.example}}
                - {name: outbox.draft, args: {to: bob@acme.example}}
                - {name: outbox.send, args: {to: bob@acme.example}}
            - output: done
        """,
        "runbooks/mail.yaml": """
            runbook: mail
            steps:
              - {id: mail, agent: clerk, goal: Send the mail.}
        """,
        "tools/outbox.py": """
            from lane import tool

            @tool(effect="external")
            def send(to: str) -> str:
                \"\"\"Send.\"\"\"
                return "sent to " + to

            @tool(effect="external")
            def draft(to: str) -> str:
                \"\"\"Draft.\"\"\"
                return "drafted for " + to
        """,
    })
    run_id = json.loads(lane("run", "mail", "--json", cwd=root).stdout)["run_id"]
    assert lane("approve", run_id, cwd=root).returncode == 0
    assert lane("resume", run_id, cwd=root).returncode == 3
    assert lane("reject", run_id, "--reason", "not bob", cwd=root).returncode == 0
    assert lane("resume", run_id, cwd=root).returncode == 0

    result = lane("audit", run_id, "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    got = [(r["call_id"], r["tool"], r["outcome"], r["refused_by"] or r["allowed_by"], r["approved_by"], r["rejected_by"]) for r in rows]
    assert got == [
        ("mail:1", "outbox.send", "ran", "autonomy guarded: an external call waits for a person", "lead", None),
        ("mail:2", "outbox.send", "refused", "lane.yaml deny: outbox.send(to=*@evil.example)", None, None),
        ("mail:3", "outbox.draft", "ran", "lane.yaml allow: outbox.draft", None, None),
        ("mail:4", "outbox.send", "rejected", "autonomy guarded: an external call waits for a person", None, "lead"),
    ]
    assert rows[0]["args_hash"] == args_hash("outbox.send", {"to": "ann@acme.example"})
    assert rows[0]["effect"] == "external" and rows[0]["result_hash"] and rows[2]["result_hash"]
    assert rows[0]["result_hash"] != rows[2]["result_hash"]
    assert rows[1]["result_hash"] is None and rows[3]["result_hash"] is None  # never ran
    assert rows[3]["reason"] == "not bob"

    text = lane("audit", run_id[:6], cwd=root)
    assert text.returncode == 0, text.stderr
    for needle in ("approved by lead", "rejected by lead", "lane.yaml deny: outbox.send(to=*@evil.example)", "refused", "lane.yaml allow: outbox.draft"):
        assert needle in text.stdout, text.stdout
    missing = lane("audit", "nosuchrun", cwd=root)
    assert missing.returncode == 2 and "nosuchrun" in missing.stderr


def test_a_persons_edit_is_held_to_the_same_deny_rules(tmp_path: Path) -> None:
    root = write_project(tmp_path, {
        "lane.yaml": """
            project: edit
            roles:
              lead: {kind: human}
              clerk: {kind: agent}
            toolsets:
              outbox: {python: tools/outbox.py}
            rules:
              deny: ["outbox.send(to=*@evil.example)"]
        """,
        "agents/clerk.md": "---\nname: clerk\nmodel: scripted:script.yaml\nautonomy: guarded\ntools: [outbox.send]\n---\nYou send mail.\n",
        "script.yaml": "- tool_calls: [{name: outbox.send, args: {to: ann@acme.example}}]\n- output: done\n",
        "runbooks/mail.yaml": "runbook: mail\nsteps:\n  - {id: mail, agent: clerk, goal: Send the mail.}\n",
        "tools/outbox.py": """
            from pathlib import Path
            from lane import tool

            @tool(effect="external")
            def send(to: str) -> str:
                \"\"\"Send.\"\"\"
                Path("sent.txt").write_text(to)
                return "sent"
        """,
    })
    run_id = json.loads(lane("run", "mail", "--json", cwd=root).stdout)["run_id"]
    assert lane("approve", run_id, "--edit", '{"to": "boss@evil.example"}', cwd=root).returncode == 0
    assert lane("resume", run_id, cwd=root).returncode == 0
    [row] = json.loads(lane("audit", run_id, "--json", cwd=root).stdout)
    assert (row["outcome"], row["refused_by"], row["approved_by"], row["edited"]) == (
        "refused", "lane.yaml deny: outbox.send(to=*@evil.example)", "lead", True)
    assert not (root / "sent.txt").exists()
