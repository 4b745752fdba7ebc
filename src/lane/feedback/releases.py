"""Releases: a new version of a runbook gets a share of new runs against the stable one, then is promoted or
rolled back on the numbers.

    release:                    # in the runbook, or: lane release support-triage 2 --share 20%
      share: 20%
      key: inputs.customer      # the same customer stays on one version; default: the run id
      rollback_when: failed_share > 0.05 and n >= 20
      promote_when: n >= 50 and kpis.approved_without_edit >= stable.kpis.approved_without_edit

Each runbook has a release journal in the store (`released`, `promoted`, `rolled_back`, `promotion_proposed`,
`kill_date_set`); its state is folded from it. A new run is routed by a hash of the runbook, the candidate version
and the routing key: deterministic, stable per key, and a key on the new version stays there as the share grows.
Where a run went, and why, is journaled in its `run_started` event (`routing`). Every change to the journal is
appended only if no other process wrote first (`append_release(after=...)`), so a rollback happens once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lane.errors import Problem, UsageError
from lane.spec.expressions import Expression, ExpressionFailed, ExpressionSyntaxError, compile_expression

# What a guard (`rollback_when`, `promote_when`) reads of the candidate's finished runs, and of the stable's as `stable.`
COUNTS = ("n", "runs", "completed", "failed", "rejected", "completed_share", "failed_share", "rejected_share")
GUARD_ROOTS = (*COUNTS, "kpis", "stable")


@dataclass(frozen=True)
class Version:
    number: int
    snapshot: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.number, "snapshot": self.snapshot}


@dataclass(frozen=True)
class Candidate:
    version: Version
    stable: Version
    share: float
    key: str | None  # an expression over inputs and run.id; None: the run id
    rollback_when: str | None
    promote_when: str | None
    opened: int  # the seq of the `released` entry that opened it
    at: str

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "stable": self.stable.to_json(), "share": self.share, "key": self.key,
                "rollback_when": self.rollback_when, "promote_when": self.promote_when, "opened": self.opened, "at": self.at}


@dataclass
class ReleaseState:
    seq: int = 0  # the last entry folded
    stable: Version | None = None
    candidate: Candidate | None = None
    rolled_back: dict[int, str] = field(default_factory=dict)  # version -> why
    earlier: list[Version] = field(default_factory=list)  # the stable versions before this one (a promotion can be rolled back)
    kill_dates: dict[int, dict[str, Any]] = field(default_factory=dict)  # version -> {kill_date, sunset, by}
    proposed: set[int] = field(default_factory=set)  # candidates whose promotion was proposed
    log: list[dict[str, Any]] = field(default_factory=list)

    def known(self, number: int) -> bool:
        """Whether the journal has decided anything about version `number`."""
        return (number in self.rolled_back or (self.stable is not None and self.stable.number == number)
                or (self.candidate is not None and self.candidate.version.number == number)
                or any(v.number == number for v in self.earlier))

    def to_json(self) -> dict[str, Any]:
        return {"stable": self.stable.to_json() if self.stable else None, "candidate": self.candidate.to_json() if self.candidate else None,
                "rolled_back": {str(k): v for k, v in sorted(self.rolled_back.items())},
                "kill_dates": {str(k): v for k, v in sorted(self.kill_dates.items())}, "log": self.log}


def fold(log: list[dict[str, Any]]) -> ReleaseState:
    state = ReleaseState(log=log)
    for entry in log:
        kind, data = entry["type"], entry["data"]
        state.seq = entry["seq"]
        if kind == "released":
            candidate = _version(data)
            if state.candidate is not None and state.candidate.version.number != candidate.number:
                state.rolled_back.setdefault(state.candidate.version.number, f"superseded by the release of v{candidate.number}")
            same = state.candidate is not None and state.candidate.version == candidate
            opened, at = (state.candidate.opened, state.candidate.at) if same and state.candidate else (entry["seq"], entry["at"])
            state.stable = _version(data["stable"])  # what the release is measured against is the stable version
            state.candidate = Candidate(candidate, state.stable, float(data["share"]), data.get("key"),
                                        data.get("rollback_when"), data.get("promote_when"), opened, at)
        elif kind == "promoted":
            if state.stable is not None:
                state.earlier.append(state.stable)
            state.stable, state.candidate = _version(data), None
        elif kind == "rolled_back":
            number = int(data["version"])
            state.rolled_back[number] = str(data.get("reason") or "rolled back")
            if state.candidate is not None and state.candidate.version.number == number:
                state.candidate = None
            elif state.stable is not None and state.stable.number == number and state.earlier:
                state.stable = state.earlier.pop()
        elif kind == "promotion_proposed":
            state.proposed.add(int(data["version"]))
        if data.get("kill_date"):
            state.kill_dates[int(data.get("kill_version", data.get("version")))] = {
                "kill_date": data["kill_date"], "sunset": data.get("sunset"), "by": data.get("by")}
    return state


def _version(data: dict[str, Any]) -> Version:
    return Version(int(data["version"]), str(data["snapshot"]))


# -- routing ------------------------------------------------------------------


def bucket(runbook: str, version: int, key: str) -> float:
    """Where a routing key falls in [0, 1): the same for the same runbook, candidate version and key."""
    digest = hashlib.sha256(f"{runbook}\0{version}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return int(digest[:15], 16) / 16**15


def routing_key(expression: str | None, inputs: dict[str, Any], run_id: str) -> tuple[str, str | None]:
    """The text a run is routed by, and why the run id was used instead of the key, if it was."""
    if expression is None:
        return run_id, None
    try:
        value = compile_expression(expression).evaluate({"inputs": inputs, "run": {"id": run_id}})
    except (ExpressionFailed, ExpressionSyntaxError) as exc:
        return run_id, f"the key {expression!r} could not be read ({exc}); routed by the run id"
    if value is None:
        return run_id, f"the key {expression!r} is none for these inputs; routed by the run id"
    return json.dumps(value, sort_keys=True, default=str), None


def split(runbook: str, candidate: Candidate, inputs: dict[str, Any], run_id: str) -> tuple[Version, dict[str, Any]]:
    """The version a new run goes to under an open release, and the routing to journal."""
    key, why = routing_key(candidate.key, inputs, run_id)
    where = bucket(runbook, candidate.version.number, key)
    chosen = candidate.version if where < candidate.share else candidate.stable
    routing = {"version": chosen.number, "release": candidate.opened, "candidate": candidate.version.number,
               "stable": candidate.stable.number, "share": candidate.share, "key": candidate.key or "run.id",
               "bucket": round(where, 6)}
    if why:
        routing["key_error"] = why
    return chosen, routing


# -- guards -------------------------------------------------------------------


def check_release(book: Any) -> list[Problem]:
    """The release block's expressions: the key reads only the inputs and run.id; guards read counts and KPIs."""
    release, source = book.file.release, book.source
    if release is None:
        return []
    problems = []
    if release.key is not None:
        problems += _check(release.key, source, ("release", "key"), {"inputs", "run"}, book)
    for name in ("rollback_when", "promote_when"):
        text = getattr(release, name)
        if text is not None:
            problems += _check(text, source, ("release", name), set(GUARD_ROOTS), book)
    return problems


