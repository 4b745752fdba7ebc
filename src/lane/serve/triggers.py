"""Runs started without a person: webhooks (POST /api/hooks/NAME), schedules and watched files.

Each delivery, schedule slot and file starts at most one run, across restarts too: its key is reserved in
the store (with the run's id) before the run is created. A webhook's body is signed: `X-Lane-Signature:
sha256=HEX`, the HMAC-SHA256 of the raw body with the trigger's `secret`; its id is `X-Lane-Delivery`
(or GitHub's `X-GitHub-Delivery`), else the body's hash. The body, a JSON object, is the run's inputs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lane.errors import UsageError
from lane.project import Project, new_run_id

if TYPE_CHECKING:
    from lane.serve.worker import Worker


class HookRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


def webhook(project: Project, worker: Worker, name: str, body: bytes, headers: Any) -> tuple[str, bool]:
    """Start the run of webhook `name` for this delivery: (run id, whether it is new); raises HookRefused."""
    found = [(book, t) for book in project.spec.runbooks.values() for t in book.file.triggers if t.webhook == name]
    if not found:
        raise HookRefused(f"no webhook {name!r} in this project's runbooks", 404)
    book, trigger = found[0]
    variable = (trigger.secret or "").removeprefix("env:")
    key = os.environ.get(variable, "")
    if not key:
        raise HookRefused(f"webhook {name!r} cannot be checked: its secret env:{variable} is not set where lane serve runs", 503)
    expected = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), headers.get("x-lane-signature", "").encode("utf-8", "replace")):
        raise HookRefused("the signature does not match: send X-Lane-Signature: sha256=HMAC-SHA256(body, secret)", 401)
    try:
        inputs = json.loads(body or b"{}")
    except RecursionError:
        raise HookRefused("the body nests too deep", 400) from None
    except ValueError as exc:
        raise HookRefused(f"the body is not JSON: {exc}", 400) from None
    if not isinstance(inputs, dict):
        raise HookRefused("the body must be a JSON object: the run's inputs", 400)
    delivery = headers.get("x-lane-delivery") or headers.get("x-github-delivery") or hashlib.sha256(body).hexdigest()
    return start_once(project, worker, f"webhook:{name}:{delivery}", book.name, inputs)


def start_once(project: Project, worker: Worker, key: str, runbook: str, inputs: dict[str, Any]) -> tuple[str, bool]:
    """Start a run for `key` unless one was started for it already: (its run id, whether it is new)."""
    from lane.spec.schema import schema_errors

    book = project.spec.runbooks[runbook]
    errors = schema_errors(book.file.inputs, inputs, root="")
    if errors:  # checked before the key is taken: a bad body starts nothing, and can be sent again fixed
        raise HookRefused(f"the inputs do not fit runbook {runbook!r}: " + "; ".join(f"inputs.{e}" for e in errors), 400)
    run_id = new_run_id()
    earlier = project.store.reserve(key, run_id)
    if earlier is not None:
        return earlier, False
    try:
        started, work = project.start(runbook, inputs, run_id=run_id, on_event=worker.on_event(run_id) if worker.on_event else None)
    except UsageError as exc:
        raise HookRefused(str(exc), 400) from None
    worker.execute(started, work)
    return started, True


async def watch_and_schedule(project: Project, worker: Worker, *, every: float = 1.0,
                             clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Start the runs schedules and watched folders call for, until cancelled (checked every `every` seconds of `clock`)."""
    from croniter import croniter

    since = clock()
    while True:
        now = clock()
        for book in project.spec.runbooks.values():
            for i, trigger in enumerate(book.file.triggers):
                try:
                    if trigger.schedule is not None:
                        slot = croniter(trigger.schedule, now).get_prev(datetime)
                        if slot >= since:  # slots while the server runs, not those it missed before it started
                            start_once(project, worker, f"schedule:{book.name}:{i}:{slot.isoformat()}", book.name, dict(trigger.inputs))
                    elif trigger.watch is not None and trigger.input is not None:
                        for path in sorted(project.root.glob(trigger.watch)):
                            if path.is_file():
                                relative = str(path.relative_to(project.root))
                                start_once(project, worker, f"watch:{book.name}:{relative}", book.name,
                                           {**trigger.inputs, trigger.input: relative})
                except HookRefused:
                    continue  # inputs that do not fit: nothing starts (the key stays free, so a fixed file is taken)
                except Exception:  # noqa: BLE001, S112 - one trigger's trouble (a store busy, a file gone) does not stop the others
                    continue
        await asyncio.sleep(every)
