"""How lane meets a hosted model that fails, produced for real on loopback.

A small HTTP server speaks just enough of OpenAI's chat API to fail in each way a
provider can: 401, 429 with Retry-After, 500, a reply that is not the protocol,
no reply in time; a closed port refuses the connection. Each failure must map to
its own error, be retried or not per the policy in lane.yaml, pause the run with
the reason recorded, and `resume` must finish the run once the server is well.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import lane
from conftest import CLASSIFY_RUNBOOK, on_a_terminal, write_project
from conftest import lane as run_lane

pytest.importorskip("pydantic_ai", reason="install lane[hosted]")

ANSWER = {
    "id": "c1", "object": "chat.completion", "created": 0, "model": "tiny",
    "choices": [{
        "index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "final_output", "arguments": '{"category": "billing"}'}},
        ]},
    }],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}


def sse_answer() -> bytes:
    """ANSWER as OpenAI streams it: the tool call's name once, its arguments in pieces, then the usage."""
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> str:
        data = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "tiny",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [], "usage": usage}
        return f"data: {json.dumps(data)}\n\n"

    pieces = ['{"cat', 'egory": ', '"bill', 'ing"}']
    events = [chunk({"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "final_output", "arguments": ""}}]})]
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
    events += [chunk({}, "tool_calls"), chunk({}, usage=ANSWER["usage"]), "data: [DONE]\n\n"]
    return "".join(events).encode()


class Provider:
    """A loopback server: answers each request with the next planned reply, then with ANSWER."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str], bytes] | str] = []
        self.requests: list[dict[str, Any]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers: pooled connections must not outlive their run

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["content-length"]))
                provider.requests.append({"path": self.path, "body": json.loads(body), "auth": self.headers.get("authorization")})
                streamed = json.loads(body).get("stream", False)
                answer = {**ANSWER, "model": json.loads(body)["model"]}  # servers name the model that answered
                reply = provider.plan.pop(0) if provider.plan else (200, {}, json.dumps(answer).encode())
                if reply == "hang":
                    time.sleep(3)
                    return
                status, headers, content = reply  # type: ignore[misc]
                if streamed and status == 200 and content == json.dumps(answer).encode():
                    headers, content = {"content-type": "text/event-stream"}, sse_answer()
                self.send_response(status)
                for key, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:  # noqa: D102
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.close()


def make_project(root: Path, base_url: str, *, attempts: int = 3, api_key: str = "", timeout: float = 1.0, stream: bool = False,
                 provider: str = "openai", model: str = "tiny") -> Path:
    key = f", api_key: 'env:{api_key}'" if api_key else ""
    key += ", stream: true" if stream else ""
    return write_project(root, {
        "lane.yaml": f"""
            project: hosted
            models:
              default: office
              office: {{provider: {provider}, base_url: "{base_url}", model: {model}{key}}}
            roles:
              lead: {{kind: human}}
              triager: {{kind: agent}}
            retry: {{attempts: {attempts}, delay: 0.01, max_delay: 0.05}}
        """,
        "agents/triager.md": f"""
            ---
            name: triager
            autonomy: auto
            settings: {{temperature: 0.2, max_tokens: 64, timeout: {timeout}}}
            ---
            You sort support email into categories.
        """,
        "runbooks/classify.yaml": CLASSIFY_RUNBOOK,
    })


def failures(project: lane.Project, run_id: str) -> list[dict[str, Any]]:
    return list(project.show(run_id)["steps"][0].get("model_failures", []))


def test_a_healthy_server_completes_the_run_with_settings_and_usage(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url))
    run = project.run("classify", {"email": "I was charged twice"})
    assert run.status == "completed", run.reason
    view = project.show(run.run_id)
    assert view["steps"][0]["output"] == {"category": "billing"}
    assert view["usage"] == {"input_tokens": 12, "output_tokens": 5, "cost_usd": 0.0, "unpriced_calls": 1}
    sent = provider.requests[0]["body"]
    assert sent["model"] == "tiny" and sent["temperature"] == 0.2 and sent["max_tokens"] == 64
    # A step with an output schema and no tools must give its output: the output tool is named.
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "final_output"}}
    assert [t["function"]["name"] for t in sent["tools"]] == ["final_output"]


def test_a_streamed_reply_reaches_the_display_and_the_journal_alike(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, stream=True))
    pieces: list[str] = []
    run = project.run("classify", {"email": "I was charged twice"}, on_stream=pieces.append)
    assert run.status == "completed", run.reason
    assert provider.requests[0]["body"]["stream"] is True
    assert "".join(pieces) == '{"category": "billing"}'
    view = project.show(run.run_id)
    assert view["steps"][0]["output"] == {"category": "billing"}
    assert view["usage"]["input_tokens"] == 12 and view["usage"]["output_tokens"] == 5
    # Without a display there is nothing to stream to: the reply comes whole.
    again = project.run("classify", {"email": "I was charged twice"})
    assert again.status == "completed"
    assert provider.requests[-1]["body"].get("stream", False) is False


def test_a_model_with_a_known_price_is_costed_from_genai_prices(tmp_path: Path, provider: Provider) -> None:
    from genai_prices import Usage, calc_price

    project = lane.Project.load(make_project(tmp_path, provider.url, model="gpt-4.1-mini"))
    run = project.run("classify", {"email": "I was charged twice"})
    assert run.status == "completed", run.reason
    expected = float(calc_price(Usage(input_tokens=12, output_tokens=5), model_ref="gpt-4.1-mini", provider_id="openai").total_price)
    view = project.show(run.run_id)
    assert expected > 0
    assert view["usage"]["cost_usd"] == pytest.approx(expected) and view["usage"]["unpriced_calls"] == 0
    assert view["steps"][0]["usage"]["cost_usd"] == pytest.approx(expected)
    shown = run_lane("show", run.run_id, cwd=tmp_path)
    assert f"${expected:.4f}" in shown.stdout


def test_ollama_speaks_openais_api_at_its_base_url(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, provider="ollama", model="llama3.2"))
    run = project.run("classify", {"email": "I was charged twice"})
    assert run.status == "completed", run.reason
    assert provider.requests[0]["body"]["model"] == "llama3.2"
    assert project.show(run.run_id)["steps"][0]["context"]["model"] == "ollama:llama3.2"


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        ((500, {}, b'{"error": {"message": "boom"}}'), "server_error", "server error (HTTP 500)"),
        ((503, {}, b'{"error": {"message": "down for a moment"}}'), "server_error", "HTTP 503"),
        ((200, {}, b"<html>this is not json</html>"), "malformed", "reply lane cannot read"),
        ((200, {}, b'{"choices": "nope"}'), "malformed", "reply lane cannot read"),
    ],
)
def test_retryable_failures_are_retried_then_pause_and_resume(tmp_path: Path, provider: Provider, reply: Any, kind: str, words: str) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=3))
    provider.plan = [reply] * 3
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert words in (run.reason or "") and "after 3 attempts" in (run.reason or "") and "lane resume" in (run.reason or "")
    assert len(provider.requests) == 3
    seen = failures(project, run.run_id)
    assert [f["kind"] for f in seen] == [kind] * 3
    assert [f["attempt"] for f in seen] == [1, 2, 3]
    assert [f["retry_in"] for f in seen] == [0.01, 0.02, None]  # the backoff doubles; none after the last
    assert project.runs()[0].status == "paused"
    resumed = project.resume(run.run_id)  # the server is well again
    assert resumed.status == "completed", resumed.reason
    assert project.show(run.run_id)["steps"][0]["output"] == {"category": "billing"}


def test_a_failure_that_clears_up_is_retried_without_pausing(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=3))
    provider.plan = [(502, {}, b"bad gateway")]
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "completed", run.reason
    assert len(provider.requests) == 2
    assert [f["kind"] for f in failures(project, run.run_id)] == ["server_error"]


def test_429_honours_retry_after(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=2))
    provider.plan = [(429, {"retry-after": "1"}, b'{"error": {"message": "slow down", "code": "rate_limit_exceeded"}}')]
    began = time.monotonic()
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "completed", run.reason
    assert time.monotonic() - began >= 1.0  # it waited as asked, not the policy's 0.01 s
    (seen,) = failures(project, run.run_id)
    assert seen["kind"] == "rate_limited" and seen["status"] == 429 and seen["retry_in"] == 1.0
    assert "rate limited (HTTP 429; it asked to wait 1 s)" in seen["error"]


def test_a_retry_after_longer_than_the_policy_allows_pauses_at_once(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=5))
    provider.plan = [(429, {"retry-after": "3600"}, b'{"error": {"message": "come back in an hour"}}')]
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused" and "rate limited" in (run.reason or "")
    assert len(provider.requests) == 1


def test_401_is_not_retried_and_names_the_key(tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFICE_KEY", "sk-wrong")
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=4, api_key="OFFICE_KEY"))
    provider.plan = [(401, {}, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}')]
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert "refused the API key in OFFICE_KEY (HTTP 401)" in (run.reason or "")
    assert len(provider.requests) == 1 and provider.requests[0]["auth"] == "Bearer sk-wrong"
    assert [f["kind"] for f in failures(project, run.run_id)] == ["auth"]
    monkeypatch.setenv("OFFICE_KEY", "sk-right")
    resumed = lane.Project.load(tmp_path).resume(run.run_id)  # a new process would read the key again
    assert resumed.status == "completed", resumed.reason
    assert provider.requests[-1]["auth"] == "Bearer sk-right"


def test_a_missing_key_says_which_variable_and_how_to_set_it(tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFICE_KEY", raising=False)
    project = lane.Project.load(make_project(tmp_path, provider.url, api_key="OFFICE_KEY"))
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert "OFFICE_KEY, which is not set; set it with `export OFFICE_KEY=...`" in (run.reason or "")
    assert provider.requests == []


def test_openai_without_a_key_names_openai_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    root = make_project(tmp_path, "http://unused")
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace("default: office", "default: openai:gpt-4.1-mini"))
    result = run_lane("run", "classify", "--input", "email=hi", cwd=root)
    assert result.returncode == 3, result.stderr
    assert "OPENAI_API_KEY, which is not set; set it with `export OPENAI_API_KEY=...`" in result.stdout
    assert "lane resume" in result.stdout


def test_a_server_that_does_not_answer_in_time(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=2, timeout=0.5))
    provider.plan = ["hang", "hang"]
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert "did not answer in time" in (run.reason or "")
    assert [f["kind"] for f in failures(project, run.run_id)] == ["timeout", "timeout"]


def test_a_closed_port_is_unreachable_then_resumes_when_the_server_is_up(tmp_path: Path, provider: Provider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    root = make_project(tmp_path, f"http://127.0.0.1:{closed}/v1", attempts=2)
    project = lane.Project.load(root)
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert "cannot be reached" in (run.reason or "") and f"127.0.0.1:{closed}" in (run.reason or "")
    assert [f["kind"] for f in failures(project, run.run_id)] == ["unreachable", "unreachable"]
    # The person points lane at a server that is up, and resumes.
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace(f"http://127.0.0.1:{closed}/v1", provider.url))
    resumed = lane.Project.load(root).resume(run.run_id)
    assert resumed.status == "completed", resumed.reason


def test_a_rejected_request_pauses_without_retrying(tmp_path: Path, provider: Provider) -> None:
    project = lane.Project.load(make_project(tmp_path, provider.url, attempts=4))
    provider.plan = [(404, {}, b'{"error": {"message": "The model tiny does not exist", "code": "model_not_found"}}')]
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused" and "does not know this model" in (run.reason or "")
    assert len(provider.requests) == 1


def test_the_cli_shows_the_failure_and_how_to_go_on(tmp_path: Path, provider: Provider) -> None:
    root = make_project(tmp_path, provider.url, attempts=2)
    provider.plan = [(500, {}, b"{}")] * 2
    result = run_lane("run", "classify", "--input", "email=hi", cwd=root)
    assert result.returncode == 3, result.stderr
    assert "paused" in result.stdout and "HTTP 500" in result.stdout
    run_id = result.stdout.split()[1]
    shown = run_lane("show", run_id, cwd=root)
    assert "turn:0 attempt 1 failed" in shown.stdout and "attempt 2 failed" in shown.stdout
    done = run_lane("resume", run_id, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr


def test_on_a_terminal_each_failed_attempt_shows_as_it_happens(tmp_path: Path, provider: Provider) -> None:
    root = make_project(tmp_path, provider.url, attempts=3, stream=True)
    provider.plan = [(503, {}, b'{"error": {"message": "warming up"}}')]
    seen = on_a_terminal(["run", "classify", "--input", "email=charged twice"], root)
    assert "failed with a server error (HTTP 503): warming up; trying again in 0.01 s" in " ".join(seen.split()), seen
    assert "classify done" in seen and "completed" in seen


def reply_with(message: dict[str, Any], finish: str = "tool_calls") -> tuple[int, dict[str, str], bytes]:
    answer = {**ANSWER, "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": None, **message}}]}
    return 200, {}, json.dumps(answer).encode()


def call(name: str, args: dict[str, Any], call_id: str = "x1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


TOOLS = {
    "tools/crm.py": '''
        from lane import tool

        @tool(effect="read")
        def find_customer(email: str) -> dict:
            """Look a customer up by email address."""
            return {"name": "Dana", "plan": "Team"}
    ''',
}


def with_crm(root: Path) -> Path:
    """The project, with the triager allowed one read tool."""
    write_project(root, TOOLS)
    text = (root / "lane.yaml").read_text().replace("retry:", "toolsets: {crm: {python: tools/crm.py}}\nretry:")
    (root / "lane.yaml").write_text(text)
    agent = (root / "agents/triager.md").read_text().replace("autonomy: auto", "autonomy: auto\ntools: [crm.find_customer]")
    (root / "agents/triager.md").write_text(agent)
    return root


def test_tool_calls_and_repairs_go_back_to_the_server_paired_by_id(tmp_path: Path, provider: Provider) -> None:
    root = with_crm(make_project(tmp_path, provider.url))
    provider.plan = [
        reply_with({"tool_calls": [call("crm_find_customer", {"email": "dana@example.com"}, "srv-1")]}),
        reply_with({"tool_calls": [call("final_output", {"category": "refunds"}, "srv-2")]}),  # not in the enum: repaired
    ]
    project = lane.Project.load(root)
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "completed", run.reason
    step = project.show(run.run_id)["steps"][0]
    assert step["tool_calls"][0]["tool"] == "crm.find_customer" and step["output"] == {"category": "billing"}
    first, second, third = (r["body"] for r in provider.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["crm_find_customer", "final_output"]
    assert "tool_choice" not in first or first["tool_choice"] == "auto"
    asked, answered = second["messages"][-2:]
    assert asked["tool_calls"][0]["function"]["name"] == "crm_find_customer"
    assert answered["role"] == "tool" and answered["tool_call_id"] == asked["tool_calls"][0]["id"]
    assert json.loads(answered["content"]) == {"untrusted_data": {"name": "Dana", "plan": "Team"}}
    given, repair = third["messages"][-2:]
    assert given["tool_calls"][0]["function"]["name"] == "final_output"
    assert json.loads(given["tool_calls"][0]["function"]["arguments"]) == {"category": "refunds"}
    assert repair["role"] == "tool" and repair["tool_call_id"] == given["tool_calls"][0]["id"]
    assert "category" in repair["content"]  # the schema error, sent back as the output tool's result


def test_a_turn_asked_again_after_a_resume_shows_its_messages_once(tmp_path: Path, provider: Provider) -> None:
    root = with_crm(make_project(tmp_path, provider.url, attempts=1))
    provider.plan = [
        reply_with({"tool_calls": [call("crm_find_customer", {"email": "dana@example.com"})]}),
        (500, {}, b"{}"),  # the turn after the tool result fails: the run pauses there
    ]
    project = lane.Project.load(root)
    run = project.run("classify", {"email": "charged twice"})
    assert run.status == "paused"
    assert project.resume(run.run_id).status == "completed"
    roles = [m["role"] for m in project.show(run.run_id)["steps"][0]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert json.loads(provider.requests[-1]["body"]["messages"][-1]["content"]) == {"untrusted_data": {"name": "Dana", "plan": "Team"}}


def test_an_output_named_value_is_kept_as_it_is(tmp_path: Path, provider: Provider) -> None:
    root = make_project(tmp_path, provider.url)
    book = (root / "runbooks/classify.yaml").read_text()
    book = book.replace("{category: {enum: [billing, bug, other]}}", "{value: {type: string}, note: {type: string}}")
    book = book.replace("required: [category]", "required: [value]")
    (root / "runbooks/classify.yaml").write_text(book)
    provider.plan = [reply_with({"tool_calls": [call("final_output", {"value": "x"})]})]
    project = lane.Project.load(root)
    run = project.run("classify", {"email": "hi"})
    assert run.status == "completed", run.reason
    assert project.show(run.run_id)["steps"][0]["output"] == {"value": "x"}


def test_a_structured_reply_cut_off_at_max_tokens_is_asked_for_again_then_fails_the_step(tmp_path: Path, provider: Provider) -> None:
    cut = reply_with({"tool_calls": [call("final_output", {"category": "bil"})]}, finish="length")
    provider.plan = [cut]
    project = lane.Project.load(make_project(tmp_path, provider.url))
    run = project.run("classify", {"email": "hi"})
    assert run.status == "completed", run.reason  # the second reply, whole, is the output
    told = json.dumps(provider.requests[-1]["body"]["messages"])
    assert "Your reply was cut off at" in told and "Reply again, shorter" in told
    assert project.show(run.run_id)["steps"][0]["usage"]["input_tokens"] > 0
    provider.plan = [cut] * 3  # the agent's 2 repairs, and one more: the step fails, saying what to change
    run = project.run("classify", {"email": "hi"})
    assert run.status == "failed"
    assert "the reply was cut off at" in (run.reason or "") and "raise `settings: max_tokens:`" in (run.reason or "")


def test_other_keys_never_go_to_a_server_by_base_url(tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    project = lane.Project.load(make_project(tmp_path, provider.url))
    assert project.run("classify", {"email": "hi"}).status == "completed"
    assert provider.requests[0]["auth"] == "Bearer not-needed"


def test_a_key_the_server_echoes_is_not_stored(tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFICE_KEY", "sk-canary-4242")
    root = make_project(tmp_path, provider.url, api_key="OFFICE_KEY")
    provider.plan = [(401, {}, b'{"error": {"message": "key sk-canary-4242 is not valid"}}')]
    project = lane.Project.load(root)
    run = project.run("classify", {"email": "hi"})
    assert run.status == "paused" and "[secret:OFFICE_KEY]" in (run.reason or "")
    project.close()
    for path in (root / ".lane").iterdir():
        assert b"sk-canary-4242" not in path.read_bytes(), path


def test_runs_in_several_threads_share_the_model_safely(tmp_path: Path, provider: Provider) -> None:
    """Each thread its own Project (a store connection is one thread's); the model and its clients are the process's."""
    root = make_project(tmp_path, provider.url)
    results: list[str] = []

    def one() -> None:
        with lane.Project.load(root) as project:
            for _ in range(3):
                results.append(project.run("classify", {"email": "hi"}).status)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == ["completed"] * 12
