"""Kept versions: what a runbook's version is made of, stored content-addressed when a run starts.

A version's snapshot holds the runbook's file, its agents' files, their context files and skills, the runbooks its steps
start (with theirs), and a fingerprint of each tool it may call. A run names its snapshot and always resumes on it.
A version with runs is immutable: changing its files without raising `version:` is refused (`lane validate`,
and starting a run). Tools are code deployed with the project: a changed tool is shown (`lane diff`), not refused.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lane.errors import UsageError
from lane.spec.project import ProjectSpec
from lane.spec.runbook import RunbookSpec


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    runbook: str
    version: int
    files: dict[str, str]  # path -> text
    tools: dict[str, str]  # tool -> fingerprint

    @property
    def manifest(self) -> dict[str, Any]:
        return {"runbook": self.runbook, "version": self.version, "files": {p: digest(t) for p, t in sorted(self.files.items())},
                "tools": dict(sorted(self.tools.items()))}

    @property
    def digest(self) -> str:
        return digest(json.dumps(self.manifest, sort_keys=True))


def snapshot(spec: ProjectSpec, book: RunbookSpec) -> Snapshot:
    """What `book`'s version is made of, as `spec` has it (the disk's files, or a kept version's)."""
    files: dict[str, str] = {}
    tools: set[str] = set()

    def read(path: str) -> str:
        try:
            return spec.read(path)
        except (OSError, UnicodeError) as exc:
            raise UsageError(f"runbook {book.name} v{book.file.version} needs {path}, which cannot be read ({exc}); "
                             "restore it, or run `lane validate`") from None

    def add_book(current: RunbookSpec) -> None:
        files[current.source.path] = read(current.source.path)
        for step in current.walk():
            if step.step.tool:
                tools.add(step.step.tool)
            for pattern in step.step.tools or ():
                tools.update(t for t in spec.tools if spec.allows([pattern], t))
            if step.step.agent and step.step.agent in spec.agents:
                add_agent(step.step.agent)
            child = spec.runbooks.get(step.step.runbook or "")
            if child is not None and child.source.path not in files:
                add_book(child)

    def add_agent(name: str) -> None:
        agent = spec.agents[name]
        files[agent.source.path] = read(agent.source.path)
        tools.update(t for t in spec.tools if spec.allows(agent.file.tools, t))
        for file in [*agent.file.context.always, *(t.read for t in agent.file.context.on)]:
            files[file] = read(file)
        for skill in (spec.skills[n] for n in sorted(spec.skills) if spec.allows(agent.file.skills, n)):
            files[skill.path] = read(skill.path)
            for inner in skill.files:  # its references and scripts; a file that is not text (an image) is not kept
                try:
                    files[f"{skill.folder}/{inner}"] = spec.read(f"{skill.folder}/{inner}")
                except (OSError, UnicodeError):
                    pass

    add_book(book)
    return Snapshot(book.name, book.file.version, files, {name: fingerprint(spec.tools[name]) for name in sorted(tools) if name in spec.tools})


def fingerprint(tool: Any) -> str:
    """What a model and lane's rules see of a tool: its description, arguments, effect and idempotency."""
    seen = {"description": tool.description, "parameters": tool.parameters, "effect": tool.effect, "idempotent": tool.idempotent}
    return digest(json.dumps(seen, sort_keys=True, default=str))[:16]


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two manifests, one line each: `runbooks/x.yaml changed`, `tool crm.find added`."""
    out = []
    for kind, label in (("files", ""), ("tools", "tool ")):
        old, new = before.get(kind, {}), after.get(kind, {})
        for name in sorted(set(old) | set(new)):
            if name not in new:
                out.append(f"{label}{name} removed")
            elif name not in old:
                out.append(f"{label}{name} added")
            elif old[name] != new[name]:
                out.append(f"{label}{name} changed")
    return out


def file_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The files (not tools) that differ: what makes a new version."""
    return [line for line in changes({"files": before.get("files", {})}, {"files": after.get("files", {})})]


def unified(path: str, old: str | None, new: str | None, v1: int, v2: int) -> str:
    """One file's change between two versions as a unified diff."""
    lines = difflib.unified_diff((old or "").splitlines(), (new or "").splitlines(), f"v{v1}/{path}", f"v{v2}/{path}", lineterm="")
    return "\n".join(lines)


def conflicts(store: Any, version: Snapshot) -> list[str]:
    """What changed in the files of `version`'s number since a kept snapshot of it that has runs (empty: none did)."""
    manifest = version.manifest
    for key, number, earlier, _ in store.snapshots(version.runbook):  # most often none differs: no run is read
        if number == version.version and key != version.digest:
            changed = file_changes(earlier, manifest)
            if changed and store.snapshot_used(key):
                return changed
    return []


def kpis_of(events: list[Any]) -> dict[str, Any]:
    """The KPI values recorded when a run last ended."""
    values: dict[str, Any] = {}
    for event in events:
        if event.type == "kpis_recorded":
            values = dict(event.data.get("values") or {})
        elif event.type == "run_retried":
            values = {}
    return values


def version_rows(store: Any, book: Any) -> list[dict[str, Any]]:
    """Each kept version of a runbook, newest number first: its runs by status and its KPIs over the finished ones."""
    from lane.feedback.kpis import summarize
    from lane.store.records import FINISHED

    kept = store.snapshots(book.name)
    runs = [r for r in store.runs_of(book.name) if r.parent_id is None]
    rows = []
    for number in sorted({v for _, v, _, _ in kept} | {r.version for r in runs}, reverse=True):
        mine = [r for r in runs if r.version == number]
        statuses: dict[str, int] = {}
        for record in mine:
            statuses[record.status] = statuses.get(record.status, 0) + 1
        ended = [kpis_of(store.events(r.run_id)) for r in mine if r.status in FINISHED]
        declared = book.file.kpis if number == book.file.version else {name: None for e in ended for name in e}
        kpis = {name: summarize(name, [e.get(name) for e in ended], getattr(kpi, "target", None)).describe() for name, kpi in declared.items()}
        snapshots = [(key, at) for key, v, _, at in kept if v == number]
        rows.append({"runbook": book.name, "version": number, "current": number == book.file.version, "runs": len(mine),
                     "statuses": statuses, "kpis": kpis, "kept_at": snapshots[0][1] if snapshots else None,
                     "snapshots": [key for key, _ in snapshots]})
    return rows


def version_diff(store: Any, runbook: str, v1: int, v2: int) -> dict[str, Any]:
    """What changed from version `v1` of a runbook to `v2` (each as last kept): a line per file or tool, and each
    changed file as a unified diff."""
    from lane.errors import UsageError

    kept = {number: manifest for _, number, manifest, _ in store.snapshots(runbook)}  # the last kept of each number
    for number in (v1, v2):
        if number not in kept:
            have = ", ".join(f"v{n}" for n in sorted(kept)) or "none yet (a version is kept when its first run starts)"
            raise UsageError(f"runbook {runbook} has no kept version v{number} (kept: {have})")
    before, after = kept[v1], kept[v2]
    diffs = {}
    for path in sorted(set(before["files"]) | set(after["files"])):
        old, new = before["files"].get(path), after["files"].get(path)
        if old != new:
            diffs[path] = unified(path, store.blob(old) if old else None, store.blob(new) if new else None, v1, v2)
    return {"runbook": runbook, "from": v1, "to": v2, "changes": changes(before, after), "diffs": diffs}
