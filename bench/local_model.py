"""The built-in local model: tokens per second through lane against llama-cpp-python
called directly on the same prompt and grammar, in the same process; and load time.

    .venv/bin/python bench/local_model.py [--reps 5]       # needs lane[local]

Through lane is a whole one-step run (context, journal, the model call, the
handoff check, SQLite commits); directly is `Llama.__call__` on the prompt
lane sent (read back from the journal) with the same grammar and settings.
Tokens per second = completion tokens / wall seconds of the call or run.
Load time is measured in fresh processes, from the cache: weights assembled
and verified once, then `lane.models.local.load` (the process's first load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import lane
from lane.models import local
from lane.models.weights import default_weights

FILES = {
    "lane.yaml": "project: bench\nmodels: {default: local}\nroles: {me: {kind: human}, writer: {kind: agent}}\n",
    "agents/writer.md": "---\nname: writer\nautonomy: auto\n---\nYou write long, friendly replies.\n",
    "runbooks/write.yaml": textwrap.dedent("""
        runbook: write
        steps:
          - id: write
            agent: writer
            goal: Write a reply of several sentences to the customer.
            with: {email: "${{ inputs.email }}"}
            output: {type: object, properties: {reply: {type: string, minLength: 300, maxLength: 400}}, required: [reply]}
    """),
}
EMAIL = "Hello, I was charged twice for March and would like one payment refunded. Thanks, Dana"


def _project(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def through_lane(project: lane.Project) -> tuple[float, int, str]:
    began = time.perf_counter()
    run = project.run("write", {"email": EMAIL})
    seconds = time.perf_counter() - began
    [turn] = project.show(run.run_id)["steps"][0]["turns"]
    return seconds, turn["response"]["usage"]["output_tokens"], turn["response"]["prompt"]


def direct(prompt: str, schema: dict[str, object]) -> tuple[float, int]:
    llm, _ = local.load(default_weights())
    grammar = local._llama().LlamaGrammar.from_json_schema(json.dumps(schema, sort_keys=True), verbose=False)
    began = time.perf_counter()
    result = llm(prompt, grammar=grammar, max_tokens=local.MAX_TOKENS, temperature=0.0)
    return time.perf_counter() - began, int(result["usage"]["completion_tokens"])


def load_time() -> float:
    code = "import time; from lane.models import local, weights; p = weights.default_weights(); t = time.perf_counter(); local.load(p); print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    default_weights()  # assemble once, outside the timings
    with tempfile.TemporaryDirectory() as tmp, lane.Project.load(_project(Path(tmp))) as project:
        schema = project.spec.runbooks["write"].file.steps[0].output
        through_lane(project)  # warm-up: loads the model, builds the grammar
        lane_rates, direct_rates = [], []
        for _ in range(args.reps):  # alternate, so both see the same machine
            seconds, tokens, prompt = through_lane(project)
            lane_rates.append(tokens / seconds)
            seconds, tokens = direct(prompt, schema or {})
            direct_rates.append(tokens / seconds)
    loads = [load_time() for _ in range(3)]
    lane_tps, direct_tps = statistics.median(lane_rates), statistics.median(direct_rates)
    print(json.dumps({
        "lane_tokens_per_s": round(lane_tps, 1), "direct_tokens_per_s": round(direct_tps, 1),
        "lane_vs_direct": round(lane_tps / direct_tps, 3), "load_seconds_median": round(statistics.median(loads), 3),
        "samples": {"lane": [round(r, 1) for r in lane_rates], "direct": [round(r, 1) for r in direct_rates], "load": [round(x, 3) for x in loads]},
    }, indent=2))


if __name__ == "__main__":
    main()
