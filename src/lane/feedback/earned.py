"""Earned autonomy: a level up or down for each call site, proposed from the record, never from a hunch.

A call site is a tool step (its level is the step's `autonomy:`, else the runbook's) or an agent step (its level is
the agent's `autonomy:`). Its record, per runbook version, over the runs started in the last DAYS days:

- decided: the calls a person approved or rejected (approvals made by no person, such as `--yes`, are left out);
  of them, approved without edit, edited, rejected;
- failed checks: failures of the check steps whose `on_fail` sends the work back to the agent step;
- rolled back: whether the version was rolled back.

A level UP is proposed when nothing was rejected, no check failed, the version was not rolled back, and the lower
end of the 95% Wilson interval of the share approved without edit is at least 60% (6 of 6, 8 of 9, 15 of 18).
A level DOWN is proposed on 2 or more rejections, or when at least 30% of 5 or more decisions were rejected or
edited, on 2 or more failed checks, or when the version was rolled back while the site ran without a person.

Accepting a proposal writes the new level into the runbook (raising its `version:`), or into the agent's file
(raising the `version:` of every runbook that uses the agent): the next release measures it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lane.spec.files import AUTONOMY_LEVELS

if TYPE_CHECKING:
    from lane.project import Project

LOWER_BOUND = 0.6  # the Wilson lower bound of approvals without edit that earns a level up
REJECTIONS = 2
BAD_SHARE, BAD_MIN = 0.3, 5
FAILED_CHECKS = 2


@dataclass
class Record:
    decided: int = 0
    approved: int = 0  # without edit
    edited: int = 0
    rejected: int = 0
    unattended: int = 0  # calls that ran with no person asked
    failed_checks: int = 0
    runs: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {"decided": self.decided, "approved_without_edit": self.approved, "edited": self.edited, "rejected": self.rejected,
                "ran_unattended": self.unattended, "failed_checks": self.failed_checks, "runs": len(self.runs)}


@dataclass(frozen=True)
class Site:
    runbook: str
    version: int
    step: str  # the step's path without item numbers (`each.send`)
    kind: str  # tool | agent
    tool: str | None  # the tool step's tool
    agent: str | None
    level: str

    @property
    def label(self) -> str:
        what = self.tool if self.kind == "tool" else f"agent {self.agent}"
        return f"{what} (step {self.step}) in {self.runbook} v{self.version}"


def proposals(project: Project, runbook: str | None = None, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Every call site's record and, where the record says so, a proposal."""
    from lane.feedback.releases import fold
    from lane.feedback.report import scipy_stats

    stats = scipy_stats()
    since = ((now or datetime.now(UTC)) - timedelta(days=days)).isoformat()
    names = [runbook] if runbook is not None else sorted(project.spec.runbooks)
    sites: list[dict[str, Any]] = []
    for name in names:
        project._runbook(name)
        rolled_back = fold(project.store.release_log(name)).rolled_back
        records: dict[Site, Record] = {}
        for record in project.store.runs_of(name):
            if record.parent_id is not None or record.started_at < since:
                continue
            book = project._book_or_none(record)
            if book is None:
                continue
            spec = project._version_of(record)[0]
            _count(record.run_id, project.store.events(record.run_id), book, spec, records)
        for site, rec in sorted(records.items(), key=lambda kv: (-kv[0].version, kv[0].step)):
            judged = _judge(site, rec, site.version in rolled_back, days, stats)
            now_level = _current_level(project, site)
            if judged["proposal"] is not None and now_level != site.level:  # the files moved on: it no longer applies
                judged["proposal"], judged["now"] = None, now_level
            sites.append(judged)
    return {"days": days, "sites": sites, "proposals": [s for s in sites if s["proposal"] is not None]}


