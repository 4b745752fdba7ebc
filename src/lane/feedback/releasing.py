"""A project's releases: routing each new run, opening, promoting and rolling back releases, and checking their
guards after each run. The rules are in feedback/releases.py; this holds what reads and writes the project."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lane.errors import UsageError
from lane.feedback import releases as rel
from lane.feedback.releases import Version

if TYPE_CHECKING:
    from collections.abc import Callable

    from lane.project import Project
    from lane.spec.project import ProjectSpec
    from lane.spec.runbook import RunbookSpec

Routed = tuple["ProjectSpec | None", "RunbookSpec", str, "dict[str, Any] | None", "int | None"]  # ..., the journal entry it read


class Releases:
    def __init__(self, project: Project) -> None:
        self.project = project

    @property
    def store(self) -> Any:
        return self.project.store

    def state(self, runbook: str) -> rel.ReleaseState:
        return rel.fold(self.store.release_log(runbook))

    # -- routing --------------------------------------------------------------

    def route(self, book: RunbookSpec, inputs: dict[str, Any], run_id: str) -> Routed:
        """The project and runbook a new run executes, its kept version's digest, and the routing to journal (None
        when no release applies: the runbook's version as it is)."""
        for _ in range(20):  # another process may write the journal between reading and appending: decide again
            log = self.store.release_log(book.name)
            if not log and book.file.release is None:  # no release, ever: nothing to check when the run is written
                return None, book, self.project._keep(book), None, None
            state, number = rel.fold(log), book.file.version
            if number in state.rolled_back:
                if state.stable is None:
                    raise UsageError(f"runbook {book.name} v{number} was rolled back and no earlier version is kept to run instead: "
                                     f"raise `version:` with a fix")
                return self._on(book, state.stable, {"version": state.stable.number, "rolled_back": number,
                                                     "why": f"v{number} was rolled back: {state.rolled_back[number]}"}, state.seq)
            if state.candidate is not None and state.candidate.version.number == number:
                chosen, routing = rel.split(book.name, state.candidate, inputs, run_id)
                return self._on(book, chosen, routing, state.seq)
            if state.stable is not None and state.stable.number == number:
                return None, book, self.project._keep(book), None, state.seq
            if state.stable is not None and number < state.stable.number:
                raise UsageError(f"runbook {book.name} is at v{number} in {book.source.path}, older than v{state.stable.number}, the "
                                 f"stable version: update the file (an old checkout?), or `lane rollback {book.name}` to go back")
            declared = book.file.release
            stable = self._stable_for(state, book.name, number) if declared is not None else None
            if declared is not None and stable is not None:  # `release:` in the runbook opens the release at its version's first run
                self._check_fixtures(book)
                data = self._released(book, stable, declared.share, declared.key, by=None)
                self.store.append_release(book.name, "released", {**data, "from": "runbook"}, after=state.seq)
                continue
            if not log:
                return None, book, self.project._keep(book), None, 0
            digest = self.project._keep(book)  # a new number with no `release:`: every new run goes to it, as before releases
            seq = self.store.append_release(book.name, "promoted", {"version": number, "snapshot": digest, "direct": True}, after=state.seq)
            if seq:
                return None, book, digest, None, seq
        raise UsageError(f"the release of runbook {book.name} keeps changing under this start; start the run again")

    def _on(self, book: RunbookSpec, chosen: Version, routing: dict[str, Any], seq: int | None) -> Routed:
        if chosen.number == book.file.version:
            return None, book, self.project._keep(book), routing, seq
        spec = self.project._kept_spec(chosen.snapshot, f"runbook {book.name} v{chosen.number}, the version a new run is routed to,")
        return spec, spec.runbooks[book.name], chosen.snapshot, routing, seq

    def _stable_for(self, state: rel.ReleaseState, runbook: str, number: int) -> Version | None:
        """The version a release of `number` is measured against: the stable one, else the newest earlier version
        that has runs and was not rolled back."""
        if state.stable is not None and state.stable.number < number and state.stable.number not in state.rolled_back:
            return state.stable
        kept = [(v, i, digest) for i, (digest, v, _, _) in enumerate(self.store.snapshots(runbook)) if v < number and v not in state.rolled_back]
        for version, _, digest in sorted(kept, reverse=True):  # the newest number first, the last kept of it first
            if self.store.snapshot_used(digest):
                return Version(version, digest)
        return None

    def _released(self, book: RunbookSpec, stable: Version, share: float, key: str | None, by: str | None) -> dict[str, Any]:
        release = book.file.release
        return {"version": book.file.version, "snapshot": self.project._keep(book), "stable": stable.to_json(), "share": share,
                "key": key, "rollback_when": release.rollback_when if release else None,
                "promote_when": release.promote_when if release else None, "by": by}

    def _check_fixtures(self, book: RunbookSpec) -> None:
        """A version is released only once its fixtures passed on it (`lane test`), when it has fixtures."""
        from lane.feedback.fixtures import RESULTS, fixture_paths

        if not fixture_paths(self.project.root, book.name):
            return
        try:
            last = json.loads((self.project.root / RESULTS / f"{book.name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            last = None
        digest = self.project._snapshot(book).digest
        if not isinstance(last, dict) or last.get("snapshot") != digest:
            raise UsageError(f"runbook {book.name} v{book.file.version} is to be released (`release:`), and its fixtures have not "
                             f"been run on it: run `lane test {book.name}`")
        if last.get("failed"):
            raise UsageError(f"runbook {book.name} v{book.file.version} is to be released (`release:`), but {last['failed']} of its "
                             f"fixtures failed in the last `lane test {book.name}`: a release needs them to pass")

    # -- a person's decisions ---------------------------------------------------

    def release(self, runbook: str, version: int, *, share: float | None, key: str | None, model: str | None, by: str | None,
                on_result: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        book = self.project._runbook(runbook)
        if version != book.file.version:
            raise UsageError(f"runbook {runbook} is at v{book.file.version} in {book.source.path}, not v{version}: only the runbook's "
                             f"current version is released (write it with `version: {version}`, then release it)")
        if share is not None and not 0 <= share <= 1:
            raise UsageError(f"--share must be between 0% and 100%, not {share:.0%}")
        state = self.state(runbook)
        if version in state.rolled_back:
            raise UsageError(f"{runbook} v{version} was rolled back ({state.rolled_back[version]}): raise `version:` to release a fix")
        declared = book.file.release
        again = state.candidate is not None and state.candidate.version.number == version
        if again:
            assert state.candidate is not None
            stable = state.candidate.stable
            share = state.candidate.share if share is None else share
            key = state.candidate.key if key is None else key
        else:
            if state.stable is not None and state.stable.number == version:
                raise UsageError(f"{runbook} v{version} is the stable version already: every new run goes to it")
            found = self._stable_for(state, runbook, version)
            if found is None:
                raise UsageError(f"{runbook} has no earlier version with runs to release v{version} against: every new run goes to v{version} already")
            stable = found
            share = share if share is not None else declared.share if declared else 0.1
            key = key if key is not None else declared.key if declared else None
            if key is not None:
                self._check_key(book, key)
            from lane.feedback.fixtures import fixture_paths

            if fixture_paths(self.project.root, book.name):
                tested = self.project.test(runbook, model=model, on_result=on_result)
                if tested["failed"]:
                    names = ", ".join(r["fixture"] for r in tested["fixtures"] if not r["passed"])
                    raise UsageError(f"{runbook} v{version} is not released: {tested['failed']} of its {len(tested['fixtures'])} "
                                     f"fixtures failed ({names}); `lane test {runbook}` shows why")
        data = self._released(book, stable, share, key, by)
        if self.store.append_release(runbook, "released", data, after=state.seq) is None:
            raise UsageError(f"the release of {runbook} changed while this was decided (another person or process); look with "
                             f"`lane release {runbook}` and run the command again")
        return self.status(runbook)

    def _check_key(self, book: RunbookSpec, key: str) -> None:
        from lane.spec.expressions import ExpressionSyntaxError, compile_expression

        try:
            refs = compile_expression(key).refs
        except ExpressionSyntaxError as exc:
            raise UsageError(f"--key: {exc}") from None
        if any(ref[0] not in ("inputs", "run") or (ref[0] == "run" and ref[1:2] not in ((), ("id",))) for ref in refs):
            raise UsageError(f"--key {key!r}: a routing key reads the inputs (inputs.customer) or run.id only")

    def promote(self, runbook: str, *, by: str | None, kill_date: str | None, sunset: str | None) -> dict[str, Any]:
        self.project._runbook(runbook)
        state = self.state(runbook)
        if state.candidate is None:
            raise rel.no_release(runbook)
        if kill_date is not None:
            kill_date = _day(kill_date)
        old = state.candidate.stable
        data = {**state.candidate.version.to_json(), "by": by, "replaces": old.number,
                **({"kill_version": old.number, "kill_date": kill_date, "sunset": sunset} if kill_date else {})}
        if self.store.append_release(runbook, "promoted", data, after=state.seq) is None:
            raise UsageError(f"the release of {runbook} changed while this was decided; look with `lane release {runbook}` and run it again")
        return self.status(runbook)

    def rollback(self, runbook: str, *, by: str | None, reason: str | None) -> dict[str, Any]:
        self.project._runbook(runbook)
        state = self.state(runbook)
        if state.candidate is not None:
            target = state.candidate.version
        elif state.stable is not None and state.earlier:
            target = state.stable  # the last promotion is undone: the stable before it is stable again
        else:
            raise UsageError(f"{runbook} has no open release and no promotion to roll back")
        data = {**target.to_json(), "by": by, "reason": reason or f"rolled back by {by or 'a person'}", "automatic": False}
        if self.store.append_release(runbook, "rolled_back", data, after=state.seq) is None:
            raise UsageError(f"the release of {runbook} changed while this was decided; look with `lane release {runbook}` and run it again")
        return self.status(runbook)

    # -- guards ---------------------------------------------------------------

    def after_run(self, runbook: str) -> str | None:
        """Check an open release's guards over the runs so far: roll it back by itself when `rollback_when` holds,
        propose its promotion once when `promote_when` holds. What was done, if anything."""
        state = self.state(runbook)
        candidate = state.candidate
        if candidate is None or not (candidate.rollback_when or candidate.promote_when):
            return None
        scope = self.figures(runbook, candidate, with_kpis=rel.reads_kpis(candidate.rollback_when, candidate.promote_when))
        if candidate.rollback_when:
            held, _ = rel.guard(candidate.rollback_when, scope)
            if held:
                reason = f"rollback_when held: {candidate.rollback_when} ({rel.describe(scope)})"
                data = {**candidate.version.to_json(), "by": None, "reason": reason, "automatic": True, "figures": _plain(scope)}
                return "rolled_back" if self.store.append_release(runbook, "rolled_back", data, after=state.seq) else None
        if candidate.promote_when and candidate.version.number not in state.proposed:
            held, _ = rel.guard(candidate.promote_when, scope)
            if held:
                book = self.project.spec.runbooks.get(runbook)
                data = {**candidate.version.to_json(), "to": book.file.approver if book else None, "figures": _plain(scope),
                        "reason": f"promote_when held: {candidate.promote_when} ({rel.describe(scope)}); `lane promote {runbook}` promotes it"}
                return "proposed" if self.store.append_release(runbook, "promotion_proposed", data, after=state.seq) else None
        return None

    def figures(self, runbook: str, candidate: rel.Candidate, *, with_kpis: bool) -> dict[str, Any]:
        """What the guards read: the candidate's runs since it was released, and the stable's as `stable`."""
        from lane.feedback.versions import kpis_of

        runs = [r for r in self.store.runs_of(runbook) if r.parent_id is None and r.started_at >= candidate.at]
        book = self.project.spec.runbooks.get(runbook)
        declared = book.file.kpis if book else {}

        def read(run_id: str) -> dict[str, Any]:
            return kpis_of(self.store.events(run_id))

        mine = rel.figures([r for r in runs if r.snapshot == candidate.version.snapshot], read, declared, with_kpis=with_kpis)
        theirs = rel.figures([r for r in runs if r.snapshot == candidate.stable.snapshot], read, declared, with_kpis=with_kpis)
        return {**mine, "stable": theirs}

    def status(self, runbook: str) -> dict[str, Any]:
        book = self.project._runbook(runbook)
        state = self.state(runbook)
        shown = {"runbook": runbook, "version": book.file.version, **state.to_json(), "proposed": sorted(state.proposed)}
        if state.candidate is not None:
            shown["figures"] = self.figures(runbook, state.candidate, with_kpis=bool(book.file.kpis))
        return shown


def _plain(scope: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(scope, default=str))
    return plain


def _day(text: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"--kill-date {text!r}: write a date as YYYY-MM-DD") from None
