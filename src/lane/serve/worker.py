"""The server's worker: executes the runs started through it, and resumes a run once what it waits for is decided.

Runs execute as tasks on the server's event loop. The journal's claim stays the
arbiter: a run another process executes (a `lane resume` at a terminal) is left
to it (RunBusy), and is never executed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from lane.errors import LaneError, RunBusy
from lane.project import Project, Run


class Worker:
    def __init__(self, project: Project, on_change: Any = None, on_event: Any = None) -> None:
        self.project = project
        self.tasks: set[asyncio.Task[Any]] = set()
        self.on_change = on_change  # called with (run_id, status) when a run this worker executes ends or pauses
        self.on_event = on_event  # given a run's id, what to call with each of its events as it is recorded

    def execute(self, run_id: str, work: Coroutine[Any, Any, Run]) -> asyncio.Task[Any]:
        """Execute a started run in the background; the task, to await when a caller waits for it."""
        return self._spawn(run_id, work)

    def resume_if_decided(self, run_id: str) -> asyncio.Task[Any] | None:
        """Resume a paused run in the background once nothing is left for a person to decide; the task, if it resumed."""
        record = self.project.store.run(run_id)
        root = self.project._root(record)
        if root.status == "paused" and not self.project.pending(root.run_id):
            on_event = self.on_event(root.run_id) if self.on_event is not None else None
            return self._spawn(root.run_id, self.project.resume_async(root.run_id, on_event=on_event))
        return None

    def _spawn(self, run_id: str, work: Coroutine[Any, Any, Run]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(self._run(run_id, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self, run_id: str, work: Coroutine[Any, Any, Run]) -> None:
        try:
            run = await work
        except RunBusy:  # another process executes it: that one carries on
            return
        except LaneError:
            return  # finished meanwhile, or changed: the run's own record says why
        if self.on_change is not None:
            self.on_change(run.run_id, run.status)

    async def stop(self) -> None:
        """Cancel what is executing: those runs stay `running` and resumable (the claim is released)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
