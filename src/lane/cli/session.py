"""`lane session start` and `lane session end`: where a repository stands, and the log entry that ends a session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lane.cli.render import out
from lane.coding.session import KNOWN_ISSUES_FILES, ROADMAP_FILES, Excerpt, GitState, LoggedEntry, SessionState, gather
from lane.coding.session import end as end_session

app = typer.Typer(
    name="session",
    help=(
        "Session memory for a repository (no lane.yaml needed): `lane session start` shows where things "
        "stand; `lane session end --note TEXT --resume STEP` appends an entry to log.md."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Folder = Annotated[Path, typer.Option("--project", "-p", help="The repository folder (needs no lane.yaml).", show_default="current folder")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command()
def start(
    project: Folder = Path("."),
    entries: Annotated[int, typer.Option("--entries", "-n", min=0, help="How many of log.md's last entries to show.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Print where things stand: branch, uncommitted changes, stashes, branches not merged into the default
    branch, the last commit, log.md's last entries and its latest RESUME HERE block, the roadmap and known issues."""
    from lane.cli.app import emit_json
    from lane.cli.commands import errors

    with errors():
        state = gather(project, entries=entries)
        if as_json:
            emit_json(state.to_json())
        else:
            _state(state)


@app.command()
def end(
    note: Annotated[str, typer.Option("--note", help="What this session did (required, not empty).")],
    resume: Annotated[list[str] | None, typer.Option("--resume", help="A next step for the RESUME HERE block; repeat for several, in order.")] = None,
    project: Folder = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Append a dated entry to log.md at the repository's top (created if missing): the note, HEAD, the
    count of uncommitted files and, with --resume, a RESUME HERE block. The newest RESUME HERE is the one that counts."""
    from lane.cli.app import emit_json
    from lane.cli.commands import errors

    with errors():
        logged = end_session(project, note, resume or [])
        if as_json:
            emit_json({"path": str(logged.path), "heading": logged.heading, "text": logged.text, "steps": list(logged.steps), "created": logged.created})
        else:
            _logged(logged)


def _state(state: SessionState) -> None:
    out.print(f"[bold]{_e(state.root)}[/]")
    if state.git is None:
        out.print(f"[yellow]{_e(state.git_note)}[/]")
    else:
        _git(state.git)
    task = state.active_task
    if task is not None:
        if "error" in task:
            out.print(f"active task: [yellow]{_e(task['error'])}[/]")
        else:
            based = f", based on {_e(str(task['base'])[:12])}" if task.get("base") else ""
            out.print(f"active task: [bold]{_e(task['feature'])}/{_e(task['task'])}[/]{based} (lane task verify "
                      f"{_e(task['feature'])} {_e(task['task'])}; lane task stop ends it)")
    _log(state)
    _excerpt("roadmap", state.roadmap, ROADMAP_FILES)
    _excerpt("known issues", state.known_issues, KNOWN_ISSUES_FILES)


def _git(git: GitState) -> None:
    out.print(f"branch: [bold]{_e(git.branch)}[/]" if git.branch else f"branch: [yellow]detached HEAD[/] at {_e(git.head)}")
    commit = git.last_commit
    out.print(f"last commit: {commit.sha} {_e(commit.subject)} ({_e(commit.age)})" if commit else "last commit: none yet")
    if git.changes:
        kinds = [f"{n} {kind}" for n, kind in ((git.staged, "staged"), (git.unstaged, "unstaged"), (git.untracked, "untracked"), (git.conflicted, "conflicted")) if n]
        out.print(f"uncommitted: [yellow]{git.changes} file{_s(git.changes)}[/] ({', '.join(kinds)})")
        for change in git.paths:
            out.print(f"  {_e(change.status)} {_e(change.path)}")
        if git.changes > len(git.paths):
            out.print(f"  … and {git.changes - len(git.paths)} more")
    else:
        out.print("uncommitted: none, the working tree is clean")
    out.print(f"stashes: {len(git.stashes) or 'none'}")
    for stash in git.stashes:
        out.print(f"  {_e(stash)}")
    if git.base is None:
        out.print(f"unmerged branches: {_e(git.base_source)}")
    else:
        listed = _e(", ".join(git.unmerged)) if git.unmerged else "none"
        out.print(f"not merged into {_e(git.base)} ({_e(git.base_source)}): {listed}")


def _log(state: SessionState) -> None:
    if state.log is None:
        out.print("\n[bold]log.md[/]: none yet; `lane session end --note TEXT` starts it")
        return
    shown = len(state.entries)
    out.print(f"\n[bold]log.md[/]: last {shown} of {state.total_entries} entr{'y' if state.total_entries == 1 else 'ies'}")
    for entry in state.entries:
        out.print(f"[bold]## {_e(entry.heading)}[/]")
        _indented(entry.body)
    block = state.resume
    if block is None:
        out.print("\n[bold]RESUME HERE[/]: none in log.md")
        return
    where = f"in entry “{_e(block.entry)}”, " if block.entry else ""
    history = f"; {block.earlier} earlier one{_s(block.earlier)} in the log {'is' if block.earlier == 1 else 'are'} history" if block.earlier else ""
    out.print(f"\n[bold green]RESUME HERE[/] (the latest, {where}log.md line {block.line}{history})")
    _indented(block.text)


def _excerpt(label: str, excerpt: Excerpt | None, looked: tuple[str, ...]) -> None:
    if excerpt is None:
        out.print(f"\n[bold]{label}[/]: none (looked for {', '.join(looked)})")
        return
    part = f"first {excerpt.shown_lines} of {excerpt.total_lines} lines" if excerpt.shown_lines < excerpt.total_lines else "in full"
    out.print(f"\n[bold]{label}[/]: {_e(excerpt.path)} ({part})")
    _indented(excerpt.text)


def _logged(logged: LoggedEntry) -> None:
    made = " (created it)" if logged.created else ""
    out.print(f"appended to {_e(logged.path)}{made}: {_e(logged.heading)}")
    if logged.steps:
        out.print(f"with a RESUME HERE block of {len(logged.steps)} step{_s(len(logged.steps))}; it is now the one `lane session start` shows")


def _indented(text: str) -> None:
    for line in text.splitlines():
        out.print(f"  {_e(line)}")


def _e(value: object) -> str:
    return escape(str(value))


def _s(count: int) -> str:
    return "" if count == 1 else "s"
