"""A git working tree as the coding track sees it: git run without a shell, the top folder, files written whole."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

from lane.errors import UsageError


def run_git(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120.0,
            given: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """git without a shell, whatever its exit code, its stdin `given` (else none); raises OSError or
    TimeoutExpired when it cannot run."""
    command, where, environment = ["git", "-c", "core.quotePath=false", *args], root, {**os.environ, **env} if env else None
    if given is not None:
        return subprocess.run(command, cwd=where, capture_output=True, timeout=timeout, env=environment, input=given)
    return subprocess.run(command, cwd=where, capture_output=True, timeout=timeout, env=environment, stdin=subprocess.DEVNULL)


def git(root: Path, *args: str, env: dict[str, str] | None = None, given: bytes | None = None) -> str:
    """What git prints; UsageError, with git's own words, when it fails or cannot run."""
    try:
        done = run_git(root, *args, env=env, given=given)
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


@functools.lru_cache(maxsize=32)
def top_of_repo(folder: Path) -> Path:
    """`folder` itself, when it is the top folder of a git repository: where FILES and task paths count from.

    Remembered per folder: a project's runbooks ask once for every step that works a task."""
    top = repo_root(folder)
    if top.resolve() != folder.resolve():
        raise UsageError(f"{folder.resolve()} must be the top folder of its git repository ({top}): tasks name paths from there")
    return top


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def tree_with(root: Path, base: str, paths: list[str], *, forced: tuple[str, ...] = ()) -> str:
    """The id of `base`'s tree with `paths` as the working tree has them (added, changed or deleted).

    Built in an index of its own, so what is staged in the repository's index and flags on its entries cannot
    change it; `forced` paths are taken although git ignores them (files only `.git/info/exclude` hides)."""
    with tempfile.TemporaryDirectory(prefix="lane-index-") as folder:
        env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        git(root, "read-tree", base, env=env)
        plain = [p for p in paths if p not in forced]
        for chosen, force in ((plain, ()), (list(forced), ("--force",))):
            if chosen:  # on stdin: any number of paths, any names (a leading '-', a newline)
                git(root, "add", "-A", *force, "--pathspec-from-file=-", "--pathspec-file-nul", env=env,
                    given="\0".join(f":(literal){p}" for p in chosen).encode())
        return git(root, "write-tree", env=env).strip()


def commit_paths(root: Path, paths: list[str], message: str, *, forced: tuple[str, ...] = ()) -> str:
    """Commit the working-tree content of `paths` on top of HEAD, and nothing else; returns the new commit.

    The commit holds `tree_with(HEAD, paths)`, so nothing staged besides, no flag on an index entry and no hook
    can change it. Those paths are then reset in the real index to the new commit; everything else staged
    stays staged."""
    head = git(root, "rev-parse", "--verify", "HEAD").strip()
    tree = tree_with(root, head, paths, forced=forced)
    if tree == git(root, "rev-parse", f"{head}^{{tree}}").strip():
        raise UsageError(f"nothing to commit: {', '.join(paths)} are as HEAD has them")
    commit = git(root, "commit-tree", tree, "-p", head, "-m", message).strip()
    git(root, "update-ref", "-m", f"commit: {message.splitlines()[0]}", "HEAD", commit, head)
    git(root, "reset", "-q", commit, "--pathspec-from-file=-", "--pathspec-file-nul",
        given="\0".join(f":(literal){p}" for p in paths).encode())
    return commit
