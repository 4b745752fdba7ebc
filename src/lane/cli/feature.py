"""`lane feature plan`: write the feature runbook for one feature's lock and tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="feature",
    help=(
        "The feature runbook: the lock checked, a person signs it, then for each task a coding agent works it, "
        "`lane task verify` checks it, a person reviews it and `lane task commit` commits it. "
        "`lane feature plan FEATURE` writes it; `lane run feature-FEATURE` runs it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def plan(
    feature: Annotated[str, typer.Argument(metavar="FEATURE", help="The feature: features/FEATURE/LOCK.md and features/FEATURE/tasks/*.md.")],
    coder: Annotated[str | None, typer.Option(
        "--coder", metavar="NAME",
        help="Who works each task: an agent in agents/ (lane's editing agent, writes held to the task's FILES) or an "
             "external CLI configured as a toolset: claude, codex or aider.",
        show_default="an external CLI that lane.yaml configures and PATH has, else agents/coder.md")] = None,
    reviewer: Annotated[str | None, typer.Option(
        "--reviewer", metavar="ROLE", help="The human role that signs the lock and reviews each task.",
        show_default="the only human role in lane.yaml")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write the runbook again from the tasks (its version goes up by one).")] = False,
    project: Annotated[Path, typer.Option("--project", "-p", help="The lane project: the repository's top folder.",
                                          show_default="current folder")] = Path("."),
) -> None:
    """Write runbooks/feature-FEATURE.yaml: one block of steps per task, in the order of the task files' names.

    Commit what lane wrote (lane.yaml, agents/, scripts/, runbooks/), the lock and every task before you run it:
    `lane task verify` counts every uncommitted file as a change; the command it prints adds them all."""
    from lane.cli.commands import errors
    from lane.coding.feature import plan_feature, runbook_name

    with errors():
        done = plan_feature(project, feature, coder=coder, reviewer=reviewer, force=force)
    shown = done.path.relative_to(project.resolve()).as_posix()
    at = "" if str(project) in (".", "") else f" --project {project}"
    typer.echo(f"wrote {shown} (version {done.version}): {len(done.tasks)} task{'s' if len(done.tasks) != 1 else ''}: {', '.join(done.tasks)}")
    typer.echo(f"coder: {done.coder} ({done.why})")
    typer.echo(f"reviewer: {done.reviewer} (signs the lock, reviews each task)")
    root = project.resolve()
    written = [p for p in ("lane.yaml", "agents", "scripts", "tools", "runbooks", f"features/{feature}") if (root / p).exists()]
    typer.echo("next: commit what lane wrote, the lock and every task (verify counts an uncommitted file as a change), then run it:")
    typer.echo(f"  git add {' '.join(written)} && git commit -m 'Plan feature {feature}'")
    typer.echo(f"  lane run {runbook_name(feature)}{at}")
