"""A run's journal in memory: what is on disk, what is about to be, and lookups for replay.

The engine records events here and calls `flush()` (or `commit()`, which
blocks running at once share) before every effect (a model call, a tool call,
a command); the store commits the batch in one transaction. On resume the journal is loaded whole and the engine replays its
steps against it: anything recorded is reused, never done again. A retry
(`run_retried`) names steps to run again: lookups no longer see their earlier
attempt, which stays in the journal as history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from lane.store.records import Event, now

if TYPE_CHECKING:
    import asyncio  # imported when a commit is shared, not with the project: `import lane.project` stays light

AGAIN = ("run_retried", "loop_back")  # events after which the steps they name run again


def enclosing(step_id: str) -> Iterator[str]:
    """The groups and parts a step is inside, innermost first: `each[2]`, then `each`, for `each[2].inc`."""
    cut = len(step_id)
    while (cut := max(step_id.rfind(".", 0, cut), step_id.rfind("[", 0, cut))) > 0:
        yield step_id[:cut]


def among(step_id: str | None, steps: set[str]) -> bool:
    """Whether `step_id` is one of `steps`, or a step inside one of them (`each[2].inc` is inside `each`)."""
    if step_id is None or not steps:
        return False
    return step_id in steps or any(outer in steps for outer in enclosing(step_id))


_FORGOTTEN = Event(seq=0, type="", step_id=None, ref=None, at="", data={})  # stands in for an event a compacting journal let go


async def _shield(done: asyncio.Future[None]) -> None:
    """Wait for a shared commit; a waiter cancelled meanwhile does not cancel it for the others."""
    import asyncio

    await asyncio.shield(done)


def _taken(done: asyncio.Future[None]) -> None:
    """A shared commit's failure is seen by those who wait for it; taken here too, so none is reported lost."""
    if not done.cancelled():
        done.exception()


class EventStore(Protocol):
    def append(self, run_id: str, events: list[Event], *, status: str | None = None, reason: str | None = None, release: bool = False) -> None: ...


