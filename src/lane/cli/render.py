"""How the CLI shows things to a person (Rich on a terminal, plain text otherwise)."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from lane.engine.approvals import Pending
from lane.errors import Problem
from lane.secrets import scrub


class _Scrubbed:
    """The process's stdout or stderr, as it is at each write, with every secret's value replaced.

    Everything lane prints goes through here: a secret that reached a message by
    any path is still never shown. (A secret split across two writes is not caught;
    Rich writes each print whole.)"""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self.name)
        return stream

    def write(self, text: str) -> int:
        return self._stream.write(scrub(text))

    def __getattr__(self, attr: str) -> Any:  # isatty, fileno, flush, encoding...: the real stream's
        return getattr(self._stream, attr)


out = Console(file=_Scrubbed("stdout"), highlight=False, soft_wrap=True)  # type: ignore[arg-type]
err = Console(file=_Scrubbed("stderr"), stderr=True, highlight=False, soft_wrap=True)  # type: ignore[arg-type]
APPROVE_HINTS = {
    "tool_call": "        (add --edit JSON to change its arguments)",
    "human_step": "        (add --edit JSON to change the value, or to give the input)",
    "handoff": " --edit JSON        (a valid output is required)",
    "in_doubt": "        (runs it again; or --result JSON if it took effect)",
    "loop": "        (gives the agent more attempts; reject ends the run)",
    "retry": "        (calls the tool again; reject fails the step)",
}
STATUS_STYLE = {"completed": "green", "paused": "yellow", "stopped": "magenta", "failed": "red", "rejected": "red", "running": "cyan"}


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
    at = f" --project {escape(shlex.quote(str(project)))}" if project is not None else ""
    style = STATUS_STYLE.get(run.status, "")
    pending = run.pending if run.status == "paused" else []
    reason = f"waiting for {len(pending)} decision{'s' if len(pending) != 1 else ''}" if pending else run.reason
    out.print(f"run [bold]{run.run_id}[/] [{style}]{run.status}[/]" + (f": {escape(reason)}" if reason else ""))
    if run.status == "paused":
        for item in pending:
            waiting(item)
            call, approve = _e(shlex.quote(item.call_id)), APPROVE_HINTS.get(item.kind, "")  # each[2].review: [ ] are a shell's
            holder = item.run_id or run.run_id  # a child run's request: its own id says which, whatever its call id
            out.print(f"    lane approve {holder} --call {call}{at}{approve}")
            out.print(f"    lane reject {holder} --call {call} --reason TEXT{at}")
        out.print(f"  then: lane resume {run.run_id}{at}")
    elif run.status == "stopped":
        out.print(f"  raise the limit and continue: lane resume {run.run_id} --budget KEY=N{at}")
    elif run.status in ("failed", "rejected"):
        out.print(f"  run it again from where it ended: lane retry {run.run_id}{at} (or --from STEP, an earlier step)")
    if run.status != "paused":
        out.print(f"  timeline: lane show {run.run_id}{at}")


def paused(run: Any) -> None:
    """The first line of a pause the person is about to be asked about."""
    count = len(run.pending)
    out.print(f"run [bold]{run.run_id}[/] [yellow]paused[/]: waiting for {count} decision{'s' if count != 1 else ''}")


def waiting(item: Any) -> None:
    """One thing a run waits for, in full: a person must see all of what they decide."""
    kind = item.kind.replace("_", " ")
    out.print(f"  waiting: [bold]{_e(item.call_id)}[/] ({kind}) for {_e(', '.join(item.roles) or 'a person')}: {_e(item.question)}")
    shown = {"tool_call": ("arguments", item.args), "in_doubt": ("arguments", item.args), "handoff": ("the agent's output", item.output),
             "retry": ("arguments", item.args)}
    if item.run_id:
        out.print(f"    in child run {_e(item.run_id)}")
    label, value = shown.get(item.kind, ("value", item.value))
    if item.kind == "human_step" and item.mode == "input":
        label, value = "the input must fit", item.schema
    if value is not None:
        out.print(f"    {label}:")
        for line in details(value, indent=6):
            out.print(escape(line))
    for error in item.errors:
        out.print(f"    [yellow]invalid:[/] {_e(error)}")


def details(value: Any, *, indent: int = 0) -> list[str]:
    """A value as a person reads it, whole: `key: value` lines, text as text (its own lines kept), wrapped to the width."""
    width = max(40, out.width - indent)
    pad = " " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) and value else [(None, value)]
    for key, item in items:
        head = f"{key}: " if key is not None else ""
        text = item if isinstance(item, str) else _as_yaml(item) if item and isinstance(item, dict | list) else json.dumps(item, ensure_ascii=False)
        body = text.splitlines() or [""]
        if len(body) == 1 and len(head) + len(body[0]) <= width:
            lines.append(pad + head + body[0])
            continue
        if head:
            lines.append(pad + head.rstrip() + (" |" if isinstance(item, str) else ""))
        inner = pad + ("  " if head else "")
        for line in body:
            wrapped = textwrap.wrap(line, width - len(inner) + len(pad), break_on_hyphens=False) or [""]
            lines.extend(inner + part for part in wrapped)
    return lines


def _as_yaml(value: dict[str, Any] | list[Any]) -> str:
    """A nested value in block style, as a person reads it: `- key: value` lines rather than JSON's braces."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # details() wraps to the terminal
    yaml.allow_unicode = True
    yaml.representer.sort_base_mapping_type_on_output = False  # keys in the value's own order
    buffer = io.StringIO()
    yaml.dump(value, buffer)
    return buffer.getvalue().rstrip("\n")


