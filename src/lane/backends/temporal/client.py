"""What `lane run`, `lane resume` and `lane retry` send to Temporal when lane.yaml says `engine: temporal`.

Each is one update-with-start to the run's workflow (`lane-run-RUN`): it starts the workflow if none
runs for the run, hands it the job, and answers with the outcome of the stretch that ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lane.backends.temporal.workflow import UPDATE, WORKFLOW
from lane.errors import UsageError

if TYPE_CHECKING:
    from temporalio.client import Client

    from lane.spec.files import TemporalConfig

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, bool], Client]] = weakref.WeakKeyDictionary()


def queue(config: TemporalConfig) -> str:
    """The task queue (Project.temporal fills in lane-PROJECT where lane.yaml names none)."""
    assert config.task_queue is not None, "a project's temporal config has its task queue filled in"
    return config.task_queue


def workflow_id(run_id: str) -> str:
    return f"lane-run-{run_id}"


_QUIET: list[Any] = []  # the SDK runtime of `lane run` and the like: its core logs only errors (made once)


def _quiet_runtime() -> Any:
    """A runtime whose core says nothing below ERROR: a command that waits prints lane's one line, not the SDK's retries."""
    if not _QUIET:
        from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

        _QUIET.append(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")))))
    return _QUIET[0]


async def connect(config: TemporalConfig, *, quiet: bool = True) -> Client:
    """A client of the project's Temporal service, one per event loop; a one-line error when it cannot be reached.
    `quiet`: the SDK's own log says only errors (commands); a worker keeps its warnings (losing the server, say)."""
    from temporalio.client import Client

    kept = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    key = (config.address, config.namespace, quiet)
    client = kept.get(key)
    if client is None:
        try:
            runtime = {"runtime": _quiet_runtime()} if quiet else {}
            client = kept[key] = await Client.connect(config.address, namespace=config.namespace, **runtime)
        except Exception as exc:  # noqa: BLE001 - the SDK's connection errors have no common type
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"cannot reach Temporal at {config.address} (lane.yaml's temporal.address): {cause}; "
                             "start it (`temporal server start-dev`) or fix the address") from None
    return client


_POLLED: dict[tuple[str, str, str], float] = {}  # (address, namespace, queue) -> when a worker was last seen polling it
POLLED_FOR = 5.0  # seconds a seen worker counts as there: a process starting many runs asks once, not once a run


async def check_workers(client: Client, config: TemporalConfig) -> None:
    """Refuse to wait on a task queue no worker polls: the run would wait, silently, for ever."""
    key = (config.address, config.namespace, queue(config))
    seen = _POLLED.get(key)
    if seen is not None and time.monotonic() - seen < POLLED_FOR:
        return
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.service import RPCError

    try:
        found = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=config.namespace, task_queue=TaskQueue(name=queue(config)),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    except RPCError as exc:  # no such namespace, no permission, the server going away
        raise UsageError(f"Temporal at {config.address} (namespace {config.namespace}): {exc.message or exc.status.name}") from None
    if not found.pollers:
        raise UsageError(f"no lane worker polls task queue {config.task_queue!r} at {config.address}; "
                         "start one in the project's folder: lane worker")
    _POLLED[key] = time.monotonic()


async def check_namespace(client: Client, config: TemporalConfig) -> None:
    """Refuse a namespace the server does not have, in one line (the SDK's worker would fail later, with a trace)."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError

    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=config.namespace))
    except RPCError as exc:
        raise UsageError(f"Temporal at {config.address} (namespace {config.namespace}): {exc.message or exc.status.name}; "
                         "create it (`temporal operator namespace create`) or fix lane.yaml's temporal.namespace") from None


async def ready(config: TemporalConfig) -> Client:
    """A client of a Temporal service whose task queue a worker polls; else UsageError saying what is missing."""
    client = await connect(config)
    await check_workers(client, config)
    return client


async def submit(client: Client, config: TemporalConfig, run_id: str, job: dict[str, Any],
                 tail: Callable[[], None] | None = None) -> str:
    """Hand `job` to the run's workflow and wait for the stretch that runs it; the run's status after it.
    `tail`, if any, is called every 0.2 s meanwhile (to show the run's new events); without one, nothing wakes
    until the answer."""
    from temporalio.client import (
        WithStartWorkflowOperation,
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    )
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.service import RPCError

    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        WORKFLOW, id=workflow_id(run_id), task_queue=queue(config), id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"lane run {run_id}")
    work = asyncio.ensure_future(client.execute_update_with_start_workflow(
        UPDATE, {**job, "run_id": run_id, "heartbeat_seconds": config.heartbeat_seconds}, start_workflow_operation=start))
    try:
        while tail is not None and not work.done():
            await asyncio.wait({work}, timeout=0.2)
            tail()
        outcome = await work
    except WorkflowUpdateFailedError as exc:  # the workflow refused the job (the run is executing)
        raise UsageError(getattr(exc.cause, "message", None) or str(exc.cause)) from None
    except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:  # Temporal went away while this waited
        why = exc.message or exc.status.name if isinstance(exc, RPCError) else "the update was cut off"
        raise UsageError(f"lost Temporal at {config.address} while waiting for run {run_id} ({why}); the run is kept as "
                         f"committed: once Temporal is back, `lane resume {run_id}` carries it on or waits for it") from None
    finally:
        if not work.done():  # interrupted: the run goes on on the workers; stop waiting for it
            work.cancel()
        with contextlib.suppress(BaseException):  # the start's own outcome, taken so that nobody reports it lost
            await asyncio.wait_for(start.workflow_handle(), timeout=0.01)
    if outcome["status"] == "error":
        raise UsageError(outcome["reason"])
    return str(outcome["status"])
