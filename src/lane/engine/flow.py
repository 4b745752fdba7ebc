"""Groups of steps that run at once: `parallel:` branches and `for_each:` items.

Each branch or item is a block of steps with names of its own (`both.a.pa`,
`each[2].inc`), journaled as a step itself (`step_started`, then
`step_finished` with its output, or `step_failed`): a resumed run takes a
finished one's output from the journal and runs only the others. A branch or
item that waits for a person pauses only itself: the others go on until they
too wait or end, and then the run pauses. With `on_error: fail` (the default)
the first failure cancels the others; with `continue` each entry says how it
ended (`{status, output}` or `{status, error}`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lane.engine.state import Failed, RunState, StepFailed
from lane.errors import PauseRun, StopRun
from lane.spec.runbook import StepSpec

Block = Callable[[RunState, list[StepSpec], str], Awaitable[Any]]


@dataclass
class Part:
    """One branch or item: its name in the journal, its steps, and what its expressions see."""

    name: str
    steps: list[StepSpec]
    names: dict[str, Any]


async def run_group(state: RunState, step: StepSpec, run_block: Block) -> Any:
    """The group's output: a mapping branch -> output, or the list of item outputs in input order."""
    if step.kind == "parallel":
        names = list(step.branches)
        parts = (Part(f"{step.id}.{name}", step.branches[name], {}) for name in names)
        entries = await _settle(state, step, parts, len(names), len(names), run_block)
        return dict(zip(names, entries, strict=True))
    items = _items(state, step)
    body = step.body if step.step.runbook is None else []  # a child run per item: its runbook is the body
    parts = (Part(f"{step.id}[{i}]", body, {step.step.as_: item}) for i, item in enumerate(items))
    return await _settle(state, step, parts, len(items), step.step.max_concurrency, run_block)


def _items(state: RunState, step: StepSpec) -> list[Any]:
    assert step.items is not None
    items = step.items.render(state.scope())
    if not isinstance(items, list):
        kind = "a mapping" if isinstance(items, dict) else type(items).__name__
        raise StepFailed(f"for_each of step {step.id} must give a list, not {kind} ({step.step.for_each})")
    return items


async def _settle(state: RunState, step: StepSpec, parts: Iterator[Part], count: int, limit: int, run_block: Block) -> list[Any]:
    """Run the parts, at most `limit` at once (workers take the next part as one ends: nothing is queued
    per part), and gather how each ended."""
    outcomes: list[Any] = [None] * count
    waiting: list[PauseRun | StopRun] = []
    failure: list[Failed] = []
    numbered = enumerate(parts)
    workers: list[asyncio.Future[None]] = []

    async def work() -> None:
        for index, part in numbered:  # one shared iterator: each part is taken once
            if failure:
                return
            try:
                outcomes[index] = _entry(step, "completed", await _run_part(state, step, part, run_block))
            except Failed as exc:
                outcomes[index] = _entry(step, exc.status, error=exc.reason)
                if step.step.on_error == "fail" and not failure:
                    failure.append(exc)
                    for other in workers:
                        if other is not asyncio.current_task():
                            other.cancel()
                    return
            except (PauseRun, StopRun) as signal:
                waiting.append(signal)

    if count == 0:
        return []
    workers.extend(asyncio.ensure_future(work()) for _ in range(min(limit, count)))
    state.journal.concurrent += len(workers) - 1  # they share commits
    try:
        results = await asyncio.gather(*workers, return_exceptions=True)
    except asyncio.CancelledError:
        for worker in workers:
            worker.cancel()
        raise
    finally:
        state.journal.concurrent -= len(workers) - 1
    for result in results:  # lane's own errors in a part are the run's
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
    if failure:
        raise failure[0]
    if waiting:
        raise _waiting(waiting)
    return outcomes


async def _run_part(state: RunState, group: StepSpec, part: Part, run_block: Block) -> Any:
    journal = state.journal
    finished = journal.find("step_finished", part.name)
    if finished is not None:
        return finished.data.get("output")
    failed = journal.find("step_failed", part.name) or journal.find("step_rejected", part.name)
    if failed is not None:  # ended in an earlier process (on_error: continue): not run again
        raise Failed(failed.data["error"], "rejected" if failed.type == "step_rejected" else "failed")
    if journal.find("step_started", part.name) is None:
        journal.record("step_started", part.name, kind="item" if group.kind == "for_each" else "branch")
    inner = state.frame(part.names)
    try:
        if group.kind == "for_each" and group.step.runbook is not None:
            from lane.engine.children import run_child

            output = await run_child(inner, group, part.name)
        else:
            output = await run_block(inner, part.steps, f"{part.name}.")
    except Failed as exc:
        journal.record("step_rejected" if exc.status == "rejected" else "step_failed", part.name, error=exc.reason)
        raise
    except asyncio.CancelledError:  # another part failed (on_error: fail): this one ends unfinished; a retry runs it again
        journal.record("step_failed", part.name, error=f"cancelled: another {'item' if group.kind == 'for_each' else 'branch'} failed")
        raise
    except StepFailed as exc:  # a child run's failure
        status = "rejected" if type(exc).__name__ == "StepRejected" else "failed"
        journal.record("step_rejected" if status == "rejected" else "step_failed", part.name, error=str(exc))
        raise Failed(str(exc), status) from None
    journal.record("step_finished", part.name, output=output)
    return output


def _entry(step: StepSpec, status: str, output: Any = None, *, error: str | None = None) -> Any:
    """How a part's ending reads in the group's output: its output, or with on_error: continue, `{status, output|error}`."""
    if step.step.on_error == "fail":
        return output
    return {"status": status, "output": output} if error is None else {"status": status, "error": error}


def _waiting(signals: list[PauseRun | StopRun]) -> PauseRun | StopRun:
    """One signal for the parts that wait: a person first (the run pauses), else the first budget reached."""
    pauses = [s for s in signals if isinstance(s, PauseRun)]
    if pauses:
        more = f" (and {len(pauses) - 1} more waiting)" if len(pauses) > 1 else ""
        return PauseRun(pauses[0].reason + more)
    return signals[0]
