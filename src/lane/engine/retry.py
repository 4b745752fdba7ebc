"""Retrying a failed or rejected run: which steps run again, and which of their calls may already have taken effect.

A retry is a new attempt of the same run, journaled as `run_retried`: the steps
from where the run ended (or an earlier one) run afresh. A call of a tool that
is not idempotent whose effect is not known (it was interrupted, cut off by its
timeout, or given up by a person after a crash) is not made again blindly: the
retry carries it over, and a person says whether it took effect, as on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lane.engine.journal import Journal, among
from lane.errors import UsageError
from lane.store.records import Event, RunRecord

RETRYABLE = ("failed", "rejected")


@dataclass(frozen=True)
class RetryPlan:
    from_step: str
    steps: list[str]
    attempt: int
    in_doubt: list[dict[str, Any]]  # {"step", "call_id", "tool"}: calls whose effect is not known
    keep: list[str]  # branches and items inside the steps run again that finished: not run again

    def to_event(self, previous_status: str) -> dict[str, Any]:
        return {"attempt": self.attempt, "from_step": self.from_step, "steps": self.steps, "keep": self.keep,
                "in_doubt": self.in_doubt, "previous_status": previous_status}


def check_retryable(run: RunRecord) -> None:
    """Refuses a run that is not failed or rejected (read under the store's lock when it claims the run)."""
    if run.status not in RETRYABLE:
        how = "`lane resume` continues it" if run.status in ("paused", "stopped", "running") else "it needs no retry"
        raise UsageError(f"run {run.run_id} is {run.status}; lane retry runs a failed or rejected run again ({how})")


def plan(run: RunRecord, ids: list[str], events: list[Event], idempotent: Callable[[str], bool], from_step: str | None) -> RetryPlan:
    """What a retry of `run` does, given its runbook's step ids; raises UsageError when it cannot be retried as asked."""
    check_retryable(run)
    journal = Journal(_NoStore(), run.run_id, events)
    unknown = sorted({_top(e.step_id) for e in events if e.type == "step_started" and e.step_id and _top(e.step_id) not in ids})
    if unknown:
        raise UsageError(f"run {run.run_id}'s journal has steps its runbook no longer has ({', '.join(unknown)}): the runbook "
                         f"changed under version {run.version}; run it anew, or restore the runbook")
    ended = _ended(run, ids, journal)
    start = ended if from_step is None else _start(run.run_id, ids, from_step, ended)
    again = ids[start:]
    attempt = 2 + sum(1 for e in events if e.type == "run_retried")
    keep = _finished_parts(journal, events, set(again))
    return RetryPlan(ids[start], again, attempt, _in_doubt(journal, events, set(again), set(keep), idempotent), keep)


def _top(step_id: str) -> str:
    """The runbook's own step a step is in: `each` for `each[2].inc`."""
    cut = min((i for i in (step_id.find("."), step_id.find("[")) if i > 0), default=len(step_id))
    return step_id[:cut]


def _finished_parts(journal: Journal, events: list[Event], again: set[str]) -> list[str]:
    """The branches and items of the groups run again that finished: they are kept, not run again
    (their effects happened once; only what failed or did not finish runs again)."""
    parts = {e.step_id for e in events if e.type == "step_started" and e.data.get("kind") in ("item", "branch") and e.step_id}
    return sorted(p for p in parts if among(p, again) and journal.find("step_finished", p) is not None)


def _ended(run: RunRecord, ids: list[str], journal: Journal) -> int:
    """The index of the step the run ended at: the one that failed or was rejected, else the first not finished."""
    for event in reversed(journal.events):
        if event.type in ("step_failed", "step_rejected") and event.step_id in ids:
            return ids.index(event.step_id)
        if event.type == "run_retried":
            break
    for index, step_id in enumerate(ids):
        if journal.find("step_finished", step_id) is None and journal.find("step_skipped", step_id) is None:
            return index
    raise UsageError(f"every step of run {run.run_id}'s runbook finished in its journal, so nothing is left to retry "
                     f"(was the runbook changed under version {run.version}?); run it anew")


def _start(run_id: str, ids: list[str], step: str, ended: int) -> int:
    """Where `--from STEP` starts: a step of the runbook, no later than the one where the run ended."""
    if step not in ids:
        raise UsageError(f"run {run_id}'s runbook has no step {step!r}; steps: {', '.join(ids)}")
    if ids.index(step) > ended:
        raise UsageError(f"run {run_id} ended at step {ids[ended]}; --from names that step or an earlier one, not {step}")
    return ids.index(step)


def _in_doubt(journal: Journal, events: list[Event], again: set[str], keep: set[str], idempotent: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Calls of the steps run again (those inside their groups too, but not in a part kept) that started,
    are not idempotent, and have no known outcome."""
    requested = {(e.step_id, e.ref): e for e in events
                 if e.type == "tool_call_requested" and among(e.step_id, again) and not among(e.step_id, keep) and e.ref}
    found = []
    for (step_id, ref), event in requested.items():
        assert step_id is not None and ref is not None
        tool = str(event.data.get("tool"))
        starts = journal.find_all("tool_started", step_id, ref)
        if not starts or idempotent(tool):
            continue
        finished = journal.find("tool_finished", step_id, ref)
        if finished is None or finished.seq < starts[-1].seq or finished.data.get("effect_unknown"):
            found.append({"step": step_id, "call_id": ref, "tool": tool})
    return found


class _NoStore:
    """The journal of a plan only reads."""

    def append(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a retry plan records nothing")
