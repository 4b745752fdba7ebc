"""The web console's pages (server-rendered, Jinja2 with autoescape): sign-in and the inbox.

A session is a cookie (HttpOnly, SameSite=Strict); every form carries the session's CSRF token. Every value
shown is escaped (a tool's output may hold `<script>`) and redacted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from lane.errors import LaneError
from lane.serve.sessions import Session, Sessions

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
        return HTMLResponse(self.api.redact.text(html), status_code=status,
                            headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'", "Cache-Control": "no-store"})

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def signed_in(self, person: str) -> Response:
        session_id, _ = self.sessions.open(person)
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", max_age=12 * 3600, path="/")
        return response

    async def login_form(self, request: Request) -> Response:
        return self.page("login.html", request, None, title="Sign in")

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        if not self.sessions.allowed(client):
            return self.page("login.html", request, None, 429, title="Sign in", message="Too many tries: wait a minute.", failed=True)
        form = await request.form()
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
        form = await request.form()
        if session is not None and form.get("csrf") == session.csrf:
            self.sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/inbox" if self.session(request) else "/login", status_code=303)

    async def inbox(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        message, failed = request.query_params.get("done", ""), request.query_params.get("failed") == "1"
        return self.page("inbox.html", request, session, title="Inbox", items=self.items(session.person), message=message, failed=failed)

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
                holder = pending.get("run_id") or record.run_id
                found.append({**pending, "run_id": holder, "runbook": record.runbook,
                              "label": "Arguments" if kind in ("tool_call", "in_doubt", "retry") else "Value",
                              "shown": shown, "rows": min(30, shown.count("\n") + 2), "editable": editable,
                              "fields": fields(value) if editable else [],
                              "reasoning": reasoning(steps if holder == record.run_id else _flat(project.show(holder)["steps"]),
                                                     pending["step_id"])})
        return sorted(found, key=lambda p: p["requested_at"])

    async def decide(self, request: Request) -> Response:
        from lane.serve.app import Forbidden

        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        form = await request.form()
        if form.get("csrf") != session.csrf:
            return self.page("inbox.html", request, session, 403, title="Inbox", items=[], message="The form has expired: reload the page.",
                             failed=True)
        approve = form.get("action") == "approve"
        data: dict[str, Any] = {"reason": str(form.get("reason") or "")}
        edit = str(form.get("edit") or "")
        try:
            if approve and edit.strip():
                data["edit"] = json.loads(edit)
            elif approve and form.get("fields"):  # the form's fields, one per property of the value
                data["patch"] = from_fields(form)
            decision = self.api.decide_for(session.person, str(form.get("run_id")), str(form.get("call_id")), approve, data)
        except Forbidden as exc:
            return self.page("inbox.html", request, session, 403, title="Inbox", items=self.items(session.person), message=str(exc), failed=True)
        except (ValueError, LaneError) as exc:
            return self.page("inbox.html", request, session, 400, title="Inbox", items=self.items(session.person), message=str(exc), failed=True)
        return RedirectResponse(f"/inbox?done={decision.decision}+{decision.call_id}+in+run+{decision.run_id}", status_code=303)


    async def runs(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        query = request.query_params
        chosen = {k: query.get(k, "") for k in ("runbook", "status", "version", "since")}
        shown = [r for r in self.api.project.runs() if r.parent_id is None
                 and (not chosen["runbook"] or r.runbook == chosen["runbook"]) and (not chosen["status"] or r.status == chosen["status"])
                 and (not chosen["version"] or str(r.version) == chosen["version"]) and (not chosen["since"] or r.started_at[:10] >= chosen["since"])]
        books = [{"name": b.name, "description": b.file.description, "fields": input_fields(b.file.inputs)}
                 for b in self.api.project.spec.runbooks.values()]
        return self.page("runs.html", request, session, title="Runs", runs=shown[:500], books=books, chosen=chosen,
                         filtered=any(chosen.values()), runbooks=sorted(self.api.project.spec.runbooks),
                         statuses=["running", "paused", "stopped", "completed", "failed", "rejected"],
                         message=query.get("done", ""), failed=query.get("failed") == "1")

    async def start(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        form = await request.form()
        if form.get("csrf") != session.csrf:
            return RedirectResponse("/runs?failed=1&done=The+form+has+expired:+reload+the+page.", status_code=303)
        runbook = str(form.get("runbook") or "")
        try:
            inputs = from_inputs(form)
            run_id, work = self.api.project.start(runbook, inputs)
        except (ValueError, LaneError) as exc:
            from urllib.parse import quote

            return RedirectResponse(f"/runs?failed=1&done={quote(self.api.redact.text(str(exc))[:300])}", status_code=303)
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
        return self.page("run.html", request, session, title=f"Run {view['run_id']}", view=view, diff=_diff)


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
                         kpis=kpis, charts=charts, runs=len(finished))


def _diff(before: Any, after: Any) -> str:
    """An edit as a unified diff of the two values' JSON."""
    import difflib

    old = json.dumps(before, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    new = json.dumps(after, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(old, new, "proposed", "approved", lineterm="", n=1))


def input_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The start-a-run form from a runbook's `inputs` schema: a field per property (JSON for what is not a plain value)."""
    props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required", ()))
    out = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type") if isinstance(prop.get("type"), str) else "json"
        out.append({"name": name, "kind": kind if kind in ("string", "integer", "number", "boolean") else "json",
                    "required": name in required, "description": str(prop.get("description") or ""),
                    "choices": [str(c) for c in prop.get("enum", ())] if isinstance(prop.get("enum"), list) else []})
    return out


def from_inputs(form: Any) -> dict[str, Any]:
    """The inputs as the start form gives them; empty fields are left out (the schema says what is required)."""
    inputs: dict[str, Any] = {}
    for key in form:
        if not key.startswith("input."):
            continue
        name, text = key[len("input."):], str(form.get(key) or "")
        kind = str(form.get(f"kind.{name}") or "string")
        if text == "":
            continue
        if kind == "string":
            inputs[name] = text
        elif kind == "boolean":
            inputs[name] = text == "true"
        else:
            try:
                inputs[name] = json.loads(text)
            except ValueError:
                raise ValueError(f"input {name!r} must be {'a number' if kind in ('integer', 'number') else 'JSON'}: {text[:40]!r}") from None
    return inputs


def reasoning(steps: list[dict[str, Any]], step_id: str) -> str:
    """The agent's last words before the request: what it said with the call it made."""
    for step in steps:
        if step["id"] == step_id and step.get("turns"):
            said = [t["response"].get("text") for t in step["turns"] if t["response"].get("text")]
            return "\n\n".join(said[-3:])
    return ""


def fields(value: Any) -> list[dict[str, Any]]:
    """A form field per property of an object value: text (multi-line as it needs), number, yes/no, or JSON for the rest."""
    if not isinstance(value, dict):
        return []
    out = []
    for name, item in value.items():
        if isinstance(item, bool):
            kind, text = "boolean", "true" if item else "false"
        elif isinstance(item, (int, float)):
            kind, text = "number", json.dumps(item)
        elif isinstance(item, str):
            kind, text = "string", item
        else:
            kind, text = "json", json.dumps(item, ensure_ascii=False, indent=2)
        out.append({"name": name, "kind": kind, "text": text, "rows": min(20, text.count("\n") + 2)})
    return out


def from_fields(form: Any) -> dict[str, Any]:
    """The value's properties as the person left them in the form (a merge patch over the value)."""
    patch: dict[str, Any] = {}
    for name in json.loads(str(form.get("fields"))):
        kind, text = str(form.get(f"kind.{name}") or "string"), str(form.get(f"field.{name}") or "")
        if kind == "string":
            patch[name] = text.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
        elif kind == "boolean":
            patch[name] = text == "true"
        else:
            try:
                patch[name] = json.loads(text)
            except ValueError:
                raise ValueError(f"the field {name!r} must be {'a number' if kind == 'number' else 'JSON'}: {text[:40]!r}") from None
    return patch


def _flat(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in steps:
        out.append(step)
        out += _flat([*step.get("items", ()), *step.get("branches", {}).values(), *step.get("steps", ())])
    return out


def console_routes(api: Api) -> list[Route]:
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
    ]