def _count(run_id: str, events: list[Any], book: Any, spec: Any, records: dict[Site, Record]) -> None:
    steps = dict(book.named())
    back_to = {path: s.step.on_fail.back_to for path, s in steps.items() if s.kind == "check" and s.step.on_fail is not None}
    requested: dict[tuple[str | None, str | None], Site] = {}
    for event in events:
        path = re.sub(r"\[\d+\]", "", event.step_id or "")
        step = steps.get(path)
        if step is None:
            continue
        if event.type == "tool_call_requested":
            site = _site(book, spec, path, step)
            if site is not None:
                requested[(event.step_id, event.ref)] = site
                records.setdefault(site, Record()).runs.add(run_id)
        elif event.type == "tool_call_gated" and event.data.get("gate") == "run":
            site = requested.get((event.step_id, event.ref))
            if site is not None:
                records[site].unattended += 1
        elif event.type == "decision" and event.data.get("kind") == "tool_call" and not event.data.get("automatic"):
            site = requested.get((event.step_id, event.ref))
            if site is None:
                continue
            rec = records[site]
            rec.decided += 1
            if event.data.get("decision") == "rejected":
                rec.rejected += 1
            elif event.data.get("edited_args") is not None or event.data.get("patch") is not None:
                rec.edited += 1
            else:
                rec.approved += 1
        elif event.type == "step_failed" and path in back_to:
            target = steps.get(back_to[path])
            site = _site(book, spec, back_to[path], target) if target is not None else None
            if site is not None:
                records.setdefault(site, Record()).failed_checks += 1


def _current_level(project: Project, site: Site) -> str | None:
    """The site's level as the project's files say now (None when it is gone)."""
    if site.kind == "agent":
        agent = project.spec.agents.get(site.agent or "")
        return agent.file.autonomy if agent is not None else None
    book = project.spec.runbooks.get(site.runbook)
    step = dict(book.named()).get(site.step) if book is not None else None
    if book is None or step is None or step.kind != "tool":
        return None
    return step.step.autonomy or book.file.autonomy


def _site(book: Any, spec: Any, path: str, step: Any) -> Site | None:
    if step.kind == "tool":
        level = step.step.autonomy or book.file.autonomy
        return Site(book.name, book.file.version, path, "tool", step.step.tool, None, level)
    if step.kind == "agent" and step.step.agent in spec.agents:
        return Site(book.name, book.file.version, path, "agent", None, step.step.agent, spec.agents[step.step.agent].file.autonomy)
    return None


def _judge(site: Site, rec: Record, rolled_back: bool, days: int, stats: Any) -> dict[str, Any]:
    level = AUTONOMY_LEVELS.index(site.level)
    low = None
    if rec.decided:
        low = float(stats.binomtest(rec.approved, rec.decided).proportion_ci(method="wilson").low)
    counted = (f"{rec.approved} of {rec.decided} approved without edit in {days} days, {rec.rejected} rejection"
               f"{'s' if rec.rejected != 1 else ''}, {rec.edited} edited" + (f", {rec.failed_checks} failed checks" if rec.failed_checks else ""))
    to, why = None, None
    down = [reason for reason, held in (
        (f"{rec.rejected} rejections", rec.rejected >= REJECTIONS),
        (f"{rec.rejected + rec.edited} of {rec.decided} rejected or edited",
         rec.decided >= BAD_MIN and (rec.rejected + rec.edited) / rec.decided >= BAD_SHARE),
        (f"{rec.failed_checks} failed checks", rec.failed_checks >= FAILED_CHECKS),
        ("its version was rolled back", rolled_back and rec.unattended > 0),
    ) if held]
    if down and level > 0:
        to, why = AUTONOMY_LEVELS[level - 1], "; ".join(down)
    elif not down and not rolled_back and rec.rejected == 0 and rec.failed_checks == 0 and low is not None and low >= LOWER_BOUND \
            and level < len(AUTONOMY_LEVELS) - 1:
        to, why = AUTONOMY_LEVELS[level + 1], f"the 95% interval of approvals without edit starts at {low:.0%}"
    proposal = None
    if to is not None:
        key = f"{site.runbook}\0{site.version}\0{site.step}\0{site.level}\0{to}"
        proposal = {"id": hashlib.sha256(key.encode()).hexdigest()[:8], "from": site.level, "to": to,
                    "direction": "up" if AUTONOMY_LEVELS.index(to) > level else "down",
                    "text": f"{site.label}: {counted} → propose {site.level} → {to} ({why})"}
    return {"runbook": site.runbook, "version": site.version, "step": site.step, "kind": site.kind, "tool": site.tool,
            "agent": site.agent, "level": site.level, "record": rec.to_json(), "approved_low": low, "summary": f"{site.label}: {counted}",
            "proposal": proposal}


