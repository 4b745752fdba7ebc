"""The workflow of one run: take a job, run it as one activity (a stretch), keep its outcome, wait for the next.

Jobs arrive by the `resume` update: `start`, `resume` (with a raised budget or not) and `retry`. The
update returns the outcome of the stretch its job ran: the run's status and the last seq of its
journal (never its reason: that stays in lane's store). A caller that comes while a stretch runs (a
second `lane resume`) waits for that stretch instead, unless it had already seen the run rest at the
end of that very stretch: then its resume runs next. The workflow ends with the run: completed,
failed or rejected.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

WORKFLOW = "lane-run"
STRETCH = "lane-stretch"
UPDATE = "resume"
RESTING = ("paused", "stopped")  # the run waits for a person or a raised budget: the workflow waits with it
JOINABLE = ("resume",)  # a job that may wait for a stretch already running instead of starting one


@workflow.defn(name=WORKFLOW)
class RunWorkflow:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []
        self.running = False

    @workflow.run
    async def run(self) -> dict[str, Any]:
        while True:
            await workflow.wait_condition(lambda: bool(self.jobs))
            job = self.jobs.pop(0)
            self.running = True
            outcome = await self._stretch(job)
            self.running = False
            self.outcomes.append(outcome)
            if outcome["status"] not in RESTING:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return outcome

    async def _stretch(self, job: dict[str, Any]) -> dict[str, Any]:
        beat = float(job.get("heartbeat_seconds", 10))
        try:
            return dict(await workflow.execute_activity(
                STRETCH, job,
                start_to_close_timeout=timedelta(days=1),  # a stretch's own budgets (wall_seconds) end it well before
                heartbeat_timeout=timedelta(seconds=beat),  # a dead worker's stretch goes to another worker after this
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                         non_retryable_error_types=["UsageError"]),
            ))
        except ActivityError as exc:  # lane refused the job (the run cannot go on as asked): the caller is told why
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            return {"status": "error", "reason": reason}

    @workflow.update(name=UPDATE)
    async def resume(self, job: dict[str, Any]) -> dict[str, Any]:
        while True:
            mine = not (self.running or self.jobs)  # else a stretch runs (or is about to): this caller waits for it
            if mine:
                self.jobs.append(job)
            outcome = await self._outcome(len(self.outcomes))
            if mine or not self._saw_it_rest(job, outcome):
                return outcome
            # The caller saw the run rest (and decided) before the workflow heard the stretch end: its resume is a job.

    async def _outcome(self, index: int) -> dict[str, Any]:
        """The outcome of the stretch numbered `index`, once it ends."""
        await workflow.wait_condition(lambda: len(self.outcomes) > index)
        return self.outcomes[index]

    @staticmethod
    def _saw_it_rest(job: dict[str, Any], outcome: dict[str, Any]) -> bool:
        """Whether a `resume` was sent after the stretch it joined had already left the run paused or stopped."""
        return (job.get("kind") == "resume" and outcome["status"] in RESTING
                and int(job.get("seen", 0)) >= int(outcome.get("seq", 1 << 62)))

    @resume.validator
    def _can_take(self, job: dict[str, Any]) -> None:
        if (self.running or self.jobs) and (job.get("kind") not in JOINABLE or job.get("budget")):
            raise ApplicationError(f"run {job.get('run_id')} is executing on a worker now; "
                                   f"{job.get('kind')} it once it pauses, stops or ends", non_retryable=True)
