"""Human steps, handoff repairs, `when:` conditions and the scripted model's limits, through real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import lane
from conftest import lane as lane_cli
from conftest import write_project
from lane.testing import FakeHuman, ScriptedModel, approve, reject

BASE = {
    "lane.yaml": """
        project: steps
        models: {default: scripted:model}
        roles:
          lead: {kind: human}
          clerk: {kind: human}
          writer: {kind: agent}
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: auto
        repairs: 2
        ---
        You write.
    """,
    "runbooks/flow.yaml": """
        runbook: flow
        inputs: {type: object, properties: {topic: {type: string}}}
        steps:
          - id: draft
            agent: writer
            goal: Write a title.
            with: {topic: "${{ inputs.topic }}"}
            output: {type: object, properties: {title: {type: string, maxLength: 20}}, required: [title], additionalProperties: false}
          - id: review
            human: lead
            approve: "${{ steps.draft.output }}"
            output: {type: object, properties: {title: {type: string}}, required: [title]}
          - id: shout
            when: steps.review.edited == false
            check: [echo, "${{ steps.review.output.title }}!"]
          - id: ask_budget
            human: clerk
            prompt: How much may we spend?
            input: {type: object, properties: {usd: {type: number, minimum: 0}}, required: [usd]}
    """,
}


def _project(root: Path, turns: list[dict]) -> lane.Project:
    return lane.Project.load(write_project(root, BASE), models={"scripted:model": ScriptedModel(turns)})


def test_a_human_approves_a_value_unchanged_and_supplies_input(tmp_path: Path) -> None:
    with _project(tmp_path / "p", [{"output": {"title": "Hello"}}]) as project:
        run = project.run("flow", {"topic": "greeting"})
        [pending] = run.pending
        assert (pending["kind"], pending["value"], pending["roles"]) == ("human_step", {"title": "Hello"}, ["lead"])
        run.approve()
        run = run.resume()
        [pending] = run.pending
        assert (pending["call_id"], pending["question"], pending["mode"]) == ("ask_budget", "How much may we spend?", "input")
        with pytest.raises(lane.DecisionError, match="asks for input: give it with --edit JSON"):
            run.approve()
        with pytest.raises(lane.DecisionError, match="usd: -5 is less than the minimum of 0"):
            run.approve(edit={"usd": -5})
        run.approve(edit={"usd": 120})
        run = run.resume()
        assert run.status == "completed"
        steps = {s["id"]: s for s in project.show(run.run_id)["steps"]}
        assert steps["review"]["output"] == {"title": "Hello"} and steps["review"]["edited"] is False
        assert steps["shout"]["output"]["stdout"] == "Hello!\n"
        assert steps["ask_budget"]["output"] == {"usd": 120}
        assert steps["ask_budget"]["decisions"][0]["by"] == "clerk"


def test_an_edited_value_is_what_later_steps_see_and_skips_the_when_step(tmp_path: Path) -> None:
    with _project(tmp_path / "p", [{"output": {"title": "Hello"}}]) as project:
        human = FakeHuman(policy=lambda p: approve({"title": "Hi there"}) if p["call_id"] == "review" else approve({"usd": 1}))
        run = human.drive(project.run("flow", {"topic": "greeting"}))
        assert run.status == "completed"
        steps = {s["id"]: s for s in project.show(run.run_id)["steps"]}
        assert steps["review"]["output"] == {"title": "Hi there"} and steps["review"]["edited"] is True
        assert steps["shout"]["status"] == "skipped"
        assert steps["shout"]["reason"] == "when: steps.review.edited == false was false"
        assert steps["review"]["decisions"][0]["edited"] == {"title": "Hi there"}


def test_a_rejected_human_step_ends_the_run_rejected_with_the_reason(tmp_path: Path) -> None:
    with _project(tmp_path / "p", [{"output": {"title": "Hello"}}]) as project:
        run = FakeHuman(policy=lambda p: reject("off-brand")).drive(project.run("flow", {"topic": "x"}))
        assert run.status == "rejected"  # its own status: a person said no, nothing broke
        assert run.reason == "step review was rejected by lead: off-brand"
        assert project.get(run.run_id).status == "rejected"
        assert {s["id"]: s["status"] for s in run.show()["steps"]}["review"] == "rejected"


def test_invalid_output_is_sent_back_with_the_errors_until_it_is_valid(tmp_path: Path) -> None:
    turns = [
        {"output": {"title": "A title that is far too long for the schema"}},
        {"text": "Let me think about it."},
        {"output": {"title": "Short", "extra": 1}},
        {"text": '{"title": "Fine"}'},
    ]
    with _project(tmp_path / "p", turns) as project:
        run = project.run("flow", {"topic": "x"})
        assert [p["call_id"] for p in run.pending] == ["review"]
        events = project.store.events(run.run_id)
        rejected = [e.data["errors"] for e in events if e.type == "handoff_rejected"]
        assert rejected == [
            ["title: 'A title that is far too long for the schema' is too long"],
            ["output: Additional properties are not allowed ('extra' was unexpected)"],
        ]
        assert project.show(run.run_id)["steps"][0]["output"] == {"title": "Fine"}


def test_when_repairs_run_out_a_person_supplies_the_output(tmp_path: Path) -> None:
    bad = {"output": {"title": 42}}
    with _project(tmp_path / "p", [bad, bad, bad]) as project:
        run = project.run("flow", {"topic": "x"})
        [pending] = run.pending
        assert pending["kind"] == "handoff" and pending["errors"] == ["title: 42 is not of type 'string'"]
        assert pending["roles"] == ["lead", "clerk"]
        with pytest.raises(lane.DecisionError, match="approve it with a corrected one"):
            run.approve(as_role="lead")
        with pytest.raises(lane.DecisionError, match="does not match the step's schema"):
            run.approve(as_role="lead", edit={"title": 7})
        run.approve(as_role="lead", edit={"title": "By hand"})
        run = run.resume()
        assert run.pending[0]["value"] == {"title": "By hand"}


def test_a_script_that_runs_out_fails_the_run_clearly(tmp_path: Path) -> None:
    files = dict(BASE)
    files["lane.yaml"] = BASE["lane.yaml"].replace("scripted:model", "scripted:script.yaml")
    files["script.yaml"] = "draft:\n  - text: thinking\n"
    root = write_project(tmp_path / "p", files)
    result = lane_cli("run", "flow", "--input", "topic=x", cwd=root)
    assert result.returncode == 1
    assert "scripted model script.yaml: step 'draft' asked for turn 2, but the script has 1 turn(s) for it; add turns to the script" in result.stdout


def test_a_missing_value_fails_the_step_and_says_how_to_make_it_optional(tmp_path: Path) -> None:
    with _project(tmp_path / "p", [{"output": {"title": "Hello"}}]) as project:
        run = project.run("flow", {})
        assert run.status == "failed"
        assert run.reason == "step draft: 'inputs.topic': 'dict object' has no attribute 'topic'; write `| default(none)` after an optional value"


def test_tool_choice_required_holds_for_every_model(tmp_path: Path) -> None:
    files = dict(BASE)
    files["lane.yaml"] = BASE["lane.yaml"] + "    toolsets: {t: {python: tools/t.py}}\n"
    files["agents/writer.md"] = BASE["agents/writer.md"].replace("repairs: 2", "repairs: 2\n        tools: [t.look]")
    files["runbooks/flow.yaml"] = BASE["runbooks/flow.yaml"].replace("            with: {topic: \"${{ inputs.topic }}\"}", "            with: {topic: \"${{ inputs.topic }}\"}\n            tool_choice: required")
    files["tools/t.py"] = 'from lane import tool\n\n@tool(effect="read")\ndef look() -> dict:\n    """Look."""\n    return {"seen": True}\n'
    turns = [{"output": {"title": "Too soon"}}, {"tool_calls": [{"name": "t.look", "args": {}}]}, {"output": {"title": "After"}}]
    with lane.Project.load(write_project(tmp_path / "p", files), models={"scripted:model": ScriptedModel(turns)}) as project:
        run = project.run("flow", {"topic": "x"})
        step = project.show(run.run_id)["steps"][0]
        assert step["output"] == {"title": "After"}
        assert {"role": "user", "content": "Call one of your tools before you answer."} in step["messages"]
