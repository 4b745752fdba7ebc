"""The `lane` command. It parses, calls the library and renders; nothing more.

Exit codes: 0 completed, 1 failed or stopped, 2 invalid usage or project,
3 paused waiting for a person, 4 rejected by a person.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

# Commands loaded only when they run (the coding track's, serving, versions): `lane --help` lists them from here.
# name: (module in lane.cli, its Typer app or command function, help, hidden)
LAZY: dict[str, tuple[str, str, str, bool]] = {
    "killdates": ("killdates", "killdates", "List every flag, shim and runbook version with its kill date; --check fails on one past its date that is still in use.", False),
    "context": ("context", "app", "Render the canon into AGENTS.md, CLAUDE.md, Cursor rules, Copilot instructions and each tool's skills folder, and check them.", False),
    "lock": ("locks", "app", "Pre-build locks: the gates a feature must fill and a person must sign before it is built.", False),
    "task": ("tasks", "app", "Task runbooks (FILES, TYPES, SKELETON, PROHIBITED, VALIDATE): write, enforce in coding tools, verify against git, commit.", False),
    "feature": ("feature", "app", "The feature runbook: lock, sign-off, then each task worked, verified, reviewed and committed.", False),
    "session": ("session", "app", "Where things stand at the start of a session, and a dated log entry at its end.", False),
    "hook": ("hooks", "app", "What the hooks `lane task start` installs run.", True),
    "test": ("fixtures", "test", "Run a runbook's golden fixtures (fixtures/RUNBOOK/*.yaml) and report each expectation.", False),
    "versions": ("versions", "versions", "List a runbook's kept versions: their runs by status and their KPIs.", False),
    "outcome": ("versions", "outcome", "Record a result of a run known only later (NAME=VALUE); KPIs read it as outcomes.NAME.", False),
    "diff": ("versions", "diff", "Show what changed between two kept versions of a runbook.", False),
    "release": ("releases", "release", "Release a runbook's new version to a share of new runs (or show its release).", False),
    "promote": ("releases", "promote", "Make the released version of a runbook the stable one.", False),
    "rollback": ("releases", "rollback", "Send every new run of a runbook back to its stable version.", False),
    "autonomy": ("earned", "autonomy", "Propose a level of autonomy up or down for each tool step and agent, from its record; accept one.", False),
    "report": ("releases", "report", "Compare a runbook's versions on every KPI, with intervals, tests and a chart (lane[report]).", False),
    "serve": ("serving", "serve", "Serve the HTTP API over the project and execute the runs started through it (lane[serve]).", False),
    "token": ("serving", "token_app", "Sign-in tokens for the people of lane.yaml, for lane serve.", False),
    "worker": ("worker", "worker", "Execute the project's runs for Temporal (engine: temporal), until Ctrl-C (lane[temporal]).", False),
    "mcp": ("mcp", "mcp", "Serve the project's runbooks, runs and coding reports to an MCP client, over stdio or --http (lane[mcp]).", False),
}


class _Commands(TyperGroup):
    """lane's commands, with the coding track's imported only when one of them runs (`lane --help` stays quick)."""

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *LAZY]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in LAZY:
            return super().get_command(ctx, name)
        module, attribute, help_text, hidden = LAZY[name]
        if self.listing:  # the help lists it: its name and help are enough
            return TyperCommand(name, help=help_text, hidden=hidden)
        target = getattr(importlib.import_module(f"lane.cli.{module}"), attribute)
        if isinstance(target, typer.Typer):
            command: Any = typer.main.get_group(target)
        else:
            single = typer.Typer(rich_markup_mode=None, add_completion=False)
            single.command(name)(target)
            command = typer.main.get_command(single)
        command.name, command.help, command.hidden = name, help_text, hidden
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="lane",
    cls=_Commands,
    help=(
        "Run human-directed AI agents by runbook: each agent kept in its lane, a person "
        "asked where the process says so, every run durable and on record.\n\n"
        "Start with `lane init my-project`, then `lane validate`, `lane run RUNBOOK`, "
        "`lane approve RUN`, `lane resume RUN` and `lane show RUN`.\n\n"
        "Exit codes: 0 completed, 1 failed or stopped, 2 invalid usage or project, "
        "3 paused waiting for a person, 4 rejected by a person."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml).", show_default="current folder")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No live progress; only the outcome.")]
AskFlag = Annotated[bool, typer.Option("--ask/--no-ask", help="On a terminal, ask what a paused run waits for and carry on.")]
EXIT = {"completed": 0, "failed": 1, "stopped": 1, "paused": 3, "rejected": 4}


def main() -> None:
    try:
        app()
    except SystemExit as done:
        _leave_after_temporal(done.code)
        raise
    except Exception as exc:  # a defect of lane's own: one line, scrubbed of secrets; the traceback on request
        import os
        import traceback

        from lane.secrets import scrub

        if os.environ.get("LANE_DEBUG"):
            sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
        sys.stderr.write(scrub(f"error: internal error: {type(exc).__name__}: {exc} "
                               "(a defect of lane's; LANE_DEBUG=1 shows where, please report it)") + "\n")
        raise SystemExit(1) from None


def _leave_after_temporal(code: object) -> None:
    """End at once a command that talked to Temporal, once what it printed is out: the SDK's threads can outlive the
    interpreter's shutdown and abort it (temporalio/sdk-python#300), turning a run's exit code into 134 or 139."""
    if "temporalio.client" not in sys.modules:
        return
    import os

    if "lane.telemetry.exporter" in sys.modules:  # its spans go out first, as at a normal exit
        from lane.telemetry import shutdown

        shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


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
    ask: AskFlag = True,
) -> None:
    """Start a run and execute it until it completes, fails, is rejected, stops or waits for a person.

    On a terminal it shows which step is running, tokens and time, and when the run
    waits for a person it asks you there: approve, edit, reject, or decide later.
    Piped, with --json or --no-ask, it exits 3 and prints how to decide.
    """
    from lane.cli import commands

    commands.run(project, runbook, input or [], input_file, as_json, quiet, ask)


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
    edit: Annotated[str | None, typer.Option(help=(
        "JSON: an object is a merge patch (RFC 7396) on the call's arguments, the step's value or the agent's output: "
        "'{\"category\": \"hardware\"}' changes one field, null drops one; any other JSON replaces the value. "
        "Checked against the schema before it is recorded."))] = None,
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
    budget: Annotated[list[str] | None, typer.Option("--budget", help=(
        "KEY=N raises a limit for this run (where the limit stopped it: the run or one step): "
        "tool_calls, steps, tokens, wall_seconds, repeats, cost_usd, approvals."))] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
    ask: AskFlag = True,
) -> None:
    """Continue a paused, stopped or interrupted run from its journal; finished steps are not run again.

    A failed or rejected run does not resume: `lane retry RUN` runs it again from where it ended."""
    from lane.cli import commands

    commands.resume(project, run_id, budget or [], as_json, quiet, ask)


@app.command()
def retry(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    from_step: Annotated[str | None, typer.Option("--from", metavar="STEP", help="Start at this step (the one where the run ended, or an earlier one).")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
    ask: AskFlag = True,
) -> None:
    """Run a failed or rejected run again from the step where it ended, or from an earlier --from STEP.

    A new attempt of the same run: the steps from there on run afresh (approvals are asked
    again), the earlier attempt stays in the journal, and `lane show` lists both. Steps
    before it keep their recorded outputs."""
    from lane.cli import commands

    commands.retry(project, run_id, from_step, as_json, quiet, ask)


@app.command()
def demo(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve every request without asking.")] = False,
    directory: Annotated[Path | None, typer.Option("--dir", "--project", "-p", help="Where to put the demo project (default: a new temporary folder).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run on another model, e.g. openai:gpt-4.1-mini, or rehearsal (canned turns). Default: local.")] = None,
    ask: Annotated[bool, typer.Option("--ask/--no-ask", help="On a terminal, ask about each reply; --no-ask leaves them waiting, "
                                      "to decide later (lane approve, or in the browser with lane serve).")] = True,
) -> None:
    """Copy the support-triage example to a fresh folder and run it over every email in its inbox.

    Each email is one run: read it, classify it (the model), look the customer up,
    find the help article, name the topic (the model), fill the reply template,
    then stop for the support lead, who approves, edits or rejects the reply
    before it is written to outbox/. Ends with a table and the runbook's KPIs.

    On a terminal you decide each reply; with --yes every reply is approved;
    with neither (or with --no-ask), the runs wait and the demo shows how to
    decide them: `lane approve`, or in the browser with `lane serve`. Exit: 0 every email answered (a reply you rejected is held,
    not failed), 1 an email failed, 3 runs wait for you.
    """
    from lane.cli import demo as demo_command

    demo_command.demo(yes, directory, model, ask)


def emit_json(data: Any) -> None:
    """Strict JSON on stdout: no secret's value, no NaN or Infinity (null), no lone surrogate (escaped)."""
    from lane.secrets import scrub, scrub_data
    from lane.store.values import storable

    text = json.dumps(storable(scrub_data(data)), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    sys.stdout.write(scrub(text) + "\n")


