"""`lane serve`'s HTTP API against a real uvicorn server on loopback, started as `lane serve` in a subprocess;
people sign in with tokens from `lane token create`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LANE, lane, write_project

FILES = {
    "lane.yaml": """
        project: desk
        models: {default: scripted:model.yaml}
        roles:
          lead: {kind: human}
          clerk: {kind: human}
          writer: {kind: agent}
        toolsets:
          mail: {python: tools/mail.py}
        people:
          alice: {roles: [lead]}
          bob: {roles: [clerk]}
        secrets: [env:DESK_KEY]
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: auto
        ---
        You write.
    """,
    "tools/mail.py": """
        from lane import tool

        @tool(effect="external", idempotent=True)
        def send(to: str, body: str) -> str:
            '''Send a reply.'''
            return f"sent to {to}"
    """,
    "model.yaml": """
        draft:
          - output: {body: "Hello <script>alert(1)</script>"}
    """,
    "runbooks/reply.yaml": """
        runbook: reply
        approver: lead
        inputs: {type: object, properties: {to: {type: string}}, required: [to]}
        steps:
          - {id: draft, agent: writer, goal: Write., output: {type: object, properties: {body: {type: string}}, required: [body]}}
          - {id: send, tool: mail.send, args: {to: "${{ inputs.to }}", body: "${{ steps.draft.output.body }}"}}
    """,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def until(self, run_id: str, token: str, status: str) -> dict[str, Any]:
        for _ in range(200):
            code, view = self.call("GET", f"/api/runs/{run_id}", token)
            if code == 200 and view["status"] == status:
                return view  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} never became {status}: {view}")


def start_server(root: Path, *args: str, env: dict[str, str] | None = None, link: bool = False) -> tuple[subprocess.Popen[str], Client, list[str]]:
    """`lane serve` on a free loopback port, once it answers; what it printed before that (with `link` or --as, the sign-in link)."""
    port = free_port()
    proc = subprocess.Popen([*LANE, "serve", "--port", str(port), *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    printed = [proc.stderr.readline() for _ in range(2 if link or "--as" in args else 1)]  # the start line, then a sign-in link
    client = Client(f"http://127.0.0.1:{port}")
    for _ in range(200):
        try:
            client.call("GET", "/api/openapi.json")
            break
        except OSError:
            time.sleep(0.05)
    return proc, client, printed


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Client, Path, dict[str, str]]]:
    root = write_project(tmp_path / "desk", FILES)
    tokens = {person: lane("token", "create", person, cwd=root).stdout.strip() for person in ("alice", "bob")}
    proc, client, _ = start_server(root, env={"DESK_KEY": "hunter2-secret"})
    try:
        yield client, root, tokens
    finally:
        stop_server(proc)


def test_a_token_is_printed_once_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", FILES)
    made = lane("token", "create", "alice", cwd=root)
    token = made.stdout.strip()
    assert made.returncode == 0 and made.stdout == token + "\n" and token.startswith("lane_")
    assert "shown once" in made.stderr
    assert token.encode() not in (root / ".lane" / "lane.db").read_bytes()
    unknown = lane("token", "create", "mallory", cwd=root)
    assert unknown.returncode == 2 and "not one of the people in lane.yaml" in unknown.stderr and unknown.stdout == ""


def test_every_request_needs_a_token(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, _ = server
    assert client.call("GET", "/api/runs")[0] == 401
    assert client.call("GET", "/api/runs", "lane_not-a-token")[0] == 401
    assert client.call("POST", "/api/runs", None, {"runbook": "reply", "inputs": {"to": "a@x.example"}})[0] == 401
    code, spec = client.call("GET", "/api/openapi.json")
    assert code == 200 and "/api/runs/{run_id}/decisions" in spec["paths"]


def test_a_run_started_through_the_api_pauses_and_goes_on_when_the_right_person_decides(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, root, tokens = server
    code, started = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})
    assert code == 201 and started["status"] == "running"
    run_id = started["run_id"]
    view = client.until(run_id, tokens["alice"], "paused")
    [waiting] = view["pending"]
    assert waiting["call_id"] == "send:1" and waiting["args"]["body"] == "Hello <script>alert(1)</script>"
    code, inbox = client.call("GET", "/api/pending", tokens["alice"])
    assert code == 200 and [(p["run_id"], p["call_id"]) for p in inbox] == [(run_id, "send:1")]
    assert client.call("GET", "/api/pending", tokens["bob"]) == (200, []), "bob's roles may decide nothing here"
    assert client.call("GET", f"/api/runs/{run_id}", tokens["bob"])[1]["pending"] == []
    code, refused = client.call("POST", f"/api/runs/{run_id}/decisions", tokens["bob"], {"approve": True})
    assert code == 403 and "bob has no role that may decide this" in refused["error"]

    code, decided = client.call("POST", f"/api/runs/{run_id}/decisions", tokens["alice"], {"approve": True, "patch": {"body": "Hello Ann"}})
    assert code == 200 and decided == {"run_id": run_id, "call_id": "send:1", "kind": "tool_call", "decision": "approved",
                                       "by": "lead", "person": "alice"}
    done = client.until(run_id, tokens["alice"], "completed")  # no separate resume
    send = next(s for s in done["steps"] if s["id"] == "send")
    assert send["output"] == "sent to ann@example.com"
    assert send["tool_calls"][0]["decision"]["user"] == "alice"
    assert send["tool_calls"][0]["decision"]["edited_args"]["body"] == "Hello Ann"
    again = client.call("POST", f"/api/runs/{run_id}/decisions", tokens["alice"], {"approve": True})
    assert again[0] == 409, "a replayed decision is refused"
    shown = lane("show", run_id, "--json", cwd=root)
    assert json.loads(shown.stdout)["status"] == "completed", "the CLI reads the same run"


def test_a_rejection_through_the_api_ends_the_run_rejected(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, tokens = server
    run_id = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})[1]["run_id"]
    client.until(run_id, tokens["alice"], "paused")
    assert client.call("POST", f"/api/runs/{run_id}/decisions", tokens["alice"], {"approve": False})[0] == 409, "a rejection needs a reason"
    code, _ = client.call("POST", f"/api/runs/{run_id}/decisions", tokens["alice"], {"approve": False, "reason": "wrong customer"})
    assert code == 200
    view = client.until(run_id, tokens["alice"], "rejected")
    assert "wrong customer" in view["reason"]


def test_bad_requests_are_answered_with_the_reason(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, tokens = server
    code, answer = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {}})
    assert code == 400 and "inputs" in answer["error"]
    code, answer = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "nope"})
    assert code == 400 and "no runbook 'nope'" in answer["error"]
    assert client.call("GET", "/api/runs/ffffffffffff", tokens["alice"])[0] == 404


def test_serving_beyond_loopback_needs_people(tmp_path: Path) -> None:
    files = dict(FILES)
    files["lane.yaml"] = FILES["lane.yaml"].split("        people:")[0] + "        secrets: [env:DESK_KEY]\n"
    root = write_project(tmp_path / "desk", files)
    refused = lane("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=root, timeout=30)
    assert refused.returncode == 2 and "names no people to sign in" in refused.stderr


def test_validate_checks_the_roles_of_people(tmp_path: Path) -> None:
    files = dict(FILES)
    files["lane.yaml"] = FILES["lane.yaml"].replace("bob: {roles: [clerk]}", "bob: {roles: [writer]}")
    root = write_project(tmp_path / "desk", files)
    result = lane("validate", cwd=root)
    assert result.returncode == 2 and "lane.yaml:11:" in result.stdout and "writer" in result.stdout, result.stdout


def sign(key: str, body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def post_hook(client: Client, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"{client.base}/api/hooks/{name}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


TRIGGERED = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"] + """
        triggers:
          - {webhook: inbound, secret: env:HOOK_KEY}
          - {watch: "drop/*.json", input: to}