class GroupCommit:
    """Commits shared by the runs one Project executes at once in one event loop: every run that asks
    for a commit in the same event-loop turn waits for one transaction holding all their events."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.active = 0  # runs executing now
        self._waiting: dict[Journal, None] = {}
        self._done: asyncio.Future[None] | None = None

    async def commit(self, journal: Journal) -> None:
        self._waiting[journal] = None
        if self._done is None:
            import asyncio

            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            self._done.add_done_callback(_taken)
            loop.call_soon(self._now)
        await _shield(self._done)

    def _now(self) -> None:
        done, self._done = self._done, None
        journals, self._waiting = [j for j in self._waiting if j._pending], {}
        assert done is not None
        try:
            self.store.append_many([(j.run_id, j._pending) for j in journals])
        except Exception:  # noqa: BLE001, S110 - nothing of the batch is on disk: each run then commits its own, and sees its own failure
            pass
        else:
            for journal in journals:
                journal._committed(journal._pending, None)
                journal._pending = []
        done.set_result(None)


class Journal:
    def __init__(self, store: EventStore, run_id: str, events: list[Event] | None = None,
                 redact: Callable[[Any], Any] | None = None, group: GroupCommit | None = None) -> None:
        self.store = store
        self.group = group
        self.redact = redact or (lambda data: data)  # secrets never reach the store, nor the engine's memory of it
        self.run_id = run_id
        self.events: list[Event] = []
        self._pending: list[Event] = []
        self._index: dict[tuple[str, str | None, str | None], list[Event]] = {}
        self.listeners: list[Any] = []  # told of each event as it is recorded
        self.committed: list[Callable[[str, list[Event], str | None], None]] = []  # told of (run, events, status) once on disk
        self._loops: dict[str, int] = {}  # step -> times a feedback loop ran it again
        self._retries: list[tuple[int, set[str]]] = []  # (seq, steps run again) of each run_retried
        self._compacting = False
        self._parts: set[str] = set()  # branches and items that have started (while compacting)
        self._inside: dict[str, list[Event]] = {}  # part -> the events of the steps inside it
        self._nested: dict[str, list[str]] = {}  # part -> the parts inside it
        self._part_cache: dict[str, str | None] = {}  # step -> the part it is inside
        self.concurrent = 1  # blocks of this run running at once: above 1, commits are shared (`commit`)
        self._commit: asyncio.Future[None] | None = None
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
        self._committed(self._pending, status)
        self._pending = []

    def _committed(self, events: list[Event], status: str | None) -> None:
        """Tell the observers of commits (traces); theirs is not the run's problem."""
        for observer in self.committed:
            try:
                observer(self.run_id, events, status)
            except Exception:  # noqa: BLE001, S110 - an exporter's failure never fails a run
                pass

    async def commit(self) -> None:
        """`flush()`, shared: the blocks of this run that run at once (branches, items) and ask in the same
        event-loop turn wait for one commit. Each still resumes only once what it recorded is on disk."""
        if not self._pending:
            return
        if self.group is not None and self.group.active > 1:  # other runs of this process share it too
            await self.group.commit(self)
            if self._pending:  # the shared commit failed: this run's own tells why
                self.flush()
            return
        if self.concurrent <= 1:
            self.flush()
            return
        if self._commit is None:
            import asyncio

            loop = asyncio.get_running_loop()
            self._commit = loop.create_future()
            self._commit.add_done_callback(_taken)
            loop.call_soon(self._commit_now)
        await _shield(self._commit)

    def _commit_now(self) -> None:
        done, self._commit = self._commit, None
        assert done is not None
        try:
            self.flush()
        except BaseException as exc:  # every block waiting for it sees the store's failure
            done.set_exception(exc)
        else:
            done.set_result(None)

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
            self._unindex(event)
        self._pending = []
        self.record("run_failed", reason=reason, dropped_events=dropped, **data)
        self.flush(status="failed", reason=reason, release=True)

    def compact(self) -> None:
        """From now on, forget what the steps inside a finished branch or item recorded (its own events stay:
        they hold its output), so a for_each over 10,000 items does not hold every item's conversation.
        A finished part is never entered again; a retry or a loop that runs it again starts it afresh."""
        self._compacting = True
        events, self.events = self.events, []
        self._parts, self._inside, self._nested, self._part_cache = set(), {}, {}, {}
        for event in events:
            self.events.append(event)
            self._remember(event)

    def _remember(self, event: Event) -> None:
        """Keep the event under the innermost branch or item it is inside; forget them all when that part finishes."""
        step_id = event.step_id
        if step_id is None or not ("." in step_id or "[" in step_id):
            return
        part = self._part_cache.get(step_id, "")
        if part == "":  # a step's part is known once it runs: it started before the step
            part = self._part_cache[step_id] = self._part_of(step_id)
        if event.type == "step_started" and event.data.get("kind") in ("item", "branch"):
            self._parts.add(step_id)
            if part is not None:
                self._nested.setdefault(part, []).append(step_id)
            return
        if part is not None and step_id != part:
            self._inside.setdefault(part, []).append(event)
        if event.type == "step_finished" and step_id in self._parts:
            self._forget(step_id)

    def _part_of(self, step_id: str) -> str | None:
        """The innermost branch or item `step_id` is inside (not itself)."""
        return next((outer for outer in enclosing(step_id) if outer in self._parts), None)

    def _forget(self, part: str) -> None:
        for event in self._inside.pop(part, ()):
            self._part_cache.pop(event.step_id or "", None)
            self._unindex(event)
            if event.seq <= len(self.events) and self.events[event.seq - 1] is event:
                self.events[event.seq - 1] = _FORGOTTEN
        for inner in self._nested.pop(part, ()):
            self._forget(inner)
        self._parts.discard(part)

    def _unindex(self, event: Event) -> None:
        """Take this very event out of the index (by identity: comparing events field by field is slow, and two may be equal)."""
        key = (event.type, event.step_id, event.ref)
        found = self._index.get(key)
        if found is None:
            return
        for i, other in enumerate(found):
            if other is event:
                del found[i]
                break
        if not found:
            del self._index[key]

    def _add(self, event: Event) -> None:
        self.events.append(event)
        if self._compacting:
            self._remember(event)
        if event.type in AGAIN:  # the steps run again: what their earlier attempt recorded is history, not replay,
            again = set(event.data.get("steps", ()))  # but a call whose effect is not known stays started: a person is asked
            doubt = {("tool_started", d["step"], d["call_id"]) for d in event.data.get("in_doubt", ())}
            keep = set(event.data.get("keep", ()))  # finished branches and items of a group run again: kept
            self._index = {key: found for key, found in self._index.items()
                           if not among(key[1], again) or key in doubt or among(key[1], keep)}
            if event.type == "run_retried":
                self._retries.append((event.seq, again))
            if event.type == "loop_back":  # the agent step goes on from its answer: it finishes again
                self._index.pop(("step_finished", event.step_id, None), None)
                for step_id in again:
                    self._loops[step_id] = self._loops.get(step_id, 0) + 1
        self._index.setdefault((event.type, event.step_id, event.ref), []).append(event)

    def retried_at(self, step_id: str) -> int:
        """The seq of the latest retry that ran this step again (0: none): what it did before is an earlier attempt."""
        return max((seq for seq, again in self._retries if among(step_id, again)), default=0)

    def loops(self, step_id: str) -> int:
        """How many times feedback loops ran this step again (or a group it is in)."""
        if not self._loops:
            return 0
        return self._loops.get(step_id, 0) + sum(self._loops.get(outer, 0) for outer in enclosing(step_id))

    def find(self, type_: str, step_id: str | None = None, ref: str | None = None) -> Event | None:
        """The latest event of this type about this step and ref, if any."""
        found = self._index.get((type_, step_id, ref))
        return found[-1] if found else None

    def find_all(self, type_: str, step_id: str | None = None, ref: str | None = None) -> list[Event]:
        return self._index.get((type_, step_id, ref), [])

    def at(self, seq: int) -> Event:
        """The event with this sequence number (journals number events 1, 2, 3...); a finished part's inner ones are forgotten."""
        return self.events[seq - 1]
