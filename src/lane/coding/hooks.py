"""Enforcement inside coding tools: a task's FILES, held by Claude Code and by git while the task is active.

`start` marks the active task in `.lane/active-task.json` and installs two hooks:
a Claude Code `PreToolUse` hook in `.claude/settings.local.json` (the file that is one person's, never
shared: the hook names this machine's Python) that runs `lane hook claude` for file edits and Bash, and a git `pre-commit` hook that runs `lane hook pre-commit`.
`stop` removes exactly what `start` added. Both hooks fail closed: any error
denies the edit or blocks the commit, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lane.coding.repo import git, repo_root, write_atomically
from lane.coding.tasks import load_task, records_work
from lane.errors import UsageError

ACTIVE = Path(".lane") / "active-task.json"
REFUSED = Path(".lane") / "refused.jsonl"  # what the Claude Code hook denied while a task was active: for its review
SETTINGS = Path(".claude") / "settings.local.json"  # one person's settings: the hook names this machine's Python
EDIT_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
MATCHER = "|".join((*EDIT_TOOLS, "Bash"))
PRE_COMMIT_MARK = "# lane: task pre-commit hook"
SAVED_SUFFIX = ".lane-saved"


@dataclass(frozen=True)
class Active:
    feature: str
    task: str
    base: str | None = None  # the commit the task started from: every commit since counts as its change
    exclude: str | None = None  # sha256 of .git/info/exclude when it started: a change hides files from verify


def lane_command(*args: str) -> str:
    """How a hook calls this lane: by the interpreter's absolute path, so PATH does not matter; `-P` keeps a
    file in the repository from shadowing a module lane imports."""
    return shlex.join([sys.executable, "-P", "-m", "lane", *args])


def start(root: Path, feature: str, task: str) -> list[str]:
    """Mark the task active and install both hooks; returns what was done, for the person."""
    load_task(root, feature, task)  # a task that does not exist, or no git repository, is a usage error
    _hooks_dir(root)  # before anything is written
    exclude_state(root)
    base = _head(root)
    _write_json(root / ACTIVE, {"feature": feature, "task": task, "base": base, "exclude": exclude_digest(root)})
    (root / REFUSED).unlink(missing_ok=True)  # a new task's review lists only its own refusals
    done = [f"active task: {feature}/{task} ({ACTIVE})" + (f", based on {base[:12]}" if base else "")]
    done.append(_install_claude(root))
    done.append(_install_pre_commit(root))
    return done


def stop(root: Path) -> list[str]:
    done = []
    if (root / ACTIVE).exists():
        (root / ACTIVE).unlink()
        done.append(f"no active task ({ACTIVE} removed)")
    done.append(_remove_claude(root))
    done.append(_remove_pre_commit(root))
    return [d for d in done if d]


def exclude_digest(root: Path) -> str:
    """The sha256 of the repository's .git/info/exclude (of nothing, when there is none)."""
    import hashlib

    exclude = root / git(root, "rev-parse", "--git-path", "info/exclude").strip()
    return hashlib.sha256(exclude.read_bytes() if exclude.is_file() else b"").hexdigest()


