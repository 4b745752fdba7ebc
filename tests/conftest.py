"""Shared test helpers: build real projects in temporary folders, run the real `lane` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

LANE = [sys.executable, "-m", "lane"]
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
