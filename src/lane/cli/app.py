"""The `lane` command. It parses, calls the library and renders; nothing more.

Exit codes: 0 completed, 1 failed or stopped, 2 invalid usage or project,
3 paused waiting for a person.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="lane",
    help=(
        "Run human-directed AI agents by runbook: each agent kept in its lane, a person "
        "asked where the process says so, every run durable and on record.\n\n"
        "Start with `lane init my-project`, then `lane validate`, `lane run RUNBOOK`, "
        "`lane approve RUN`, `lane resume RUN` and `lane show RUN`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml).", show_default="current folder")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No live progress; only the outcome.")]
EXIT = {"completed": 0, "failed": 1, "stopped": 1, "paused": 3}


def main() -> None:
    app()


@app.command()
def init(
    directory: Annotated[Path | None, typer.Argument(metavar="DIR", help="Where to write the project (created if missing).", show_default="current folder")] = None,
    example: Annotated[str, typer.Option(help="Which example to start from: support-triage (the workflow track, what `lane demo` runs) or coding (the feature runbook on a git repository).")] = "support-triage",
    project: Annotated[Path | None, typer.Option("--project", "-p", help="The same as DIR.")] = None,
) -> None:
    """Write a working project: lane.yaml, agents, a runbook, tools and a rehearsal script."""
    from lane.cli import commands

    commands.init(directory or project or Path("."), example)


@app.command()
def validate(project: ProjectDir = Path("."), as_json: JsonFlag = False) -> None:
    """Check every project file and report each problem as path:line:column: message (exit 2 if any)."""
    from lane.cli import commands

    commands.validate(project, as_json)


@app.command()
def run(
    runbook: Annotated[str, typer.Argument(help="The runbook's name (its `runbook:` key).")],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="KEY=VALUE: VALUE is JSON if it parses, else text; KEY=@FILE reads JSON or YAML; a.b=V nests."),
    ] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="A JSON or YAML file with all the inputs.")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Start a run and execute it until it completes, fails, stops or waits for a person (exit 3).

    On a terminal it shows which step is running, what it waits for, tokens and time.
    """
    from lane.cli import commands

    commands.run(project, runbook, input or [], input_file, as_json, quiet)


@app.command()
def runs(project: ProjectDir = Path("."), as_json: JsonFlag = False) -> None:
    """List the project's runs, newest first."""
    from lane.cli import commands

    commands.runs(project, as_json)


@app.command()
def audit(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id, or a unique prefix of one.")],
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Every tool call of a run, in order: its arguments' and result's hashes, its effect, the rule or
    autonomy level that let it run (or refused it), and who approved or rejected it."""
    from lane.cli import commands

    commands.audit(project, run_id, as_json)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id, or a unique prefix of one.")],
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Show a run's timeline: steps, what each agent saw, outputs, tool calls, approvals, tokens, times."""
    from lane.cli import commands

    commands.show(project, run_id, as_json)


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    call: Annotated[str | None, typer.Option("--call", help="Which pending decision (as listed by `lane show`); needed when more than one waits.")] = None,
    as_role: Annotated[str | None, typer.Option("--as", help="The human role deciding; needed when several may.")] = None,
    edit: Annotated[str | None, typer.Option(help="JSON replacing the call's arguments, the step's value, or giving a step's input.")] = None,
    result: Annotated[str | None, typer.Option(help="For a call left in doubt by a crash: it took effect, with this JSON result.")] = None,
    project: ProjectDir = Path("."),
) -> None:
    """Approve what a paused run waits for. Recorded now; `lane resume RUN` carries on."""
    from lane.cli import commands

    commands.decide(project, run_id, True, call, as_role, edit, result, None)


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded, and shown to the agent.")],
    call: Annotated[str | None, typer.Option("--call", help="Which pending decision; needed when more than one waits.")] = None,
    as_role: Annotated[str | None, typer.Option("--as", help="The human role deciding; needed when several may.")] = None,
    project: ProjectDir = Path("."),
) -> None:
    """Reject what a paused run waits for: the call never runs. `lane resume RUN` carries on."""
    from lane.cli import commands

    commands.decide(project, run_id, False, call, as_role, None, None, reason)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    budget: Annotated[list[str] | None, typer.Option("--budget", help="KEY=N raises a limit for this run: tool_calls, steps, tokens, wall_seconds, repeats.")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Continue a paused, stopped or interrupted run from its journal; finished steps are not run again."""
    from lane.cli import commands

    commands.resume(project, run_id, budget or [], as_json, quiet)


@app.command()
def demo(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve every request without asking.")] = False,
    directory: Annotated[Path | None, typer.Option("--dir", "--project", "-p", help="Where to put the demo project (default: a new temporary folder).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run on another model, e.g. openai:gpt-4.1-mini, or rehearsal (canned turns). Default: local.")] = None,
) -> None:
    """Copy the support-triage example to a fresh folder and run it over every email in its inbox.

    Each email is one run: read it, classify it (the model), look the customer up,
    find the help article, name the topic (the model), fill the reply template,
    then stop for the support lead, who approves, edits or rejects the reply
    before it is written to outbox/. Ends with a table and the runbook's KPIs.

    On a terminal you decide each reply; with --yes every reply is approved;
    with neither, the runs wait and the demo shows how to decide them with
    `lane approve`. Exit: 0 every email answered (a reply you rejected is held,
    not failed), 1 an email failed, 3 runs wait for you.
    """
    from lane.cli import demo as demo_command

    demo_command.demo(yes, directory, model)


def _coding_track() -> None:
    """The coding track's command groups; each works on a repository, with or without lane.yaml."""
    from lane.cli import context, feature, hooks, killdates, locks, session, tasks

    app.add_typer(context.app, name="context", help="Render the canon into AGENTS.md, CLAUDE.md, Cursor rules and Copilot instructions, and check them.")
    app.add_typer(locks.app, name="lock", help="Pre-build locks: the gates a feature must fill and a person must sign before it is built.")
    app.add_typer(tasks.app, name="task", help="Task runbooks (FILES, TYPES, SKELETON, PROHIBITED, VALIDATE): write, enforce in coding tools, verify against git, commit.")
    app.add_typer(feature.app, name="feature", help="The feature runbook: lock, sign-off, then each task worked, verified, reviewed and committed.")
    app.command("killdates", help="List every flag and shim with its kill date; --check fails on a passed date or an unregistered marker.")(killdates.killdates)
    app.add_typer(session.app, name="session", help="Where things stand at the start of a session, and a dated log entry at its end.")
    app.add_typer(hooks.app, name="hook", help="What the hooks `lane task start` installs run.", hidden=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


_coding_track()  # last: its modules import emit_json from here
