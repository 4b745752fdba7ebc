"""The OpenAI-compatible provider against a real server on loopback: llama.cpp's own
server (`python -m llama_cpp.server`) serving the built-in GGUF file. Not a mock.

Slow: starts a server process and loads a 250 MB model. Runs in CI.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import lane
from conftest import CLASSIFY_RUNBOOK, write_project

pytest.importorskip("pydantic_ai", reason="install lane[hosted]")
pytest.importorskip("llama_cpp.server.app", reason="install llama-cpp-python[server]")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from lane.models.weights import default_weights

    log = tmp_path_factory.mktemp("server") / "server.log"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log.open("w") as sink:  # a pipe nobody reads would fill and stall the server
        # As lane loads it: without llama.cpp's AMX path where the CPU lists AMX it does not enable (see lane.models.local).
        serve = ("import runpy, llama_cpp\nfrom lane.models.local import without_amx\n"
                 "with without_amx(llama_cpp):\n    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)")
        process = subprocess.Popen(
            [sys.executable, "-c", serve, "--model", str(default_weights()), "--host", "127.0.0.1",
             "--port", str(port), "--chat_format", "chatml-function-calling", "--n_ctx", "4096", "--model_alias", "gemma"],
            stdout=subprocess.DEVNULL, stderr=sink,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def make_project(root: Path, url: str) -> Path:
    return write_project(root, {
        "lane.yaml": f"""
            project: compatible
            models:
              default: office
              office: {{provider: openai, base_url: "{url}", model: gemma}}
            roles:
              lead: {{kind: human}}
              triager: {{kind: agent}}
            retry: {{attempts: 2, delay: 0.1}}
        """,
        "agents/triager.md": """
            ---
            name: triager
            autonomy: auto
            settings: {temperature: 0, max_tokens: 48, timeout: 120}
            ---
            You sort support email into categories: billing, bug or other.
        """,
        "runbooks/classify.yaml": CLASSIFY_RUNBOOK,
    })


EMAILS = ["I was charged twice for March.", "The app crashes when I press save.", "Where is your office?"]


def test_runs_complete_through_a_real_openai_compatible_server(tmp_path: Path, server: str) -> None:
    project = lane.Project.load(make_project(tmp_path, server))
    for email in EMAILS:
        run = project.run("classify", {"email": email})
        assert run.status == "completed", run.reason
        view = project.show(run.run_id)
        assert view["steps"][0]["output"]["category"] in ("billing", "bug", "other")
        usage = view["usage"]
        assert usage["input_tokens"] > 20 and usage["output_tokens"] > 0
        assert usage["unpriced_calls"] == 1  # a self-hosted model has no known price
        assert view["steps"][0]["context"]["model"] == "openai:gemma"


def test_a_server_by_base_url_does_not_stream_unless_asked(tmp_path: Path, server: str) -> None:
    """llama.cpp's server repeats a tool's name in every streamed piece and sends no usage: lane asks for whole replies."""
    project = lane.Project.load(make_project(tmp_path, server))
    pieces: list[str] = []
    run = project.run("classify", {"email": EMAILS[0]}, on_stream=pieces.append)
    assert run.status == "completed", run.reason
    assert pieces == []
    assert project.show(run.run_id)["usage"]["input_tokens"] > 20
