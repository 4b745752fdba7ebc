"""Traces of runs: real runs, the real OTLP/HTTP exporter, and a collector on loopback that decodes what arrives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

import lane
import lane.telemetry
from conftest import write_project

FILES = {
    "lane.yaml": """
        project: telemetry
        models: {default: scripted:script.yaml}
        roles:
          lead: {kind: human}
          writer: {kind: agent}
        toolsets:
          crm: {python: tools/crm.py}
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: guarded
        tools: [crm.find, crm.send]
        ---
        You write replies to customers of Acme.
    """,
    "runbooks/reply.yaml": """
        runbook: reply
        version: 3
        inputs: {type: object, properties: {body: {type: string}}, required: [body]}
        steps:
          - id: draft
            agent: writer
            goal: Draft a reply, and send it.
            with: {body: "${{ inputs.body }}"}
            output: {type: object, properties: {sent: {type: boolean}}, required: [sent]}
          - id: review
            human: lead
            approve: "${{ steps.draft.output }}"
    """,
    "runbooks/sync.yaml": """
        runbook: sync
        steps:
          - {id: pull, tool: crm.pull}
    """,
    "script.yaml": """
        draft:
          - tool_calls: [{name: crm.find, args: {email: ann@example.com}}]
            usage: {input_tokens: 120, output_tokens: 30, cost_usd: 0.002}
          - tool_calls: [{name: crm.send, args: {to: ann@example.com, body: Refunded.}}]
            usage: {input_tokens: 180, output_tokens: 20, cost_usd: 0.003}
          - output: {sent: true}
            usage: {input_tokens: 200, output_tokens: 10, cost_usd: 0.001}
    """,
    "tools/crm.py": '''
        from pathlib import Path
        from lane import tool

        @tool(effect="read")
        def find(email: str) -> dict:
            """Find a customer."""
            return {"name": "Ann"}

        @tool(effect="external")
        def send(to: str, body: str) -> dict:
            """Send a reply."""
            return {"sent": True}

        @tool(effect="read", idempotent=True)
        def pull() -> dict:
            """Pull the customers; interrupted the first time, as by Ctrl-C."""
            marker = Path(__file__).resolve().parent.parent / "interrupted"
            if not marker.exists():
                marker.touch()
                raise KeyboardInterrupt
            return {"pulled": 3}
    ''',
}


@dataclass
class Receiver:
    """An OTLP/HTTP collector on loopback: keeps each POST as sent (path, headers by lowercase name, body) and decodes the spans."""

    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Span]:
        return [span for _, _, body in self.posts for resource in ExportTraceServiceRequest.FromString(body).resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def resources(self) -> list[dict[str, Any]]:
        return [attributes(r.resource.attributes) for _, _, body in self.posts for r in ExportTraceServiceRequest.FromString(body).resource_spans]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    got.server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    serving = threading.Thread(target=got.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    yield got
    lane.telemetry.shutdown()  # nothing left queued for a collector that is gone
    got.server.shutdown()
    got.server.server_close()
    serving.join()


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in pairs}


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def project_with(root: Path, telemetry: str = "", **files: str) -> Path:
    lane_yaml = FILES["lane.yaml"].rstrip() + (f"\n        telemetry: {telemetry}\n" if telemetry else "\n")
    return write_project(root, {**FILES, "lane.yaml": lane_yaml, **files})


def named(spans: list[Span], name: str) -> list[Span]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time_unix_nano)


def test_a_run_paused_and_resumed_in_new_processes_is_one_trace_of_genai_spans(project_dir: Path, receiver: Receiver) -> None:
    root = project_with(project_dir, f"{{endpoint: '{receiver.endpoint}'}}")
    with lane.Project.load(root) as first:
        run = first.run("reply", {"body": "I was charged twice."})
        run.approve()  # crm.send, an external call
    with lane.Project.load(root) as second:  # a new Project reads the run back, as `lane resume` in another process
        run = second.resume(run.run_id)
        run.approve()  # the review
    with lane.Project.load(root) as third:
        assert third.resume(run.run_id).status == "completed"
    lane.telemetry.shutdown()
    spans = receiver.spans()
    assert {p[0] for p in receiver.posts} == {"/v1/traces"}
    assert len({s.trace_id for s in spans}) == 1 and len({s.span_id for s in spans}) == len(spans)

    # One span per segment of the run, each linked to the one before.
    segments = named(spans, "invoke_workflow reply")
    said = [attributes(s.attributes) for s in segments]
    assert [(a["lane.run.segment"], a["lane.run.status"]) for a in said] == [("started", "paused"), ("resumed", "paused"), ("resumed", "completed")]
    assert said[0] | {"lane.run.segment": "", "lane.run.status": ""} == {
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "reply", "lane.run.id": run.run_id, "lane.runbook": "reply",
        "lane.runbook.version": 3, "lane.run.segment": "", "lane.run.status": "", "lane.usage.input_tokens": 300,
        "lane.usage.output_tokens": 50, "lane.cost_usd": pytest.approx(0.005)}
    assert [s.parent_span_id for s in segments] == [b"", b"", b""]
    assert [[link.span_id for link in s.links] for s in segments] == [[], [segments[0].span_id], [segments[1].span_id]]

    # The agent step: a span in each segment it ran in, under that segment, the second linked to the first.
    drafts = named(spans, "invoke_agent writer")
    assert [s.parent_span_id for s in drafts] == [segments[0].span_id, segments[1].span_id]
    assert [link.span_id for link in drafts[1].links] == [drafts[0].span_id]
    assert attributes(drafts[0].attributes) | {"lane.usage.input_tokens": 0} == {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer", "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "script.yaml", "lane.step.id": "draft", "lane.step.kind": "agent", "lane.step.status": "paused",
        "lane.usage.input_tokens": 0, "lane.usage.output_tokens": 50, "lane.cost_usd": pytest.approx(0.005)}
    assert attributes(drafts[1].attributes)["lane.step.status"] == "completed"

    # A chat span per model turn, under its step's span, with what the conventions name.
    chats = named(spans, "chat script.yaml")
    assert [c.parent_span_id for c in chats] == [drafts[0].span_id, drafts[0].span_id, drafts[1].span_id]
    assert all(c.kind == Span.SPAN_KIND_CLIENT for c in chats)
    assert attributes(chats[0].attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "scripted", "gen_ai.request.model": "script.yaml",
        "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30, "gen_ai.response.finish_reasons": ["tool_call"],
        "lane.cost_usd": 0.002, "lane.step.id": "draft", "lane.turn": 0}
    assert attributes(chats[2].attributes)["gen_ai.response.finish_reasons"] == ["stop"]

    # Tool calls: why each was allowed; the one a person approved runs in the segment after the approval.
    [find] = named(spans, "execute_tool crm.find")
    [send] = named(spans, "execute_tool crm.send")
    assert (find.parent_span_id, send.parent_span_id) == (drafts[0].span_id, drafts[1].span_id)
    assert attributes(find.attributes) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm.find", "gen_ai.tool.call.id": "draft:1",
        "gen_ai.tool.type": "function", "lane.step.id": "draft", "lane.tool.effect": "read", "lane.tool.autonomy": "guarded",
        "lane.tool.gate": "run", "lane.tool.basis": "autonomy guarded: a read call runs", "lane.tool.attempt": 1, "lane.tool.status": "ok"}
    assert {k: v for k, v in attributes(send.attributes).items() if k.startswith("lane.")} == {
        "lane.step.id": "draft", "lane.tool.effect": "external", "lane.tool.autonomy": "guarded", "lane.tool.gate": "approve",
        "lane.tool.basis": "autonomy guarded: an external call waits for a person", "lane.decision": "approved",
        "lane.decision.by": "lead", "lane.decision.edited": False, "lane.tool.attempt": 1, "lane.tool.status": "ok"}

    # The wait for a person: the request on the step's span that paused, the decision on the one that went on.
    [asked] = drafts[0].events
    assert asked.name == "approval_requested" and attributes(asked.attributes) == {
        "lane.approval.kind": "tool_call", "lane.call_id": "draft:2", "lane.approval.roles": ["lead"], "gen_ai.tool.name": "crm.send"}
    [decided] = drafts[1].events
    assert decided.name == "decision" and decided.time_unix_nano == drafts[1].start_time_unix_nano
    assert {k: v for k, v in attributes(decided.attributes).items() if k != "lane.decision.at"} == {
        "lane.approval.kind": "tool_call", "lane.call_id": "draft:2", "lane.decision": "approved", "lane.decision.by": "lead",
        "lane.decision.edited": False}
    reviews = named(spans, "step review")
    assert [(s.parent_span_id, attributes(s.attributes)["lane.step.status"]) for s in reviews] == [
        (segments[1].span_id, "paused"), (segments[2].span_id, "completed")]
    assert [e.name for e in reviews[0].events] == ["approval_requested"] and [e.name for e in reviews[1].events] == ["decision"]
    assert attributes(reviews[1].attributes)["lane.step.approved_by"] == "lead"
    assert all(s.start_time_unix_nano <= s.end_time_unix_nano for s in spans)


@pytest.mark.parametrize("content", [False, True])
def test_no_secret_reaches_the_collector_and_content_only_when_asked(project_dir: Path, receiver: Receiver,
                                                                    monkeypatch: pytest.MonkeyPatch, content: bool) -> None:
    canary, token = "canary-7f3a9c1e5b", "Bearer tok-2d8e41f0a6"
    monkeypatch.setenv("CANARY", canary)
    monkeypatch.setenv("OTLP_TOKEN", token)
    script = f"""
        draft:
          - tool_calls: [{{name: crm.find, args: {{email: {canary}@example.com}}}}]
          - text: The customer's code is {canary}.
          - output: {{sent: true}}
    """
    telemetry = f"{{endpoint: '{receiver.endpoint}', content: {str(content).lower()}, headers: {{Authorization: 'env:OTLP_TOKEN'}}}}"
    root = project_with(project_dir, telemetry, **{"script.yaml": script})
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text() + "secrets: [env:CANARY]\n")
    with lane.Project.load(root) as project:
        run = project.run("reply", {"body": f"My code is {canary}, please help."})
        run.approve()
        assert run.resume().status == "completed"
    lane.telemetry.shutdown()
    assert receiver.posts and all(headers["authorization"] == token for _, headers, _ in receiver.posts)
    sent = b"".join(body for _, _, body in receiver.posts)
    assert canary.encode() not in sent and token.encode() not in sent
    # The call that carried the secret was refused, and says why.
    [refused] = named(receiver.spans(), "execute_tool crm.find")
    assert attributes(refused.attributes)["lane.tool.status"] == "refused" and attributes(refused.attributes)["lane.tool.basis"] == "secrets"
    prompt, said = b"You write replies to customers of Acme.", b"The customer's code is [secret:CANARY]."
    if not content:  # not the prompt, the inputs, the model's words nor the arguments: nor the secret's redacted name
        assert prompt not in sent and said not in sent and b"ann@example.com" not in sent and b"[secret:CANARY]" not in sent
        return
    chats = named(receiver.spans(), "chat script.yaml")
    assert prompt.decode() in attributes(chats[0].attributes)["gen_ai.input.messages"]
    assert said.decode() in attributes(chats[1].attributes)["gen_ai.output.messages"]
    assert attributes(refused.attributes)["gen_ai.tool.call.arguments"] == '{"email": "[secret:CANARY]@example.com"}'
    [first] = named(receiver.spans(), "invoke_workflow reply")[:1]
    assert attributes(first.attributes)["lane.run.inputs"] == '{"body": "My code is [secret:CANARY], please help."}'


def test_the_standard_endpoint_variable_alone_turns_traces_on(project_dir: Path, receiver: Receiver,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    with lane.Project.load(project_with(project_dir)) as project:
        assert project.run("reply", {"body": "Hello."}).status == "paused"
    lane.telemetry.shutdown()
    assert {p[0] for p in receiver.posts} == {"/v1/traces"}
    assert {r["service.name"] for r in receiver.resources()} == {"lane"}
    assert [attributes(s.attributes)["lane.run.status"] for s in named(receiver.spans(), "invoke_workflow reply")] == ["paused"]


def test_a_run_cut_off_ends_its_segment_interrupted(project_dir: Path, receiver: Receiver) -> None:
    root = project_with(project_dir, f"{{endpoint: '{receiver.endpoint}'}}")
    with lane.Project.load(root) as project:
        with pytest.raises(KeyboardInterrupt):
            project.run("sync")
        [record] = project.runs()
    with lane.Project.load(root) as project:
        assert project.resume(record.run_id).status == "completed"
    lane.telemetry.shutdown()
    spans = receiver.spans()
    segments = named(spans, "invoke_workflow sync")
    assert [attributes(s.attributes)["lane.run.status"] for s in segments] == ["interrupted", "completed"]
    assert [link.span_id for link in segments[1].links] == [segments[0].span_id]
    pulls = named(spans, "execute_tool crm.pull")
    assert [attributes(p.attributes)["lane.tool.status"] for p in pulls] == ["interrupted", "ok"]
    assert [p.parent_span_id for p in pulls] == [s.span_id for s in named(spans, "step pull")]


@pytest.mark.timeout(60)  # a run or an exit that waited for the collector would hang here
def test_a_collector_that_is_down_costs_a_run_nothing(project_dir: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with lane.Project.load(project_with(project_dir, f"{{endpoint: 'http://127.0.0.1:{port}'}}")) as project:
        run = project.run("reply", {"body": "Hello."})
        run.approve()
        assert run.resume().status == "paused"
    lane.telemetry.shutdown()  # what a `lane` command does at exit: waits a short while, then gives up


def test_telemetry_without_the_extra_says_how_to_install_it(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if lane[otel] were not installed
    with lane.Project.load(project_with(project_dir / "on", "{endpoint: 'http://127.0.0.1:4318'}")) as project:
        with pytest.raises(lane.UsageError) as raised:
            project.run("reply", {"body": "Hello."})
    assert str(raised.value) == "telemetry: in lane.yaml needs OpenTelemetry, which is not installed: pip install 'lane[otel]'"
    # The standard variable may be set for other programs: without the extra, runs go on untraced.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    with lane.Project.load(project_with(project_dir / "env")) as project:
        assert project.run("reply", {"body": "Hello."}).status == "paused"


def test_without_telemetry_nothing_of_opentelemetry_is_imported(project_dir: Path) -> None:
    code = ("import sys, lane.project\n"
            "with lane.Project.load(sys.argv[1]) as project:\n"
            "    assert project.run('reply', {'body': 'Hello.'}).status == 'paused'\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", code, str(project_with(project_dir))], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_telemetry_that_cannot_work_leaves_no_run_behind(project_dir: Path) -> None:
    from conftest import lane as lane_command

    root = project_with(project_dir, "{endpoint: 'http://127.0.0.1:4318', headers: {Authorization: 'env:TRACE_TOKEN_UNSET'}}")
    refused = lane_command("run", "reply", "--input", "body=Hello.", cwd=root)
    assert refused.returncode == 2 and "TRACE_TOKEN_UNSET" in refused.stderr and "Traceback" not in refused.stderr
    assert lane_command("runs", "--json", cwd=root).stdout.strip() == "[]"  # said before the run was created

    (root / "lane.yaml").write_text((root / "lane.yaml").read_text().replace("'http://127.0.0.1:4318'", "'localhost:4318'"))
    checked = lane_command("validate", cwd=root)
    assert checked.returncode == 2 and "telemetry.endpoint is the collector's OTLP/HTTP address" in checked.stdout
