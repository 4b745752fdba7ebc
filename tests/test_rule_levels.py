"""deny -> ask -> allow, across the four autonomy levels, through real runs of a command tool.

Each case is one run: an agent at that level asks for one command, and the run
shows what lane did with it: refused it, asked a person, only proposed it, or ran it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lane
from conftest import write_project
from lane.testing import ScriptedModel

RULES = """
rules:
  deny: ["shell(rm *)", "shell(* secret*)"]
  ask: ["shell(git push*)"]
  allow: ["shell(echo *)"]
"""

# (the agent's command, what each level does with it: observe, ask, guarded, auto)
CASES = [
    (["rm", "-rf", "data"], ("refused", "refused", "refused", "refused")),  # deny wins at every level
    (["env", "X=1", "rm", "data"], ("refused", "refused", "refused", "refused")),  # wrapped: env
    (["sh", "-c", "echo hi; rm data"], ("refused", "refused", "refused", "refused")),  # wrapped: sh -c, second command
    (["nohup", "rm", "data"], ("refused", "refused", "refused", "refused")),  # wrapped: nohup
    (["/bin/rm", "data"], ("refused", "refused", "refused", "refused")),  # by path
    (["sh", "-c", "echo $(rm data)"], ("refused", "refused", "refused", "refused")),  # cannot be analysed: fails closed
    (["echo", "secret"], ("refused", "refused", "refused", "refused")),  # deny beats allow
    (["git", "push", "origin"], ("proposed", "asked", "asked", "asked")),  # ask holds even at auto
    (["sh", "-c", "echo hi && git push"], ("proposed", "asked", "asked", "asked")),  # ask beats allow
    (["echo", "hi"], ("proposed", "ran", "ran", "ran")),  # allow: no approval, but observe never runs a write
    (["sh", "-c", "echo a; echo b"], ("proposed", "ran", "ran", "ran")),  # allow needs every command allowed
    (["sh", "-c", "echo a; ls"], ("proposed", "asked", "ran", "ran")),  # one command not allowed: the level decides
    (["ls"], ("proposed", "asked", "ran", "ran")),  # no rule: the level decides
]
LEVELS = ("observe", "ask", "guarded", "auto")


def project(root: Path, level: str) -> Path:
    return write_project(root, {
        "lane.yaml": f"""
            project: levels
            roles:
              lead: {{kind: human}}
              worker: {{kind: agent}}
            toolsets:
              shell: {{command: [], extra_args: true, effect: write}}
            {RULES.strip().replace(chr(10), chr(10) + ' ' * 12)}
        """,
        "agents/worker.md": f"""
            ---
            name: worker
            model: scripted:case
            autonomy: {level}
            tools: [shell]
            ---
            You run commands.
        """,
        "runbooks/one.yaml": """
            runbook: one
            steps:
              - {id: work, agent: worker, goal: Run the command.}
        """,
        "data/keep.txt": "keep\n",
    })


def outcome(run: lane.Run) -> str:
    if run.status == "paused":
        return "asked"
    [call] = run.show()["steps"][0]["tool_calls"]
    return {"refused": "refused", "proposed": "proposed", "ok": "ran"}[call["status"]]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_rules_then_the_autonomy_level_decide_each_call(tmp_path: Path, argv: list[str], expected: tuple[str, ...]) -> None:
    for level, want in zip(LEVELS, expected, strict=True):
        root = project(tmp_path / level, level)
        model = ScriptedModel([{"tool_calls": [{"name": "shell", "args": {"args": argv}}]}, {"output": "done"}])
        run = lane.Project.load(root, models={"scripted:case": model}).run("one")
        assert outcome(run) == want, f"{level}: {run.show()['steps'][0]['tool_calls']}"
        assert (root / "data" / "keep.txt").exists(), f"{level}: a refused command ran"
