"""`lane worker`: a process that executes this project's runs for Temporal.

It polls the project's task queue for workflow tasks (cheap: deciding what comes next) and for
stretches, which it runs with lane's own engine on the project's store, heartbeating while it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from lane.backends.temporal.workflow import STRETCH, RunWorkflow
from lane.errors import RunBusy, StoreUnavailable, UsageError

if TYPE_CHECKING:
    from lane.project import Project

BEAT = 2.0  # seconds between heartbeats at most; a fourth of heartbeat_seconds when that is shorter than 8


class Stretches:
    """The activity: one stretch of a run, on this worker's Project."""

    def __init__(self, project: Project) -> None:
        self.project = project

    @activity.defn(name=STRETCH)
    async def stretch(self, job: dict[str, Any]) -> dict[str, Any]:
        """The run's status and the last seq of its journal when the stretch ended; never its reason, which may hold
        inputs or a command's output (Temporal's history keeps only what lane's store need not protect)."""
        timeout = activity.info().heartbeat_timeout
        beating = asyncio.ensure_future(_beat(min(BEAT, timeout.total_seconds() / 4) if timeout else BEAT))
        try:
            status, seq = await self.project._stretch(job, retried=activity.info().attempt > 1)
        except UsageError as exc:  # the job cannot be done as asked: the caller is told, nothing is retried
            raise ApplicationError(str(exc), type="UsageError", non_retryable=True) from None
        except RunBusy as exc:  # another process holds the run, for now: tried again, an ordinary turn not logged as a fault
            raise ApplicationError(str(exc), type="RunBusy", category=ApplicationErrorCategory.BENIGN) from None
        except StoreUnavailable as exc:  # the store is away: tried again, and the worker's log says so
            raise ApplicationError(str(exc), type="StoreUnavailable") from None
        finally:
            beating.cancel()
        return {"status": status, "seq": seq}


async def _beat(every: float) -> None:
    """Tell Temporal this worker is alive while the stretch runs (the run's model calls may take minutes)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(every)


async def serve(project: Project, *, concurrency: int, ready: Callable[[str], None] | None = None) -> None:
    """Poll the project's task queue until SIGINT or SIGTERM; stretches running then are given back (resumable)."""
    from temporalio.worker import Worker

    from lane.backends.temporal.client import check_namespace, connect, queue

    config = project.temporal
    client = await connect(config, quiet=False)  # a worker's log says when it loses the server, and when it is back
    await check_namespace(client, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread: the caller stops it
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(client, task_queue=queue(config), workflows=[RunWorkflow], activities=[Stretches(project).stretch],
                    max_concurrent_activities=concurrency)
    async with worker:
        if ready is not None:
            ready(f"lane worker: project {project.spec.config.project}, task queue {queue(config)!r} "
                  f"at {config.address} (namespace {config.namespace}); Ctrl-C stops")
        await stop.wait()
