"""`lane task`: write a task runbook, and verify the working tree against it.

Exit codes: 0 every check holds, 1 a check failed, 2 invalid usage (no such
task, not a git repository, a bad --base).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="task",
    help="Task runbooks (FILES, TYPES, SKELETON, PROHIBITED, VALIDATE): write one, hold a coding tool to its FILES, verify the work against git, commit what passed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="The repository folder.", show_default="current folder")]
Feature = Annotated[str, typer.Argument(metavar="FEATURE", help="The feature's name (a folder under features/).")]
TaskName = Annotated[str, typer.Argument(metavar="TASK", help="The task's name (features/FEATURE/tasks/TASK.md).")]
SHOWN_VIOLATIONS = 20  # per check; the evidence file keeps them all
SHOWN_TAIL = 10  # lines of a failing command's output


@app.command()
def new(feature: Feature, task: TaskName, project: ProjectDir = Path(".")) -> None:
    """Write features/FEATURE/tasks/TASK.md with the five blocks to fill in."""
    from lane.cli.commands import errors
    from lane.coding.tasks import new_task

    with errors():
        root = _root(project)
        path = new_task(root, feature, task)
        flag = "" if str(project) in (".", "") else f" --project {project}"
        typer.echo(f"Wrote {_shown(path, root)}: replace each <placeholder> in its five blocks, then run\n"
                   f"  lane task verify {feature} {task}{flag}")


@app.command()
def verify(
    feature: Feature,
    task: TaskName,
    base: Annotated[str | None, typer.Option("--base", metavar="REV", help="Compare the working tree with this commit.",
                                             show_default="the commit `lane task start` recorded, else HEAD")] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds each VALIDATE command may take, unless its block sets timeout=N.")] = 600.0,
    project: ProjectDir = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the evidence as JSON instead of text.")] = False,
) -> None:
    """Check every changed, added, deleted, renamed and untracked path is in FILES, the PROHIBITED rules hold
    and every VALIDATE command exits 0; record the evidence in features/FEATURE/tasks/TASK.evidence.json.

    What is checked is what a commit would hold: the base's tree plus the changed paths. VALIDATE runs in a
    clean checkout of it (a temporary git worktree), so files git ignores or only this machine has cannot
    change the result; the working tree's root is in $LANE_REPO.

    Exit 0 when all hold, 1 when any fails, 2 for invalid usage."""
    from lane.cli.commands import errors
    from lane.coding.verify import verify as run_verify

    with errors():
        announce = None if as_json or not sys.stderr.isatty() else _announce
        result = run_verify(project, feature, task, base=base, timeout=timeout, on_command=announce)
        if as_json:
            from lane.cli.app import emit_json

            emit_json(result.to_json())
        else:
            typer.echo(report(result.to_json()))
        raise SystemExit(0 if result.passed else 1)


def report(evidence: dict[str, Any]) -> str:
    """The verification as plain text: each violation with its path and why, then the VALIDATE results."""
    lines = [f"task {evidence['task']} against {evidence['base']} ({evidence['base_sha'][:12]}): "
             f"{len(evidence['changes'])} changed path{'s' if len(evidence['changes']) != 1 else ''}"]
    for change in evidence["changes"][:SHOWN_VIOLATIONS]:  # what a reviewer reads the diff of
        moved = f"{change['old_path']} -> " if change.get("old_path") else ""
        lines.append(f"  {change['status']:<10} {moved}{change['path']}")
    if len(evidence["changes"]) > SHOWN_VIOLATIONS:
        lines.append(f"  … and {len(evidence['changes']) - SHOWN_VIOLATIONS} more in {evidence['evidence_file']}")
    for check in evidence["checks"]:
        found = check["violations"]
        lines.append(f"{'ok  ' if check['passed'] else 'FAIL'} {check['name']}: {_summary(check['name'], len(found))}")
        lines += [f"       {v['path']}  {v['reason']}" for v in found[:SHOWN_VIOLATIONS]]
        if len(found) > SHOWN_VIOLATIONS:
            lines.append(f"       … and {len(found) - SHOWN_VIOLATIONS} more in {evidence['evidence_file']}")
    if evidence.get("refused"):
        lines.append(f"REFUSED by the Claude Code hook while the task was active: {len(evidence['refused'])}")
        lines += [f"  {r['tool']:<10} {r['path'] + '  ' if r.get('path') else ''}{r['reason']}" for r in evidence["refused"][:SHOWN_VIOLATIONS]]
        if len(evidence["refused"]) > SHOWN_VIOLATIONS:
            lines.append(f"  … and {len(evidence['refused']) - SHOWN_VIOLATIONS} more in {evidence['evidence_file']}")
    if evidence["validate"]:
        lines.append(f"VALIDATE, in {evidence['validated_in']}" if evidence.get("validated_in") else "VALIDATE")
    for run in evidence["validate"]:
        code = "timeout" if run["timed_out"] else f"exit {run['exit_code']}"
        lines.append(f"  {'ok  ' if run['exit_code'] == 0 else 'FAIL'} {code:<8} {run['seconds']:>7.1f}s  {run['command']}")
        if run["exit_code"] != 0:
            lines += [f"       | {text}" for text in run["output_tail"].splitlines()[-SHOWN_TAIL:]]
    failed = [_first(c) for c in evidence["checks"] if not c["passed"]]
    lines.append(f"evidence: {evidence['evidence_file']}")
    if evidence.get("changed") is False:
        lines.append(f"NO CHANGE: nothing changed since {evidence['base']} ({evidence['base_sha'][:12]}); there is no work to verify")
    else:
        lines.append(f"FAILED: {'; '.join(failed)}" if failed else "PASSED: every check holds")
    return "\n".join(lines)


def _first(check: dict[str, Any]) -> str:
    """A failed check on one line, naming its first violation: the last line of the report says what went wrong."""
    found = check["violations"]
    if not found:
        return str(check["name"])
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{check['name']} ({found[0]['path']}: {found[0]['reason']}{more})"


def _summary(name: str, count: int) -> str:
    if not count:
        return {"task": "the task is as committed", "files": "every changed path is in FILES", "dependencies": "no new or changed dependency",
                "forbid": "no added line matches a forbid rule", "validate": "every command exited 0"}.get(name, "holds")
    return f"{count} violation{'s' if count != 1 else ''}"


def _announce(command: Any) -> None:
    sys.stderr.write(f"running: {command.run}\n")
    sys.stderr.flush()


def _root(project: Path) -> Path:
    """The repository's top folder when `project` is in one, else `project` itself."""
    from lane.coding.repo import repo_root
    from lane.errors import UsageError

    try:
        return repo_root(project)
    except UsageError:
        return project


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@app.command()
def start(feature: Feature, task: TaskName, project: ProjectDir = Path(".")) -> None:
    """Make TASK the active task: Claude Code (a PreToolUse hook in .claude/settings.local.json, on file edits and Bash) and git (a pre-commit
    hook) then refuse edits and commits outside its FILES, until `lane task stop`."""
    from lane.cli.commands import errors
    from lane.coding.hooks import start as start_task

    with errors():
        for line in start_task(_root(project), feature, task):
            typer.echo(line)