def decided(decision: Any) -> None:
    out.print(f"{decision.decision} {_e(decision.call_id)} in run {decision.run_id} as {_e(decision.by)}; continue with: lane resume {decision.run_id}")


def runs(records: list[Any]) -> None:
    """One line per run in fixed columns, and its reason whole on the lines below: readable piped and at 80 columns."""
    if not records:
        out.print("no runs yet; start one with `lane run RUNBOOK`")
        return
    tree = _tree(records)
    records = [r for r, _ in tree]
    rows = [("  " * depth + r.run_id, f"{r.runbook} v{r.version}", r.status, r.started_at[:19].replace("T", " ")) for r, depth in tree]
    widths = [max(len(row[i]) for row in [("run", "runbook", "status", "started"), *rows]) for i in range(3)]
    out.print(f"{'run':<{widths[0]}}  {'runbook':<{widths[1]}}  {'status':<{widths[2]}}  started")
    for record, (run_id, book, status, started) in zip(records, rows, strict=True):
        pad = " " * (widths[2] - len(status))
        out.print(f"{run_id:<{widths[0]}}  {_e(book):<{widths[1]}}  [{STATUS_STYLE.get(status, '')}]{status}[/]{pad}  {started}")
        for line in (record.reason or "").splitlines():
            out.print(f"  {_e(line)}")


def _tree(records: list[Any]) -> list[tuple[Any, int]]:
    """Runs in the order given, each child run right under the run that started it, with its depth."""
    listed = {r.run_id for r in records}
    children: dict[str, list[Any]] = {}
    for record in records:
        if record.parent_id in listed:
            children.setdefault(record.parent_id, []).append(record)
    ordered: list[tuple[Any, int]] = []
    stack = [(r, 0) for r in reversed(records) if r.parent_id not in listed]
    while stack:  # depth first, without recursion: a deep tree of runs cannot overflow the stack
        record, depth = stack.pop()
        ordered.append((record, depth))
        inner = sorted(children.get(record.run_id, ()), key=lambda r: (r.started_at, r.run_id))
        stack.extend((child, depth + 1) for child in reversed(inner))
    return ordered


def timeline(view: dict[str, Any]) -> None:
    style = STATUS_STYLE.get(view["status"], "")
    out.print(f"[bold]run {view['run_id']}[/] · {_e(view['runbook'])} v{view['version']} · [{style}]{view['status']}[/]" + (f" · {escape(view['reason'])}" if view["reason"] else ""))
    usage = view["usage"]
    attempt = f" · attempt {view['attempts']} (lane retry)" if view.get("attempts", 1) > 1 else ""
    out.print(f"started {view['started_at'][:19].replace('T', ' ')} · {_usage(usage)}{attempt}")
    out.print(f"inputs: {escape(_short(json.dumps(view['inputs'], ensure_ascii=False), 200))}")
    for step in view["steps"]:
        _step(step)
    if view["pending"]:
        out.print()
    for item in view["pending"]:
        waiting(Pending.from_json(item))
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


MANY_ITEMS = 20  # a for_each with more items shows each completed one on a line (`--json` has them whole)


