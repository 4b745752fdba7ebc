"""Who may decide what: a person of lane.yaml's `people:` decides only as their roles.

Shared by every interface that decides as a person (`lane serve`'s API and console, `lane mcp`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lane.engine.decisions import UNSET
from lane.serve.sessions import LOCAL

if TYPE_CHECKING:
    from lane.engine.decisions import Decision
    from lane.project import Project


class Forbidden(Exception):
    """The person's roles may not do this (403)."""


def roles_of(project: Project, person: str) -> list[str]:
    """The human roles `person` decides as: theirs in `people:`, or every one for the local user of a project with no people."""
    if person == LOCAL and not project.spec.config.people:  # the local user of a loopback server: every human role
        return list(project.spec.human_roles)
    entry = project.spec.config.people.get(person)
    return list(entry.roles) if entry else []


def decide_as(project: Project, person: str, run_id: str, call: str | None, approve: bool, data: dict[str, Any]) -> Decision:
    """`person` decides as the first of their roles allowed for it (Forbidden if none is); `data` holds `edit`,
    `patch`, `result` or `reason`. Recorded at once; resuming the run is the caller's."""
    waiting = [p for p in project.pending(run_id) if call is None or p.call_id == call]
    roles = [r for r in roles_of(project, person) if any(r in p.roles for p in waiting)]
    if waiting and not roles:
        raise Forbidden(f"{person} has no role that may decide this (their roles: {', '.join(roles_of(project, person)) or 'none'})")
    as_role = roles[0] if roles else None
    local = person == LOCAL and not project.spec.config.people
    who = None if local else person  # the local user of a loopback server is recorded as the account lane runs under
    if approve:
        return project.approve(run_id, call, as_role=as_role, edit=data.get("edit", UNSET), patch=data.get("patch", UNSET),
                               result=data.get("result", UNSET), person=who)
    return project.reject(run_id, call, reason=str(data.get("reason") or ""), as_role=as_role, person=who)
