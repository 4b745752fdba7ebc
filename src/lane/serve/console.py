"""The web console's pages (server-rendered, Jinja2 with autoescape): sign-in, the inbox, runs, a run, a runbook.

A session is a cookie (HttpOnly, SameSite=Strict); every form carries the session's CSRF token. Every value
shown is escaped (a tool's output may hold `<script>`) and redacted. Pages stay live with htmx over the
server's events (`/events`, Server-Sent Events): a page fetches itself again when a run it shows changes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lane.errors import LaneError
from lane.project import new_run_id
from lane.serve.app import BODY_LIMIT
from lane.serve.forms import form_value, schema_fields
from lane.serve.sessions import Session, Sessions
from lane.store.records import FINISHED

if TYPE_CHECKING:
    from lane.serve.app import Api

COOKIE = "lane_session"
PAGES = Environment(loader=PackageLoader("lane.serve", "templates"), autoescape=select_autoescape(default=True))


class Console:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.sessions = Sessions()

    def page(self, name: str, request: Request, session: Session | None, status: int = 200, **values: Any) -> Response:
        person = session.person if session else None
        html = PAGES.get_template(name).render(
            project=self.api.project.spec.config.project, person=person, roles=self.api.roles(person) if person else [],
            csrf=session.csrf if session else "", title=values.pop("title", name.split(".")[0]), **values)
        return HTMLResponse(self.redact_page(html), status_code=status,
                            headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'", "Cache-Control": "no-store"})

    def redact_page(self, html: str) -> str:
        """The page with every secret replaced, as written and as HTML escapes it (a secret may hold & < > " ')."""
        from markupsafe import escape

        html = self.api.redact.text(html)
        for value, name in self.api.redact.values:
            shown = str(escape(value))
            if shown != value and shown in html:
                html = html.replace(shown, f"[secret:{name}]")
        return html

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def signed_in(self, person: str) -> Response:
        session_id, _ = self.sessions.open(person)
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", max_age=int(self.sessions.lifetime), path="/")
        return response

    async def login_form(self, request: Request) -> Response:
        return self.page("login.html", request, None, title="Sign in")

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        if not self.sessions.allowed(client):
            return self.page("login.html", request, None, 429, title="Sign in", message="Too many tries: wait a minute.", failed=True)
        if cross_site(request):  # another site's form must not sign this browser in as someone else
            return self.page("login.html", request, None, 403, title="Sign in", message="Sign in from this page.", failed=True)
        form = await self.form(request)
        person = self.api.project.person_of(str(form.get("token") or ""))
        if person is None:
            return self.page("login.html", request, None, 401, title="Sign in", message="That token is not valid.", failed=True)
        return self.signed_in(person)

    async def login_once(self, request: Request) -> Response:
        person = self.sessions.redeem(request.query_params.get("code", ""))
        if person is None:
            return self.page("login.html", request, None, 401, title="Sign in", message="That sign-in link was used already, or is not valid.",
                             failed=True)
        return self.signed_in(person)

    async def logout(self, request: Request) -> Response:
        session = self.session(request)
        form = await self.form(request)
        if session is None or form.get("csrf") != session.csrf:  # another site cannot sign a person out
            return RedirectResponse("/inbox" if session else "/login", status_code=303)
        self.sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def form(self, request: Request) -> Any:
        """The posted form, its body capped (lane.serve.app.BODY_LIMIT): a bad request ends in TooLarge."""
        from lane.serve.app import capped

        await capped(request)
        return await request.form(max_fields=1000, max_part_size=BODY_LIMIT)

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/inbox" if self.session(request) else "/login", status_code=303)

    async def inbox(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        query = request.query_params
        live = "hx-request" in request.headers and "seen" in query  # the page asking only what came and went
        items = [] if live else self.items(session.person)
        keys = self.waiting(session.person) if live else [f"{i['run_id']}/{i['call_id']}" for i in items]
        # `seen`: what the page showed when it asked again (live); it says what came and went since, and keeps its list
        seen = query["seen"].split(",") if "seen" in query else keys
        came, went = len(set(keys) - set(seen)), len(set(seen) - set(keys))
        return self.page("inbox.html", request, session, title="Inbox", items=items, seen=",".join(seen), came=came, went=went,
                         **shown_once(request, session))

    def waiting(self, person: str) -> list[str]:
        """What waits for the person's roles, as `RUN/CALL` keys: the pending requests only, no timeline read."""
        mine, project = set(self.api.roles(person)), self.api.project
        return [f"{p.run_id or r.run_id}/{p.call_id}" for r in project.runs() if r.status == "paused" and r.parent_id is None
                for p in project.pending(r.run_id) if mine & set(p.roles)]

    def items(self, person: str) -> list[dict[str, Any]]:
        """What waits for the person's roles, oldest first, each with what it shows and the reasoning that led to it.
        Each paused run is read once: its timeline gives both its pending items and the agent's words."""
        mine, found = set(self.api.roles(person)), []
        project = self.api.project
        for record in project.runs():
            if record.status != "paused" or record.parent_id is not None:  # a child's requests come with its parent's
                continue
            view = project.show(record.run_id)
            steps = _flat(view["steps"])
            for pending in view["pending"]:
                if not mine & set(pending.get("roles", ())):
                    continue
                kind = pending["kind"]
                value = pending.get("args") if kind in ("tool_call", "in_doubt", "retry") else \
                    pending.get("output") if kind == "handoff" else pending.get("value")
                shown = json.dumps(value, ensure_ascii=False, indent=2) if value is not None else ""
                editable = kind in ("tool_call", "human_step", "handoff")
                tool = project.spec.tools.get(pending.get("tool") or "") if kind == "tool_call" else None
                schema = tool.parameters if tool is not None else pending.get("schema")
                holder = pending.get("run_id") or record.run_id
                found.append({**pending, "run_id": holder, "runbook": record.runbook,
                              "label": "Arguments" if kind in ("tool_call", "in_doubt", "retry") else "Value",
                              "shown": shown, "rows": min(30, shown.count("\n") + 2), "editable": editable,
                              "fields": schema_fields(schema, value) if editable else [],
                              "reasoning": reasoning(steps if holder == record.run_id else _flat(project.show(holder)["steps"]),
                                                     pending["step_id"])})
        return sorted(found, key=lambda p: p["requested_at"])

    async def decide(self, request: Request) -> Response:
        from lane.serve.people import Forbidden

        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        form = await self.form(request)
        if form.get("csrf") != session.csrf:
            return self.page("inbox.html", request, session, 403, title="Inbox", items=[], message="The form has expired: reload the page.",
                             failed=True)
        action = form.get("action")
        if action not in ("approve", "reject"):
            return self.page("inbox.html", request, session, 400, title="Inbox", items=self.items(session.person),
                             message="Say approve or reject.", failed=True)
        approve = action == "approve"
        data: dict[str, Any] = {"reason": str(form.get("reason") or "")}
        edit = str(form.get("edit") or "")
        try:
            if approve and edit.strip():
                data["edit"] = json.loads(edit)
            elif approve and form.get("_fields.field."):  # the form generated from the schema: the value as the person left it
                data["edit"] = form_value(form, "field.")
            decision = self.api.decide_for(session.person, str(form.get("run_id")), str(form.get("call_id")), approve, data)
        except Forbidden as exc:
            return self.page("inbox.html", request, session, 403, title="Inbox", items=self.items(session.person), message=str(exc), failed=True)
        except (ValueError, RecursionError, LaneError) as exc:
            said = "the edit nests too deep" if isinstance(exc, RecursionError) else str(exc)
            return self.page("inbox.html", request, session, 400, title="Inbox", items=self.items(session.person), message=said, failed=True)
        session.say(f"{decision.decision} {decision.call_id} in run {decision.run_id}")
        return RedirectResponse("/inbox", status_code=303)


    async def runs(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        query = request.query_params
        chosen = {k: query.get(k, "") for k in ("runbook", "status", "version", "since")}
        shown = [r for r in self.api.project.runs() if r.parent_id is None
                 and (not chosen["runbook"] or r.runbook == chosen["runbook"]) and (not chosen["status"] or r.status == chosen["status"])
                 and (not chosen["version"] or str(r.version) == chosen["version"]) and (not chosen["since"] or r.started_at[:10] >= chosen["since"])]
        books = [{"name": b.name, "description": b.file.description, "fields": schema_fields(b.file.inputs)}
                 for b in self.api.project.spec.runbooks.values()]
        from urllib.parse import urlencode

        here = "/runs" + (f"?{urlencode({k: v for k, v in chosen.items() if v})}" if any(chosen.values()) else "")
        return self.page("runs.html", request, session, title="Runs", runs=shown[:500], books=books, chosen=chosen, here=here,
                         filtered=any(chosen.values()), runbooks=sorted(self.api.project.spec.runbooks),
                         statuses=["running", "paused", "stopped", "completed", "failed", "rejected"],
                         **shown_once(request, session))

    async def start(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        form = await self.form(request)
        if form.get("csrf") != session.csrf:
            session.say("The form has expired: reload the page.", failed=True)
            return RedirectResponse("/runs", status_code=303)
        runbook = str(form.get("runbook") or "")
        try:
            inputs = form_value(form, "input.")
            run_id = new_run_id()
            run_id, work = self.api.project.start(runbook, inputs, on_event=self.api.on_event(run_id), run_id=run_id)
        except (ValueError, LaneError) as exc:
            session.say(str(exc)[:300], failed=True)
            return RedirectResponse("/runs", status_code=303)
        self.api.worker.execute(run_id, work)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def run(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            view = self.api.project.show(request.path_params["run_id"])
        except LaneError as exc:
            return self.page("inbox.html", request, session, 404, title="Run", items=[], message=str(exc), failed=True)
        mine = set(self.api.roles(session.person))
        view["pending"] = [p for p in view["pending"] if mine & set(p.get("roles", ()))]
        return self.page("run.html", request, session, title=f"Run {view['run_id']}", view=view, diff=_diff,
                         audit=self.api.project.audit(view["run_id"]), live=view["status"] not in FINISHED)

    async def events(self, request: Request) -> Response:
        """Server-Sent Events for the pages: `changed` with a run's id when it changes (`?run=ID`: that run and its children).
        Changes are sent at most four times a second, one per run; the last one is never held back (a page asks
        again after the last change, not only after the first)."""
        session = self.session(request)
        if session is None:
            return Response("sign in first", status_code=401)
        only = request.query_params.get("run")
        store = self.api.project.store

        parents: dict[str, str | None] = {}  # run -> its parent, read once per stream

        def wanted(event: dict[str, Any]) -> bool:
            run_id = event["run_id"]
            if only is None or run_id == only:
                return True
            if "parent_id" in event:
                parents[run_id] = event["parent_id"]
            if run_id not in parents:
                try:
                    parents[run_id] = store.run(run_id).parent_id
                except LaneError:
                    parents[run_id] = None
            return parents[run_id] == only

        async def changed(queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[str]:
            if only is not None:  # what changed between the page and its listening: the page asks again once
                yield f"event: changed\ndata: {only}\n\n"
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                await asyncio.sleep(0.25)  # at most four a second, the last change always among them
                batch = [first]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                for run_id in dict.fromkeys(e["run_id"] for e in batch if wanted(e)):
                    yield f"event: changed\ndata: {run_id}\n\n"

        return self.api.stream(changed)


    async def runbook(self, request: Request) -> Response:
        from lane.serve.chart import kpi_rows, work_chart

        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        project = self.api.project
        book = project.spec.runbooks.get(request.path_params["name"])
        if book is None:
            return self.page("inbox.html", request, session, 404, title="Runbook", items=[], message="There is no such runbook.", failed=True)
        finished = [r for r in project.runs() if r.runbook == book.name and r.status in ("completed", "failed", "rejected")][:200]
        kpis, charts = kpi_rows(book, finished, lambda run_id: project.show(run_id)["kpis"])
        return self.page("runbook.html", request, session, title=f"Runbook {book.name}", book=book, chart=work_chart(project.spec, book),
                         kpis=kpis, charts=charts, runs=len(finished), release=project.release_status(book.name), **_versions(project, book))


def _versions(project: Any, book: Any) -> dict[str, Any]:
    """The versions compared (`lane report`) and their chart, when SciPy is installed (lane[report])."""
    from lane.errors import UsageError
    from lane.feedback.report import report, rows
    from lane.feedback.report_chart import chart

    try:
        found = report(project.store, book)
    except UsageError as exc:
        return {"comparison": None, "comparison_missing": str(exc)}
    return {"comparison": found, "comparison_chart": chart(found, rows(project.store, book)) if found["runs"] else ""}


def shown_once(request: Request, session: Session) -> dict[str, Any]:
    """The session's message for a page a person opens (a page asking for itself again, live, leaves it)."""
    return {} if "hx-request" in request.headers else session.said()


def cross_site(request: Request) -> bool:
    """Whether a browser says the request comes from another site (Sec-Fetch-Site, else Origin)."""
    fetched = request.headers.get("sec-fetch-site")
    if fetched is not None:
        return fetched not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


def _diff(before: Any, after: Any) -> str:
    """An edit as a unified diff of the two values' JSON."""
    import difflib

    old = json.dumps(before, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    new = json.dumps(after, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(old, new, "proposed", "approved", lineterm="", n=1))


def reasoning(steps: list[dict[str, Any]], step_id: str) -> str:
    """The agent's last words before the request: what it said with the call it made."""
    for step in steps:
        if step["id"] == step_id and step.get("turns"):
            said = [t["response"].get("text") for t in step["turns"] if t["response"].get("text")]
            return "\n\n".join(said[-3:])
    return ""


def _flat(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in steps:
        out.append(step)
        out += _flat([*step.get("items", ()), *step.get("branches", {}).values(), *step.get("steps", ())])
    return out


def console_routes(api: Api) -> list[Route | Mount]:
    console = Console(api)
    api.console = console
    return [
        Route("/", console.home),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/login/once", console.login_once, methods=["GET"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/inbox", console.inbox, methods=["GET"]),
        Route("/inbox/decide", console.decide, methods=["POST"]),
        Route("/runs", console.runs, methods=["GET"]),
        Route("/runs/start", console.start, methods=["POST"]),
        Route("/runs/{run_id}", console.run, methods=["GET"]),
        Route("/runbooks/{name}", console.runbook, methods=["GET"]),
        Route("/events", console.events, methods=["GET"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
