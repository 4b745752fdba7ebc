"""`lane hook claude` and `lane hook pre-commit`: the commands the installed hooks run (see lane.coding.hooks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="What the hooks `lane task start` installs run. You do not call these yourself.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)


@app.command()
def claude() -> None:
    """Claude Code PreToolUse hook: reads the hook's JSON on stdin, allows an Edit/Write/MultiEdit inside the
    active task's FILES and denies anything else, including input it cannot read."""
    try:
        from lane.coding.hooks import claude_decision

        answer = claude_decision(sys.stdin.read())
    except BaseException as exc:  # noqa: BLE001  an exit other than 0 or 2 lets Claude Code go on: fail closed here
        reason = f"lane could not check this edit, so it is denied: {type(exc).__name__}: {exc}"
        answer = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": reason}}
    if answer:
        sys.stdout.write(json.dumps(answer) + "\n")


@app.command("pre-commit")
def pre_commit(
    project: Annotated[Path, typer.Option("--project", "-p", help="The repository.", show_default="current folder")] = Path("."),
) -> None:
    """git pre-commit hook: blocks a commit that touches a path outside the active task's FILES."""
    from lane.coding.hooks import staged_outside
    from lane.errors import LaneError

    try:
        current, outside = staged_outside(project.resolve())
    except (LaneError, OSError) as exc:
        sys.stderr.write(f"lane: commit blocked: {exc}\n")
        raise typer.Exit(1) from None
    if outside:
        sys.stderr.write(f"lane: commit blocked: these paths are not in the FILES of task {current.feature}/{current.task}:\n")
        sys.stderr.writelines(f"  {p}\n" for p in outside)
        sys.stderr.write("Unstage them (git restore --staged PATH), or widen the task, or `lane task stop`.\n")
        raise typer.Exit(1)