"""}


@pytest.fixture
def triggered(tmp_path: Path) -> Iterator[tuple[Client, Path, dict[str, str]]]:
    root = write_project(tmp_path / "desk", TRIGGERED)
    (root / "drop").mkdir()
    token = lane("token", "create", "alice", cwd=root).stdout.strip()
    proc, client, _ = start_server(root, env={"HOOK_KEY": "the-hook-key-123"})
    try:
        yield client, root, {"alice": token}
    finally:
        stop_server(proc)


def test_a_signed_webhook_starts_one_run_per_delivery(triggered: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, tokens = triggered
    body = json.dumps({"to": "hook@example.com"}).encode()
    assert post_hook(client, "inbound", body, {"X-Lane-Signature": sign("wrong-key", body)})[0] == 401
    assert post_hook(client, "inbound", body, {})[0] == 401
    assert post_hook(client, "nowhere", body, {"X-Lane-Signature": sign("the-hook-key-123", body)})[0] == 404
    bad = b'{"too": 1}'
    code, refused = post_hook(client, "inbound", bad, {"X-Lane-Signature": sign("the-hook-key-123", bad)})
    assert code == 400 and "inputs" in refused["error"]
    assert client.call("GET", "/api/runs", tokens["alice"])[1] == [], "a bad body starts no run"
    headers = {"X-Lane-Signature": sign("the-hook-key-123", body), "X-Lane-Delivery": "d-1"}
    code, started = post_hook(client, "inbound", body, headers)
    assert code == 202 and started["duplicate"] is False
    code, again = post_hook(client, "inbound", body, headers)
    assert code == 200 and again["duplicate"] is True and again["run_id"] == started["run_id"]
    view = client.until(started["run_id"], tokens["alice"], "paused")
    assert view["inputs"] == {"to": "hook@example.com"}


def test_a_dropped_file_starts_one_run_even_with_a_second_server(triggered: tuple[Client, Path, dict[str, str]], tmp_path: Path) -> None:
    """A second server on the same project (as after a restart) sees the file taken: at most one run per file."""
    client, root, tokens = triggered
    second, _, _ = start_server(root, env={"HOOK_KEY": "k"})
    (root / "drop" / "one.json").write_text("{}")
    for _ in range(100):
        runs = client.call("GET", "/api/runs", tokens["alice"])[1]
        if runs:
            break
        time.sleep(0.1)
    assert [r["status"] for r in runs] and runs[0]["runbook"] == "reply"
    assert client.call("GET", f"/api/runs/{runs[0]['run_id']}", tokens["alice"])[1]["inputs"] == {"to": "drop/one.json"}
    time.sleep(2.5)  # both servers have looked at the folder again since
    stop_server(second)
    assert len(client.call("GET", "/api/runs", tokens["alice"])[1]) == 1, "the same file starts no second run"


@pytest.mark.parametrize(("triggers", "expected"), [
    ("[{webhook: inbound}]", "a webhook needs `secret: env:NAME`"),
    ("[{schedule: 'every day at 9'}]", "is not a cron expression of five fields"),
    ("[{watch: 'drop/*', input: nobody}]", "has no input 'nobody'"),
    ("[{watch: 'drop/*'}]", "needs `input: NAME`"),
    ("[{webhook: a, secret: env:K, schedule: '0 9 * * *'}]", "exactly one of webhook, schedule, watch"),
    ("[{webhook: inbound, secret: env:K}, {webhook: inbound, secret: env:K}]", "webhook 'inbound' is also a trigger"),
])
def test_validate_checks_triggers(tmp_path: Path, triggers: str, expected: str) -> None:
    files = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"] + f"\n        triggers: {triggers}\n"}
    root = write_project(tmp_path / "desk", files)
    result = lane("validate", cwd=root)
    assert result.returncode == 2 and expected in result.stdout, result.stdout
    assert "runbooks/reply.yaml:" in result.stdout


def test_events_stream_what_the_server_executes(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, tokens = server
    assert client.call("GET", "/api/events")[0] == 401
    request = urllib.request.Request(client.base + "/api/events", headers={"Authorization": f"Bearer {tokens['alice']}"})
    with urllib.request.urlopen(request, timeout=30) as stream:
        run_id = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})[1]["run_id"]
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "status" and e["run_id"] == run_id for e in seen):
            line = stream.readline().decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
    types = [e["type"] for e in seen if e["run_id"] == run_id]
    assert types[0] == "run_started" and "approval_requested" in types and types[-2:] == ["run_paused", "status"]
    assert seen[-1]["status"] == "paused"


def test_events_stream_the_status_of_runs_another_process_executes(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, root, tokens = server
    request = urllib.request.Request(client.base + "/api/events", headers={"Authorization": f"Bearer {tokens['alice']}"})
    with urllib.request.urlopen(request, timeout=30) as stream:
        ran = lane("run", "reply", "--input", "to=cli@example.com", "--no-ask", cwd=root, env={"DESK_KEY": "hunter2-secret"})
        assert ran.returncode == 3, ran.stderr
        run_id = json.loads(lane("runs", "--json", cwd=root).stdout)[0]["run_id"]
        seen: list[dict[str, Any]] = []
        while not any(e["run_id"] == run_id and e.get("status") == "paused" for e in seen):
            line = stream.readline().decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
    assert seen[-1] == {"run_id": run_id, "type": "status", "status": "paused", "parent_id": None}


def raw_get(client: Client, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """GET `path` exactly as written (no client-side clean-up of `..`)."""
    import http.client

    host, port = client.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), dict(answer.getheaders())
    finally:
        connection.close()


def test_static_files_are_served_from_their_folder_only(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, root, _ = server
    code, body, headers = raw_get(client, "/static/htmx.min.js")
    assert code == 200 and b"htmx" in body and "javascript" in headers["content-type"]
    for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/app.py", "/static/..%2f..%2fserve%2fapp.py",
                 "/static/%2e%2e%2fsessions.py", "/static//etc/passwd", "/static/..\\app.py"):
        code, body, _ = raw_get(client, path)
        assert code in (400, 404) and b"root:" not in body and b"import" not in body, path


def test_sign_in_is_rate_limited_and_the_console_needs_a_session(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, _, tokens = server
    assert raw_get(client, "/events")[0] == 401
    assert raw_get(client, "/inbox")[0] == 303
    codes = []
    for _ in range(11):
        request = urllib.request.Request(client.base + "/login", data=b"token=lane_wrong", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                codes.append(answer.status)
        except urllib.error.HTTPError as error:
            codes.append(error.code)
            error.close()
    assert codes == [401] * 10 + [429], "ten tries a minute"
    request = urllib.request.Request(client.base + "/login", data=f"token={tokens['alice']}".encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 429, "even a right token waits out the minute"


def test_sessions_expire() -> None:
    from lane.serve.sessions import Sessions

    sessions = Sessions(lifetime=0.2)
    session_id, session = sessions.open("alice")
    assert sessions.get(session_id) is session
    time.sleep(0.3)
    assert sessions.get(session_id) is None and session_id not in sessions.by_id


def test_a_schedule_starts_one_run_per_slot_also_across_a_restart(tmp_path: Path) -> None:
    """The schedule poller on a real project and croniter, its clock moved on 30 s per look: a slot after the start is
    taken once; a second poller (a restarted server) on the same store does not take it again."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from lane import Project
    from lane.serve.triggers import watch_and_schedule
    from lane.serve.worker import Worker

    files = {**FILES, "runbooks/reply.yaml": FILES["runbooks/reply.yaml"] + """
        triggers:
          - {schedule: "0 9 * * 1-5", inputs: {to: "daily@example.com"}}
"""}
    root = write_project(tmp_path / "desk", files)

    def clock_from(start: datetime) -> Any:
        ticks = iter(start + timedelta(seconds=30 * i) for i in range(10_000))
        return lambda: next(ticks)

    async def poll(project: Project, start: datetime, looks: int) -> None:
        worker = Worker(project)
        poller = asyncio.create_task(watch_and_schedule(project, worker, every=0.001, clock=clock_from(start)))
        await asyncio.sleep(0.001 * looks + 0.5)
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await asyncio.gather(*worker.tasks, return_exceptions=True)

    monday = datetime(2026, 12, 7, 8, 58, 30, tzinfo=UTC)
    with Project.load(root) as project:
        asyncio.run(poll(project, monday, 20))
        runs = project.runs()
        assert [(r.runbook, r.inputs) for r in runs] == [("reply", {"to": "daily@example.com"})], "09:00 once, not 08:xx"
    with Project.load(root) as project:
        asyncio.run(poll(project, monday + timedelta(seconds=60), 20))  # restarted after the slot: nothing made up, nothing twice
        assert len(project.runs()) == 1


def test_an_outcome_is_recorded_through_the_api_with_the_person(server: tuple[Client, Path, dict[str, str]]) -> None:
    client, root, tokens = server
    run_id = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})[1]["run_id"]
    client.until(run_id, tokens["alice"], "paused")
    code, answer = client.call("POST", f"/api/runs/{run_id}/outcomes", tokens["bob"], {"name": "resolved", "value": True})
    assert code == 201 and answer["outcomes"] == {"resolved": True} and answer["recorded"]["by"] == "bob"
    assert client.call("POST", f"/api/runs/{run_id}/outcomes", tokens["bob"], {"name": "no such", "value": 1})[0] == 400
    assert client.call("POST", f"/api/runs/{run_id}/outcomes", tokens["bob"], {"value": 1})[0] == 400
    assert client.call("GET", f"/api/runs/{run_id}", tokens["alice"])[1]["outcomes"][0]["name"] == "resolved"
