"""Kill dates of runbook versions: the date a version must be gone by, and the criterion for retiring it.

A version's kill date is set in its own runbook file (`kill_date:`, `sunset:`), or when the version that replaces
it is promoted (`lane promote RUNBOOK --kill-date DATE --sunset TEXT`, kept in the release journal; the later one
counts). `lane killdates --check` fails on a version past its kill date that still receives runs (new runs can be
routed to it, or runs started on it after the date) or has runs waiting (not ended). Retiring a version never
deletes its kept snapshot: its past runs can still be shown, audited and resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from lane.store.records import FINISHED

if TYPE_CHECKING:
    from lane.project import Project


@dataclass(frozen=True)
class VersionKill:
    runbook: str
    version: int
    kill_date: date
    sunset: str | None
    where: str  # where the date was set: the runbook's file, or the release journal
    days_left: int
    receives: str | None  # why new runs can still go to it
    late_runs: int  # runs started on it after its kill date
    waiting: int  # its runs that have not ended

    @property
    def overdue(self) -> bool:
        return self.days_left < 0

    @property
    def failing(self) -> bool:
        return self.overdue and bool(self.receives or self.late_runs or self.waiting)

    def to_json(self) -> dict[str, Any]:
        return {"runbook": self.runbook, "version": self.version, "kill_date": self.kill_date.isoformat(), "sunset": self.sunset,
                "where": self.where, "days_left": self.days_left, "receives": self.receives, "late_runs": self.late_runs,
                "waiting": self.waiting, "failing": self.failing}


def version_kill_dates(project: Project, today: date) -> list[VersionKill]:
    """Every runbook version with a kill date, with what still keeps it alive."""
    from lane.feedback.releases import fold

    found = []
    store = project.store
    for name, book in sorted(project.spec.runbooks.items()):
        state = fold(store.release_log(name))
        dates: dict[int, tuple[date, str | None, str]] = {}
        for digest, number, _, _ in store.snapshots(name):
            kept = _kept_book(project, digest, name)
            if kept is not None and kept.file.kill_date is not None:
                dates[number] = (kept.file.kill_date, kept.file.sunset, kept.source.path)
        if book.file.kill_date is not None:
            dates[book.file.version] = (book.file.kill_date, book.file.sunset, book.source.path)
        for number, set_by in state.kill_dates.items():  # set at a promotion: later than the file
            dates[number] = (date.fromisoformat(set_by["kill_date"]), set_by.get("sunset"),
                             f"lane promote {name}" + (f" by {set_by['by']}" if set_by.get("by") else ""))
        if not dates:
            continue
        runs = [r for r in store.runs_of(name) if r.parent_id is None]
        for number, (kill_date, sunset, where) in sorted(dates.items()):
            mine = [r for r in runs if r.version == number]
            late = sum(date.fromisoformat(r.started_at[:10]) > kill_date for r in mine)
            waiting = sum(r.status not in FINISHED for r in mine)
            found.append(VersionKill(name, number, kill_date, sunset, where, (kill_date - today).days,
                                     _receives(state, book, number), late, waiting))
    return found


def _kept_book(project: Project, digest: str, name: str) -> Any:
    from lane.errors import UsageError

    try:
        return project._kept_spec(digest, f"runbook {name}").runbooks.get(name)
    except UsageError:
        return None


def _receives(state: Any, book: Any, number: int) -> str | None:
    if number in state.rolled_back:
        return None
    if state.candidate is not None and state.candidate.version.number == number:
        return f"it is released to {state.candidate.share:.0%} of new runs"
    if state.stable is not None and state.stable.number == number:
        return "it is the stable version: new runs go to it" + (
            f" (all but the {state.candidate.share:.0%} released to v{state.candidate.version.number})" if state.candidate else "")
    if number == book.file.version and not state.known(number) and (state.stable is None or book.file.release is None):
        return f"it is the version in {book.source.path}: new runs go to it"
    return None
