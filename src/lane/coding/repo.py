"""A git working tree as the coding track sees it: git run without a shell, the top folder, files written whole."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from lane.errors import UsageError


def git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=root, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"git could not run in {root}: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed in {root}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8", errors="surrogateescape")


def repo_root(path: Path) -> Path:
    """The top folder of the git repository holding `path`."""
    try:
        found = git(path, "rev-parse", "--show-toplevel").strip()
    except UsageError:
        raise UsageError(f"{path} is not inside a git repository; tasks are checked against git (git init, then a first commit)") from None
    return Path(found)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
