"""`lane killdates`: the flags and shims in killdates.yaml, their days left, and the code that names them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lane.cli import render
from lane.cli.inputs import parse_day
from lane.coding.killdates import REGISTRY

if TYPE_CHECKING:
    from lane.coding.killdates import EntryStatus, KillDateReport, Marker
    from lane.feedback.sunset import VersionKill


app = typer.Typer(
    name="killdates",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def killdates(
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a kill date has passed or a marker names an unregistered entry, "
                                        "or a runbook version past its kill date still receives runs or has runs waiting.")] = False,
    project: Annotated[Path, typer.Option("--project", "-p", help="The repository folder (need not hold lane.yaml).", show_default="current folder")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    today: Annotated[str | None, typer.Option("--today", hidden=True, help="Count days from YYYY-MM-DD instead of today.")] = None,
) -> None:
    """List every flag and shim in killdates.yaml with its kill date, days left and the code markers
    (`lane: kill-date NAME` after a comment leader) that name it.

    With --check: exit 1 when a date has passed or a marker names an entry that is not registered;
    an entry no code mentions any more is a warning (ready to delete). A malformed killdates.yaml exits 2.

    In a lane project (a folder with lane.yaml), runbook versions are checked too: a version's kill date is
    set by `kill_date:` in its runbook, or by `lane promote RUNBOOK --kill-date DATE` for the version it
    replaces. --check fails on a version past its kill date that still receives runs or has runs waiting.
    """
    from lane.cli.app import emit_json
    from lane.cli.commands import errors

    with errors(as_json):
        from lane.coding.killdates import check_killdates

        report = check_killdates(project, today=parse_day(today))
        if (project / "lane.yaml").is_file():  # a lane project: its runbook versions' kill dates too
            from dataclasses import replace
            from datetime import date

            from lane.cli.commands import _load
            from lane.feedback.sunset import version_kill_dates

            with _load(project) as loaded:
                report = replace(report, versions=tuple(version_kill_dates(loaded, parse_day(today) or date.today())))
    if as_json:
        emit_json(report.to_json())
    elif check:
        _render_check(report)
    else:
        _render_list(report)
    raise typer.Exit(1 if check and not report.ok else 0)


def _render_list(report: KillDateReport) -> None:
    for version in report.versions:
        render.out.print(escape(f"{version.runbook} v{version.version}: kill date {version.kill_date.isoformat()}, ")
                         + _days(version.days_left) + escape(f" days left ({version.where})"
                                                            + (f"; sunset: {version.sunset}" if version.sunset else "")
                                                            + (f"; {version.receives}" if version.receives else "")
                                                            + (f"; {version.waiting} runs waiting" if version.waiting else "")))
    if not report.entries and not report.unregistered:
        if report.versions:
            return
        where = "is empty" if report.registry else "does not exist"
        render.out.print(f"no kill dates: {REGISTRY} {where}, and no code has a `lane: kill-date NAME` marker")
        return
    if report.entries:
        table = Table("kind", "name", "kill date", "days left", "markers", box=None, pad_edge=False)
        for status in report.entries:
            e = status.entry
            table.add_row(escape(e.kind), escape(e.name), e.kill_date.isoformat(), _days(status.days_left), str(len(status.markers)))
        render.out.print(table)
    for marker in report.unregistered:
        render.out.print(_unregistered(marker))


def _render_check(report: KillDateReport) -> None:
    for status in report.overdue:
        render.out.print(_overdue(status))
    for marker in report.unregistered:
        render.out.print(_unregistered(marker))
    for status in report.unused:
        e = status.entry
        render.out.print(
            f"{REGISTRY}:{e.line}: [yellow]warning[/]: no code mentions {_kind(e.kind)} '{escape(e.name)}' any more: "
            f"ready to delete from {REGISTRY}"
        )
    for version in report.failing_versions:
        render.out.print(_version_overdue(version))
    failed = len(report.overdue) + len(report.unregistered) + len(report.failing_versions)
    if failed:
        render.err.print(f"[red]{failed} problem{'s' if failed != 1 else ''}[/] with kill dates")
    else:
        count = len(report.entries) + len(report.versions)
        retired = " (a version past its date receives no runs and has none waiting)" if any(v.overdue for v in report.versions) else ""
        render.out.print(f"[green]ok[/]: {count} kill date{'s' if count != 1 else ''}, none passed{retired}; every marker is registered")


def _overdue(status: EntryStatus) -> str:
    e = status.entry
    where = ", ".join(f"{m.path}:{m.line}" for m in status.markers) or "no markers left"
    return escape(
        f"{REGISTRY}:{e.line}: the kill date of {_kind(e.kind)} '{e.name}' has passed: {e.kill_date.isoformat()}, "
        f"{-status.days_left} day{'s' if status.days_left != -1 else ''} overdue; sunset criterion: {e.sunset!r}; "
        f"remove it ({where}) and its entry, or agree a later date"
    )


def _version_overdue(version: VersionKill) -> str:
    alive = [why for why in (version.receives,
                             f"{version.late_runs} run{'s' if version.late_runs != 1 else ''} started on it after that date" if version.late_runs else None,
                             f"{version.waiting} of its runs wait{'s' if version.waiting == 1 else ''} (not ended)" if version.waiting else None) if why]
    return escape(
        f"{version.where}: the kill date of {version.runbook} v{version.version} has passed: {version.kill_date.isoformat()}, "
        f"{-version.days_left} day{'s' if version.days_left != -1 else ''} overdue, and {'; '.join(alive)}"
        + (f"; sunset criterion: {version.sunset!r}" if version.sunset else "")
        + f"; promote a newer version (`lane promote {version.runbook}`), finish or reject its waiting runs, or agree a later date"
    )


def _unregistered(marker: Marker) -> str:
    if not marker.name:
        return escape(f"{marker.path}:{marker.line}: a kill-date marker names no entry: write `lane: kill-date NAME`")
    return escape(
        f"{marker.path}:{marker.line}: the marker names '{marker.name}', which is not in {REGISTRY}: "
        f"register it under its kind with sunset and kill_date, or remove the marker"
    )


def _days(days: int) -> str:
    if days < 0:
        return f"[red]{days} (overdue)[/]"
    return f"[yellow]{days}[/]" if days <= 30 else str(days)


def _kind(kind: str) -> str:
    return kind[:-1] if kind.endswith("s") else kind  # "flags" groups flags: one of them is a flag

