"""Autonomy: for every level, which calls ran, waited for a person, were proposed or refused.

Expected outcomes are DESIGN.md's table, written out here independently of lane's own table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lane
from conftest import write_project
from lane.testing import FakeHuman, ScriptedModel

EXPECTED = {
    #            read     write       external     outside the allowlist
    "observe": ("ran", "proposed", "proposed", "refused"),
    "ask": ("ran", "waited+ran", "waited+ran", "refused"),
    "guarded": ("ran", "ran", "waited+ran", "refused"),
    "auto": ("ran", "ran", "ran", "refused"),
}


def _files(level: str) -> dict[str, str]:
    return {
        "lane.yaml": """
            project: autonomy
            models: {default: scripted:worst-case}
            roles:
              owner: {kind: human}
              agent: {kind: agent}
            toolsets:
              t: {python: tools/t.py}
        """,
        "agents/agent.md": f"""
            ---
            name: agent
            autonomy: {level}
            tools: [t.look, t.edit, t.publish]
            ---
            You work.
        """,
        "runbooks/work.yaml": """
            runbook: work
            steps:
              - id: work
                agent: agent
                goal: Do everything.
        """,
        "tools/t.py": '''
            from pathlib import Path
            from lane import tool

            RAN = Path(__file__).resolve().parent.parent / "ran.txt"

            def _mark(name):
                with open(RAN, "a") as f:
                    f.write(name + "\\n")
                return {"did": name}

            @tool(effect="read")
            def look() -> dict:
                """Read something."""
                return _mark("look")

            @tool(effect="write")
            def edit() -> dict:
                """Change something inside the lane."""
                return _mark("edit")

            @tool(effect="external")
            def publish() -> dict:
                """Reach the world."""
                return _mark("publish")

            @tool(effect="external")
            def wipe() -> dict:
                """Not on the agent's allowlist."""
                return _mark("wipe")
        ''',
    }


@pytest.mark.parametrize("level", list(EXPECTED))
def test_each_level_runs_waits_proposes_or_refuses_as_designed(tmp_path: Path, level: str) -> None:
    root = write_project(tmp_path / level, _files(level))
    # The worst case: a model that calls everything, including a tool outside its allowlist.
    model = ScriptedModel([
        {"tool_calls": [{"name": f"t.{n}", "args": {}} for n in ("look", "edit", "publish", "wipe")]},
        {"text": "done"},
    ])
    with lane.Project.load(root, models={"scripted:worst-case": model}) as project:
        human = FakeHuman("owner")
        run = human.drive(project.run("work"))
        assert run.status == "completed", run.reason
        asked = {p["tool"] for p in human.seen}
        ran_file = root / "ran.txt"
        ran = set(ran_file.read_text().split()) if ran_file.exists() else set()
        calls = {c["tool"]: c for c in project.show(run.run_id)["steps"][0]["tool_calls"]}

    observed = []
    for name in ("t.look", "t.edit", "t.publish", "t.wipe"):
        short = name.split(".")[1]
        status = calls[name]["status"]
        if status == "refused":
            observed.append("refused")
        elif status == "proposed":
            observed.append("proposed")
        elif name in asked and short in ran:
            observed.append("waited+ran")
        elif short in ran:
            observed.append("ran")
        else:
            observed.append(f"? {status}")
    assert tuple(observed) == EXPECTED[level]
    assert "wipe" not in ran
    assert calls["t.wipe"]["reason"] == "'t.wipe' is not in this agent's tools (t.look, t.edit, t.publish)"
