"""A clean checkout of what a task would commit: the base commit plus exactly the verified paths, nothing else.

VALIDATE runs there, not in the working tree, so what passes is what is committed: a file only `.gitignore` or
`.git/info/exclude` hides, a stray `conftest.py`, a link to an ignored file cannot change the result. The
checkout is a `git worktree` (detached at the base, its index and files the task's tree), made in a temporary
folder and removed afterwards; the repository's own hooks do not run while it is made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lane.coding.repo import git, run_git
from lane.store.owners import HOST, alive

PREFIX = "lane-verify-"
OWNER = "lane task verify, process "
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # a post-checkout hook must not run, nor change what is checked


@contextlib.contextmanager
def clean_checkout(root: Path, base: str, tree: str) -> Iterator[Path]:
    """A worktree detached at `base` whose index and files are `tree`; removed, with its registration, on exit.

    It is locked with this process's id: `git worktree prune` leaves it alone meanwhile, and a later verify
    removes it once that process is gone (killed before it could clean up)."""
    _remove_orphans(root)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        git(root, *NO_HOOKS, "worktree", "add", "--detach", "--no-checkout", "--lock", "--reason", f"{OWNER}{HOST}:{os.getpid()}",
            "-q", str(folder), base)
        git(folder, *NO_HOOKS, "read-tree", "--reset", "-u", tree)
        yield folder
    finally:
        _remove(root, folder)


def left_in(checkout: Path, tree: str) -> list[str]:
    """Paths the commands changed, added or deleted in the checkout that git does not ignore."""
    changed = git(checkout, "diff", "--name-only", "-z", "--no-ext-diff", "--ignore-submodules=all", tree, "--").split("\0")
    untracked = git(checkout, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return sorted({p for p in changed + untracked if p})


def _remove(root: Path, folder: Path) -> None:
    run_git(root, *NO_HOOKS, "worktree", "remove", "--force", "--force", str(folder))
    if folder.exists():  # a command left read-only folders, or git refused
        _make_writable(folder)
        shutil.rmtree(folder, ignore_errors=True)
    _remove_orphans(root)


def _remove_orphans(root: Path) -> None:
    """Remove lane's own checkouts whose verify is gone (killed), folder and registration; other worktrees are
    the person's and stay as they are."""
    admin = Path(git(root, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()) / "worktrees"
    if not admin.is_dir():
        return
    for entry in admin.iterdir():
        with contextlib.suppress(OSError, ValueError):
            reason = (entry / "locked").read_text(encoding="utf-8").strip() if (entry / "locked").exists() else ""
            if not entry.name.startswith(PREFIX) or not reason.startswith(OWNER) or alive(reason[len(OWNER):]):
                continue
            where = Path((entry / "gitdir").read_text(encoding="utf-8").strip()).parent
            if where.name.startswith(PREFIX) and where.exists():
                _make_writable(where)
                shutil.rmtree(where, ignore_errors=True)
            shutil.rmtree(entry, ignore_errors=True)


def _make_writable(folder: Path) -> None:
    """Let every folder under `folder` be emptied, whatever modes a command left."""
    for dirpath, _, _ in os.walk(folder):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IRWXU)