def _head(root: Path) -> str | None:
    """HEAD's commit, or None in a repository with no commit yet."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip() or None
    except UsageError:
        return None


def task_base(root: Path, feature: str, task: str) -> str:
    """What a task's change is measured from: the commit `lane task start` recorded while it is the active task,
    else HEAD."""
    path = root / ACTIVE
    if path.exists():
        current = active(root)
        if (current.feature, current.task) == (feature, task) and current.base:
            return current.base
    return "HEAD"


def active(root: Path) -> Active:
    path = root / ACTIVE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Active(str(data["feature"]), str(data["task"]), str(data["base"]) if data.get("base") else None,
                      str(data["exclude"]) if data.get("exclude") else None)
    except FileNotFoundError:
        raise UsageError(f"no active task in {root}: `lane task start FEATURE TASK` sets one") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a valid active-task file ({exc}); run `lane task start FEATURE TASK` again") from None


# -- Claude Code ----------------------------------------------------------------


def claude_decision(payload: str, root: Path | None = None) -> dict[str, Any]:
    """The PreToolUse answer for one hook input (JSON text): allow inside FILES, deny anything else.

    A tool other than an edit gets no answer (`{}`): Claude Code's own permissions decide it."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("the hook input is not a JSON object")
        tool = data.get("tool_name")
        if not isinstance(tool, str) or not tool:
            raise ValueError("the hook input has no tool_name")
        if tool == "Bash":
            return _bash_decision(data, root)
        if tool not in EDIT_TOOLS:
            return {}
        tool_input = data.get("tool_input")
        path = (tool_input.get("file_path") or tool_input.get("notebook_path")) if isinstance(tool_input, dict) else None
        if not isinstance(path, str) or not path:
            raise ValueError(f"{tool} input has no file_path")
        base = root or Path(str(data.get("cwd") or os.getcwd()))
        repo = repo_root(base)
        current = active(repo)
        spec = load_task(repo, current.feature, current.task)
        target = Path(path) if os.path.isabs(path) else base / path
        rel = _relative(target, repo)
        if rel is None:
            why = f"{path} is outside the repository {repo}; task {current.feature}/{current.task} may change only its FILES"
        elif records_work(rel) or rel.startswith((".claude/", ".git/", ".lane/")):
            # Locks, tasks, evidence and the hooks' own settings: editing them would widen or fake the work.
            why = f"{rel} defines or records the work of task {current.feature}/{current.task}; a person changes it, not the agent"
        elif not spec.in_scope(rel):
            why = (f"{rel} is not in the FILES of task {current.feature}/{current.task} ({', '.join(spec.files) or 'none'}); "
                   "change only those, or ask the person to widen the task")
        else:
            return _decision("allow", f"{rel} is in the FILES of task {current.feature}/{current.task}")
        _note_refusal(repo, current, tool, rel or path, why)
        return _decision("deny", why)
    except Exception as exc:  # fail closed: a hook that cannot decide denies
        return _decision("deny", f"lane could not check this edit, so it is denied: {exc}")


def _bash_decision(data: dict[str, Any], root: Path | None) -> dict[str, Any]:
    """Deny a Bash command that would commit, skip or move hooks, write or put back a path outside FILES, or change
    lane's state; no answer otherwise (Claude Code's permissions decide). Best effort: verify is the backstop."""
    from lane.coding.shell_guard import bash_denial, path_check

    tool_input = data.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        raise ValueError("Bash input has no command")
    cwd = root or Path(str(data.get("cwd") or os.getcwd()))
    repo = repo_root(cwd)
    current = active(repo)
    spec = load_task(repo, current.feature, current.task)
    task = f"{current.feature}/{current.task}"

    def guarded(rel: str) -> bool:
        return records_work(rel) or rel == ACTIVE.as_posix() or rel.startswith((".claude/", ".git/", ".lane/"))

    denial = bash_denial(command, path_check(cwd, repo, spec.in_scope, guarded, ", ".join(spec.files) or "none", task))
    if not denial:
        return {}
    _note_refusal(repo, current, "Bash", None, denial)
    return _decision("deny", denial)


