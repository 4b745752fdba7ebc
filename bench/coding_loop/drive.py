"""Drive lane's feature runbook on a real model, without a person at the terminal, and report what happened.

It makes a fresh test repository from `lane init DIR --example coding` (feature `cart`, two tasks:
src/cart.py and src/total.py), puts lane's own editing agent `coder` on the model asked for, plans the
feature, commits, runs `feature-cart` and answers every pause as a reviewer who never edits code:

  sign_off                approve (signs and commits the lock)
  taskN_verify:attempts   the feedback loop used its 3 attempts: approve --extend times, then reject
  taskN_review            approve (or reject once with --reject-review REASON: back to the agent)

Then it prints, from `lane show RUN --json`, the evidence files and the generation log, what the
agent did at each step. Nothing is tuned: the agent file, task files and prompts are the example's
as shipped; only `model:` (and --temperature, if given) changes.

  python drive.py DIR [--model local] [--temperature T] [--extend 1] [--reject-review REASON]
  python drive.py DIR --model NAME --base-url http://127.0.0.1:8000/v1   # an OpenAI-compatible server
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="a folder that does not exist yet, outside any git repository")
    parser.add_argument("--python", default=str(REPO / ".venv/bin/python"), help="the Python that has lane installed")
    parser.add_argument("--model", default="local", help="model id for agents/coder.md (default: local, the built-in Gemma 3 270M)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server: the coder gets {provider: openai, model: MODEL, base_url: URL}")
    parser.add_argument("--temperature", type=float, help="settings.temperature for the coder (default: the model's, 0 for local)")
    parser.add_argument("--extend", type=int, default=1, help="times to give the feedback loop 3 more attempts before rejecting (default 1)")
    parser.add_argument("--reject-review", metavar="REASON", help="reject the first task review once with this reason")
    parser.add_argument("--takeover", action="store_true",
                        help="when the agent fails a task, the person writes the example's canned edit (scripts/rehearsal.yaml) "
                             "and goes on: `lane retry` after a rejected loop, `lane task verify` + `lane task commit` by hand after "
                             "a failed agent step; so every task reaches the model")
    parser.add_argument("--max-resumes", type=int, default=20)
    args = parser.parse_args()

    d: Path = args.dir.resolve()
    if d.exists():
        sys.exit(f"{d} exists; give a new folder")
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               LANE_GEN_LOG=str(d.parent / f"{d.name}.gen.jsonl"))
    Path(env["LANE_GEN_LOG"]).unlink(missing_ok=True)
    timings: list[tuple[str, float, int]] = []

    def lane(*argv: str, timed: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        proc = subprocess.run([args.python, str(HERE / "gen_log.py"), *argv], cwd=d if d.exists() else d.parent,
                              env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        if timed:
            timings.append((timed, took, proc.returncode))
            print(f"[{took:7.1f} s, exit {proc.returncode}] lane {' '.join(argv)}", flush=True)
        if check and proc.returncode not in (0, 1, 3, 4):
            sys.exit(f"lane {' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def git(*argv: str) -> None:
        subprocess.run(["git", *argv], cwd=d, env=env, check=True, capture_output=True)

    # 1. the test repository
    lane("init", str(d), "--example", "coding", check=True)
    coder = d / "agents/coder.md"
    text = coder.read_text()
    text = re.sub(r"(?m)^model: .*$", "model: coderllm" if args.base_url else f"model: {args.model}", text, count=1)
    if args.temperature is not None:
        text = text.replace("\nautonomy:", f"\nsettings: {{temperature: {args.temperature}}}\nautonomy:", 1)
    coder.write_text(text)
    if args.base_url:
        yaml = (d / "lane.yaml").read_text().replace(
            "models:\n", f"models:\n  coderllm: {{provider: openai, model: {json.dumps(args.model)}, base_url: {json.dumps(args.base_url)}}}\n", 1)
        (d / "lane.yaml").write_text(yaml)
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "Shop: lock and tasks of cart")
    plan = lane("feature", "plan", "cart")
    print(plan.stdout.strip())
    git("add", "-A")
    git("commit", "-qm", "Plan feature cart")
    validate = lane("validate")
    if validate.returncode:
        sys.exit(validate.stdout + validate.stderr)

    # 2. the run, every pause answered
    started = lane("run", "feature-cart", "--no-ask", "--json", timed="run feature-cart")
    run_id = json.loads(started.stdout)["run_id"]
    print(f"run {run_id} in {d}")
    extended = 0
    rejected_review = False
    proc = started
    takeovers: list[str] = []
    for _ in range(args.max_resumes):
        if proc.returncode == 1 and args.takeover:
            proc = take_over(d, run_id, lane, takeovers)
        if proc.returncode != 3:
            break
        show = json.loads(lane("show", run_id, "--json").stdout)
        if not show["pending"]:  # paused with nothing to decide: e.g. a server that could not be reached
            print(f"  paused without a decision to make: {show.get('reason')}")
            break
        pending = show["pending"][0]
        call = pending["call_id"]
        if call == "sign_off":
            lane("approve", run_id, "--call", call)
            print("  sign_off: approved")
        elif call.endswith(":attempts"):
            if extended < args.extend:
                extended += 1
                lane("approve", run_id, "--call", call)
                print(f"  {call}: approved 3 more attempts ({extended} of {args.extend})")
            else:
                lane("reject", run_id, "--call", call, "--reason", "the agent used its attempts; a person takes over")
                print(f"  {call}: rejected (no more attempts)")
        elif call.endswith("_review"):
            value = pending.get("value") or {}
            print(f"  {call}: the reviewer sees summary={json.dumps(value.get('summary'))}; "
                  f"verification ends {json.dumps((value.get('verification') or '').strip().splitlines()[-1:])}")
            if args.reject_review and not rejected_review:
                rejected_review = True
                lane("reject", run_id, "--call", call, "--reason", args.reject_review)
                print(f"  {call}: rejected with reason {args.reject_review!r}")
            else:
                lane("approve", run_id, "--call", call)
                print(f"  {call}: approved")
        else:
            lane("approve", run_id, "--call", call)
            print(f"  {call}: approved (unexpected pause: {pending.get('question')})")
        proc = lane("resume", run_id, "--no-ask", timed=f"resume after {call}")
    print()
    show = report(d, run_id, lane, timings, Path(env["LANE_GEN_LOG"]))
    if takeovers:
        print("\n== the person took over: " + "; ".join(takeovers))
    taken = {t.split(":")[0].split()[1] for t in takeovers}
    tasks = sorted({m.group(1) for s in show["steps"] if (m := re.match(r"task(\d+)_", s["id"]))})
    by_agent = [n for n in tasks if n not in taken and any(s["id"] == f"task{n}_commit" and s["status"] == "completed" for s in show["steps"])]
    print(f"\nOUTCOME: run {show['status']}; tasks the agent's own work got committed: {len(by_agent)} of {len(tasks)}"
          f"; tasks a person took over: {len(taken)}")
    return 0 if show["status"] == "completed" and len(by_agent) == len(tasks) else 1


def take_over(d: Path, run_id: str, lane, takeovers: list[str]):  # type: ignore[no-untyped-def]
    """The run failed on a task: write that task's canned edit as the person would, then go on."""
    import yaml

    show = json.loads(lane("show", run_id, "--json").stdout)
    failed = next((s for s in show["steps"] if s["status"] == "failed"), None)
    m = re.match(r"task(\d+)_(work|verify)$", failed["id"]) if failed else None
    if not m:
        return subprocess.CompletedProcess([], 1)
    n, kind = m.group(1), m.group(2)
    canned = yaml.safe_load((d / "scripts/rehearsal.yaml").read_text())[f"task{n}_work"]
    for turn in canned:
        for call in turn.get("tool_calls") or []:
            (d / call["args"]["path"]).parent.mkdir(parents=True, exist_ok=True)
            (d / call["args"]["path"]).write_text(call["args"]["content"])
    task = sorted(p.stem for p in (d / "features/cart/tasks").glob("*.md"))[int(n) - 1]
    if kind == "verify":  # a loop the person ended: fix, then lane retry runs verify again
        takeovers.append(f"task {n}: wrote the file after the loop was rejected, then lane retry")
        return lane("retry", run_id, "--no-ask", timed=f"retry after the person fixed task {n}")
    # the agent step itself failed (a model error): retry would run the agent again, so finish the task by hand
    verify = lane("task", "verify", "cart", task, timed=f"person: lane task verify cart {task}")
    commit = lane("task", "commit", "cart", task, timed=f"person: lane task commit cart {task}")
    takeovers.append(f"task {n}: the agent step failed; the person wrote the file, verify exit {verify.returncode}, "
                     f"commit exit {commit.returncode}; the run stays failed (retry would run the agent again)")
    return subprocess.CompletedProcess([], 1)