@app.command()
def stop(project: ProjectDir = Path(".")) -> None:
    """End the active task: remove the hooks `lane task start` installed (yours stay as they were)."""
    from lane.cli.commands import errors
    from lane.coding.hooks import stop as stop_task

    with errors():
        done = stop_task(_root(project))
        typer.echo("\n".join(done) if done else "no active task and no lane hooks: nothing to do")


@app.command()
def commit(
    feature: Feature,
    task: TaskName,
    message: Annotated[str | None, typer.Option("--message", "-m", help="The commit message.", show_default="names the task and its evidence")] = None,
    reverify: Annotated[bool, typer.Option("--reverify", help="When a file changed after verify passed (an edit made during review), "
                                           "verify again first: commit if that passes, exit 1 with the report if not.")] = False,
    project: ProjectDir = Path("."),
) -> None:
    """Commit exactly what `lane task verify` passed, with its evidence file, after a person reviewed it.

    Refused (exit 2) when the last verification failed, HEAD moved, or any changed file differs from what was
    verified: verify again first (or give --reverify). The commit holds HEAD plus exactly those paths, whatever
    else is staged; git's hooks do not run (put their checks in VALIDATE). Then the active task ends (its hooks
    are removed)."""
    from lane.cli.commands import errors
    from lane.coding.commit import ChangedSinceVerify, commit_task
    from lane.coding.verify import verify as run_verify

    with errors():
        try:
            done = commit_task(project, feature, task, message)
        except ChangedSinceVerify as changed:
            if not reverify:
                raise
            typer.echo(f"{str(changed).split(': run `', 1)[0]}: verifying again")
            result = run_verify(project, feature, task)
            typer.echo(report(result.to_json()))
            if not result.passed:
                raise SystemExit(1) from None
            done = commit_task(project, feature, task, message)
        typer.echo(f"committed {done.sha[:12]}: {feature}/{task}, {len(done.paths)} path{'s' if len(done.paths) != 1 else ''}")
        for path in done.paths:
            typer.echo(f"  {path}")