def _check(text: str, source: Any, loc: tuple[str, ...], roots: set[str], book: Any) -> list[Problem]:
    try:
        expr = compile_expression(text)
    except ExpressionSyntaxError as exc:
        return [source.at(loc, str(exc))]
    for ref in expr.refs:
        root = str(ref[0])
        if root not in roots:
            return [source.at(loc, f"unknown name {root!r} in {loc[-1]}: it can use {', '.join(sorted(roots))}")]
        if root == "run" and len(ref) > 1 and ref[1] != "id":
            return [source.at(loc, "a routing key can read run.id only: the rest of the run is not known when it starts")]
        kpi = ref[1] if root == "kpis" and len(ref) > 1 else ref[2] if root == "stable" and len(ref) > 2 and ref[1] == "kpis" else None
        if kpi is not None and kpi not in book.file.kpis:
            return [source.at(loc, f"{loc[-1]} reads kpis.{kpi}, which the runbook does not declare under kpis:")]
        if root == "stable" and len(ref) > 1 and ref[1] not in (*COUNTS, "kpis"):
            return [source.at(loc, f"stable has {', '.join(COUNTS)} and kpis, not {ref[1]!r}")]
    return []


def figures(records: list[Any], kpis_of_run: Any, declared: dict[str, Any], *, with_kpis: bool) -> dict[str, Any]:
    """What a guard reads of one version's runs: counts, shares of the finished ones, and each KPI's figure."""
    from lane.feedback.kpis import summarize
    from lane.store.records import FINISHED

    ended = [r for r in records if r.status in FINISHED]
    n = len(ended)
    counts = {status: sum(r.status == status for r in ended) for status in ("completed", "failed", "rejected")}
    out: dict[str, Any] = {"n": n, "runs": len(records), **counts,
                           **{f"{status}_share": (count / n if n else 0.0) for status, count in counts.items()}}
    values = [kpis_of_run(r.run_id) for r in ended] if with_kpis else []
    out["kpis"] = {name: summarize(name, [v.get(name) for v in values]).figure for name in declared} if with_kpis else {}
    return out


def reads_kpis(*texts: str | None) -> bool:
    return any(text and any(ref[0] in ("kpis", "stable") and "kpis" in ref for ref in compile_expression(text).refs) for text in texts)


def guard(text: str, scope: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether a guard holds, and why it could not be read (a KPI with no value yet reads as none: not held)."""
    expr: Expression = compile_expression(text)
    try:
        return bool(expr.evaluate(scope)), None
    except ExpressionFailed as exc:
        return False, str(exc)


def describe(scope: dict[str, Any]) -> str:
    """The figures a guard decided on, for the journal and a person."""
    shown = [f"n={scope['n']}", f"failed_share={scope['failed_share']:.2f}", f"rejected_share={scope['rejected_share']:.2f}"]
    shown += [f"kpis.{k}={v:.3g}" for k, v in scope.get("kpis", {}).items() if isinstance(v, float)]
    return ", ".join(shown)


def parse_share(text: str) -> float:
    """`20%`, `0.2` or `20` (a number above 1 is a percentage)."""
    raw = text.strip()
    try:
        number = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--share {text!r}: write a share such as 20% or 0.2") from None
    number = number / 100 if number > 1 and not raw.endswith("%") else number
    if not 0 <= number <= 1:
        raise UsageError(f"--share {text!r}: a share is between 0% and 100%")
    return number


def no_release(runbook: str) -> UsageError:
    return UsageError(f"no release of {runbook} is open: `lane release {runbook} VERSION --share 10%` opens one")
