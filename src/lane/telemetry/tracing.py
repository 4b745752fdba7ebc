"""The commit observer that turns a project's journals into traces.

The journal tells it each batch of events once they are on disk. What it was not
told (the run's first event, committed with the run; a person's decision,
written by `approve`; what another process recorded before a resume) it reads
back from the store once, when a run's segment begins in this process. It keeps
a run's state only while the run's segment goes on in this process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lane.secrets import Redactor
from lane.store.records import Event
from lane.telemetry.exporter import exporter
from lane.telemetry.genai import Content
from lane.telemetry.runs import ENDINGS, RunTrace
from lane.telemetry.settings import Settings

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec


class Tracing:
    def __init__(self, spec: ProjectSpec, settings: Settings, content: bool) -> None:
        self.store_url, self.root = spec.config.store, spec.root
        self.settings = settings
        self.content = Content(Redactor(spec.secrets)) if content else None
        self.runs: dict[str, RunTrace] = {}
        self.blind: set[str] = set()  # runs whose journal could not be read back: not traced until their segment ends
        self.lock = threading.Lock()
        exporter(settings)  # made now: its settings' problems show at the first run, not in a thread

    def __call__(self, run_id: str, events: list[Event], status: str | None, *, earlier: list[Event] | None = None) -> None:
        """`events` just committed; `earlier`: what the run's journal held in memory (events it was not told of are there)."""
        if not events:
            return
        with self.lock:
            trace = self._trace(run_id, events[0].seq, earlier)
            if trace is None:
                if any(e.type in ENDINGS for e in events):
                    self.blind.discard(run_id)
                return
            for event in events:
                trace.fold(event, live=True)
            spans = trace.take()
            if trace.segment is None:  # paused, stopped or ended: a later segment reads the journal back
                del self.runs[run_id]
        if spans:
            exporter(self.settings).export(trace.trace_id, spans)

    def _trace(self, run_id: str, first: int, earlier: list[Event] | None = None) -> RunTrace | None:
        """The run's state, brought up to just before `first` from the store when events were committed
        without this observer (None: the store cannot say, and the run is not traced here)."""
        if run_id in self.blind:
            return None
        trace = self.runs.get(run_id) or RunTrace(run_id, self.content)
        if first > trace.seq + 1:
            try:
                earlier = ([e for e in earlier if trace.seq < e.seq < first] if earlier is not None  # seq 0: let go by compaction
                           else self._earlier(run_id, trace.seq, first))
            except Exception:  # noqa: BLE001 - a store this process cannot reach (store: memory is its project's own)
                self.runs.pop(run_id, None)
                self.blind.add(run_id)
                return None
            for event in earlier:
                trace.fold(event, live=False)
        self.runs[run_id] = trace
        return trace

    def _earlier(self, run_id: str, after: int, before: int) -> list[Event]:
        from lane.store.url import open_store

        store = open_store(self.store_url, self.root)
        try:
            return [e for e in store.events(run_id) if after < e.seq < before]
        finally:
            store.close()
