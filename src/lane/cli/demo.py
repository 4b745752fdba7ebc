"""`lane demo`: the support-triage example, run over its inbox, with a person at each gate.

Each email is one run. At each approval the person sees the draft and approves,
edits or rejects it; `--yes` approves everything; without a terminal the runs
wait and the demo says how to decide them with `lane approve`. A run that fails
is a row in the table; the other emails go on.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from lane.cli import render
from lane.cli.commands import copy_example, errors, progress, remove_example
from lane.errors import UsageError

if TYPE_CHECKING:
    from lane.engine.approvals import Pending
    from lane.project import Project, Run

RUNBOOK = "support-triage"
REPLY_STYLE = {"sent": "green", "held": "yellow", "waiting": "yellow", "failed": "red"}
Decide = Callable[["Run", "Pending"], None]


@dataclass(frozen=True)
class Row:
    email: str
    run_id: str
    status: str
    category: str
    customer: str
    reply: str  # sent | held | waiting | failed
    tokens: int
    seconds: float
    note: str
    kpis: dict[str, Any]


def demo(yes: bool, directory: Path | None, model: str | None, ask: bool = True) -> None:
    from lane.project import Project

    with errors():
        target = directory or Path(tempfile.mkdtemp(prefix="lane-demo-"))
        written = copy_example("support_triage", target)
        try:
            if model:
                _use_model(target / "lane.yaml", model)
            project = Project.load(target)
        except Exception:
            remove_example(written, target)  # so the same --dir can be used again once fixed
            raise
        render.out.print(f"demo project: [bold]{escape(str(target))}[/] (a copy of the support-triage example)")
        render.out.print(f"model: {escape(project.spec.model_id(None))} · one run per email in inbox/ · the support lead approves each reply\n")
        interactive = not yes and ask and sys.stdin.isatty() and render.out.is_terminal
        lead = _Lead(_approve_all if yes else (_ask if interactive else None))
        emails = sorted(p for p in (target / "inbox").glob("*.eml") if p.is_file())
        others = sorted(p.name for p in (target / "inbox").iterdir() if p not in emails and not p.name.startswith("."))
        if others:
            render.out.print(f"[yellow]skipped[/] in inbox/ (not .eml files): {escape(', '.join(others))}")
        rows = [_one(project, email, lead) for email in emails]
        _summary(project, rows, target, asked=ask or yes)
        if any(r.status == "paused" for r in rows):
            raise SystemExit(3)
        if any(r.reply == "failed" for r in rows):
            raise SystemExit(1)


def _use_model(config: Path, model: str) -> None:
    """The one-line switch: `default: local` becomes `default: MODEL`."""
    text = config.read_text(encoding="utf-8")
    if "  default: local\n" not in text:
        raise UsageError(f"{config} has no 'default: local' line to switch; edit its models: by hand")
    config.write_text(text.replace("  default: local\n", f"  default: {model}\n", 1), encoding="utf-8")


class _Lead:
    """Who decides at the gates: everything approved, a person asked, or no one (the runs wait)."""

    def __init__(self, decide: Decide | None) -> None:
        self.decide = decide

    def decides(self, run: Run) -> bool:
        """Decide what `run` waits for; False when no one can (or the person left with Ctrl-D)."""
        pending = run.pending
        if self.decide is None or not pending:  # paused for a provider, not a person: resuming now would fail again
            return False
        try:
            for item in pending:
                self.decide(run, item)
        except EOFError:
            render.out.print("\n[yellow]no more answers[/]: the remaining runs wait for the support lead")
            self.decide = None
            return False
        return True


def _one(project: Project, email: Path, lead: _Lead) -> Row:
    path = f"inbox/{email.name}"
    run = _watched(email.name, lambda **watch: project.run(RUNBOOK, {"email": path}, **watch))
    while run.status == "paused" and lead.decides(run):
        run = _watched(email.name, run.resume)
    row = _row(project, email.name, run)
    style = REPLY_STYLE[row.reply]
    detail = f" · {escape(row.note)}" if row.note else ""
    render.out.print(f"{escape(email.name)}: {escape(row.category)} · {escape(row.customer)} · [{style}]{row.reply}[/]{detail}")
    return row


def _watched(label: str, start: Callable[..., Run]) -> Run:
    """Run `start` with live progress on a terminal: which email, which step, tokens."""
    with progress(label=label, step_lines=False) as shown:
        return start(on_event=shown.on_event, on_stream=shown.on_stream) if shown else start()


def _approve_all(run: Run, item: Pending) -> None:
    run.approve(item.call_id, automatic="--yes")  # no person looked: recorded as such, and left out of what people approved


def _ask(run: Run, item: Pending) -> None:
    """Show what waits for the lead and ask: approve, edit or reject."""
    from rich.prompt import Prompt

    role = item.roles[0] if item.roles else None
    args = item.args
    if item.kind != "tool_call" or not isinstance(args, dict) or "body" not in args:
        render.out.print(f"[yellow]waiting[/]: {escape(item.question)}")
        answer = Prompt.ask("approve or reject?", choices=["a", "r"], default="a")
        if answer == "a":
            run.approve(item.call_id, as_role=role)
        else:
            run.reject(item.call_id, as_role=role, reason=Prompt.ask("why?", default="rejected in the demo"))
        return
    title = f"reply to {escape(str(args.get('to')))} · {escape(str(args.get('subject', '')))}"
    render.out.print(Panel(escape(str(args["body"])), title=title, title_align="left", expand=False))
    answer = Prompt.ask("[bold]a[/]pprove and send, [bold]e[/]dit, or [bold]r[/]eject?", choices=["a", "e", "r"], default="a")
    if answer == "a":
        run.approve(item.call_id, as_role=role)
    elif answer == "e":
        body = _edit(str(args["body"]))
        if not body.strip():
            render.out.print("[yellow]an empty reply is not sent[/]; decide again")
            _ask(run, item)
        elif body.strip() == str(args["body"]).strip():
            run.approve(item.call_id, as_role=role)
            render.out.print("[green]approved[/] (unchanged)")
        else:
            run.approve(item.call_id, as_role=role, edit={**args, "body": body})
            render.out.print("[green]approved with your edit[/]")
    else:
        reason = Prompt.ask("why? (recorded with the decision)", default="not right for this customer")
        run.reject(item.call_id, as_role=role, reason=reason)


def _edit(body: str) -> str:
    """The reply as the person rewrote it: in $VISUAL or $EDITOR when set, else typed here."""
    if os.environ.get("VISUAL") or os.environ.get("EDITOR"):
        from lane.cli.asking import in_editor

        try:
            edited = in_editor(body, ".txt")
        except (OSError, UnicodeDecodeError, RuntimeError) as exc:
            render.out.print(f"[yellow]the editor did not give a reply[/] ({escape(str(exc))}); the reply is left as it was")
            return body
        return edited.rstrip("\n") + "\n"
    render.out.print("Type the new reply; end with a line holding only a full stop (.):")
    lines: list[str] = []
    for line in sys.stdin:
        if line.rstrip("\r\n") == ".":
            break
        lines.append(line.rstrip("\r\n"))
    return "\n".join(lines) + "\n"


def _row(project: Project, email: str, run: Run) -> Row:
    view = project.show(run.run_id)
    steps = {s["id"]: s for s in view["steps"]}
    classified = steps.get("classify", {}).get("output") or {}
    customer = steps.get("lookup", {}).get("output")
    send = steps.get("send", {})
    rejected = any(c["status"] == "rejected" for c in send.get("tool_calls", []))
    if run.status == "completed":
        reply, note = "sent", ""
    elif run.status == "paused":
        reply, note = "waiting", "for the support lead"
    elif rejected:
        reply, note = "held", "rejected by the lead"
    else:
        reply, note = "failed", run.reason or run.status
    who = "—" if customer is None else (str(customer.get("name")) if customer.get("found") else "not found")
    usage = view["usage"]
    seconds = view["kpis"].get("seconds") or sum(s["seconds"] or 0 for s in view["steps"])  # active time, without waits for a person
    return Row(email, run.run_id, run.status, str(classified.get("category", "—")), who, reply,
               int(usage["input_tokens"] + usage["output_tokens"]), round(seconds, 1), note, view["kpis"])


def _summary(project: Project, rows: list[Row], target: Path, asked: bool = True) -> None:
    from lane.feedback.kpis import summarize

    table = Table("email", "run", "category", "customer", "reply", "tokens", "seconds", box=None, pad_edge=False,
                  title="support-triage over the inbox", title_justify="left", title_style="bold")
    for row in rows:
        style = REPLY_STYLE[row.reply]
        table.add_row(escape(row.email), row.run_id, escape(row.category), escape(row.customer), f"[{style}]{row.reply}[/]", str(row.tokens), f"{row.seconds:.1f}")
    render.out.print()
    width = render.out.width
    if not render.out.is_terminal:
        render.out.width = 160  # a pipe or a log gets whole rows, not 80 columns
    try:
        render.out.print(table)
    finally:
        render.out.width = width
    counts = {kind: sum(r.reply == kind for r in rows) for kind in ("sent", "held", "waiting", "failed")}
    render.out.print(", ".join(f"{n} {kind}" for kind, n in counts.items()) + f" · {sum(r.customer not in ('—', 'not found') for r in rows)} customers found")
    for row in rows:
        if row.reply == "failed":
            render.out.print(f"[red]failed[/] {escape(row.email)}: {escape(row.note)}")
    declared = project.spec.runbooks[RUNBOOK].file.kpis
    ended = [r for r in rows if r.kpis]
    if declared and ended:
        render.out.print("\n[bold]KPIs[/] over the runs that ended:")
        for name, kpi in declared.items():
            render.out.print(f"  {escape(name)}: {escape(summarize(name, [r.kpis.get(name) for r in ended], kpi.target).describe())}")
    at = f" --project {escape(str(target))}"
    render.out.print(f"\nreplies sent: {escape(str(target / 'outbox'))} · one run's timeline: lane show RUN{at}")
    waiting = [r for r in rows if r.status == "paused"]
    if waiting:
        why = "as --no-ask says" if not asked else "no terminal to ask on, and no --yes"
        render.out.print(f"\n[yellow]{len(waiting)} run{'s wait' if len(waiting) != 1 else ' waits'}[/] for the support lead ({why}). "
                         f"Decide them in the browser: lane serve{at}; or, for each:")
        render.out.print(f"  lane show RUN{at}              see the draft")
        render.out.print(f"  lane approve RUN{at}           or --edit JSON, or: lane reject RUN --reason TEXT{at}")
        render.out.print(f"  lane resume RUN{at}            sends the reply and finishes the run")
        render.out.print("  runs: " + " ".join(r.run_id for r in waiting))
