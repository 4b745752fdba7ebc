"""Budgets and the repeat detector stop a run with the reason; raising the budget lets it finish."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lane
from conftest import lane as lane_cli
from conftest import write_project


def _files(turns: str, *, budgets: str = "", agent_budget: str = "") -> dict[str, str]:
    return {
        "lane.yaml": f"""
            project: budgets
            models: {{default: scripted:script.yaml}}
            roles:
              owner: {{kind: human}}
              looper: {{kind: agent}}
            toolsets:
              t: {{python: tools/t.py}}
            {budgets}
        """,
        "agents/looper.md": f"""
            ---
            name: looper
            autonomy: auto
            tools: [t.poll]
            {agent_budget}
            ---
            You poll.
        """,
        "runbooks/loop.yaml": """
            runbook: loop
            steps:
              - id: loop
                agent: looper
                goal: Poll until done.
                output: {type: object, properties: {polls: {type: integer}}, required: [polls]}
        """,
        "script.yaml": turns,
        "tools/t.py": '''
            from lane import tool

            @tool(effect="read")
            def poll(n: int) -> dict:
                """Poll once."""
                return {"n": n}
        ''',
    }


def _turns(count: int, *, same: bool) -> str:
    lines = [f"- tool_calls: [{{name: t.poll, args: {{n: {0 if same else i}}}}}]" for i in range(count)]
    return "\n".join(lines + [f"- output: {{polls: {count}}}"]) + "\n"


def test_the_tool_call_budget_stops_a_model_that_never_stops_and_resume_raises_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(20, same=False), budgets="budgets: {tool_calls: 5}"))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.status == "stopped"
        assert run.reason.startswith("budget: tool_calls 5 reached (run: 5 tool calls used)")
        assert "lane resume RUN --budget tool_calls=N" in run.reason
        events = project.store.events(run.run_id)
        assert events[-1].type == "run_stopped" and events[-1].data["reason"] == run.reason
        assert sum(e.type == "tool_finished" for e in events) == 5
        # Resuming without more budget stops again at once, running nothing.
        assert run.resume().status == "stopped"
        assert sum(e.type == "tool_finished" for e in project.store.events(run.run_id)) == 5

    result = lane_cli("resume", run.run_id, "--budget", "tool_calls=100", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    with lane.Project.load(root) as project:
        view = project.show(run.run_id)
        assert view["status"] == "completed"
        assert view["steps"][0]["output"] == {"polls": 20}
        assert len(view["steps"][0]["tool_calls"]) == 20


def test_the_repeat_detector_stops_the_same_call_again_and_again(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(8, same=True)))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.status == "stopped"
        assert run.reason.startswith("repeat detector: step loop made the same call (t.poll with the same arguments) 4 times in a row (limit 3)")
        assert sum(e.type == "tool_finished" for e in project.store.events(run.run_id)) == 3
        run = run.resume(budget={"repeats": 10})
        assert run.status == "completed"
        assert project.show(run.run_id)["steps"][0]["output"] == {"polls": 8}


def test_the_agent_step_budget_counts_model_turns(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(10, same=False), agent_budget="budget: {steps: 4}"))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.status == "stopped"
        assert run.reason.startswith("budget: steps 4 reached (step loop: 4 model turns used)")


def test_the_token_budget_counts_reported_usage(tmp_path: Path) -> None:
    turns = "".join(f"- {{tool_calls: [{{name: t.poll, args: {{n: {i}}}}}], usage: {{input_tokens: 100, output_tokens: 20}}}}\n" for i in range(5))
    root = write_project(tmp_path / "p", _files(turns + "- output: {polls: 5}\n", budgets="budgets: {tokens: 250}"))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.status == "stopped"
        assert run.reason.startswith("budget: tokens 250 reached (run: 360 tokens used)")
        assert project.show(run.run_id)["usage"] == {"input_tokens": 300, "output_tokens": 60, "cost_usd": 0.0, "unpriced_calls": 0}


def test_a_bad_budget_override_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(8, same=True)))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        before = len(project.store.events(run.run_id))
    result = lane_cli("resume", run.run_id, "--budget", "toolcalls=9", cwd=root)
    assert result.returncode == 2
    assert "unknown budget 'toolcalls'" in result.stderr
    result = lane_cli("resume", run.run_id, "--budget", "repeats=lots", cwd=root)
    assert result.returncode == 2 and "budget repeats must be a number" in result.stderr
    with lane.Project.load(root) as project:
        assert len(project.store.events(run.run_id)) == before


def test_wall_time_counts_active_running_and_resume_raises_it(tmp_path: Path) -> None:
    files = _files(_turns(10, same=False), budgets="budgets: {wall_seconds: 1}")
    files["tools/t.py"] = files["tools/t.py"].replace('"""Poll once."""', '"""Poll once."""\n                import time\n                time.sleep(0.3)')
    files["tools/t.py"] = files["tools/t.py"].replace('@tool(effect="read")', '@tool(effect="read", idempotent=True)')  # cut off, retried
    root = write_project(tmp_path / "p", files)
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.status == "stopped"
        assert run.reason.startswith("budget: wall_seconds 1 reached (run)")
        done = sum(e.type == "tool_finished" for e in project.store.events(run.run_id))
        assert 1 <= done < 10
        run = run.resume(budget={"wall_seconds": 600})
        assert run.status == "completed"
        assert project.show(run.run_id)["steps"][0]["output"] == {"polls": 10}


def test_a_raised_budget_applies_where_it_stopped_the_run_and_never_lowers_a_limit(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(6, same=False), budgets="budgets: {tool_calls: 100}", agent_budget="budget: {tool_calls: 2}"))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        assert run.reason.startswith("budget: tool_calls 2 reached (step loop: 2 tool calls used)")
        run = run.resume(budget={"tool_calls": 4})  # raises the step's limit; the run's 100 stays
        assert run.reason.startswith("budget: tool_calls 4 reached (step loop: 4 tool calls used)")
        run = run.resume(budget={"tool_calls": 50})
        assert run.status == "completed"


def test_budget_values_lane_cannot_use_are_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", _files(_turns(8, same=True)))
    with lane.Project.load(root) as project:
        run = project.run("loop")
        before = len(project.store.events(run.run_id))
        for bad, says in [
            ({"repeats": 1}, "budget repeats: input should be greater than or equal to 2"),
            ({"steps": 0}, "budget steps: input should be greater than or equal to 1"),
            ({"wall_seconds": "nan"}, "budget wall_seconds must be a number from 0 to 10^15"),
            ({"steps": "1e400"}, "budget steps must be a number from 0 to 10^15"),
        ]:
            with pytest.raises(lane.UsageError, match=re.escape(says)):
                run.resume(budget=bad)
        assert len(project.store.events(run.run_id)) == before
        assert project.get(run.run_id).status == "stopped"


def test_a_cost_budget_stops_the_run_and_a_raise_lets_it_finish(tmp_path: Path) -> None:
    turns = "".join(f"- tool_calls: [{{name: t.poll, args: {{n: {i}}}}}]\n  usage: {{input_tokens: 10, output_tokens: 5, cost_usd: 0.25}}\n"
                    for i in range(4)) + "- output: {polls: 4}\n"
    root = write_project(tmp_path, _files(turns, budgets="budgets: {cost_usd: 0.5}"))
    project = lane.Project.load(root)
    run = project.run("loop")
    assert run.status == "stopped"
    assert run.reason is not None and run.reason.startswith("budget: cost_usd 0.5 reached (run: 0.5 USD used)")
    run = run.resume(budget={"cost_usd": 2})
    assert run.status == "completed", run.reason
    assert run.show()["usage"]["cost_usd"] == pytest.approx(1.0)


def test_an_approvals_budget_limits_the_calls_a_run_sends_to_a_person(tmp_path: Path) -> None:
    root = write_project(tmp_path, _files(_turns(3, same=False), budgets="budgets: {approvals: 2}"))
    agent, tool = root / "agents" / "looper.md", root / "tools" / "t.py"
    agent.write_text(agent.read_text().replace("autonomy: auto", "autonomy: ask"))
    tool.write_text(tool.read_text().replace('effect="read"', 'effect="write"'))  # at `ask`, each write waits for a person
    project = lane.Project.load(root)
    run = project.run("loop")
    for _ in range(2):
        assert run.status == "paused"
        run.approve()
        run = run.resume()
    assert run.status == "stopped"
    assert run.reason is not None and "budget: approvals 2 reached (run: 2 calls sent for approval used)" in run.reason
    run = run.resume(budget={"approvals": 3})
    assert run.status == "paused"
    run.approve()
    assert run.resume().status == "completed"
