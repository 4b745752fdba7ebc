"""The README's two commands, exactly as written, from a fresh copy of the repository in a clean environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSIDE = "LANE_README_CHECK"  # set for the suite that the second command runs, so it does not run itself again


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < 200, "the README starts with its two commands"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    return lines


def fresh_copy(into: Path) -> Path:
    """The repository's tracked files as they are now: what a clone of this commit holds."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def clean_env() -> dict[str, str]:
    """This machine's environment without this test run's virtual environment."""
    venv = Path(sys.prefix)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not Path(p).is_relative_to(venv)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("PYTEST")}
    return {**env, "PATH": os.pathsep.join(path), INSIDE: "1", "TERM": "xterm-256color", "COLUMNS": "120"}


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.skipif(bool(os.environ.get(INSIDE)), reason="this is the suite the README's test command runs; it does not run itself again")
def test_the_readme_commands_work_from_a_fresh_copy(tmp_path: Path) -> None:
    import pexpect

    demo_line, test_line = readme_commands()
    assert "lane demo" in demo_line and "pytest" in test_line
    # The main job, on a terminal as a newcomer runs it: approve each reply as it comes.
    first = fresh_copy(tmp_path / "first")
    child = pexpect.spawn("bash", ["-c", demo_line], cwd=str(first), env=clean_env(), encoding="utf-8", timeout=1200, dimensions=(50, 120))
    child.expect(r"demo project: (?:\x1b\[[0-9;]*m)*([^\s\x1b]+)")
    demo = Path(child.match.group(1))
    approved = 0
    while child.expect_exact(["[a/e/r]", pexpect.EOF]) == 0:
        child.sendline("a")
        approved += 1
    child.close()
    assert child.exitstatus == 0, child.before[-3000:]
    assert approved == 8 and len(list((demo / "outbox").glob("*.eml"))) == 8
    shutil.rmtree(demo)
    # The test suite, in its own fresh copy.
    second = fresh_copy(tmp_path / "second")
    tests = subprocess.run(["bash", "-c", test_line], cwd=second, env=clean_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=2000)
    tail = tests.stdout[-3000:]
    assert tests.returncode == 0, tail + tests.stderr[-2000:]
    summary = tail.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, tail
