"""The in-memory store (`store: memory`): runs live as long as the process. For tests and rehearsals.

It keeps the last KEEP_FINISHED finished runs (completed, failed, rejected) and
forgets older ones, so a long-lived process does not grow without bound; runs
that may still go on (running, paused, stopped) are always kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from lane.errors import RunNotFound
from lane.store.records import FINISHED, Event, ReleaseMoved, RunRecord, now

KEEP_FINISHED = 1000


class MemoryStore:
    def __init__(self, keep_finished: int = KEEP_FINISHED) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, list[Event]] = {}
        self._finished: dict[str, None] = {}  # finished run ids, oldest first
        self.keep_finished = keep_finished
        self._tokens: dict[str, str] = {}
        self._deliveries: dict[str, str] = {}
        self._blobs: dict[str, str] = {}
        self._snapshots: dict[str, tuple[str, int, dict[str, Any], str]] = {}
        self._releases: list[tuple[str, dict[str, Any]]] = []  # (runbook, entry)

    def close(self) -> None:
        pass

    def create_run(self, run_id: str, runbook: str, version: int, inputs: dict[str, Any], owner: str,
                   parent: tuple[str, str] | None = None, snapshot: str | None = None, first: Event | None = None,
                   routed_at: int | None = None) -> None:
        if routed_at is not None and max((e["seq"] for book, e in self._releases if book == runbook), default=0) != routed_at:
            raise ReleaseMoved(runbook)
        at = now()
        parent_id, parent_step = parent or (None, None)
        self._runs[run_id] = RunRecord(run_id, runbook, version, "running", None, copy.deepcopy(inputs), at, at, owner,
                                       parent_id=parent_id, parent_step=parent_step, snapshot=snapshot)
        self._events[run_id] = [] if first is None else [first]

    def keep_snapshot(self, digest: str, runbook: str, version: int, manifest: dict[str, Any], texts: dict[str, str]) -> None:
        for key, text in texts.items():
            self._blobs.setdefault(key, text)
        self._snapshots.setdefault(digest, (runbook, version, copy.deepcopy(manifest), now()))

    def snapshots(self, runbook: str) -> list[tuple[str, int, dict[str, Any], str]]:
        kept = [(d, v, copy.deepcopy(m), at) for d, (book, v, m, at) in self._snapshots.items() if book == runbook]
        return sorted(kept, key=lambda k: (k[3], k[0]))

    def snapshot(self, digest: str) -> dict[str, Any] | None:
        kept = self._snapshots.get(digest)
        return copy.deepcopy(kept[2]) if kept else None

    def blob(self, digest: str) -> str | None:
        return self._blobs.get(digest)

    def snapshot_used(self, digest: str) -> bool:
        return any(r.snapshot == digest for r in self._runs.values())

    def runs_of(self, runbook: str) -> list[RunRecord]:
        return sorted((r for r in self._runs.values() if r.runbook == runbook), key=lambda r: (r.started_at, r.run_id))

    def release_log(self, runbook: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(entry) for book, entry in self._releases if book == runbook]

    def append_release(self, runbook: str, kind: str, data: dict[str, Any], *, after: int) -> int | None:
        last = max((e["seq"] for book, e in self._releases if book == runbook), default=0)
        if last != after:
            return None
        seq = len(self._releases) + 1
        self._releases.append((runbook, {"seq": seq, "type": kind, "at": now(), "data": copy.deepcopy(data)}))
        return seq

    def append(self, run_id: str, events: Iterable[Event], *, status: str | None = None, reason: str | None = None, release: bool = False) -> None:
        log, batch = self._events[run_id], list(events)
        last = log[-1].seq if log else None
        for event in batch:  # all checked before any is kept: a batch is recorded whole or not at all
            if last is not None and event.seq <= last:
                raise ValueError(f"event {event.seq} of run {run_id} is already recorded")
            last = event.seq
        log.extend(batch)
        if status is not None:
            run = self._runs[run_id]
            self._runs[run_id] = replace(run, status=status, reason=reason, updated_at=now(), owner=None if release else run.owner)
            self._finished.pop(run_id, None)
            if status in FINISHED:
                self._finished[run_id] = None
                while len(self._finished) > self.keep_finished:
                    oldest = next(iter(self._finished))
                    del self._finished[oldest], self._runs[oldest], self._events[oldest]

    def append_many(self, batches: list[tuple[str, list[Event]]]) -> None:
        for run_id, events in batches:
            self.append(run_id, events)

    def append_checked(self, run_id: str, make: Callable[[RunRecord, list[Event]], list[Event]]) -> list[Event]:
        run = self.run(run_id)
        events = make(run, self.events(run.run_id))
        self.append(run.run_id, events)
        return events

    def claim(self, run_id: str, owner: str, check: Callable[[RunRecord], None] | None = None) -> RunRecord:
        run = self.run(run_id)
        if check is not None:
            check(run)
        self._runs[run.run_id] = replace(run, owner=owner, status="running", reason=None)
        self._finished.pop(run.run_id, None)  # a retried run is not finished any more
        return run

    def release(self, run_id: str, owner: str) -> None:
        run = self.run(run_id)
        if run.owner == owner:
            self._runs[run.run_id] = replace(run, owner=None)

    def run(self, run_id: str) -> RunRecord:
        run = self._runs.get(run_id)
        if run is None and not run_id:
            raise RunNotFound(run_id)  # an empty prefix names no run
        if run is None:
            matches = [r for key, r in self._runs.items() if key.startswith(run_id)]
            if len(matches) != 1:
                raise RunNotFound(run_id)
            run = matches[0]
        return run

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        ordered = sorted(self._runs.values(), key=lambda r: (r.started_at, r.run_id), reverse=True)
        return ordered[:limit] if limit else ordered

    def changed_since(self, at: str) -> list[RunRecord]:
        return sorted((r for r in self._runs.values() if r.updated_at > at), key=lambda r: r.updated_at)

    def children(self, run_id: str) -> list[RunRecord]:
        return sorted((r for r in self._runs.values() if r.parent_id == run_id), key=lambda r: (r.started_at, r.run_id))

    def events(self, run_id: str, *, after: int = 0) -> list[Event]:
        return [e for e in self._events[self.run(run_id).run_id] if e.seq > after]

    def add_token(self, digest: str, person: str) -> None:
        self._tokens[digest] = person

    def person_of(self, digest: str) -> str | None:
        return self._tokens.get(digest)

    def reserve(self, key: str, run_id: str) -> str | None:
        if key in self._deliveries:
            return self._deliveries[key]
        self._deliveries[key] = run_id
        return None

    def forget(self, run_id: str) -> None:
        """Nothing to give up: no other process sees this store (see PostgresStore.forget)."""

    def check(self) -> str:
        return "ok"
