"""`lane lock`: write, check and sign a feature's pre-build lock (features/FEATURE/LOCK.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from lane.cli import render
from lane.cli.inputs import parse_day
from lane.coding.locks import LockHasHoles, LockReport, check_lock, new_lock, sign_lock

app = typer.Typer(
    name="lock",
    help=(
        "Pre-build locks: before a feature is built, its lock names the canon it follows, its scope (IN, OUT, "
        "one surgical change), invariants, blast radius, interface contract, sunset criterion and kill date. "
        "Start with `lane lock new FEATURE`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Feature = Annotated[str, typer.Argument(help="The feature's name: its lock is features/FEATURE/LOCK.md.")]
ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="The repository folder (need not hold lane.yaml).", show_default="current folder")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Today = Annotated[str | None, typer.Option("--today", hidden=True, help="Check as if today were YYYY-MM-DD.")]


@app.command()
def new(feature: Feature, project: ProjectDir = Path(".")) -> None:
    """Write features/FEATURE/LOCK.md from the template; each [bracketed] hint says what to write."""
    from lane.cli.commands import errors

    with errors():
        path = new_lock(project, feature)
    shown = escape(path.relative_to(project).as_posix())
    render.out.print(f"wrote {shown}: replace every \\[bracketed] hint, then: lane lock check {escape(feature)}{_at(project)}")


@app.command()
def check(feature: Feature, project: ProjectDir = Path("."), as_json: JsonFlag = False, today: Today = None) -> None:
    """Name every blank, TBD or [bracketed] gate with its line, and say whether the sign-off still holds.

    Exit 1 when the lock has holes or was edited after it was signed.
    """
    from lane.cli.app import emit_json
    from lane.cli.commands import errors

    with errors(as_json):
        report = check_lock(project, feature, today=parse_day(today))
    if as_json:
        emit_json(report.to_json())
    else:
        _render_check(report, _at(project))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def sign(
    feature: Feature,
    by: Annotated[str, typer.Option("--by", help="Who signs the lock off.")],
    project: ProjectDir = Path("."),
    commit: Annotated[bool, typer.Option("--commit", help="Then commit the lock and its sign-off (only those two files).")] = False,
    key: Annotated[Path | None, typer.Option("--key", metavar="PATH", help="Your SSH private key, to sign with when lane.yaml "
                                             "names locks.allowed_signers.", show_default="$LANE_SIGNING_KEY")] = None,
    today: Today = None,
) -> None:
    """Record the sign-off: who, when (UTC) and the sha256 of the lock. Any later edit voids it.

    When lane.yaml names `locks: {allowed_signers: FILE}` (git's format), the sign-off is also an SSH signature
    made with --key, and `lane lock check` verifies it: nobody can sign as someone else by editing a file.
    Refuses (exit 1) a lock that still has holes.
    """
    import os

    key = key or (Path(os.environ["LANE_SIGNING_KEY"]) if os.environ.get("LANE_SIGNING_KEY") else None)
    from lane.cli.commands import errors

    with errors():
        try:
            signoff = sign_lock(project, feature, by, today=parse_day(today), key=key)
        except LockHasHoles as exc:
            for hole in exc.report.holes:
                render.out.print(escape(str(hole)))
            render.error(f"{exc}, then: lane lock sign {feature} --by {by}{_at(project, plain=True)}")
            _exit(1)
    render.out.print(
        f"[green]signed[/] the lock of {escape(feature)} as {escape(signoff.signed_by)} at {signoff.signed_at} "
        f"(sha256 {signoff.sha256[:12]}{', with an SSH signature' if signoff.ssh_signature else ''}); any edit to it voids the sign-off"
    )
    if commit:
        from lane.coding.commit import commit_lock

        with errors():
            done = commit_lock(project, feature)
        render.out.print(f"committed {done.sha[:12]}: {escape(', '.join(done.paths))}")


def _render_check(report: LockReport, at: str) -> None:

    feature, who = escape(report.feature), escape(report.signed_by or "")
    for hole in report.holes:
        render.out.print(escape(str(hole)))
    if report.void:
        render.out.print(
            f"{escape(report.path)}: the sign-off by {who} at {report.signed_at} is void: the lock changed after it was "
            f"signed (its sha256 differs); sign it again: lane lock sign {feature} --by NAME{at}"
        )
    if report.verified is False:
        render.out.print(f"{escape(report.path)}: the sign-off by {who} does not count: {escape(report.verification or '')}")
    if report.holes:
        count = len(report.holes)
        render.err.print(f"[red]{count} hole{'s' if count != 1 else ''}[/] in the lock of {feature}; fill them, then: lane lock check {feature}{at}")
    elif report.signed:
        render.out.print(f"[green]ok[/]: the lock of {feature} is complete, signed by {who} at {report.signed_at}"
                         f" ({escape(report.verification or '')})")
    elif not report.void:
        render.out.print(f"[green]ok[/]: the lock of {feature} is complete; not signed yet: lane lock sign {feature} --by NAME{at}")



def _at(project: Path, *, plain: bool = False) -> str:
    if str(project) in (".", ""):
        return ""
    return f" --project {project}" if plain else f" --project {escape(str(project))}"


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)
