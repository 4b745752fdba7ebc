"""HTTP tools against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lane.errors import ToolError
from lane.tools.base import Lane, ToolArgsInvalid, ToolContext
from lane.tools.http import HttpTool

SECRET = "s3cret-Value-42"
TICKET = {
    "type": "object",
    "properties": {"queue": {"type": "string"}, "title": {"type": "string"}, "priority": {"type": "integer"},
                   "labels": {"type": "array", "items": {"type": "string"}}},
    "required": ["queue", "title"],
}


@dataclass
class Seen:
    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.answer()

    do_POST = do_PUT = do_DELETE = do_GET

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        seen = Seen(self.command, self.path, parts.path, parse_qs(parts.query), dict(self.headers.items()), self.rfile.read(length))
        self.server.seen.append(seen)  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):  # the client may hang up first (size cap, timeout)
            if parts.path == "/text":
                self.reply(200, "text/plain; charset=utf-8", "plain wörds ☕".encode())
            elif parts.path == "/fail":
                self.reply(500, "application/json", b'{"error": "boom"}')
            elif parts.path == "/large":
                self.reply(200, "application/json", json.dumps(["x" * 100] * 2000).encode())
            elif parts.path == "/slow":
                self.server.stopping.wait(5)  # type: ignore[attr-defined]
                self.reply(200, "text/plain", b"late")
            elif parts.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/text")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                echo = {"method": seen.method, "path": seen.raw_path, "body": seen.body.decode()}
                self.reply(200, "application/json", json.dumps(echo).encode())

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.seen = state.seen  # type: ignore[attr-defined]
    httpd.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.stopping.set()  # type: ignore[attr-defined]
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def make(url: str, **config: Any) -> HttpTool:
    settings: dict[str, Any] = {
        "method": "GET", "headers": {}, "query": [], "body": None, "parameters": None, "effect": "external",
        "idempotent": True, "timeout": 5.0, "max_output": 65536, "description": None,
    }
    return HttpTool("tickets", **{**settings, **config, "url": url})


def context(call_id: str = "c1") -> ToolContext:
    return ToolContext("run1", "step1", call_id, f"run1:step1:{call_id}", Path("."))


def call(tool: HttpTool, args: dict[str, Any], ctx: ToolContext | None = None) -> Any:
    return asyncio.run(tool.invoke(args, ctx or context()))


def test_get_sends_query_parameters_and_no_body(server: Server) -> None:
    tool = make(f"{server.url}/tickets/{{queue}}", query=["priority", "tag"])
    result = call(tool, {"queue": "billing", "priority": 2, "tag": ["a", "b"]})
    assert result == {
        "status": 200, "ok": True, "content_type": "application/json", "truncated": False,
        "body": {"method": "GET", "path": "/tickets/billing?priority=2&tag=a&tag=b", "body": ""},
    }
    assert server.seen[0].query == {"priority": ["2"], "tag": ["a", "b"]}
    assert "content-type" not in {k.lower() for k in server.seen[0].headers}


def test_post_sends_the_other_arguments_as_json(server: Server) -> None:
    tool = make(f"{server.url}/tickets/{{queue}}", method="post", query=["priority"], parameters=TICKET)
    call(tool, {"queue": "billing", "title": "Refund", "priority": 1, "labels": ["vip"]})
    seen = server.seen[0]
    assert (seen.method, seen.raw_path) == ("POST", "/tickets/billing?priority=1")
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"title": "Refund", "labels": ["vip"]}


@pytest.mark.parametrize(("value", "segment"), [
    ("../admin", "..%2Fadmin"),
    ("a/b", "a%2Fb"),
    ("x?y=1#z", "x%3Fy%3D1%23z"),
    ("env:HOME", "env%3AHOME"),  # an argument cannot name a variable to read
])
def test_a_placeholder_value_stays_inside_its_path_segment(server: Server, value: str, segment: str) -> None:
    tool = make(f"{server.url}/tickets/{{queue}}/items")
    assert tool.out_of_lane({"queue": value}, Lane(), Path(".")) is None
    result = call(tool, {"queue": value})
    assert result["body"]["path"] == f"/tickets/{segment}/items"
    assert server.seen[0].path == f"/tickets/{segment}/items"
    assert tool.subjects({"queue": value})[0] == f"{server.url}/tickets/{segment}/items"


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_a_placeholder_that_would_drop_a_path_segment_is_refused(value: str) -> None:
    with pytest.raises(ToolArgsInvalid, match="cannot be a path segment"):
        make("http://127.0.0.1:1/tickets/{queue}/items").check_args({"queue": value})


def test_subjects_are_the_url_shown_to_rules_and_the_string_arguments() -> None:
    tool = make("http://127.0.0.1:8080/tickets/{queue}?key=env:LANE_TEST_KEY", method="POST", query=["priority"],
                parameters=TICKET)
    subjects = tool.subjects({"queue": "billing", "title": "Refund", "priority": 3})
    assert subjects == ["http://127.0.0.1:8080/tickets/billing?key=env:LANE_TEST_KEY&priority=3", "billing", "Refund"]
    assert fnmatch.fnmatchcase(subjects[0], "http://127.0.0.1:8080/tickets/billing*")


def test_env_in_headers_and_url_is_read_at_call_time(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = make(f"{server.url}/env:LANE_TEST_TENANT/{{queue}}",
                headers={"Authorization": "Bearer env:LANE_TEST_TOKEN", "X-Team": "support"})
    monkeypatch.setenv("LANE_TEST_TOKEN", SECRET)
    monkeypatch.setenv("LANE_TEST_TENANT", "acme")
    call(tool, {"queue": "q1"})
    monkeypatch.setenv("LANE_TEST_TOKEN", "rotated")
    call(tool, {"queue": "q1"})
    assert [s.headers["Authorization"] for s in server.seen] == [f"Bearer {SECRET}", "Bearer rotated"]
    assert server.seen[0].headers["X-Team"] == "support"
    assert server.seen[0].path == "/acme/q1"
    assert tool.subjects({"queue": "q1"})[0] == f"{server.url}/env:LANE_TEST_TENANT/q1"


def test_a_missing_variable_says_how_to_set_it(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANE_TEST_TOKEN", raising=False)
    tool = make(f"{server.url}/text", headers={"Authorization": "Bearer env:LANE_TEST_TOKEN"})
    with pytest.raises(ToolError, match="export LANE_TEST_TOKEN=") as caught:
        call(tool, {})
    assert "tool tickets reads LANE_TEST_TOKEN" in str(caught.value)
    assert server.seen == []  # nothing was sent without it


def test_every_request_carries_the_calls_idempotency_key(server: Server) -> None:
    tool = make(f"{server.url}/text", method="POST", headers={"Idempotency-Key": "from-config"})
    first, retry, other = context("c1"), context("c1"), context("c2")
    for ctx in (first, retry, other):
        call(tool, {}, ctx)
    keys = [s.headers["Idempotency-Key"] for s in server.seen]
    assert keys == ["run1:step1:c1", "run1:step1:c1", "run1:step1:c2"]


def test_text_answers_come_back_as_text(server: Server) -> None:
    result = call(make(f"{server.url}/text"), {})
    assert result == {"status": 200, "ok": True, "content_type": "text/plain; charset=utf-8", "body": "plain wörds ☕",
                      "truncated": False}


def test_a_large_answer_is_cut_at_max_output(server: Server) -> None:
    result = call(make(f"{server.url}/large", max_output=1000), {})
    assert result["truncated"] is True
    assert isinstance(result["body"], str) and len(result["body"]) == 1000  # incomplete JSON stays text
    assert result["body"].startswith('["xxx')
    assert call(make(f"{server.url}/large", max_output=10**6), {})["body"] == ["x" * 100] * 2000


def test_a_slow_server_times_out(server: Server) -> None:
    tool = make(f"{server.url}/slow", timeout=0.3)
    start = time.monotonic()
    with pytest.raises(ToolError, match=rf"GET {server.url}/slow: no answer within 0.3 s"):
        call(tool, {})
    assert time.monotonic() - start < 3


def test_a_closed_port_is_an_error_naming_the_request() -> None:
    port = closed_port()
    tool = make(f"http://127.0.0.1:{port}/tickets/{{queue}}", method="DELETE")
    with pytest.raises(ToolError, match=rf"DELETE http://127.0.0.1:{port}/tickets/q1: cannot connect"):
        call(tool, {"queue": "q1"})


def test_a_server_error_is_a_result_not_an_exception(server: Server) -> None:
    result = call(make(f"{server.url}/fail"), {})
    assert (result["status"], result["ok"], result["body"]) == (500, False, {"error": "boom"})


def test_redirects_are_not_followed(server: Server) -> None:
    result = call(make(f"{server.url}/redirect"), {})
    assert (result["status"], result["ok"]) == (302, False)
    assert [s.path for s in server.seen] == ["/redirect"]


@pytest.mark.parametrize("where", ["closed", "slow"])
def test_a_secret_never_appears_in_an_error(server: Server, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setenv("LANE_TEST_KEY", SECRET)
    base = f"http://127.0.0.1:{closed_port()}" if where == "closed" else server.url
    tool = make(f"{base}/slow?key=env:LANE_TEST_KEY", headers={"Authorization": "env:LANE_TEST_KEY"}, timeout=0.3)
    with pytest.raises(ToolError) as caught:
        call(tool, {})
    assert "key=env:LANE_TEST_KEY" in str(caught.value)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_check_args_lists_every_problem_by_path() -> None:
    tool = make("http://127.0.0.1:1/tickets/{queue}", method="POST", parameters=TICKET)
    with pytest.raises(ToolArgsInvalid) as caught:
        tool.check_args({"queue": "billing", "priority": "high", "labels": ["ok", 3]})
    assert str(caught.value).splitlines() == [
        "arguments: 'title' is a required property",
        "labels.1: 3 is not of type 'string'",
        "priority: 'high' is not of type 'integer'",
    ]
    assert tool.check_args({"queue": "billing", "title": "Refund"}) == {"queue": "billing", "title": "Refund"}


def test_a_get_refuses_arguments_it_would_not_send() -> None:
    tool = make("http://127.0.0.1:1/tickets/{queue}", query=["priority"])
    assert tool.parameters["required"] == ["queue"]
    with pytest.raises(ToolArgsInvalid, match="arguments: 'queue' is a required property"):
        tool.check_args({})
    with pytest.raises(ToolArgsInvalid, match="Additional properties are not allowed"):
        tool.check_args({"queue": "q", "title": "x"})


def test_problems_reports_placeholders_that_are_not_required_arguments() -> None:
    url = "http://127.0.0.1:8080/tickets/{queue}/{owner}"
    loose = {"type": "object", "properties": {"queue": {"type": "string"}, "owner": {"type": "object"}},
             "required": ["owner"]}
    assert HttpTool.problems(url, loose) == [
        "url placeholder {queue} must be a required argument: add queue to parameters.required",
        "url placeholder {owner} must be a string or number: set parameters.properties.owner.type to string",
    ]
    assert HttpTool.problems("http://127.0.0.1:8080/tickets/{queue}", TICKET) == []
    assert HttpTool.problems(url, None) == []
    with pytest.raises(ValueError, match="tool tickets: url placeholder {queue} must be a required argument"):
        make(url, parameters=loose)


def test_problems_keeps_the_host_fixed() -> None:
    assert HttpTool.problems("http://{host}/x", None) == [
        "url: a placeholder cannot be in the host; the host is fixed by lane.yaml"
    ]
    assert HttpTool.problems("ftp://example/x", None) == ["url must start with http:// or https://, not 'ftp://example/x'"]
    assert HttpTool.problems("http://h/{bad-name}", None) == [
        "url: a brace that is not a {name} placeholder (names are letters, digits and _)"
    ]
