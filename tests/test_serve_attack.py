"""An attack on `lane serve` as a hostile person would make it: a real server on loopback, real HTTP, a real browser.

A test that passes shows a defence holding; a test marked xfail(strict) is a hole found, written as the test that
passes once it is closed. One server serves the whole module: people alice (lead), bob (clerk), `local` (lead),
and carol, whose token was made before she was taken out of `people:`.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from test_console import chromium
from test_serve_api import FILES as API_FILES
from test_serve_api import Client, post_hook, raw_get, sign, start_server, stop_server

from conftest import lane, write_project

SECRET = "hunter2&<secret>"  # HTML's special characters: escaped, it no longer looks like itself
HOOK_KEY = "the-hook-key-123"
LEAKS = ("hunter2", "the-hook-key")  # any part of either value, in any encoding

# The desk of test_serve_api, with what the attacks need besides: more people, a tool that would print the secret,
# a model that answers with markup, a webhook, and a runbook whose texts try to break out of the page.
FILES = {
    **API_FILES,
    "lane.yaml": API_FILES["lane.yaml"].replace("bob: {roles: [clerk]}\n", "bob: {roles: [clerk]}\n          carol: {roles: [lead]}\n"
                                                "          local: {roles: [lead]}\n"),
    "tools/mail.py": """
        import os
        from lane import tool

        @tool(effect="external", idempotent=True)
        def send(to: str, body: str) -> str:
            '''Send a reply.'''
            return f"sent to {to} with key {os.environ.get('DESK_KEY', '')}"
    """,
    "model.yaml": API_FILES["model.yaml"] + """
        propose:
          - output: {body: "</textarea><script>alert(2)</script>", "\\"><img src=x onerror=alert(3)>": "<b>x</b>"}
    """,
    "runbooks/reply.yaml": API_FILES["runbooks/reply.yaml"].replace(
        "        steps:\n", "        triggers:\n          - {webhook: inbound, secret: env:HOOK_KEY}\n        steps:\n", 1),
    "runbooks/review.yaml": """
        runbook: review
        description: 'Review <img src=x onerror=alert(4)>'
        inputs:
          type: object
          properties:
            to: {type: string, pattern: '"><script>alert(5)</script>', description: '"><img src=x onerror=alert(6)>'}
        steps:
          - {id: propose, agent: writer, goal: Propose., output: {type: object, properties: {body: {type: string}}, required: [body]}}
          - {id: check, human: lead, approve: "${{ steps.propose.output }}"}
    """,
}


# -- plumbing ---------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    text: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def cookie(self) -> str | None:
        """The session id the answer sets, if it sets one."""
        found = re.search(r"lane_session=([0-9a-f]+)", self.header("set-cookie") or "")
        return found.group(1) if found else None


def send(client: Client, method: str, path: str, *, form: Any = None, body: Any = None, cookie: str | None = None,
         token: str | None = None, headers: dict[str, Any] | None = None) -> Answer:
    """One request exactly as written: no redirect followed, no cookie kept."""
    host, port = client.base.removeprefix("http://").split(":")
    sent = dict(headers or {})
    data: bytes | None = None
    if form is not None:
        data, sent["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    elif body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if cookie is not None:
        sent["Cookie"] = f"lane_session={cookie}"
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=data, headers=sent)
        answer = connection.getresponse()
        return Answer(answer.status, answer.read().decode(errors="replace"), answer.getheaders())
    finally:
        connection.close()


@dataclass
class Session:
    id: str
    csrf: str


@dataclass
class Desk:
    client: Client
    root: Path
    tokens: dict[str, str]
    link: str

    def api(self, method: str, path: str, who: str = "alice", body: Any = None) -> tuple[int, Any]:
        return self.client.call(method, path, self.tokens[who], body)

    def paused(self, runbook: str = "reply", inputs: dict[str, Any] | None = None) -> str:
        code, started = self.api("POST", "/api/runs", body={"runbook": runbook, "inputs": {"to": "ann@example.com"} if inputs is None else inputs})
        assert code == 201, started
        self.client.until(started["run_id"], self.tokens["alice"], "paused")
        return str(started["run_id"])

    def status(self, run_id: str) -> str:
        return str(self.api("GET", f"/api/runs/{run_id}")[1]["status"])

    def count(self) -> int:
        return len(self.api("GET", "/api/runs")[1])


def csrf_of(desk: Desk, session_id: str) -> str:
    page = send(desk.client, "GET", "/runs", cookie=session_id)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def decide_form(desk: Desk, session: Session, run_id: str, call_id: str | None = "send:1", **fields: str) -> Answer:
    form = {"csrf": session.csrf, "run_id": run_id, "call_id": call_id, "action": "approve", **fields}
    return send(desk.client, "POST", "/inbox/decide", form={k: v for k, v in form.items() if v is not None}, cookie=session.id)


def unique_prefix(desk: Desk, run_id: str) -> str:
    others = [r["run_id"] for r in desk.api("GET", "/api/runs")[1] if r["run_id"] != run_id]
    return next(run_id[:n] for n in range(1, len(run_id)) if not any(o.startswith(run_id[:n]) for o in others))


class Listener:
    """A Server-Sent Events stream read in the background, whole, until closed."""

    def __init__(self, client: Client, path: str, header: str) -> None:
        host, port = client.base.removeprefix("http://").split(":")
        self.socket = socket.create_connection((host, int(port)))
        self.socket.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{header}\r\n\r\n".encode())
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = self.socket.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    def close(self) -> str:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.thread.join(5)
        return b"".join(self.chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    root = write_project(tmp_path_factory.mktemp("attack") / "desk", FILES)
    tokens = {p: lane("token", "create", p, cwd=root).stdout.strip() for p in ("alice", "bob", "carol", "local")}
    config = root / "lane.yaml"
    config.write_text(config.read_text().replace("  carol: {roles: [lead]}\n", ""))  # carol has left; her token is still in the store
    proc, client, printed = start_server(root, "--as", "alice", env={"DESK_KEY": SECRET, "HOOK_KEY": HOOK_KEY})
    try:
        yield Desk(client, root, tokens, printed[-1].split("once: ")[-1].strip())
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def alice(desk: Desk) -> Session:
    """alice, signed in with the one-time link (sign-ins through /login are limited to ten a minute per address)."""
    session_id = send(desk.client, "GET", desk.link.removeprefix(desk.client.base)).cookie()
    assert session_id
    return Session(session_id, csrf_of(desk, session_id))


@pytest.fixture(scope="module")
def bob(desk: Desk) -> Session:
    session_id = send(desk.client, "POST", "/login", form={"token": desk.tokens["bob"]}).cookie()
    assert session_id
    return Session(session_id, csrf_of(desk, session_id))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def browsing_as(browser: Any, desk: Desk, session: Session) -> Any:
    """A browser context holding `session`'s cookie, as the person's own browser would."""
    context = browser.new_context()
    context.add_cookies([{"name": "lane_session", "value": session.id, "url": desk.client.base, "httpOnly": True, "sameSite": "Strict"}])
    return context


def from_another_site(page: Any, form_html: str) -> None:
    """Open a page of http://evil.example that posts `form_html` (a form with id f) to the server at once."""
    body = f"<!doctype html><body>{form_html}<script>document.getElementById('f').submit()</script></body>"
    page.route("http://evil.example/", lambda route: route.fulfill(status=200, content_type="text/html", body=body))
    page.goto("http://evil.example/")
    page.wait_for_load_state()
    page.wait_for_timeout(300)


# -- authentication ---------------------------------------------------------------------------------------------------


def test_the_api_takes_a_bearer_token_and_nothing_else(desk: Desk, alice: Session) -> None:
    token = desk.tokens["alice"]
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert send(desk.client, "GET", "/api/runs", headers={"Authorization": f"{scheme} {token}"}).status == 200, scheme
    for refused in ("", "Bearer", "Bearer ", token, f"Token {token}", f"Basic {token}", "Bearer lane_" + "0" * 48, f"Bearer {token}x"):
        assert send(desk.client, "GET", "/api/runs", headers={"Authorization": refused}).status == 401, refused
    before = desk.count()
    assert send(desk.client, "GET", "/api/runs", cookie=alice.id).status == 401, "the console's cookie is no API credential"
    started = send(desk.client, "POST", "/api/runs", cookie=alice.id, body={"runbook": "reply", "inputs": {"to": "x@example.com"}})
    assert started.status == 401 and desk.count() == before, "so a cross-site form cannot reach the API"
    assert send(desk.client, "GET", "/api/events", cookie=alice.id).status == 401


def test_the_console_takes_its_cookie_and_nothing_else(desk: Desk) -> None:
    bearer = {"Authorization": f"Bearer {desk.tokens['alice']}"}
    answer = send(desk.client, "GET", "/inbox", headers=bearer)
    assert answer.status == 303 and answer.header("location") == "/login"
    assert send(desk.client, "GET", "/events", headers=bearer).status == 401
    assert send(desk.client, "GET", "/inbox", cookie=desk.tokens["alice"]).status == 303, "a token is no session id"
    assert send(desk.client, "GET", "/inbox", cookie="").status == 303


def test_a_token_stops_working_once_its_person_is_taken_out_of_people(desk: Desk) -> None:
    carol = desk.tokens["carol"]
    assert send(desk.client, "GET", "/api/runs", token=carol).status == 401, "carol, gone, still reads every run"
    started = send(desk.client, "POST", "/api/runs", token=carol, body={"runbook": "reply", "inputs": {"to": "x@example.com"}})
    assert started.status == 401, "carol, gone, still starts runs"
    assert send(desk.client, "POST", "/login", form={"token": carol}).status == 401, "carol, gone, still signs in to the console"


def test_signing_in_makes_a_new_session_and_signing_out_ends_it(desk: Desk) -> None:
    planted = "ab" * 24  # a session id an attacker chose and slipped into the person's browser
    signed_in = send(desk.client, "POST", "/login", form={"token": desk.tokens["bob"]}, cookie=planted)
    session_id = signed_in.cookie()
    assert signed_in.status == 303 and session_id and session_id != planted, "the server makes the id, never adopts one"
    assert send(desk.client, "GET", "/inbox", cookie=planted).status == 303
    cookie = (signed_in.header("set-cookie") or "").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie

    send(desk.client, "POST", "/logout", form={}, cookie=session_id)  # a sign-out without the session's csrf token
    assert send(desk.client, "GET", "/inbox", cookie=session_id).status == 200, "a forged sign-out ends nothing"
    out = send(desk.client, "POST", "/logout", form={"csrf": csrf_of(desk, session_id)}, cookie=session_id)
    assert out.status == 303 and out.header("location") == "/login" and 'lane_session=""' in (out.header("set-cookie") or "")
    assert send(desk.client, "GET", "/inbox", cookie=session_id).status == 303, "the old cookie, replayed, is no session"
    assert send(desk.client, "GET", "/events", cookie=session_id).status == 401


def test_a_sign_in_link_works_once(desk: Desk, alice: Session) -> None:
    code = desk.link.split("code=")[1]
    again = send(desk.client, "GET", f"/login/once?code={code}")  # the `alice` fixture used it
    assert again.status == 401 and again.cookie() is None
    for wrong in ("", "0" * 48, code[:-1], code.upper(), f"{code}&code={code}"):
        answer = send(desk.client, "GET", f"/login/once?code={wrong}")
        assert answer.status == 401 and answer.cookie() is None, wrong


def test_console_forms_need_the_csrf_token_of_their_own_session(desk: Desk, alice: Session, bob: Session) -> None:
    run_id = desk.paused()
    for csrf in (None, "", "0" * 32, bob.csrf):
        answer = decide_form(desk, Session(alice.id, csrf or ""), run_id) if csrf is not None else \
            send(desk.client, "POST", "/inbox/decide", form={"run_id": run_id, "call_id": "send:1", "action": "approve"}, cookie=alice.id)
        assert answer.status == 403 and "The form has expired" in answer.text, csrf
    before = desk.count()
    started = send(desk.client, "POST", "/runs/start", form={"csrf": bob.csrf, "runbook": "reply", "_fields.input.": '["to"]',
                                                             "input.to": "x@example.com"}, cookie=alice.id)
    assert started.status == 303 and started.header("location") == "/runs"
    assert desk.count() == before and desk.status(run_id) == "paused"


def test_a_forwarded_for_header_does_not_reset_the_sign_in_limit(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    proc, client, _ = start_server(root, env={"HOOK_KEY": HOOK_KEY})
    try:
        codes = [send(client, "POST", "/login", form={"token": "lane_wrong"}, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status
                 for i in range(11)]
    finally:
        stop_server(proc)
    assert codes == [401] * 10 + [429]


# -- authorization ----------------------------------------------------------------------------------------------------


def test_a_person_decides_only_for_their_roles_whatever_the_request_names(desk: Desk, bob: Session) -> None:
    run_id = desk.paused()
    for target in (run_id, unique_prefix(desk, run_id)):  # the store takes a unique prefix for an id
        code, refused = desk.api("POST", f"/api/runs/{target}/decisions", "bob", {"approve": True, "call": "send:1"})
        assert code == 403 and "bob has no role" in refused["error"], target
        code, refused = desk.api("POST", f"/api/runs/{target}/decisions", "bob", {"approve": False, "reason": "no"})
        assert code == 403, target
        assert decide_form(desk, bob, target).status == 403, target
    assert decide_form(desk, bob, run_id, call_id="nope").status == 400
    assert decide_form(desk, bob, run_id, call_id=None, action="reject", reason="x").status == 400
    assert [p for p in desk.api("GET", "/api/pending", "bob")[1] if p["run_id"] == run_id] == []
    assert desk.api("GET", f"/api/runs/{run_id}", "bob")[1]["pending"] == []
    assert run_id not in send(desk.client, "GET", "/inbox", cookie=bob.id).text
    assert desk.status(run_id) == "paused"


def test_a_person_named_local_is_recorded_by_name(desk: Desk) -> None:
    run_id = desk.paused()
    code, decided = desk.api("POST", f"/api/runs/{run_id}/decisions", "local", {"approve": True})
    assert code == 200 and decided["person"] == "local"
    done = desk.client.until(run_id, desk.tokens["alice"], "completed")
    decision = next(s for s in done["steps"] if s["id"] == "send")["tool_calls"][0]["decision"]
    assert decision["user"] == "local"


# -- injection --------------------------------------------------------------------------------------------------------


def test_what_a_page_reflects_from_its_address_is_escaped(desk: Desk, alice: Session) -> None:
    script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    for path in (f"/inbox?done={script}&failed=1", f"/inbox?seen=%22%3E{script}", f"/runs?done={script}",
                 f"/runs?x=%22%3E{script}", f"/runs/{script}", f"/runbooks/{script}"):
        page = send(desk.client, "GET", path, cookie=alice.id)
        assert "<script>alert" not in page.text, path
        if page.status != 404 or "text/html" in (page.header("content-type") or ""):
            assert inline_scripts_blocked(page.header("content-security-policy") or ""), path


def inline_scripts_blocked(policy: str) -> bool:
    """Whether a Content-Security-Policy lets no inline script or event handler run (the second line of defence)."""
    directives = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}
    scripts = directives.get("script-src", directives.get("default-src"))
    return scripts is not None and "'unsafe-inline'" not in scripts and "*" not in scripts


def test_a_page_does_not_say_what_its_address_tells_it_to(desk: Desk, alice: Session) -> None:
    lure = "Your session expired: sign in again at http://evil.example/lane"
    for path in ("/inbox", "/runs"):
        page = send(desk.client, "GET", f"{path}?failed=1&{urlencode({'done': lure})}", cookie=alice.id)
        assert "evil.example" not in page.text, path


def test_a_redirect_carries_no_header_from_the_form(desk: Desk, alice: Session) -> None:
    answer = send(desk.client, "POST", "/runs/start", cookie=alice.id,
                  form={"csrf": alice.csrf, "runbook": "x\r\nSet-Cookie: pwned=1\r\n\r\n<script>", "_fields.input.": "[]"})
    assert answer.status == 303 and [k.lower() for k, _ in answer.headers].count("location") == 1
    assert not any("pwned" in v for k, v in answer.headers if k.lower() == "set-cookie")
    assert "\r" not in (answer.header("location") or "") and "\n" not in (answer.header("location") or "")


@pytest.mark.slow
def test_markup_in_inputs_outputs_reasons_names_and_schemas_stays_text_in_the_browser(desk: Desk, alice: Session, browser: Any) -> None:
    """What an agent proposed (a key `"><img onerror>`, a value `</textarea><script>`), a reason, a runbook's description
    and a schema's pattern and description, all shown as text; the hostile form still approves what it shows."""
    review = desk.paused("review", {})
    rejected = desk.paused(inputs={"to": "<img src=x onerror=alert(7)>"})
    assert desk.api("POST", f"/api/runs/{rejected}/decisions", body={"approve": False, "reason": "<img src=x onerror=alert(8)>"})[0] == 200
    context = browsing_as(browser, desk, alice)
    try:
        page = context.new_page()
        dialogs: list[str] = []

        def caught(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", caught)
        for path in ("/inbox", "/runs", f"/runs/{review}", f"/runs/{rejected}", "/runbooks/review", "/inbox?done=%3Cimg%20src=x%20onerror=alert(9)%3E"):
            page.goto(desk.client.base + path)
            page.wait_for_timeout(200)
        assert dialogs == [], "nothing in the data ran as script"
        assert page.locator("img").count() == 0
        page.goto(desk.client.base + "/runs")
        to = page.locator("form.start[data-runbook=review] input[name='input.to']")
        assert to.get_attribute("pattern") == '.*(?:"><script>alert(5)</script>).*', "the pattern stays inside its attribute"
        page.goto(desk.client.base + "/inbox")
        item = page.locator("section.item", has_text=review)
        assert item.locator("[name='field.body']").input_value() == "</textarea><script>alert(2)</script>"
        assert item.locator("""[name='field."><img src=x onerror=alert(3)>']""").input_value() == "<b>x</b>"
        item.locator("button[value=approve]").click()
        assert f"approved check in run {review}" in page.inner_text("#message")
        assert dialogs == []
    finally:
        context.close()
    done = desk.client.until(review, desk.tokens["alice"], "completed")
    assert done["steps"][1]["output"] == {"body": "</textarea><script>alert(2)</script>", '"><img src=x onerror=alert(3)>': "<b>x</b>"}


@pytest.mark.slow
def test_enter_in_the_reason_field_does_not_approve(desk: Desk, alice: Session, browser: Any) -> None:
    run_id = desk.paused(inputs={"to": "wrong-customer@example.com"})
    context = browsing_as(browser, desk, alice)
    try:
        page = context.new_page()
        page.goto(desk.client.base + "/inbox")
        reason = page.locator("section.item", has_text=run_id).locator("input[name=reason]")
        reason.fill("wrong customer")
        reason.press("Enter")
        page.wait_for_load_state()
    finally:
        context.close()
    send_step = next(s for s in desk.api("GET", f"/api/runs/{run_id}")[1]["steps"] if s["id"] == "send")
    decision = (send_step.get("tool_calls") or [{}])[0].get("decision")
    assert decision is None or decision["decision"] == "rejected", f"the call was {decision and decision['decision']}"


# -- cross-site -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_another_site_cannot_decide_or_start_with_the_session_even_knowing_the_csrf(desk: Desk, alice: Session, browser: Any) -> None:
    run_id = desk.paused()
    before = desk.count()
    base, csrf = desk.client.base, alice.csrf
    context = browsing_as(browser, desk, alice)
    try:
        page = context.new_page()
        from_another_site(page, f'<form id=f method=post action="{base}/inbox/decide"><input name=csrf value="{csrf}">'
                                f'<input name=run_id value="{run_id}"><input name=call_id value="send:1"><input name=action value=approve></form>')
        from_another_site(page, f'<form id=f method=post action="{base}/runs/start"><input name=csrf value="{csrf}">'
                                f'<input name=runbook value=reply><input name="_fields.input." value=\'["to"]\'>'
                                f'<input name="input.to" value="evil@example.com"></form>')
        page.goto(base + "/inbox")
        assert "alice (lead)" in page.inner_text("header"), "the person is still signed in"
    finally:
        context.close()
    time.sleep(0.3)
    assert desk.status(run_id) == "paused" and desk.count() == before, "SameSite=Strict: the forms came without the session"


@pytest.mark.slow
def test_another_site_cannot_sign_a_person_in_as_someone_else(desk: Desk, alice: Session, browser: Any) -> None:
    context = browsing_as(browser, desk, alice)
    try:
        page = context.new_page()
        from_another_site(page, f'<form id=f method=post action="{desk.client.base}/login">'
                                f'<input name=token value="{desk.tokens["bob"]}"></form>')
        page.goto(desk.client.base + "/inbox")
        assert "alice (lead)" in page.inner_text("header"), page.inner_text("header")
    finally:
        context.close()


@pytest.mark.slow
def test_another_site_cannot_sign_a_person_out(desk: Desk, browser: Any) -> None:
    session_id = send(desk.client, "POST", "/login", form={"token": desk.tokens["alice"]}).cookie()
    assert session_id
    context = browsing_as(browser, desk, Session(session_id, ""))
    try:
        page = context.new_page()
        from_another_site(page, f'<form id=f method=post action="{desk.client.base}/logout"></form>')
        page.goto(desk.client.base + "/inbox")
        assert page.url.endswith("/inbox"), page.url
    finally:
        context.close()


def test_the_console_cannot_be_framed(desk: Desk, alice: Session) -> None:
    for path in ("/inbox", "/runs", "/login"):
        page = send(desk.client, "GET", path, cookie=alice.id)
        policy = page.header("content-security-policy") or ""
        assert "frame-ancestors 'none'" in policy or page.header("x-frame-options") == "DENY", path


# -- secrets ----------------------------------------------------------------------------------------------------------


def test_a_secret_given_in_any_way_appears_in_no_answer_page_or_event(desk: Desk, alice: Session) -> None:
    streams = [Listener(desk.client, "/api/events", f"Authorization: Bearer {desk.tokens['alice']}"),
               Listener(desk.client, "/events", f"Cookie: lane_session={alice.id}")]
    try:
        typed = desk.paused(inputs={"to": f"ann {SECRET}"})  # in the inputs, then in what the tool answers
        assert desk.api("POST", f"/api/runs/{typed}/decisions", body={"approve": True})[0] == 200
        desk.client.until(typed, desk.tokens["alice"], "completed")
        body = json.dumps({"to": f"hook {HOOK_KEY} {SECRET}"}).encode()  # the webhook's own key counts as a secret too
        code, hooked = post_hook(desk.client, "inbound", body, {"X-Lane-Signature": sign(HOOK_KEY, body)})
        assert code == 202
        desk.client.until(hooked["run_id"], desk.tokens["alice"], "paused")
        assert desk.api("POST", f"/api/runs/{hooked['run_id']}/decisions", body={"approve": False, "reason": f"no {SECRET}"})[0] == 200
        started = send(desk.client, "POST", "/runs/start", cookie=alice.id,
                       form={"csrf": alice.csrf, "runbook": "reply", "_fields.input.": '["to"]', "input.to": SECRET})
        console = (started.header("location") or "").rsplit("/", 1)[1]
        desk.client.until(console, desk.tokens["alice"], "paused")
        time.sleep(0.5)  # the streams catch up
    finally:
        events = [stream.close() for stream in streams]
    runs = (typed, hooked["run_id"], console)
    texts = {"api events": events[0], "console events": events[1]}
    for path in ("/api/runs", "/api/pending", *(f"/api/runs/{r}" for r in runs), *(f"/api/runs/{r}/audit" for r in runs)):
        texts[path] = send(desk.client, "GET", path, token=desk.tokens["alice"]).text
    for path in ("/runs", "/inbox", *(f"/runs/{r}" for r in runs)):
        texts[path] = send(desk.client, "GET", path, cookie=alice.id).text
    for where, text in texts.items():
        assert not [leak for leak in LEAKS if leak in text], where
    assert "sent to ann [secret:DESK_KEY] with key [secret:DESK_KEY]" in texts[f"/api/runs/{typed}"]
    assert "run_started" in texts["api events"] and f"data: {console}" in texts["console events"]


def test_a_secret_with_markup_characters_is_redacted_in_pages_too(desk: Desk, alice: Session) -> None:
    run_id = desk.paused()
    answer = decide_form(desk, alice, run_id, **{"_fields.field.": '["to"]', "_kind.field.to": "integer", "field.to": SECRET})
    assert answer.status == 400 and "must be a whole number" in answer.text
    assert "hunter2" not in answer.text, re.search(r'id="message">[^<]*', answer.text)


# -- resource abuse ---------------------------------------------------------------------------------------------------


def test_a_huge_body_from_anyone_is_refused_before_it_is_read(desk: Desk) -> None:
    host, port = desk.client.base.removeprefix("http://").split(":")
    paths = ("/api/hooks/nowhere", "/api/hooks/inbound", "/login", "/logout")
    sockets = {}
    for path in paths:  # a gigabyte announced, a kilobyte sent: an answer now means the server did not wait for the rest
        sockets[path] = socket.create_connection((host, int(port)), timeout=10)
        sockets[path].sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                              f"X-Lane-Signature: sha256=00\r\nContent-Length: 1000000000\r\n\r\n".encode() + b"a" * 1024)
    answered, deadline = {}, time.monotonic() + 3
    for path, sock in sockets.items():
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            answered[path] = sock.recv(64).split(b" ")[1].decode()
        except TimeoutError:
            answered[path] = "still reading"
        finally:
            sock.close()
    assert all(code in ("400", "401", "404", "413") for code in answered.values()), answered


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("where", ["start", "decide", "webhook", "console edit"])
def test_deeply_nested_json_is_a_bad_request(desk: Desk, alice: Session, where: str) -> None:
    if where == "start":
        answer = send(desk.client, "POST", "/api/runs", token=desk.tokens["alice"], body=DEEP)
    elif where == "decide":
        answer = send(desk.client, "POST", "/api/runs/ffffffffffff/decisions", token=desk.tokens["alice"], body=DEEP)
    elif where == "webhook":
        answer = send(desk.client, "POST", "/api/hooks/inbound", body=DEEP, headers={"X-Lane-Signature": sign(HOOK_KEY, DEEP)})
    else:
        answer = decide_form(desk, alice, "ffffffffffff", edit=DEEP.decode())
    assert answer.status == 400, answer.text[:200]


def test_many_event_streams_leave_the_api_answering(desk: Desk) -> None:
    header = f"Authorization: Bearer {desk.tokens['bob']}"
    streams = [Listener(desk.client, "/api/events", header) for _ in range(200)]
    try:
        started = time.monotonic()
        assert desk.api("GET", "/api/runs", "bob")[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for stream in streams:
            stream.close()
    assert desk.api("GET", "/api/pending", "bob")[0] == 200


# -- webhooks ---------------------------------------------------------------------------------------------------------


def test_a_webhook_takes_only_a_signed_object(desk: Desk) -> None:
    before = desk.count()
    body = json.dumps({"to": "hook@example.com"}).encode()
    good = sign(HOOK_KEY, body)
    for bad in ("", good.upper(), good.removeprefix("sha256="), "sha1=" + good[7:], sign(HOOK_KEY, body + b" "), sign("wrong", body),
                good + "0", good[:-1], f"{good}, {good}"):
        assert post_hook(desk.client, "inbound", body, {"X-Lane-Signature": bad})[0] == 401, bad
    for other in (b"[]", b"null", b'"to"', b"1", b"{"):
        code, refused = post_hook(desk.client, "inbound", other, {"X-Lane-Signature": sign(HOOK_KEY, other)})
        assert code == 400 and "error" in refused, other
    assert desk.count() == before
    headers = {"X-Lane-Signature": good, "X-Lane-Delivery": "attack-1"}
    code, first = post_hook(desk.client, "inbound", body, headers)
    code_again, again = post_hook(desk.client, "inbound", body, headers)
    assert (code, code_again) == (202, 200) and again["duplicate"] and again["run_id"] == first["run_id"]
    assert desk.count() == before + 1


@pytest.mark.xfail(strict=True, reason="the signature covers the body only, not X-Lane-Delivery: a delivery seen once "
                                       "(a log, a proxy) replayed with a new delivery id starts another run")
def test_a_captured_delivery_replayed_with_a_new_id_starts_no_run(desk: Desk) -> None:
    body = json.dumps({"to": "replay@example.com"}).encode()
    signature = sign(HOOK_KEY, body)
    code, first = post_hook(desk.client, "inbound", body, {"X-Lane-Signature": signature, "X-Lane-Delivery": "replay-1"})
    assert code == 202
    code, again = post_hook(desk.client, "inbound", body, {"X-Lane-Signature": signature, "X-Lane-Delivery": "replay-2"})
    assert code != 202, f"a second run: {again}"


def test_a_signature_that_is_not_ascii_is_refused_as_wrong(desk: Desk) -> None:
    answer = send(desk.client, "POST", "/api/hooks/inbound", body=b"{}", headers={"X-Lane-Signature": b"sha256=\xff\xfe"})
    assert answer.status == 401, answer.text


# -- the edit form, static files --------------------------------------------------------------------------------------


def test_a_forged_edit_form_is_refused_and_decides_nothing(desk: Desk, alice: Session) -> None:
    run_id = desk.paused()
    forged: list[tuple[dict[str, str], str]] = [
        ({"_fields.field.": '["to", "body", "bcc"]', "field.to": "a@example.com", "field.body": "hi", "field.bcc": "evil@example.com"},
         "bcc: Extra inputs are not permitted"),
        ({"_fields.field.": "not json"}, "the form is damaged"),
        ({"_fields.field.": '{"to": 1}'}, "the form is damaged"),
        ({"_fields.field.": "[1, 2]"}, "the form is damaged"),
        ({"_fields.field.": '["to"]', "_kind.field.to": "<script>", "field.to": "a@example.com"}, "must be JSON"),
        ({"_fields.field.": '["to"]', "_kind.field.to": "choice", "field.to": "EUR"}, "must be one of the choices"),
        ({"edit": "[1,"}, "Expecting"),
        ({"edit": '{"to": "a@example.com"}'}, "body"),
    ]
    for fields, reason in forged:
        answer = decide_form(desk, alice, run_id, **fields)
        assert answer.status == 400 and html.escape(reason, quote=True) in answer.text, (fields, answer.text[:300])
    assert desk.status(run_id) == "paused"


def test_static_files_come_from_their_folder_only(desk: Desk) -> None:
    for path in ("/static/%252e%252e/app.py", "/static/..%5capp.py", "/static/%2e%2e%5capp.py", "/static/htmx.min.js%00.py",
                 "/static/./../app.py", "/static/..;/app.py", "/static/.%2e/app.py", "/static/", "/static", "/static/%2fetc%2fpasswd",
                 "/static/../templates/base.html", "/static/%2e%2e/templates/base.html"):
        code, body, headers = raw_get(desk.client, path)
        if code == 307:  # the folder itself: to its own address, and nowhere else
            assert headers["location"] in ("/static/", f"{desk.client.base}/static/"), headers
            continue
        assert code in (400, 404, 405) and b"import" not in body and b"root:" not in body and b"{%" not in body, (path, code)
