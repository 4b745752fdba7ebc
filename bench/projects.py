"""Writes the lane projects the benchmarks run, into a folder the caller owns (a temporary one).

Nothing here is committed as generated files: every bench script builds its
project afresh from these templates.

  chain    W1/W2: a runbook of STEPS sequential agent steps, one scripted model
           turn each; step sN gets `prev: ${{ steps.s(N-1).output }}` and hands
           on `{n: N}` (validated against its output schema).
  counter  W3: one agent step (autonomy auto) whose model calls the read-only
           tool `calc.add_one` CALLS times, with n = 0..CALLS-1, then answers.
  long     W6: one runbook of N steps and no model: tool steps `calc.add_one`
           chained by `${{ steps.sK.output }}`, every tenth a check step that
           tests the count so far. For Project.load's time against N.
  fan      W8: one for_each step over `inputs.items` (max_concurrency
           FAN_CONCURRENCY) whose block is one agent step `work` (autonomy
           auto): one scripted turn calling `calc.add_one`, then the answer.

The scale table runs `chain` with N steps and `counter` with N calls.
"""

from __future__ import annotations

from pathlib import Path

STEPS = 10
CALLS = 20
FAN_CONCURRENCY = 16
AGENT_STEP_TURNS = 25  # lane's default `budget.steps` of an agent step (model turns)

OUTPUT_SCHEMA = "{type: object, properties: {n: {type: integer}}, required: [n]}"


def _lane_yaml(name: str, store: str, toolsets: str = "") -> str:
    return (
        f"project: {name}\n"
        "models:\n"
        "  default: scripted:scripts/model.yaml\n"
        "roles:\n"
        "  operator: {kind: human}\n"
        "  worker: {kind: agent}\n"
        f"{toolsets}"
        f"store: {store}\n"
    )


def write_chain(root: Path, *, store: str, steps: int = STEPS) -> Path:
    """W1/W2: `runbooks/chain.yaml`, run with inputs `{seed: {n: 0}}`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lane.yaml").write_text(_lane_yaml("bench-chain", store))
    _agent(root, tools="[]")
    lines = [
        "runbook: chain",
        "version: 1",
        "inputs: {type: object, properties: {seed: {type: object}}, required: [seed]}",
        "steps:",
    ]
    script = []
    for i in range(1, steps + 1):
        prev = "${{ inputs.seed }}" if i == 1 else f"${{{{ steps.s{i - 1}.output }}}}"
        lines += [
            f"  - id: s{i}",
            "    agent: worker",
            f"    goal: Step {i} of the chain.",
            f'    with: {{prev: "{prev}"}}',
            f"    output: {OUTPUT_SCHEMA}",
        ]
        script.append(f"s{i}:\n  - output: {{n: {i}}}")
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "chain.yaml").write_text("\n".join(lines) + "\n")
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "model.yaml").write_text("\n".join(script) + "\n")
    return root


def write_counter(root: Path, *, store: str, calls: int = CALLS, async_tool: bool = False) -> Path:
    """W3: `runbooks/count.yaml`, run with inputs `{}`; tool `calc.add_one` (effect read).

    Past lane's default of 25 model turns for an agent step (the scale table's 200 and
    1,000 calls), the step's `budget.steps` is raised to the calls plus the answer.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "lane.yaml").write_text(_lane_yaml("bench-counter", store, "toolsets:\n  calc: {python: tools/calc.py}\n"))
    _agent(root, tools="[calc.add_one]")
    _calc(root, async_tool=async_tool)
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "count.yaml").write_text(
        "runbook: count\n"
        "version: 1\n"
        "steps:\n"
        "  - id: count\n"
        "    agent: worker\n"
        f"    goal: Add one {calls} times.\n"
        f"    output: {OUTPUT_SCHEMA}\n"
        + (f"    budget: {{steps: {calls + 1}}}\n" if calls + 1 > AGENT_STEP_TURNS else "")
    )
    turns = [f"  - tool_calls: [{{name: calc.add_one, args: {{n: {i}}}}}]" for i in range(calls)]
    turns.append(f"  - output: {{n: {calls}}}")
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "model.yaml").write_text("count:\n" + "\n".join(turns) + "\n")
    return root


def write_fan(root: Path, *, store: str, max_concurrency: int = FAN_CONCURRENCY) -> Path:
    """W8: `runbooks/fan.yaml`, run with inputs `{items: [...]}`; each item is one agent step `work`.

    The script gives `work` (by its own id, as for every item: `each[K].work`) one turn
    calling `calc.add_one` (effect read, idempotent), then the answer `done`.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "lane.yaml").write_text(_lane_yaml("bench-fan", store, "toolsets:\n  calc: {python: tools/calc.py}\n"))
    _agent(root, tools="[calc.add_one]")
    _calc(root, async_tool=False)
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "fan.yaml").write_text(
        "runbook: fan\n"
        "version: 1\n"
        "inputs: {type: object, properties: {items: {type: array}}, required: [items]}\n"
        "steps:\n"
        "  - id: each\n"
        '    for_each: "${{ inputs.items }}"\n'
        f"    max_concurrency: {max_concurrency}\n"
        "    steps:\n"
        '      - {id: work, agent: worker, goal: Add one., with: {n: "${{ item }}"}}\n'
    )
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "model.yaml").write_text(
        "work:\n  - tool_calls: [{name: calc.add_one, args: {n: 1}}]\n  - text: done\n"
    )
    return root


def write_long(root: Path, *, steps: int) -> Path:
    """W6: `runbooks/long.yaml` with `steps` steps, run with inputs `{}` (memory store; nothing calls a model).

    Step sI is a tool step `calc.add_one` whose `n` is the output of the last tool step
    before it (0 for the first), so after k tool steps the count is k; every tenth step
    is instead a check step, `test COUNT -eq k`, so both kinds are loaded and checked.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "lane.yaml").write_text(
        "project: bench-long\nroles:\n  operator: {kind: human}\ntoolsets:\n  calc: {python: tools/calc.py}\nstore: memory\n"
    )
    _calc(root, async_tool=False)
    lines = ["runbook: long", "version: 1", "description: Counts up, one tool step at a time, checking the count.", "steps:"]
    last_tool, count = None, 0
    for i in range(1, steps + 1):
        n = "0" if last_tool is None else f'"${{{{ steps.{last_tool}.output }}}}"'
        if i % 10 == 0 and last_tool is not None:
            lines += [f"  - id: s{i}", f'    check: [test, "${{{{ steps.{last_tool}.output }}}}", -eq, "{count}"]']
            continue
        lines += [f"  - id: s{i}", "    tool: calc.add_one", f"    args: {{n: {n}}}"]
        last_tool, count = f"s{i}", count + 1
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "long.yaml").write_text("\n".join(lines) + "\n")
    return root


def _calc(root: Path, *, async_tool: bool) -> None:
    (root / "tools").mkdir(exist_ok=True)
    (root / "tools" / "calc.py").write_text(
        "from lane import tool\n\n\n"
        '@tool(effect="read", idempotent=True)\n'
        f"{'async ' if async_tool else ''}def add_one(n: int) -> int:\n"
        '    """Add one to an integer.\n\n    Args:\n        n: The integer.\n    """\n'
        "    return n + 1\n"
    )


def _agent(root: Path, *, tools: str) -> None:
    (root / "agents").mkdir(exist_ok=True)
    (root / "agents" / "worker.md").write_text(
        "---\n"
        "name: worker\n"
        "description: Does one step of the benchmark.\n"
        "autonomy: auto\n"
        f"tools: {tools}\n"
        "---\n"
        "You do one step of the benchmark and hand on its output.\n"
    )
