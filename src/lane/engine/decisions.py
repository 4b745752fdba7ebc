"""A person's decision on a paused run: checked, bound to one request, then journaled.

Checks, in order: the run is paused (not finished); the request is open; the
deciding role is a human role of the work chart allowed for this request; an
edit or result fits what it replaces. Only then is the decision committed,
with who, when and any edit, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lane.engine.approvals import open_requests
from lane.errors import DecisionError
from lane.secrets import Redactor
from lane.spec.project import ProjectSpec
from lane.spec.schema import schema_errors
from lane.store.records import FINISHED, Event, RunRecord, now
from lane.store.url import Store
from lane.store.values import checked, too_deep
from lane.tools.base import ToolArgsInvalid

UNSET: Any = object()  # "not given", as distinct from a given null


@dataclass(frozen=True)
class Decision:
    run_id: str
    call_id: str
    kind: str
    decision: str
    by: str


def decide(
    store: Store,
    project: ProjectSpec,
    run_id: str,
    *,
    approve: bool,
    call_id: str | None = None,
    as_role: str | None = None,
    edit: Any = UNSET,
    patch: Any = UNSET,
    result: Any = UNSET,
    reason: str | None = None,
    automatic: str | None = None,
    person: str | None = None,
) -> Decision:
    """Record a person's decision on what run `run_id` waits for.

    `edit` replaces the call's arguments or the step's value whole; `patch` is a JSON merge patch
    (RFC 7396) applied to them: `{"category": "hardware"}` changes one field, `{"note": null}` drops one.
    `automatic` approves with no person: it names what approved (`--yes`), recorded as `by` with
    `automatic: true`, so measures of what people approved leave it out.
    """
    def make(run: RunRecord, events: list[Event]) -> list[Event]:
        if run.status in FINISHED:
            raise DecisionError(f"run {run.run_id} is {run.status}; a finished run takes no decisions")
        if run.status != "paused":
            raise DecisionError(f"run {run.run_id} is {run.status}; decisions are taken when it pauses for a person")
        request = _pick(run.run_id, open_requests(events), call_id)
        if automatic is not None and not approve:
            raise DecisionError("only approvals are automatic; a rejection is a person's")
        data: dict[str, Any] = {
            "kind": request.data["kind"],
            "decision": "approved" if approve else "rejected",
            "by": automatic if automatic is not None else _role(project, request, as_role),
            "user": person or _user(),
            "request_seq": request.seq,
        }
        if automatic is not None:
            data["automatic"] = True
        if person is not None:  # signed in to lane serve: the role is theirs, and `user` names them
            data["person"] = person
            _own_role(project, person, data["by"])
        if "args_hash" in request.data:
            data["args_hash"] = request.data["args_hash"]
        if not approve:
            if not reason:
                raise DecisionError("a rejection needs a reason: --reason TEXT")
            data["reason"] = reason
        for name, given in (("edit", edit), ("patch", patch), ("result", result)):
            if given is not UNSET:
                _check_given(project, name, given)
        value = edit
        if patch is not UNSET:
            if edit is not UNSET:
                raise DecisionError("give an edit or a patch, not both")
            value = merge_patch(_original(request), patch)
            data["patch"] = patch
        original = _original(request)
        if value is not UNSET and request.data["kind"] != "in_doubt" and original is not None and value == original:
            value = UNSET  # an edit that changes nothing is a plain approval (it counts as approved without edit)
            data.pop("patch", None)
        _check_extras(project, request, approve, value, result, data)
        data = Redactor(project.secrets)(data)  # a secret typed into an edit is not stored either
        return [Event(events[-1].seq + 1 if events else 1, "decision", request.step_id, request.ref, now(), data)]

    # Checked and written under one write lock: no resume or other decision can slip in between.
    [event] = store.append_checked(run_id, make)
    return Decision(store.run(run_id).run_id, event.ref or "", event.data["kind"], event.data["decision"], event.data["by"])


def _pick(run_id: str, pending: list[Event], call_id: str | None) -> Event:
    if not pending:
        raise DecisionError(f"run {run_id} waits for no decision; continue it with `lane resume {run_id}`")
    if call_id is None:
        if len(pending) > 1:
            ids = ", ".join(str(e.ref) for e in pending)
            raise DecisionError(f"run {run_id} waits for {len(pending)} decisions; say which with --call ID (one of {ids})")
        return pending[0]
    for event in pending:
        if event.ref == call_id:
            return event
    ids = ", ".join(str(e.ref) for e in pending)
    raise DecisionError(f"run {run_id} has no pending decision {call_id!r}; pending: {ids}")


def _role(project: ProjectSpec, request: Event, as_role: str | None) -> str:
    allowed: list[str] = request.data.get("roles") or project.human_roles
    if as_role is None:
        if len(allowed) != 1:
            raise DecisionError(f"say which role decides: --as ROLE (one of {', '.join(allowed)})")
        as_role = allowed[0]
    role = project.config.roles.get(as_role)
    if role is None:
        raise DecisionError(f"role {as_role!r} is not in the work chart (roles in lane.yaml); only its human roles decide")
    if role.kind != "human":
        raise DecisionError(f"role {as_role!r} is an agent role; only a person (a human role) can decide")
    if as_role not in allowed:
        raise DecisionError(f"role {as_role!r} may not decide this; the work chart gives it to {', '.join(allowed)}")
    return as_role


def _check_extras(project: ProjectSpec, request: Event, approve: bool, edit: Any, result: Any, data: dict[str, Any]) -> None:
    kind = request.data["kind"]
    if result is not UNSET:
        if kind != "in_doubt" or not approve:
            raise DecisionError("--result is only for approving a call left in doubt by a crash (it took effect with this result)")
        data["result"] = result
    if edit is UNSET:
        if approve and kind == "handoff":
            raise DecisionError("the agent's output is invalid; approve it with a corrected one: --edit JSON")
        if approve and kind == "human_step" and request.data.get("mode") == "input":
            raise DecisionError("this step asks for input: give it with --edit JSON")
        return
    if not approve:
        raise DecisionError("--edit goes with approve, not reject")
    if kind in ("loop", "retry"):
        what = "more attempts for a feedback loop" if kind == "loop" else "calling a tool again"
        raise DecisionError(f"this asks for {what}: approve or reject it, with no edit")
    if kind == "in_doubt":
        raise DecisionError("a call in doubt cannot be edited: approve to run it again, or approve --result JSON")
    if kind == "tool_call":
        tool = project.tools.get(request.data["tool"])
        if not isinstance(edit, dict):
            raise DecisionError("edited arguments must be a JSON object")
        try:
            if tool is not None:
                tool.check_args(edit)
        except ToolArgsInvalid as exc:
            raise DecisionError(f"the edited arguments do not fit {request.data['tool']}: {exc}") from exc
        data["edited_args"] = edit
        return
    problems = schema_errors(request.data.get("schema"), edit, root="value")
    if problems:
        raise DecisionError("the edited value does not match the step's schema: " + "; ".join(problems))
    data["edited"] = edit


def _own_role(project: ProjectSpec, person: str, role: str) -> None:
    """A person decides only as one of their roles in lane.yaml's `people:`."""
    entry = project.config.people.get(person)
    if entry is None or role not in entry.roles:
        mine = ", ".join(entry.roles) if entry else "none"
        raise DecisionError(f"{person} may not decide this as {role} (their roles: {mine})")


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _check_given(project: ProjectSpec, name: str, given: Any) -> None:
    """What a person typed is data the run will use as it is: JSON, not too deep, and without a secret's value."""
    if too_deep(given):
        raise DecisionError(f"the {name} nests deeper than 100 levels; lane takes at most 100")
    _, unfit = checked(given, name)
    if unfit is not None:
        raise DecisionError(f"the {name} must be JSON data: {unfit}")
    if Redactor(project.secrets)(given) != given:
        raise DecisionError(f"the {name} holds the value of a secret, which lane never stores or passes on; "
                            "a tool reads a secret from env: itself")


def _original(request: Event) -> Any:
    """What an edit of this request changes: the call's arguments, the step's value, or the agent's output."""
    kind = request.data["kind"]
    if kind == "tool_call":
        return request.data.get("args")
    if kind == "handoff":
        return request.data.get("output")
    return request.data.get("value")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: an object patches an object key by key (null removes the key); anything else replaces the target."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
