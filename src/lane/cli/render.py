"""How the CLI shows things to a person (Rich on a terminal, plain text otherwise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lane.errors import Problem
from lane.secrets import scrub

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
APPROVE_HINTS = {
    "tool_call": "        (add --edit JSON to change its arguments)",
    "human_step": "        (add --edit JSON to change the value, or to give the input)",
    "handoff": " --edit JSON        (a valid output is required)",
    "in_doubt": "        (runs it again; or --result JSON if it took effect)",
}
STATUS_STYLE = {"completed": "green", "paused": "yellow", "stopped": "magenta", "failed": "red", "running": "cyan"}


def error(message: str) -> None:
    err.print(f"[red]error:[/] {escape(scrub(message))}")


def problems(found: list[Problem]) -> None:
    for problem in found:
        out.print(escape(str(problem)))
    count = len(found)
    err.print(f"[red]{count} problem{'s' if count != 1 else ''}[/]; nothing was run.")


def valid(project: Path) -> None:
    out.print(f"[green]ok[/]: {escape(str(project.resolve()))} is a valid lane project")


def initialized(directory: Path, example: str = "support-triage") -> None:
    where = _e(directory)
    out.print(f"Wrote a lane project in [bold]{where}[/]. Next:")
    flag = "" if str(directory) in (".", "") else f" --project {where}"
    if example == "coding":
        if flag:
            out.print(f"  cd {where}")
        out.print('  git init -q && git add -A && git commit -qm "Shop: lock and tasks of cart"')
        out.print("  lane feature plan cart")
        out.print('  git add runbooks && git commit -qm "Plan feature cart"')
        out.print("  lane run feature-cart")
        return
    out.print(f"  lane validate{flag}")
    out.print(f"  lane run support-triage --input email=inbox/01-double-charge.eml{flag}")


def outcome(run: Any, project: Path | None = None) -> None:
    """The run's status and the commands that act on it (with --project when it is elsewhere)."""
    at = f" --project {escape(str(project))}" if project is not None else ""
    style = STATUS_STYLE.get(run.status, "")
    pending = run.pending if run.status == "paused" else []
    reason = f"waiting for {len(pending)} decision{'s' if len(pending) != 1 else ''}" if pending else run.reason
    out.print(f"run [bold]{run.run_id}[/] [{style}]{run.status}[/]" + (f": {escape(reason)}" if reason else ""))
    if run.status == "paused":
        for item in pending:
            call = item["call_id"]
            call, kind = _e(item["call_id"]), item["kind"]
            out.print(f"  waiting: [bold]{call}[/] ({kind.replace('_', ' ')}) for {_e(', '.join(item['roles']))}: {_e(item['question'])}")
            approve = APPROVE_HINTS.get(kind, "")
            out.print(f"    lane approve {run.run_id} --call {call}{at}{approve}")
            out.print(f"    lane reject {run.run_id} --call {call} --reason TEXT{at}")
        out.print(f"  then: lane resume {run.run_id}{at}")
    elif run.status == "stopped":
        out.print(f"  raise the limit and continue: lane resume {run.run_id} --budget KEY=N{at}")
    if run.status != "paused":
        out.print(f"  timeline: lane show {run.run_id}{at}")


def decided(decision: Any) -> None:
    out.print(f"{decision.decision} {_e(decision.call_id)} in run {decision.run_id} as {_e(decision.by)}; continue with: lane resume {decision.run_id}")


def runs(records: list[Any]) -> None:
    if not records:
        out.print("no runs yet; start one with `lane run RUNBOOK`")
        return
    table = Table("run", "runbook", "status", "started", "reason", box=None, pad_edge=False)
    for r in records:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(r.run_id, _e(f"{r.runbook} v{r.version}"), f"[{style}]{r.status}[/]", r.started_at[:19].replace("T", " "), escape(_short(r.reason or "", 60)))
    out.print(table)


def timeline(view: dict[str, Any]) -> None:
    style = STATUS_STYLE.get(view["status"], "")
    out.print(f"[bold]run {view['run_id']}[/] · {_e(view['runbook'])} v{view['version']} · [{style}]{view['status']}[/]" + (f" · {escape(view['reason'])}" if view["reason"] else ""))
    usage = view["usage"]
    out.print(f"started {view['started_at'][:19].replace('T', ' ')} · {_usage(usage)}")
    out.print(f"inputs: {escape(_short(json.dumps(view['inputs'], ensure_ascii=False), 200))}")
    for step in view["steps"]:
        _step(step)
    for item in view["pending"]:
        out.print(f"[yellow]waiting[/] {escape(item['call_id'])}: {escape(item['question'])}")
    if view["kpis"]:
        shown = ", ".join(f"{_e(k)} {escape(json.dumps(v, ensure_ascii=False))}" for k, v in view["kpis"].items())
        out.print(f"\nkpis: {shown}")
        for name, why in view["kpi_errors"].items():
            out.print(f"  [yellow]{_e(name)} not computed[/]: {escape(why)}")