def report(d: Path, run_id: str, lane, timings, gen_log: Path) -> None:  # type: ignore[no-untyped-def]
    show = json.loads(lane("show", run_id, "--json").stdout)
    print(f"== run {run_id}: {show['status']}" + (f" ({show['reason']})" if show.get("reason") else ""))
    usage = show["usage"]
    print(f"tokens: {usage['input_tokens']} in / {usage['output_tokens']} out (only turns the engine kept)")
    print("\n== wall time of each command")
    for what, seconds, code in timings:
        print(f"  {seconds:7.1f} s  exit {code}  {what}")
    print("\n== steps")
    for step in show["steps"]:
        if step["status"] == "pending":
            continue
        secs = f"{step['seconds']:.1f} s" if step.get("seconds") is not None else "-"
        tok = step.get("usage") or {}
        print(f"- {step['id']} ({step['kind']}): {step['status']}, {secs}"
              + (f", tokens {tok.get('input_tokens')} in / {tok.get('output_tokens')} out" if step["kind"] == "agent" else ""))
        for turn in step.get("turns") or []:
            r = turn["response"]
            u = r.get("usage") or {}
            if r.get("tool_calls"):
                what = "; ".join(f"calls {c['name']}({_short(c['args'])})" for c in r["tool_calls"])
            else:
                what = f"answers {_short(r.get('output') if r.get('output') is not None else r.get('text'))}"
            print(f"    {turn['turn']}: {what}  [{u.get('input_tokens')} in / {u.get('output_tokens')} out]")
        for loop in step.get("loops") or []:
            print(f"    loop: attempt {loop['attempt']} of {loop['of']} after {loop['from_step']} failed")
        for call in step.get("tool_calls") or []:
            result = (call.get("executions") or [{}])[-1]
            detail = result.get("result") if call["status"] == "ok" else (result.get("error") or call.get("basis"))
            print(f"    tool {call['tool']} {_short(call['args'].get('path'))}: {call['status']} ({_short(detail)})")
        earlier = step.get("previous_attempts") or []
        for i, prev in enumerate(earlier, 1):
            print(f"    earlier attempt {i}: {prev['status']}: {_short(prev.get('error'), 160)}")
        if step.get("error"):
            print(f"    error: {_short(step['error'], 300)}")
        if step["kind"] == "agent" and step.get("output") is not None:
            print(f"    output: {_short(step['output'])}")
    print("\n== evidence files")
    for ev in sorted(d.glob("features/cart/tasks/*.evidence.json")):
        data = json.loads(ev.read_text())
        failed = [f"{c['name']}: {_short(c['violations'][0]['reason'] if c['violations'] else '', 120)}"
                  for c in data["checks"] if not c["passed"]]
        print(f"  {ev.name}: passed={data['passed']} changes={[c['path'] for c in data['changes']]}"
              + (f" failed={failed}" if failed else ""))
    print("\n== what the agent left in src/")
    for f in sorted(d.glob("src/**/*")):
        if f.is_file():
            print(f"  --- {f.relative_to(d)} ({f.stat().st_size} bytes)")
            print("    " + f.read_text(errors="replace")[:600].replace("\n", "\n    "))
    if gen_log.exists():
        print(f"\n== every generation of the local model ({gen_log})")
        for line in gen_log.read_text().splitlines():
            g = json.loads(line)
            u = g.get("usage") or {}
            print(f"  {g['at']} {g['seconds']:6.1f} s  {u.get('prompt_tokens')} in / {u.get('completion_tokens')} out  "
                  f"finish={g.get('finish')}  {_short(g.get('text') or g.get('error'), 160)}")
    print(f"\nfull timeline: cd {d} && lane show {run_id}")
    return show


def _short(value, limit: int = 100) -> str:  # type: ignore[no-untyped-def]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
