"""A fake person for tests: decides pending requests by a policy, then resumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lane.engine.decisions import UNSET

if TYPE_CHECKING:
    from lane.engine.approvals import Pending
    from lane.project import Run


@dataclass(frozen=True)
class Answer:
    approve: bool
    edit: Any = UNSET
    result: Any = UNSET
    reason: str = ""


def approve(edit: Any = UNSET, *, result: Any = UNSET) -> Answer:
    return Answer(True, edit, result)


def reject(reason: str = "rejected in a test") -> Answer:
    return Answer(False, reason=reason)


Policy = Callable[["Pending"], Answer]


@dataclass
class FakeHuman:
    """Decides as `role` (None: the only role allowed) by `policy` (default: approve everything)."""

    role: str | None = None
    policy: Policy = field(default=lambda pending: approve())
    seen: list[Pending] = field(default_factory=list)

    def decide(self, run: Run) -> None:
        """Answer every request the run waits for."""
        for pending in run.pending:
            self.seen.append(pending)
            answer = self.policy(pending)
            if answer.approve:
                run.approve(pending.call_id, as_role=self.role, edit=answer.edit, result=answer.result)
            else:
                run.reject(pending.call_id, as_role=self.role, reason=answer.reason)

    def drive(self, run: Run, *, max_rounds: int = 50) -> Run:
        """Decide and resume until the run no longer waits for a person."""
        for _ in range(max_rounds):
            if run.status != "paused":
                return run
            self.decide(run)
            run = run.resume()
        raise AssertionError(f"run {run.run_id} still paused after {max_rounds} rounds of decisions")