def _note_refusal(repo: Path, current: Active, tool: str, path: str | None, reason: str) -> None:
    """Keep what the hook denied, for the task's verification and its review; never in the way of the answer.

    The tool, the path and lane's reason only: a command's own text can hold what must not be written down."""
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "feature": current.feature, "task": current.task,
             "tool": tool, **({"path": path} if path else {}), "reason": reason}
    with contextlib.suppress(OSError):  # never through a link: the file is lane's, not where a link points
        descriptor = os.open(repo / REFUSED, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def refusals(root: Path, feature: str, task: str) -> list[dict[str, Any]]:
    """What the Claude Code hook denied for FEATURE/TASK since `lane task start`, oldest first."""
    try:
        lines = (root / REFUSED).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and (entry.get("feature"), entry.get("task")) == (feature, task):
                found.append({k: entry[k] for k in ("at", "tool", "path", "reason") if k in entry})
    return found


def _decision(decision: str, reason: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": decision, "permissionDecisionReason": reason}}


def _install_claude(root: Path) -> str:
    path = root / SETTINGS
    settings = _read_settings(path)
    hooks = settings.setdefault("hooks", {})
    entries = hooks.setdefault("PreToolUse", [])
    if not isinstance(entries, list):
        raise UsageError(f"{path}: hooks.PreToolUse must be a list; fix the file, then run this again")
    entries[:] = [e for e in entries if not _ours(e)]
    # `|| exit 2`: if lane cannot even start, Claude Code must block the edit, not go on (any other exit lets it).
    entries.append({"matcher": MATCHER, "hooks": [{"type": "command", "command": lane_command("hook", "claude") + " || exit 2"}]})
    _write_json(path, settings)
    return f"Claude Code hook: PreToolUse on {MATCHER} runs `lane hook claude` ({SETTINGS})"


def _remove_claude(root: Path) -> str:
    path = root / SETTINGS
    if not path.exists():
        return ""
    settings = _read_settings(path)
    entries = settings.get("hooks", {}).get("PreToolUse")
    if not isinstance(entries, list) or not any(_ours(e) for e in entries):
        return ""
    entries[:] = [e for e in entries if not _ours(e)]
    if not entries:
        del settings["hooks"]["PreToolUse"]
    if not settings["hooks"]:
        del settings["hooks"]
    if settings:
        _write_json(path, settings)
    else:
        path.unlink()  # lane made it, or it held only lane's hook
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # and the folder, when nothing else is in it
    return f"Claude Code hook removed from {SETTINGS}"


def without_lane_hooks(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with lane's hook entry taken out (and what it emptied), to tell lane's change from anyone's."""
    copy = json.loads(json.dumps(settings))
    entries = copy.get("hooks", {}).get("PreToolUse")
    if isinstance(entries, list):
        entries[:] = [e for e in entries if not _ours(e)]
        if not entries:
            del copy["hooks"]["PreToolUse"]
        if not copy["hooks"]:
            del copy["hooks"]
    return dict(copy)


def _ours(entry: Any) -> bool:
    return isinstance(entry, dict) and any(
        isinstance(h, dict) and "-m lane hook claude" in str(h.get("command", "")) for h in entry.get("hooks") or ()
    )


def _read_settings(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); fix it, then run this again") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


# -- git pre-commit -----------------------------------------------------------------


def staged_outside(root: Path) -> tuple[Active, list[str]]:
    """The staged paths (both sides of a rename) outside the active task's FILES."""
    current = active(root)
    spec = load_task(root, current.feature, current.task)
    out = git(root, "diff", "--cached", "--name-status", "-M", "-z")
    fields = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        count = 2 if status[:1] in ("R", "C") else 1
        paths += fields[i + 1 : i + 1 + count]
        i += 1 + count
    return current, sorted({p for p in paths if not spec.in_scope(p)})


def exclude_state(root: Path) -> None:
    """lane's state folder, and the personal settings that hold lane's hook, are never part of a commit: say so in
    the repository's own exclude file."""
    exclude = (root / git(root, "rev-parse", "--git-path", "info/exclude").strip()).resolve()
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [line for line in ("/.lane/", f"/{SETTINGS.as_posix()}") if line not in lines]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join([*lines, *missing]) + "\n")


def _hooks_dir(root: Path) -> Path:
    return (root / git(root, "rev-parse", "--git-path", "hooks").strip()).resolve()


def _install_pre_commit(root: Path) -> str:
    hook = _hooks_dir(root) / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    saved = hook.with_name("pre-commit" + SAVED_SUFFIX)
    if hook.exists() and PRE_COMMIT_MARK not in hook.read_text(errors="replace"):
        hook.replace(saved)  # the person's own hook still runs, first
    script = "\n".join([
        "#!/bin/sh", PRE_COMMIT_MARK, "set -e",
        f'if [ -x "$(dirname "$0")/pre-commit{SAVED_SUFFIX}" ]; then "$(dirname "$0")/pre-commit{SAVED_SUFFIX}" "$@"; fi',
        f"exec {lane_command('hook', 'pre-commit')}", "",
    ])
    hook.write_text(script)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return "git hook: pre-commit runs `lane hook pre-commit`" + (" after your own pre-commit hook" if saved.exists() else "")


def _remove_pre_commit(root: Path) -> str:
    hook = _hooks_dir(root) / "pre-commit"
    if not hook.exists() or PRE_COMMIT_MARK not in hook.read_text(errors="replace"):
        return ""
    hook.unlink()
    saved = hook.with_name("pre-commit" + SAVED_SUFFIX)
    if saved.exists():
        saved.replace(hook)
        return "git pre-commit hook: yours is back"
    return "git pre-commit hook removed"


# -- helpers ----------------------------------------------------------------------------


def _relative(target: Path, repo: Path) -> str | None:
    resolved = Path(os.path.realpath(target))
    return resolved.relative_to(repo).as_posix() if resolved.is_relative_to(repo) else None


def _write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2) + "\n")