def accept(project: Project, proposal_id: str, *, by: str | None, days: int = 30) -> dict[str, Any]:
    """Write the proposed level as a new version: the runbook's step (its `version:` raised), or the agent's file (the
    `version:` of each runbook that uses it raised). The files are written whole or not at all, and the change is
    journaled in each runbook's release journal."""
    from lane.errors import ProjectInvalid, UsageError
    from lane.spec.project import load_project

    found = next((s for s in proposals(project, days=days)["sites"] if s["proposal"] and s["proposal"]["id"] == proposal_id), None)
    if found is None:
        raise UsageError(f"no autonomy proposal {proposal_id!r} now: `lane autonomy` lists the current ones")
    proposal = found["proposal"]
    spec = project.spec
    if found["kind"] == "tool":
        book = project._runbook(found["runbook"])
        current = dict(book.named()).get(found["step"])
        level = (current.step.autonomy or book.file.autonomy) if current is not None and current.kind == "tool" else None
        files = {book.source.path: _set_step_level(spec.read(book.source.path), found["step"], proposal["to"])}
        books = [book]
    else:
        agent = spec.agents.get(found["agent"])
        if agent is None:
            raise UsageError(f"agent {found['agent']} is not in the project any more: run `lane autonomy` again")
        level = agent.file.autonomy
        files = {agent.source.path: _set_agent_level(spec.read(agent.source.path), proposal["to"])}
        # every runbook whose version holds the agent's file: those that use it, and those that start one that does
        books = [b for b in spec.runbooks.values() if agent.source.path in project._snapshot(b).files]
    if level != proposal["from"]:
        raise UsageError(f"proposal {proposal_id} changes {proposal['from']} → {proposal['to']}, but the files say {level} now: "
                         "run `lane autonomy` again")
    versions = {}
    for book in books:
        text = files.get(book.source.path, spec.read(book.source.path))
        files[book.source.path], versions[book.name] = _raise_version(text)
    before = {path: (project.root / path).read_text(encoding="utf-8") for path in files}
    try:
        for path, text in files.items():
            _write(project.root / path, text)
        load_project(project.root)
    except (ProjectInvalid, UsageError, OSError) as exc:  # whole or not at all: every file goes back as it was
        for path, text in before.items():
            _write(project.root / path, text)
        said = exc.problems[0] if isinstance(exc, ProjectInvalid) else exc
        raise UsageError(f"the new level could not be written, nothing was changed: {said}") from None
    for book in books:
        log = project.store.release_log(book.name)
        project.store.append_release(book.name, "autonomy_changed", {
            "proposal": proposal_id, "step": found["step"], "agent": found["agent"], "from": proposal["from"], "to": proposal["to"],
            "record": found["record"], "by": by, "version": versions[book.name]}, after=log[-1]["seq"] if log else 0)
    return {"accepted": proposal, "site": found, "files": sorted(files), "versions": versions}


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _dump(data: Any) -> str:
    import io

    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def _set_step_level(text: str, path: str, level: str) -> str:
    data = _yaml().load(text)
    step = _find_step(data.get("steps") or [], path.split("."))
    if step is None:
        from lane.errors import UsageError

        raise UsageError(f"step {path} is not in the runbook any more: run `lane autonomy` again")
    if "autonomy" in step:
        step["autonomy"] = level
    else:
        keys = list(step)
        step.insert(keys.index("tool") + 1 if "tool" in keys else len(keys), "autonomy", level)
    return _dump(data)


def _find_step(steps: list[Any], parts: list[str]) -> Any:
    for step in steps:
        if not isinstance(step, dict) or step.get("id") != parts[0]:
            continue
        if len(parts) == 1:
            return step
        if "steps" in step:
            return _find_step(step["steps"], parts[1:])
        branches = step.get("parallel") or {}
        if len(parts) > 2 and parts[1] in branches:
            return _find_step(branches[parts[1]], parts[2:])
    return None


def _raise_version(text: str) -> tuple[str, int]:
    data = _yaml().load(text)
    number = int(data.get("version", 1)) + 1
    if "version" in data:
        data["version"] = number
    else:
        data.insert(1, "version", number)
    return _dump(data), number


def _set_agent_level(text: str, level: str) -> str:
    text = text.replace("\r\n", "\n")  # front matter written on Windows reads the same
    _, head, body = text.split("---\n", 2) if text.startswith("---\n") else ("", "", text)
    data = _yaml().load(head) if head else None
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    data["autonomy"] = level
    return f"---\n{_dump(data)}---\n{body}"


def _write(path: Any, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
