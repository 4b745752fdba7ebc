"""Attacks a review found on the first version of lanes; each must stay refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import lane
from conftest import write_project
from lane.engine.rules import RuleSet, evaluate
from lane.testing import ScriptedModel
from lane.tools.argv import Unanalysable, commands
from lane.tools.base import Lane, string_arguments
from lane.tools.command import CommandTool


def shell(tmp_path: Path, prefixes: list[list[str]]) -> CommandTool:
    return CommandTool("shell", [], effect="write", idempotent=False, cwd=tmp_path, timeout=5, max_output=1000,
                       extra_args=True, description=None, prefixes=prefixes)


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "echo 'autonomy: auto' >> agents/worker.md"],  # a redirection writes what the words do not show
    ["sh", "-c", ">lane.yaml git status"],
    ["env", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=core.fsmonitor", "GIT_CONFIG_VALUE_0=touch pwned", "git", "status"],
    ["sh", "-c", "GIT_DIR=/tmp git status"],
    ["env", "BASH_ENV=x.sh", "bash", "-c", "true"],
])
def test_prefixes_refuse_what_changes_a_command_without_changing_its_words(tmp_path: Path, argv: list[str]) -> None:
    tool = shell(tmp_path, [["echo"], ["ls"], ["git", "status"], ["true"]])
    assert tool.out_of_lane({"args": argv}, Lane(), tmp_path) is not None


@pytest.mark.parametrize("argv", [
    ["bash", "-c", "function f { rm -rf data; }; f"],
    ["bash", "-c", "case x in x) rm -rf data;; esac"],
    ["sh", "-c", "printf 'rm\\0-rf\\0x' | xargs -0 env"],
    ["sh", "-c", "printf '%s\\0' -c 'rm -rf x' | xargs -0 bash"],
])
def test_shell_forms_that_hide_a_command_cannot_be_analysed(argv: list[str]) -> None:
    with pytest.raises(Unanalysable):
        commands(argv)


def rules(**kinds: list[str]) -> list[tuple[str, RuleSet]]:
    ruleset, problems = RuleSet.parse(**kinds)
    assert problems == []
    return [("lane.yaml", ruleset)]


@pytest.mark.parametrize(("args", "action"), [
    ({"to": "x@EVIL.example"}, "deny"),  # a mail server ignores case, so a deny rule does too
    ({"to": "leak@evil.example, x@acme.example"}, "deny"),
    ({"to": "x@acme.example"}, "allow"),
    ({"to": "leak@elsewhere.example, x@acme.example"}, None),  # one allowed address cannot carry another along
    ({"to": "x@acme.example", "cc": ["y@evil.example"]}, "deny"),  # a bare pattern reaches strings in lists
])
def test_addresses_are_matched_strictly(args: dict[str, object], action: str | None) -> None:
    verdict = evaluate("outbox.send", args, lambda: string_arguments(args),
                       rules(deny=["outbox.send(to=*@evil.example)", "outbox.send(*@evil.example)"], allow=["outbox.send(to=*@acme.example)"]))
    assert verdict.action == action, verdict


def project(root: Path, turns: list[dict[str, object]]) -> tuple[lane.Project, Path]:
    write_project(root, {
        "lane.yaml": """
            project: attacks
            roles:
              lead: {kind: human}
              clerk: {kind: agent}
            secrets: [env:LANE_ATTACK_SECRET]
            toolsets:
              crm: {python: tools/crm.py}
            rules:
              deny: ["crm.delete(id=42)"]
        """,
        "agents/clerk.md": "---\nname: clerk\nmodel: scripted:s\nautonomy: ask\ntools: [crm.*]\n---\nYou keep the CRM.\n",
        "runbooks/go.yaml": "runbook: go\nsteps:\n  - {id: go, agent: clerk, goal: Tidy the CRM.}\n",
        "tools/crm.py": """
            from pathlib import Path
            from lane import tool

            @tool(effect="write")
            def delete(id: int) -> str:
                \"\"\"Delete a customer.\"\"\"
                Path(f"deleted-{id}").write_text("gone")
                return "deleted"

            @tool(effect="write")
            def note(text: str, customer: str, detail: str) -> str:
                \"\"\"Add a note.\"\"\"
                Path("noted").write_text(text)
                return "noted"
        """,
    })
    return lane.Project.load(root, models={"scripted:s": ScriptedModel(turns)}), root


def test_rules_see_the_arguments_the_tool_really_gets(tmp_path: Path) -> None:
    proj, root = project(tmp_path, [{"tool_calls": [{"name": "crm.delete", "args": {"id": "0042"}}]}, {"output": "done"}])
    run = proj.run("go")
    [call] = run.show()["steps"][0]["tool_calls"]
    assert (call["status"], call["basis"]) == ("refused", "lane.yaml deny: crm.delete(id=42)")
    assert not (root / "deleted-42").exists()


def test_a_call_carrying_a_secret_is_refused_not_run_with_the_secret_blanked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANE_ATTACK_SECRET", "hunter2-hunter2")
    args = {"text": "token hunter2-hunter2", "customer": "c1", "detail": "d"}
    proj, root = project(tmp_path, [{"tool_calls": [{"name": "crm.note", "args": args}]}, {"output": "done"}])
    run = proj.run("go")
    [call] = run.show()["steps"][0]["tool_calls"]
    assert (call["status"], call["basis"]) == ("refused", "secrets")
    assert call["args"]["text"] == "token [secret:LANE_ATTACK_SECRET]" and not (root / "noted").exists()
    assert b"hunter2-hunter2" not in (root / ".lane" / "lane.db").read_bytes()
    assert os.environ["LANE_ATTACK_SECRET"] == "hunter2-hunter2"


def test_a_person_sees_every_argument_of_the_call_they_approve(tmp_path: Path) -> None:
    args = {"text": "x" * 300, "detail": "y" * 300, "customer": "leak@evil.example"}
    proj, _ = project(tmp_path, [{"tool_calls": [{"name": "crm.note", "args": args}]}, {"output": "done"}])
    [pending] = proj.run("go").pending
    assert '"customer"' in pending["question"] and '"detail"' in pending["question"]  # every argument named
    assert len(pending["question"]) < 400, pending["question"]
    assert json.loads(json.dumps(pending["args"])) == args  # the whole value is there, and printed whole
