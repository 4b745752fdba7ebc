"""The HTTP API of `lane serve` (Starlette): JSON documents, the same as the CLI's `--json`.

Every request is a person's: `Authorization: Bearer TOKEN` (`lane token create NAME`). A person sees and
decides only what their roles in lane.yaml's `people:` may decide (403 otherwise); the journal records
who decided. Nothing is served without a valid token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lane.errors import DecisionError, LaneError, RunNotFound, UsageError
from lane.project import Project, new_run_id
from lane.secrets import Redactor
from lane.serve.openapi import OPENAPI
from lane.serve.people import Forbidden, decide_as, roles_of
from lane.serve.sessions import LOCAL
from lane.serve.worker import Worker


class TooLarge(Exception):
    """A request body over BODY_LIMIT (413)."""


BODY_LIMIT = 1 << 20  # bytes: inputs, decisions, forms and webhook deliveries are small


async def capped(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The request's body, read only up to `limit` (TooLarge beyond it); `request.form()` reads it from here after."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes; lane serve takes at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is over {limit} bytes; lane serve takes at most {limit}")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 - Starlette's own cache of the body: form() and json() read it
    return body


class Api:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.redact = Redactor(project.spec.secrets)
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self.statuses: dict[str, str] = {}  # the last status published of each run
        self.console: Any = None  # the console's pages (lane.serve.console), when served
        self.worker = Worker(project, on_change=lambda run_id, status: self.publish({"run_id": run_id, "type": "status", "status": status}),
                             on_event=self.on_event)

    # -- plumbing -------------------------------------------------------------

    def answer(self, data: Any, status: int = 200) -> Response:
        body = json.dumps(self.redact(data), ensure_ascii=False, allow_nan=False)  # strict JSON, no secret
        return Response(body, status_code=status, media_type="application/json")

    def error(self, message: str, status: int) -> Response:
        return self.answer({"error": self.redact.text(message)}, status)

    def person(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return self.project.person_of(token.strip()) if scheme.lower() == "bearer" else None

    def roles(self, person: str) -> list[str]:
        return roles_of(self.project, person)

    def decide_for(self, person: str, run_id: str, call: str | None, approve: bool, data: dict[str, Any]) -> Any:
        """`person` decides as the first of their roles allowed for it; Forbidden if none is. The run goes on by itself
        once nothing is left to decide."""
        decision = decide_as(self.project, person, run_id, call, approve, data)
        self.worker.resume_if_decided(decision.run_id)
        return decision

    def publish(self, event: dict[str, Any]) -> None:
        if event["type"] == "status":
            self.statuses[event["run_id"]] = event["status"]
        for queue in list(self.listeners):
            queue.put_nowait(event)

    def on_event(self, run_id: str) -> Any:
        return lambda event: self.publish({"run_id": run_id, "type": event.type, "seq": event.seq, "step_id": event.step_id})

    async def body(self, request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await capped(request) or b"{}")
        except RecursionError:
            raise UsageError("the request body nests too deep") from None
        except ValueError as exc:
            raise UsageError(f"the request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError("the request body must be a JSON object")
        return data

    # -- endpoints ------------------------------------------------------------

    async def start_run(self, request: Request, person: str) -> Response:
        data = await self.body(request)
        runbook, inputs = data.get("runbook"), data.get("inputs", {})
        if not isinstance(runbook, str) or not isinstance(inputs, dict):
            return self.error("give {\"runbook\": NAME, \"inputs\": {...}}", 400)
        run_id = new_run_id()  # known before the run's first event, which the event stream carries too
        run_id, work = self.project.start(runbook, inputs, on_event=self.on_event(run_id), run_id=run_id)
        self.worker.execute(run_id, work)
        return self.answer({"run_id": run_id, "status": "running"}, 201)

    async def list_runs(self, request: Request, person: str) -> Response:
        return self.answer([{**r.to_json(), "parent_id": r.parent_id, "parent_step": r.parent_step} for r in self.project.runs()])

    async def show_run(self, request: Request, person: str) -> Response:
        view = self.project.show(request.path_params["run_id"])
        mine = set(self.roles(person))
        view["pending"] = [p for p in view["pending"] if mine & set(p.get("roles", ()))]  # only what they may decide
        return self.answer(view)

    async def audit_run(self, request: Request, person: str) -> Response:
        return self.answer(self.project.audit(request.path_params["run_id"]))

    async def pending(self, request: Request, person: str) -> Response:
        """Everything waiting for this person's roles, oldest first: the inbox."""
        mine, found = set(self.roles(person)), []
        for record in self.project.runs():
            if record.status == "paused" and record.parent_id is None:
                found += [{"run_id": record.run_id, "runbook": record.runbook, **p.to_json()} for p in self.project.pending(record.run_id)
                          if mine & set(p.roles)]
        return self.answer(sorted(found, key=lambda p: p["requested_at"]))

    async def decide(self, request: Request, person: str) -> Response:
        run_id, data = request.path_params["run_id"], await self.body(request)
        approve, call = data.get("approve"), data.get("call")
        if not isinstance(approve, bool) or (call is not None and not isinstance(call, str)):
            return self.error("give {\"approve\": true|false, \"call\"?: ID, \"edit\"?: ..., \"patch\"?: ..., \"reason\"?: TEXT}", 400)
        try:
            decision = self.decide_for(person, run_id, call, approve, data)
        except Forbidden as exc:
            return self.error(str(exc), 403)
        return self.answer({"run_id": decision.run_id, "call_id": decision.call_id, "kind": decision.kind,
                            "decision": decision.decision, "by": decision.by, "person": person})

    def stream(self, messages: Callable[[asyncio.Queue[dict[str, Any]]], AsyncIterator[str]]) -> Response:
        """A Server-Sent Events response: what `messages` makes of the events published while the client listens."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.add(queue)

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": lane events\n\n"
                async for message in messages(queue):
                    yield message
            finally:
                self.listeners.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def watch_store(self, every: float = 1.0) -> None:
        """Publish the status changes of runs other processes execute (a `lane run` at a terminal) once they are
        committed; what this server executes it publishes event by event already."""
        from datetime import datetime, timedelta

        from lane.store.records import now

        since, recent = now(), set[tuple[str, str]]()
        while True:
            await asyncio.sleep(every)
            # look back a little: another process may commit a change stamped just before the last one seen here
            window = (datetime.fromisoformat(since) - timedelta(seconds=2)).isoformat(timespec="microseconds")
            changed = self.project.store.changed_since(window)
            for record in changed:
                if (record.run_id, record.updated_at) not in recent and self.statuses.get(record.run_id) != record.status:
                    self.publish({"run_id": record.run_id, "type": "status", "status": record.status, "parent_id": record.parent_id})
            recent = {(r.run_id, r.updated_at) for r in changed}
            since = max([since, *(r.updated_at for r in changed)])

    async def record_outcome(self, request: Request, person: str) -> Response:
        data = await self.body(request)
        name = data.get("name")
        if not isinstance(name, str) or "value" not in data:
            return self.error("give {\"name\": NAME, \"value\": VALUE}", 400)
        who = None if person == LOCAL and not self.project.spec.config.people else person
        return self.answer(self.project.outcome(request.path_params["run_id"], name, data["value"], by=who), 201)

    async def events(self, request: Request, person: str) -> Response:
        async def messages(queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[str]:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {event['type']}\ndata: {json.dumps(self.redact(event), ensure_ascii=False)}\n\n"

        return self.stream(messages)

    async def hook(self, request: Request) -> Response:
        """A webhook delivery: signed, not a person's (no token)."""
        from lane.serve.triggers import HookRefused, webhook

        try:
            run_id, new = webhook(self.project, self.worker, request.path_params["name"], await capped(request), request.headers)
        except TooLarge as exc:
            return self.error(str(exc), 413)
        except HookRefused as exc:
            return self.error(str(exc), exc.status)
        return self.answer({"run_id": run_id, "status": "running" if new else self.project.get(run_id).status, "duplicate": not new},
                           202 if new else 200)

    async def openapi(self, request: Request) -> Response:
        return self.answer(OPENAPI)


