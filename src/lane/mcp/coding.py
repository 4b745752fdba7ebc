"""The coding track's reports as tools, for the coding agent inside its lane to check its own work before it stops.

Each is what the CLI command prints with `--json`, over the folder `lane mcp --project` names. All of them only
read, except `task_verify`, which (as `lane task verify` does) runs the task's VALIDATE commands in a clean
checkout and writes the task's evidence file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lane.mcp.tooling import READ, Refused, ToolDef, number, optional_text, text

_FEATURE = {"type": "string", "description": "The feature's folder under features/."}
TOOLS = [
    ToolDef("task_verify", "Verify a task", "`lane task verify`: is every changed path in the task's FILES, do its PROHIBITED rules "
            "hold, does every VALIDATE command pass? The evidence, with passed: true or false. Runs VALIDATE in a clean "
            "checkout and writes the task's evidence file (features/FEATURE/tasks/TASK.evidence.json); changes nothing else.",
            {"type": "object", "properties": {
                "feature": _FEATURE, "task": {"type": "string", "description": "The task's name (features/FEATURE/tasks/TASK.md)."},
                "base": {"type": "string", "description": "Compare with this commit (default: where `lane task start` began, else HEAD)."},
                "timeout": {"type": "number", "minimum": 1, "maximum": 3600, "description": "Seconds each VALIDATE command may take."},
            }, "required": ["feature", "task"]},
            # open world: VALIDATE is whatever commands the task names, which may reach anything (a network, a service)
            read_only=False, destructive=False, idempotent=True, open_world=True),
    ToolDef("context_check", "Check the context files", "`lane context check`: are AGENTS.md, CLAUDE.md and the Cursor rules "
            "up to date with the canon, and within what each tool loads? ok: true or false, with each finding.",
            {"type": "object", "properties": {}}, **READ),
    ToolDef("lock_check", "Check a feature's lock", "`lane lock check`: every blank, TBD or [bracketed] gate of the feature's "
            "pre-build lock, and whether its sign-off still holds.",
            {"type": "object", "properties": {"feature": _FEATURE}, "required": ["feature"]}, **READ),
    ToolDef("session_start", "Where things stand", "`lane session start`: branch, uncommitted work, stashes, unmerged branches, "
            "the last commit, the session log's last entries and RESUME HERE block, the roadmap and known issues.",
            {"type": "object", "properties": {"entries": {"type": "integer", "minimum": 0, "maximum": 50, "default": 3,
                                                          "description": "How many of log.md's last entries."}}}, **READ),
    ToolDef("killdates_check", "Check kill dates", "`lane killdates --check`: every flag, shim and runbook version with its kill "
            "date and days left; ok is false when a date has passed or the code names an unregistered flag.",
            {"type": "object", "properties": {}}, **READ),
]
CALLS = {tool.name for tool in TOOLS}


async def call(root: Path, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The report, made in a thread: git and the VALIDATE commands take their time, and the server answers meanwhile."""
    work = {"task_verify": _verify, "context_check": _context, "lock_check": _lock, "session_start": _session,
            "killdates_check": _killdates}[name]
    return await asyncio.to_thread(work, root, args)


def _verify(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    from lane.coding.verify import DEFAULT_TIMEOUT, verify

    result = verify(root, text(args, "feature"), text(args, "task"), base=optional_text(args, "base"),
                    timeout=number(args, "timeout", DEFAULT_TIMEOUT, low=1, high=3600))
    found = result.to_json()
    found.pop("contents", None)  # each file's digest, for lane's own comparisons
    return found


def _context(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    from lane.coding.context_files import check

    findings = check(root)
    return {"ok": not any(f.level == "error" for f in findings), "findings": [f.to_json() for f in findings]}


def _lock(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    from lane.coding.locks import check_lock

    return check_lock(root, text(args, "feature")).to_json()


def _session(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    from lane.coding.session import gather

    entries = number(args, "entries", 3, high=50)
    if entries != int(entries):
        raise Refused("entries must be a whole number")
    return gather(root, entries=int(entries)).to_json()


def _killdates(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import replace
    from datetime import date

    from lane.coding.killdates import check_killdates

    report = check_killdates(root)
    if (root / "lane.yaml").is_file():  # a lane project: its runbook versions' kill dates too, as `lane killdates` reads them
        from lane.feedback.sunset import version_kill_dates
        from lane.project import Project

        with Project.load(root) as loaded:
            report = replace(report, versions=tuple(version_kill_dates(loaded, date.today())))
    return report.to_json()
