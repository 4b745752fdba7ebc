"""A canary secret used by tools that echo it: afterwards nothing lane stored or printed holds it."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import lane, write_project
from lane.secrets import Redactor


class EchoHeaders(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def echo_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHeaders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_canary_secret_is_found_nowhere(tmp_path: Path, echo_server: int) -> None:
    canary = "canary-" + secrets.token_hex(12)
    root = write_project(tmp_path, {
        "lane.yaml": f"""
            project: canary
            roles:
              lead: {{kind: human}}
              helper: {{kind: agent}}
            secrets: [env:LANE_CANARY]
            toolsets:
              echo: {{python: tools/echo.py}}
              shout: {{command: [sh, -c, 'echo "token $LANE_CANARY"; echo "token $LANE_CANARY" >&2'], effect: read}}
              api:
                http: {{url: "http://127.0.0.1:{echo_server}/echo", headers: {{Authorization: "Bearer env:LANE_CANARY"}}}}
                effect: read
        """,
        "agents/helper.md": """
            ---
            name: helper
            model: scripted:script.yaml
            autonomy: auto
            tools: [echo.*]
            ---
            You help.
        """,
        # A model that repeats the secret it read: its text and output hold it too.
        "script.yaml": f"""
            - tool_calls: [{{name: echo.reveal}}, {{name: echo.fail}}]
            - text: "I found {canary}"
              output: {{summary: "the token is {canary}"}}
        """,
        "runbooks/flow.yaml": """
            runbook: flow
            autonomy: auto
            steps:
              - {id: reveal, tool: echo.reveal}
              - {id: shout, tool: shout}
              - {id: api, tool: api}
              - id: think
                agent: helper
                goal: Summarise.
                output: {type: object, properties: {summary: {type: string}}, required: [summary]}
              - id: review
                human: lead
                approve: "${{ steps.think.output }}"
        """,
        "tools/echo.py": """
            import os
            from lane import tool

            @tool(effect="read")
            def reveal() -> dict:
                \"\"\"Shows the token.\"\"\"
                return {"token": os.environ["LANE_CANARY"], "header": "Bearer " + os.environ["LANE_CANARY"]}

            @tool(effect="read")
            def fail() -> str:
                \"\"\"Fails, naming the token.\"\"\"
                raise RuntimeError("bad token " + os.environ["LANE_CANARY"])
        """,
    })
    env = {"LANE_CANARY": canary}
    printed: list[str] = []

    def cli(*args: str) -> str:
        result = lane(*args, cwd=root, env=env)
        printed.append(result.stdout + result.stderr)
        return result.stdout

    cli("validate")
    run_id = json.loads(cli("run", "flow", "--input", f"note={canary}", "--json"))["run_id"]
    refused = lane("approve", run_id, "--edit", json.dumps({"summary": f"edited with {canary}"}), cwd=root, env=env)
    printed.append(refused.stdout + refused.stderr)
    assert refused.returncode == 2 and "holds the value of a secret" in refused.stderr  # never stored, never passed on
    cli("approve", run_id, "--edit", json.dumps({"summary": "edited"}))
    cli("resume", run_id)
    cli("runs")
    cli("runs", "--json")
    cli("show", run_id)
    shown = cli("show", run_id, "--json")
    cli("audit", run_id)
    cli("audit", run_id, "--json")
    cli("show", "no-such-run")

    view = json.loads(shown)
    assert view["status"] == "completed", view["reason"]
    # The tools did see and echo the secret: it was there, and replaced before it was stored.
    assert "[secret:LANE_CANARY]" in json.dumps(view)
    assert view["steps"][0]["output"]["token"] == "[secret:LANE_CANARY]"
    for text in printed:
        assert canary not in text
    stored = [p for p in (root / ".lane").rglob("*") if p.is_file()]
    assert stored, "the run left no files to search"
    for path in stored:
        assert canary.encode() not in path.read_bytes(), path


def test_redaction_reaches_every_string_and_prefers_the_longest_secret() -> None:
    redact = Redactor(["SHORT", "LONG", "TINY", "MISSING"], {"SHORT": "abcd", "LONG": "abcdefgh", "TINY": "ab"})
    data = {"k abcdefgh": ["x abcd y", {"n": 1, "t": "abcdefgh!"}], "tiny": "ab"}
    assert redact(data) == {
        "k [secret:LONG]": ["x [secret:SHORT] y", {"n": 1, "t": "[secret:LONG]!"}],
        "tiny": "ab",  # shorter than four characters: not treated as a secret
    }
    assert os.environ.get("MISSING") is None


def test_a_secret_in_a_failing_commands_output_reaches_no_terminal_and_no_json(tmp_path: Path) -> None:
    from conftest import on_a_terminal

    canary = "canary-" + secrets.token_hex(12)
    root = write_project(tmp_path, {
        "lane.yaml": """
            project: canary
            roles: {lead: {kind: human}}
            secrets: [env:LANE_CANARY]
        """,
        "runbooks/flow.yaml": """
            runbook: flow
            steps:
              - id: ask
                human: lead
                input: {type: object}
              - {id: leak, check: [sh, -c, 'echo "deploy failed with token $LANE_CANARY" >&2; exit 1']}
        """,
    })
    env = {"LANE_CANARY": canary}
    printed: list[str] = []

    def cli(*args: str) -> str:
        result = lane(*args, cwd=root, env=env)
        printed.append(result.stdout + result.stderr)
        return result.stdout

    run_id = json.loads(cli("run", "flow", "--json"))["run_id"]
    cli("approve", run_id, "--edit", "{}")
    ended = json.loads(cli("resume", run_id, "--json"))
    assert ended["status"] == "failed" and "[secret:LANE_CANARY]" in ended["reason"]
    cli("retry", run_id)
    cli("retry", run_id, "--json")
    cli("run", "flow")
    for args in (["runs"], ["runs", "--json"], ["show", run_id], ["show", run_id, "--json"], ["audit", run_id], ["audit", run_id, "--json"]):
        cli(*args)
    os.environ["LANE_CANARY"] = canary  # the terminal runs see it too
    try:
        printed.append(on_a_terminal(["resume", run_id], root))
        printed.append(on_a_terminal(["retry", run_id], root))
        printed.append(on_a_terminal(["show", run_id], root))
    finally:
        del os.environ["LANE_CANARY"]
    assert any("[secret:LANE_CANARY]" in text for text in printed)  # the reason was shown, scrubbed
    for text in printed:
        assert canary not in text