def create_app(project: Project) -> Starlette:
    """The ASGI app of `lane serve` over `project`: the API, and the console's pages."""
    from lane.serve.console import console_routes

    api = Api(project)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            person = api.person(request)
            if person is None:
                return api.error("sign in: send Authorization: Bearer TOKEN (lane token create NAME)", 401)
            try:
                return await handler(request, person)  # type: ignore[no-any-return]
            except TooLarge as exc:
                return api.error(str(exc), 413)
            except RunNotFound as exc:
                return api.error(str(exc), 404)
            except DecisionError as exc:
                return api.error(str(exc), 409)
            except UsageError as exc:
                return api.error(str(exc), 400)
            except LaneError as exc:
                return api.error(str(exc), 500)
        return endpoint

    routes = [
        Route("/api/openapi.json", api.openapi),
        Route("/api/runs", guarded(api.start_run), methods=["POST"]),
        Route("/api/runs", guarded(api.list_runs), methods=["GET"]),
        Route("/api/runs/{run_id}", guarded(api.show_run), methods=["GET"]),
        Route("/api/runs/{run_id}/audit", guarded(api.audit_run), methods=["GET"]),
        Route("/api/runs/{run_id}/decisions", guarded(api.decide), methods=["POST"]),
        Route("/api/runs/{run_id}/outcomes", guarded(api.record_outcome), methods=["POST"]),
        Route("/api/pending", guarded(api.pending), methods=["GET"]),
        Route("/api/events", guarded(api.events), methods=["GET"]),
        Route("/api/hooks/{name}", api.hook, methods=["POST"]),
        *console_routes(api),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from lane.serve.triggers import watch_and_schedule

        timed = any(t.schedule or t.watch for book in project.spec.runbooks.values() for t in book.file.triggers)
        loop = asyncio.get_running_loop()
        pollers = [loop.create_task(api.watch_store())]
        if timed:
            pollers.append(loop.create_task(watch_and_schedule(project, api.worker)))
        yield
        for poller in pollers:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await api.worker.stop()  # runs being executed stay resumable

    async def too_large(request: Request, exc: Exception) -> Response:
        return api.error(str(exc), 413)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={TooLarge: too_large})
    app.state.api = api
    return app
