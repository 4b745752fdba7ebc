"""Commit a verified task, and a signed lock: what a person approved goes into git as it was checked.

`commit_task` takes exactly the changes `lane task verify` passed: the evidence
must say it passed, against the task's base (HEAD, or a commit HEAD descends
from: commits made since count as the task's), and the working tree must hold
the same changes with the same contents (a fingerprint recorded by verify). Both commit with git's plumbing (`repo.commit_paths`): the commit holds
HEAD's tree plus those paths as they are in the working tree, so nothing staged
besides, no flag on an index entry and no hook can change it. Git's hooks do
not run: checks belong in the task's VALIDATE block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lane.coding.locks import LOCK_FILE, SIGNOFF_FILE, check_lock, lock_path
from lane.coding.repo import commit_paths, git, repo_root
from lane.coding.tasks import evidence_path, load_task
from lane.coding.verify import changed_paths, contents, current_changes, fingerprint, forced_paths
from lane.errors import UsageError


class ChangedSinceVerify(UsageError):
    """The working tree no longer holds what verify passed: verify again (`lane task commit --reverify` does)."""


@dataclass(frozen=True)
class Committed:
    sha: str
    paths: list[str]
    message: str


def commit_task(project: Path, feature: str, name: str, message: str | None = None) -> Committed:
    """Commit the verified changes of FEATURE/NAME with their evidence; UsageError when they are not what was verified."""
    from lane.coding.hooks import ACTIVE, active, stop

    root = repo_root(project)
    task = load_task(root, feature, name)
    again = f"run `lane task verify {feature} {name}`, then commit"
    evidence_file = evidence_path(root, feature, name)
    try:
        evidence = json.loads(evidence_file.read_text(encoding="utf-8"))
        passed, base, recorded = evidence["passed"], evidence["base_sha"], evidence["fingerprint"]
    except FileNotFoundError:
        raise UsageError(f"task {feature}/{name} has no evidence yet: {again}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the evidence {task.own_files[1]} ({exc}): {again}") from None
    if passed is not True or not all(isinstance(c, dict) and c.get("passed") is True for c in evidence.get("checks") or [{}]):
        raise UsageError(f"the last verification of {feature}/{name} failed (see {task.own_files[1]}); fix the work, then {again}")
    head = git(root, "rev-parse", "--verify", "HEAD").strip()
    if base != head and not _is_ancestor(root, str(base), head):
        raise UsageError(f"{feature}/{name} was verified against {str(base)[:12]}, which HEAD ({head[:12]}) no longer descends "
                         f"from: {again}")
    if base != head and not [c for c in current_changes(root, head) if c.path != task.own_files[1]]:
        raise UsageError(f"nothing to commit: the changes {feature}/{name} verified are in HEAD ({head[:12]}) already")
    changes = current_changes(root, str(base))  # since the base: commits made meanwhile are part of the task's change
    if fingerprint(changes, contents(root, changes), skip=task.own_files[1]) != recorded:
        changed = _changed_since(root, changes, evidence)
        raise ChangedSinceVerify(f"the working tree changed after {feature}/{name} was verified{changed}: {again}")
    current = active(root) if (root / ACTIVE).exists() else None
    if current is not None and (current.feature, current.task) != (feature, name):
        raise UsageError(f"task {current.feature}/{current.task} is active, not {feature}/{name}; `lane task stop` ends it")
    paths = sorted({*changed_paths(changes), task.own_files[1]})
    text = message or (f"{feature}: task {name}\n\nVerified by `lane task verify {feature} {name}`: {len(changes)} changed "
                       f"path{'s' if len(changes) != 1 else ''}, all in FILES; every VALIDATE command exited 0.\n"
                       f"Evidence: {task.own_files[1]}\n")
    sha = commit_paths(root, paths, text, forced=forced_paths(changes))
    if current is not None:
        stop(root)  # the task is done: its hooks go
    return Committed(sha, paths, text)


def _is_ancestor(root: Path, base: str, head: str) -> bool:
    import subprocess

    return subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", base, head], capture_output=True).returncode == 0


def _changed_since(root: Path, changes: list[Any], evidence: dict[str, Any]) -> str:
    """Which paths differ from what verify recorded, as ` (PATH, ...)`, when the evidence says."""
    recorded = evidence.get("contents")
    if not isinstance(recorded, dict):
        return ""
    now = {path: value for path, value in contents(root, changes).items() if path != evidence.get("evidence_file")}
    paths = sorted(str(p) for p in set(now) | set(recorded) if now.get(p) != recorded.get(p))
    return f": {', '.join(paths[:5])}" if paths else ""


def commit_lock(project: Path, feature: str) -> Committed:
    """Commit FEATURE's lock and its valid sign-off, and nothing else (other staged work stays staged)."""
    root = repo_root(project)
    report = check_lock(project, feature)
    if not report.signed:
        raise UsageError(f"the lock of {feature} is not signed" + (" (its sign-off is void)" if report.void else "")
                         + f": `lane lock sign {feature} --by NAME` first")
    folder = lock_path(project, feature).parent.resolve().relative_to(root.resolve()).as_posix()
    paths = [f"{folder}/{LOCK_FILE}", f"{folder}/{SIGNOFF_FILE}"]
    text = f"{feature}: lock signed by {report.signed_by}\n\nSigned at {report.signed_at}; any later edit to {paths[0]} voids it.\n"
    return Committed(commit_paths(root, paths, text), paths, text)
