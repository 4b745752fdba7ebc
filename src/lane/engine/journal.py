"""A run's journal in memory: what is on disk, what is about to be, and lookups for replay.

The engine records events here and calls `flush()` before every effect (a
model call, a tool call, a command); the store commits the batch in one
transaction. On resume the journal is loaded whole and the engine replays its
steps against it: anything recorded is reused, never done again. A retry
(`run_retried`) names steps to run again: lookups no longer see their earlier
attempt, which stays in the journal as history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lane.store.records import Event, now


class EventStore(Protocol):
    def append(self, run_id: str, events: list[Event], *, status: str | None = None, reason: str | None = None, release: bool = False) -> None: ...


class Journal:
    def __init__(self, store: EventStore, run_id: str, events: list[Event] | None = None,
                 redact: Callable[[Any], Any] | None = None) -> None:
        self.store = store
        self.redact = redact or (lambda data: data)  # secrets never reach the store, nor the engine's memory of it
        self.run_id = run_id
        self.events: list[Event] = []
        self._pending: list[Event] = []
        self._index: dict[tuple[str, str | None, str | None], list[Event]] = {}
        self.listeners: list[Any] = []
        for event in events or ():
            self._add(event)

    @property
    def next_seq(self) -> int:
        return self.events[-1].seq + 1 if self.events else 1

    def record(self, type_: str, step_id: str | None = None, ref: str | None = None, **data: Any) -> Event:
        event = Event(self.next_seq, type_, step_id, ref, now(), self.redact(data))
        self._add(event)
        self._pending.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def once(self, type_: str, step_id: str | None = None, ref: str | None = None, **data: Any) -> Event:
        """The recorded event of this type about this step and ref, recording it first if there is none."""
        return self.find(type_, step_id, ref) or self.record(type_, step_id, ref, **data)

    def flush(self, *, status: str | None = None, reason: str | None = None, release: bool = False) -> None:
        """Commit everything recorded since the last flush (and the run's status)."""
        if not self._pending and status is None:
            return
        reason = self.redact(reason) if reason is not None else None
        self.store.append(self.run_id, self._pending, status=status, reason=reason, release=release)
        self._pending = []

    def fail(self, reason: str, **data: Any) -> None:
        """End the run as failed with `reason`, even when what was recorded since the last flush cannot be committed.

        Such events are dropped and the ending is committed alone: nothing acted on them, since every
        effect flushes first. An internal error must never leave a run `running` for ever."""
        self.record("run_failed", reason=reason, **data)
        try:
            self.flush(status="failed", reason=reason, release=True)
            return
        except Exception:  # noqa: BLE001 - whatever the store refused, the ending is written without it
            dropped = len(self._pending) - 1
        for event in self._pending:
            self.events.pop()
            self._index[(event.type, event.step_id, event.ref)].pop()
        self._pending = []
        self.record("run_failed", reason=reason, dropped_events=dropped, **data)
        self.flush(status="failed", reason=reason, release=True)

    def _add(self, event: Event) -> None:
        self.events.append(event)
        if event.type == "run_retried":  # the steps run again: what their earlier attempt recorded is history, not replay,
            again = set(event.data.get("steps", ()))  # but a call whose effect is not known stays started: a person is asked
            doubt = {("tool_started", d["step"], d["call_id"]) for d in event.data.get("in_doubt", ())}
            self._index = {key: found for key, found in self._index.items() if key[1] not in again or key in doubt}
        self._index.setdefault((event.type, event.step_id, event.ref), []).append(event)

    def find(self, type_: str, step_id: str | None = None, ref: str | None = None) -> Event | None:
        """The latest event of this type about this step and ref, if any."""
        found = self._index.get((type_, step_id, ref))
        return found[-1] if found else None

    def find_all(self, type_: str, step_id: str | None = None, ref: str | None = None) -> list[Event]:
        return self._index.get((type_, step_id, ref), [])

    def at(self, seq: int) -> Event:
        """The event with this sequence number (journals number events 1, 2, 3...)."""
        return self.events[seq - 1]
