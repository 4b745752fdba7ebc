"""Golden fixtures and `lane test` (issue 16, part 2): real runs on the scripted model, each in a store of its own."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lane, write_project

FILES = {
    "lane.yaml": """
        project: desk
        models: {default: scripted:billing.yaml, bugs: scripted:bug.yaml}
        roles:
          lead: {kind: human}
          triager: {kind: agent}
        toolsets:
          mail: {python: tools/mail.py}
    """,
    "agents/triager.md": "---\nname: triager\n---\nYou classify email.\n",
    "billing.yaml": "classify:\n  - output: {category: billing, urgency: normal}\n",
    "bug.yaml": "classify:\n  - output: {category: bug, urgency: high}\n",
    "tools/mail.py": """
        from lane import tool

        @tool(effect="external", idempotent=True)
        def send(to: str, body: str) -> str:
            '''Send a reply.'''
            with open("sent.log", "a") as log:
                log.write(f"{to}\\n")
            return f"sent to {to}"
    """,
    "runbooks/triage.yaml": """
        runbook: triage
        approver: lead
        inputs: {type: object, properties: {text: {type: string}}, required: [text]}
        steps:
          - id: classify
            agent: triager
            goal: Classify the email.
            with: {text: "${{ inputs.text }}"}
            output:
              type: object
              properties: {category: {enum: [billing, bug, other]}, urgency: {enum: [low, normal, high]}}
              required: [category, urgency]
          - {id: send, tool: mail.send, args: {to: "a@example.com", body: "${{ steps.classify.output.category }}"}}
        kpis:
          category: {value: steps.classify.output.category}
    """,
    "fixtures/triage/01-refund.yaml": """
        inputs: {text: Please refund me.}
        decisions: {send: hold}
        expect:
          status: paused
          steps:
            classify: {fields: {category: billing}}
    """,
    "fixtures/triage/02-crash.yaml": """
        description: A crash report, on the model for bugs.
        inputs: {text: It crashes.}
        model: bugs
        decisions: {send: approve}
        expect:
          status: completed
          steps:
            classify: {output: {category: bug, urgency: high}}
            send: {status: completed, output: sent to a@example.com}
          checks:
            - steps.classify.output.urgency == 'high'
    """,
    "fixtures/triage/03-crash-misread.yaml": """
        inputs: {text: The export crashes.}
        expect:
          steps:
            classify: {fields: {category: bug}}
          checks:
            - steps.classify.output.urgency in ['high']
    """,
    "fixtures/triage/04-rejected.yaml": """
        inputs: {text: Spam.}
        decisions:
          send: {reject: not worth an answer}
        expect: {status: rejected}
    """,
}


def test_lane_test_runs_each_fixture_in_a_store_of_its_own_and_reports_each_expectation(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    assert lane("validate", cwd=root).returncode == 0
    ran = lane("test", "triage", "--json", cwd=root)
    assert ran.returncode == 1, ran.stderr  # 03 fails
    summary = json.loads(ran.stdout)
    results = {r["fixture"]: r for r in summary["fixtures"]}
    assert [r["passed"] for r in summary["fixtures"]] == [True, True, False, True]
    assert (summary["passed"], summary["failed"]) == (3, 1)
    assert results["01-refund"]["held_at"] == "send" and results["01-refund"]["status"] == "paused"
    assert results["02-crash"]["status"] == "completed" and results["02-crash"]["model"] == "scripted:bug.yaml"
    assert results["04-rejected"]["status"] == "rejected"
    failed = [e for e in results["03-crash-misread"]["expectations"] if not e["passed"]]
    assert [(e["expect"], e["got"]) for e in failed] == [('steps.classify.output.category == "bug"', "billing"),
                                                        ("steps.classify.output.urgency in ['high']", None)]
    assert results["03-crash-misread"]["held_at"] == "send", "a request no decision names holds the run"
    assert summary["kpis"]["category"] == "billing 3, bug 1"
    assert (root / "sent.log").read_text() == "a@example.com\n", "only 02 approved the send"
    assert not (root / ".lane" / "lane.db").exists(), "the project's own store is untouched"

    text = lane("test", "triage", cwd=root)
    assert text.returncode == 1
    assert "FAIL 03-crash-misread: paused (held at send)" in text.stdout and 'got "billing"' in text.stdout
    assert "3 of 4 fixtures pass · triage v1" in text.stdout and "no change" in text.stdout


def test_lane_test_says_what_changed_since_the_last_result(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    assert lane("test", "triage", cwd=root).returncode == 1
    (root / "billing.yaml").write_text("classify:\n  - output: {category: bug, urgency: high}\n")  # the model drifts
    again = json.loads(lane("test", "triage", "--json", cwd=root).stdout)
    changes = {(c["fixture"], c.get("expect"), c["change"]) for c in again["changes"]}
    assert ("01-refund", None, "now fails (drift)") in changes
    assert ("03-crash-misread", None, "now passes") in changes
    assert ("01-refund", 'steps.classify.output.category == "billing"', "no longer holds") in changes
    assert again["previous"]["passed"] == 3


def test_model_option_puts_every_agent_on_one_model(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    summary = json.loads(lane("test", "triage", "--model", "bugs", "--json", cwd=root).stdout)
    assert [r["passed"] for r in summary["fixtures"]] == [False, True, True, True]


def test_fixtures_are_validated_at_their_line(tmp_path: Path) -> None:
    files = {**FILES, "fixtures/triage/05-bad.yaml": """
        inputs: {text: x}
        decisions: {send: maybe}
        expect:
          steps:
            clasify: {fields: {category: bug}}
          checks:
            - "steps.classify.output.category =="
    """, "fixtures/nobook/01.yaml": "inputs: {}\n"}
    root = write_project(tmp_path / "desk", files)
    checked = lane("validate", cwd=root)
    assert checked.returncode == 2
    assert "fixtures/triage/05-bad.yaml:5:" in checked.stdout and "runbook triage has no step 'clasify'" in checked.stdout
    assert "fixtures/triage/05-bad.yaml:7:" in checked.stdout and "not an expression" in checked.stdout
    assert "fixtures/triage/05-bad.yaml:2:" in checked.stdout and "decide send with approve, hold" in checked.stdout
    assert "there is no runbook 'nobook' for these fixtures" in checked.stdout
    refused = lane("test", "nope", cwd=write_project(tmp_path / "other", FILES))
    assert refused.returncode == 2 and "no runbook 'nope'" in refused.stderr


def test_a_runbook_without_fixtures_is_told_how_to_write_one(tmp_path: Path) -> None:
    files = {k: v for k, v in FILES.items() if not k.startswith("fixtures/")}
    root = write_project(tmp_path / "desk", files)
    refused = lane("test", "triage", cwd=root)
    assert refused.returncode == 2 and "runbook triage has no fixtures: write fixtures/triage/NAME.yaml" in refused.stderr


def test_a_fixture_whose_inputs_do_not_fit_fails_alone(tmp_path: Path) -> None:
    files = {**FILES, "fixtures/triage/00-no-text.yaml": "inputs: {}\nexpect: {status: completed}\n"}
    summary = json.loads(lane("test", "triage", "--json", cwd=write_project(tmp_path / "desk", files)).stdout)
    first = summary["fixtures"][0]
    assert first["fixture"] == "00-no-text" and first["status"] == "not started" and "inputs" in first["expectations"][0]["got"]
    assert summary["passed"] == 3, "the others still run"
