"""Shared test helpers: build real projects in temporary folders, run the real `lane` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporal_server import temporal, workers  # noqa: F401 - the session's Temporal dev server, a test's lane workers: fixtures

from pg import Cluster, postgres  # noqa: F401 - the session's throw-away PostgreSQL cluster, a fixture

LANE = [sys.executable, "-m", "lane"]
MCP_SERVERS = Path(__file__).parent / "mcp_servers"  # the npm MCP servers, pinned in its package.json
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"  # the time MCP server, from PyPI
CLASSIFY_RUNBOOK = """
    runbook: classify
    inputs: {type: object, properties: {email: {type: string}}, required: [email]}
    steps:
      - id: classify
        agent: triager
        goal: Classify the email.
        with: {email: "${{ inputs.email }}"}
        output:
          type: object
          properties: {category: {enum: [billing, bug, other]}}
          required: [category]
"""  # one agent step, three categories: for tests of how a model is called


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write files (paths relative to root; text is dedented) and return root."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def lane(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `lane` command in a subprocess."""
    return subprocess.run(
        [*LANE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, stdin=subprocess.DEVNULL,
    )


def lane_json(*args: str, cwd: Path) -> Any:
    result = lane(*args, "--json", cwd=cwd)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def on_a_terminal(args: list[str], cwd: Path) -> str:
    """Run the real `lane` on a pseudo-terminal and return what the person would see."""
    import pty
    import re

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "lane", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(master)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))  # colours and cursor moves


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path / "project"


@dataclass(frozen=True)
class Backing:
    """Where a test's store lives: a SQLite file in the project, or a fresh database of the throw-away cluster."""

    kind: str  # sqlite | postgresql
    url: str  # what lane.yaml's store: says
    cluster: Cluster | None = None

    def open(self, root: Path) -> Any:
        from lane.store.url import open_store

        return open_store(self.url, root)

    def fresh(self) -> Backing:
        """Another store of the same kind, empty (for SQLite: the same URL in another project)."""
        return self if self.cluster is None else Backing(self.kind, self.cluster.new_database(), self.cluster)

    def project_yaml(self, text: str) -> str:
        """`text` (a lane.yaml) with this store."""
        return textwrap.dedent(text).rstrip("\n") + f"\nstore: '{self.url}'\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def backing(request: pytest.FixtureRequest) -> Backing:
    """Each store that keeps runs across processes, in turn: the test runs once on each."""
    if request.param == "sqlite":
        return Backing("sqlite", "sqlite:///.lane/lane.db")
    cluster: Cluster = request.getfixturevalue("postgres")
    return Backing("postgresql", cluster.new_database(), cluster)


@dataclass(frozen=True)
class NodeServers:
    filesystem: Path
    everything: Path


@pytest.fixture(scope="session")
def node_servers() -> NodeServers:
    """The npm servers' entry scripts, installed from the lock when node_modules is missing or older than it."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "the MCP tests need node and npm on PATH"
    installed = MCP_SERVERS / "node_modules" / ".package-lock.json"  # npm writes it after each install
    if not installed.exists() or installed.stat().st_mtime < (MCP_SERVERS / "package-lock.json").stat().st_mtime:
        subprocess.run([npm, "ci", "--prefix", str(MCP_SERVERS), "--no-audit", "--no-fund"], check=True, capture_output=True, timeout=600)
    scope = MCP_SERVERS / "node_modules" / "@modelcontextprotocol"
    return NodeServers(scope / "server-filesystem" / "dist" / "index.js", scope / "server-everything" / "dist" / "index.js")


# The README test runs the README's test command in a fresh copy of the repository to check
# the install from a clean clone. That inner run takes these files, a quick representative
# subset (the API, the CLI, each step kind, approvals, the store, secrets), not the whole
# suite a second time: the outer run already runs everything.
README_SUBSET = ("test_api.py", "test_cli.py", "test_steps.py", "test_approvals.py", "test_store.py", "test_secrets.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("LANE_README_CHECK"):
        return
    keep = [item for item in items if item.path.name in README_SUBSET]
    config.hook.pytest_deselected(items=[item for item in items if item.path.name not in README_SUBSET])
    items[:] = keep
