"""Deciding at the terminal: when `lane run`, `resume` or `retry` pause on a terminal, the person is asked there.

Each pending item is shown whole, then: approve, edit, reject, or later (the run
stays paused and the commands to finish it are printed). An edit is a JSON merge
patch typed on one line, or the whole value in $VISUAL / $EDITOR when one is set.
A decision the run refuses (an edit that does not fit its schema) is said, and
asked again.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.prompt import Prompt

from lane.cli import render
from lane.errors import DecisionError

if TYPE_CHECKING:
    from lane.engine.approvals import Pending
    from lane.project import Run


def can_ask() -> bool:
    """Only a person at a terminal is asked; pipes, scripts and CI never wait on a prompt."""
    return sys.stdin.isatty() and os.isatty(1) and render.out.is_terminal


def decide_all(run: Run) -> bool:
    """Ask about everything `run` waits for; False when the person left some for later (or ended input), and
    when it waits for nothing a person decides (a model's provider that is down: resuming at once would only fail again)."""
    pending = run.pending
    if not pending:
        return False
    try:
        for item in pending:
            render.out.print()
            render.waiting(item)
            if not _decide(run, item):
                return False
    except (EOFError, KeyboardInterrupt):
        render.out.print("\n[yellow]left for later[/]")
        return False
    return True


def _decide(run: Run, item: Pending) -> bool:
    role = _role(item)
    choices = {"tool_call": "aerl", "human_step": "aerl", "handoff": "erl", "in_doubt": "atrl"}[item.kind]
    if item.kind == "human_step" and item.mode == "input":
        choices = "erl"
    words = {"a": "[bold]a[/]pprove", "e": "[bold]e[/]dit" if item.mode != "input" else "[bold]e[/]nter the input",
             "t": "it [bold]t[/]ook effect (give its result)", "r": "[bold]r[/]eject", "l": "decide [bold]l[/]ater"}
    if item.kind == "in_doubt":
        words["a"] = "run it [bold]a[/]gain"
    while True:
        answer = Prompt.ask(", ".join(words[c] for c in choices) + "?", choices=list(choices), default=choices[0],
                            console=render.out, show_choices=True)
        try:
            if answer == "l":
                return False
            if answer == "r":
                run.reject(item.call_id, as_role=role, reason=Prompt.ask("why? (recorded, and shown to the agent)", console=render.out))
            elif answer == "a":
                run.approve(item.call_id, as_role=role)
            elif answer == "t":
                run.approve(item.call_id, as_role=role, result=_json("the call's result, as JSON"))
            else:
                _edit(run, item, role)
            render.out.print(f"[green]{'rejected' if answer == 'r' else 'approved'}[/] {escape(item.call_id)}")
            return True
        except DecisionError as exc:
            render.out.print(f"[red]not taken:[/] {escape(str(exc))}")


def _edit(run: Run, item: Pending, role: str | None) -> None:
    original = {"tool_call": item.args, "handoff": item.output}.get(item.kind, item.value)
    if os.environ.get("VISUAL") or os.environ.get("EDITOR"):
        before = json.dumps(original, ensure_ascii=False, indent=2) + "\n"
        try:
            text = in_editor(before, ".json")
        except (OSError, UnicodeDecodeError, RuntimeError) as exc:  # no such editor, or it quit with an error (:cq)
            raise DecisionError(f"the editor did not give a value ({exc}); nothing was decided") from None
        if not text.strip() or text == before:
            raise DecisionError("nothing was changed in the editor; nothing was decided")
        run.approve(item.call_id, as_role=role, edit=_parse(text))
        return
    patch = _json('a JSON merge patch, such as {"category": "hardware"} (null drops a key)')
    run.approve(item.call_id, as_role=role, patch=patch)


def _json(what: str) -> Any:
    while True:
        try:
            return _parse(Prompt.ask(what, console=render.out))
        except DecisionError as exc:
            render.out.print(f"[red]{escape(str(exc))}[/]")


def _parse(text: str) -> Any:
    from lane.cli.inputs import json_option
    from lane.errors import UsageError

    try:
        return json_option(text, "the value")
    except UsageError as exc:
        raise DecisionError(str(exc)) from None


def _role(item: Pending) -> str | None:
    if len(item.roles) <= 1:
        return item.roles[0] if item.roles else None
    return Prompt.ask("deciding as", choices=list(item.roles), default=item.roles[0], console=render.out)


def in_editor(text: str, suffix: str) -> str:
    """`text` as the person left it in $VISUAL or $EDITOR (which may carry its own arguments: `code --wait`)."""
    import shlex
    import subprocess
    import tempfile

    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    with tempfile.TemporaryDirectory(prefix="lane-edit-") as folder:
        path = os.path.join(folder, "value" + suffix)
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        if subprocess.run([*editor, path], check=False).returncode != 0:
            raise RuntimeError(f"{editor[0]} exited with an error")
        with open(path, encoding="utf-8") as file:
            return file.read()