def _step(step: dict[str, Any], depth: int = 0) -> None:
    """One step, and the items, branches and steps inside it indented under it."""
    pad = "    " * depth

    def say(text: str) -> None:
        out.print(pad + text)

    style = STATUS_STYLE.get(step["status"], "dim")
    took = f" {step['seconds'] * 1000:.1f} ms" if step.get("seconds") is not None else ""
    out.print()
    say(f"[bold]{_e(step['id'])}[/] ({step['kind']}) [{style}]{step['status']}[/]{took}")
    if step.get("child"):
        child = step["child"]
        say(f"  child run {_e(child['run_id'])} ({_e(child['runbook'])}) {_e(child.get('status') or '')}: lane show {_e(child['run_id'])}")
    if step.get("context"):
        ctx = step["context"]
        read = f" · read: {_e(', '.join(ctx['sources']))}" if ctx["sources"] else ""
        say(f"  agent {_e(ctx['agent'])} on {_e(ctx['model'])} · saw ~{ctx['estimated_tokens']} tokens · tools: {_e(', '.join(ctx['tools']) or 'none')}{read}")
        say(f"  {_usage(step['usage'])}")
    for skill in step.get("skills", ()):
        files = f" and {_e(', '.join(skill['files']))}" if skill["files"] else ""
        say(f"  loaded skill {_e(skill['name'])}{files}: ~{skill['tokens']} tokens")
    for failure in step.get("model_failures", ()):
        again = f"; tried again after {failure['retry_in']:g} s" if failure.get("retry_in") is not None else ""
        say(f"  [yellow]{escape(failure['turn'])} attempt {failure['attempt']} failed[/]: {escape(_short(failure['error'] or '', 160))}{escape(again)}")
    for turn in step["turns"]:
        r = turn["response"]
        said = r.get("text") or ("calls " + ", ".join(c["name"] for c in r.get("tool_calls", [])) if r.get("tool_calls") else json.dumps(r.get("output"), ensure_ascii=False))
        say(f"  {turn['turn']}: {escape(_short(said or '', 120))}")
        for loop in [x for x in step.get("loops", ()) if x.get("after_turn") == turn["turn"]]:
            say(f"  [yellow]attempt {loop['attempt']} of {loop['of']}[/]: {escape(_short(loop['failure'] or '', 160))}")
    for call in step["tool_calls"]:
        _call(call, pad)
    for decision in step["decisions"]:
        say(f"  {decision['decision']} by {_e(decision['by'])} ({_e(decision['user'])}) at {decision['at'][:19]}" + (" with an edit" if "edited" in decision else ""))
    if step.get("reason") and step["status"] == "skipped":
        say(f"  {escape(step['reason'])}")
    if step["output"] is not None:
        say(f"  output: {escape(_short(json.dumps(step['output'], ensure_ascii=False), 160))}")
    if step["error"]:
        say(f"  [red]error:[/] {escape(step['error'])}")
    for number, earlier in enumerate(step.get("previous_attempts", ()), start=1):
        why = f": {_short(earlier['error'], 160)}" if earlier.get("error") else ""
        calls = len(earlier["tool_calls"])
        say(f"  [dim]earlier attempt {number}: {earlier['status']}{escape(why)}"
            + (f" ({calls} tool call{'s' if calls != 1 else ''})" if calls else "") + "[/]")
    items = step.get("items", ())
    many = len(items) > MANY_ITEMS
    for inner in (*items, *step.get("branches", {}).values(), *step.get("steps", ())):
        if many and inner in items and inner["status"] == "completed":  # a long for_each: one line per item that went well
            shown = _short(json.dumps(inner["output"], ensure_ascii=False), 100)
            out.print(f"{pad}    {_e(inner['id'])} [green]completed[/] → {escape(shown)}")
            continue
        _step(inner, depth + 1)


def _call(call: dict[str, Any], pad: str = "") -> None:
    args = _short(json.dumps(call["args"], ensure_ascii=False), 100)
    out.print(f"{pad}  call {_e(call['call_id'])} {_e(call['tool'])} ({call['effect']}) {_e(args)} → {call['status']}" + (f": {_e(call['reason'])}" if call.get("reason") else ""))
    decision = call.get("decision")
    if decision:
        edited = " with edited arguments" if decision.get("edited_args") is not None else ""
        out.print(f"{pad}    {decision['decision']} by {_e(decision['by'])} ({_e(decision['user'])}) at {decision['at'][:19]}{edited}")
    for ex in call["executions"]:
        took = f" {ex['seconds'] * 1000:.1f} ms" if ex.get("seconds") is not None else ""
        out.print(f"{pad}    attempt {ex['attempt']}: {ex['status']}{took}")


def _e(value: object) -> str:
    """Data shown as it is: never read as Rich markup (a tool named `x[/]` must not break the page)."""
    return escape(str(value))


def _short(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def audit(run_id: str, rows: list[dict[str, Any]]) -> None:
    """One block per tool call, each fact on its own line: readable piped and at 80 columns."""
    if not rows:
        out.print(f"run {escape(run_id)} made no tool calls")
        return
    out.print(f"[bold]tool calls of run {escape(run_id)}[/]")
    for row in rows:
        attempt = f" · attempt {row['attempt']}" if row.get("attempt", 1) != 1 else ""
        out.print(f"\n[bold]{_e(row['call_id'] or '')}[/] {_e(row['tool'] or '')} ({row['effect'] or 'unknown effect'}){attempt} → {_e(row['outcome'])}")
        if row.get("run_id"):
            out.print(f"  in child run {_e(row['run_id'])}")
        if row["refused_by"]:
            out.print(f"  stopped by: {_e(row['refused_by'])}")
        elif row["allowed_by"]:
            out.print(f"  let through by: {_e(row['allowed_by'])}")
        for who in ("approved", "rejected"):
            if row[f"{who}_by"]:
                edited = " (edited)" if row["edited"] else ""
                out.print(f"  {who} by {_e(row[f'{who}_by'])} at {(row['decided_at'] or '')[:19]}{edited}")
        if row["reason"] and row["outcome"] != "ran":
            out.print(f"  reason: {_e(row['reason'])}")
        result = f" · result {row['result_hash'][:12]}" if row["result_hash"] else ""
        out.print(f"  args {(row['args_hash'] or '')[:12]}{result} (sha256)")