def _usage(usage: dict[str, Any]) -> str:
    cost = f"${usage['cost_usd']:.4f}"
    if usage.get("unpriced_calls"):
        cost += f" + {usage['unpriced_calls']} call{'s' if usage['unpriced_calls'] != 1 else ''} of unknown price"
    return f"tokens {usage['input_tokens']} in / {usage['output_tokens']} out · {cost}"


def _step(step: dict[str, Any]) -> None:
    style = STATUS_STYLE.get(step["status"], "dim")
    took = f" {step['seconds'] * 1000:.1f} ms" if step.get("seconds") is not None else ""
    out.print(f"\n[bold]{_e(step['id'])}[/] ({step['kind']}) [{style}]{step['status']}[/]{took}")
    if step.get("context"):
        ctx = step["context"]
        read = f" · read: {_e(', '.join(ctx['sources']))}" if ctx["sources"] else ""
        out.print(f"  agent {_e(ctx['agent'])} on {_e(ctx['model'])} · saw ~{ctx['estimated_tokens']} tokens · tools: {_e(', '.join(ctx['tools']) or 'none')}{read}")
        out.print(f"  {_usage(step['usage'])}")
    for failure in step.get("model_failures", ()):
        again = f"; tried again after {failure['retry_in']:g} s" if failure.get("retry_in") is not None else ""
        out.print(f"  [yellow]{escape(failure['turn'])} attempt {failure['attempt']} failed[/]: {escape(_short(failure['error'] or '', 160))}{escape(again)}")
    for turn in step["turns"]:
        r = turn["response"]
        said = r.get("text") or ("calls " + ", ".join(c["name"] for c in r.get("tool_calls", [])) if r.get("tool_calls") else json.dumps(r.get("output"), ensure_ascii=False))
        out.print(f"  {turn['turn']}: {escape(_short(said or '', 120))}")
    for call in step["tool_calls"]:
        _call(call)
    for decision in step["decisions"]:
        out.print(f"  {decision['decision']} by {_e(decision['by'])} ({_e(decision['user'])}) at {decision['at'][:19]}" + (" with an edit" if "edited" in decision else ""))
    if step.get("reason") and step["status"] == "skipped":
        out.print(f"  {escape(step['reason'])}")
    if step["output"] is not None:
        out.print(f"  output: {escape(_short(json.dumps(step['output'], ensure_ascii=False), 160))}")
    if step["error"]:
        out.print(f"  [red]error:[/] {escape(step['error'])}")


def _call(call: dict[str, Any]) -> None:
    args = _short(json.dumps(call["args"], ensure_ascii=False), 100)
    out.print(f"  call {_e(call['call_id'])} {_e(call['tool'])} ({call['effect']}) {_e(args)} → {call['status']}" + (f": {_e(call['reason'])}" if call.get("reason") else ""))
    decision = call.get("decision")
    if decision:
        edited = " with edited arguments" if "edited_args" in decision else ""
        out.print(f"    {decision['decision']} by {_e(decision['by'])} ({_e(decision['user'])}) at {decision['at'][:19]}{edited}")
    for ex in call["executions"]:
        took = f" {ex['seconds'] * 1000:.1f} ms" if ex.get("seconds") is not None else ""
        out.print(f"    attempt {ex['attempt']}: {ex['status']}{took}")


def _e(value: object) -> str:
    """Data shown as it is: never read as Rich markup (a tool named `x[/]` must not break the page)."""
    return escape(str(value))


def _short(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def audit(run_id: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print(f"run {escape(run_id)} made no tool calls")
        return
    table = Table(title=f"tool calls of run {escape(run_id)}", title_justify="left")
    for column in ("call", "tool", "effect", "args", "let through / stopped by", "decided by", "outcome", "result"):
        table.add_column(column, overflow="fold")
    for row in rows:
        basis = row["refused_by"] or row["allowed_by"] or ""
        decided = (f"approved by {row['approved_by']}" if row["approved_by"] else
                   f"rejected by {row['rejected_by']}" if row["rejected_by"] else "")
        if decided and row["edited"]:
            decided += " (edited)"
        outcome = row["outcome"] + (f": {row['reason']}" if row["reason"] and row["outcome"] != "ran" else "")
        table.add_row(
            _e(row["call_id"] or ""), _e(row["tool"] or ""), row["effect"] or "", (row["args_hash"] or "")[:12],
            _e(basis), _e(decided), _e(outcome), (row["result_hash"] or "")[:12],
        )
    out.print(table)
