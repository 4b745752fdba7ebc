"""The commit observer that turns a project's journals into traces.

The journal tells it each batch of events once they are on disk, with what the
journal held before: what it was not told (the run's first event, committed with
the run; a person's decision, written by `approve`; what another process
recorded before a resume) is taken from there, when a run's segment begins in
this process. It keeps a run's state only while the run's segment goes on here.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lane.secrets import Redactor
from lane.store.records import Event
from lane.telemetry.exporter import exporter
from lane.telemetry.genai import Content
from lane.telemetry.runs import RunTrace
from lane.telemetry.settings import Settings

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec


class Tracing:
    def __init__(self, spec: ProjectSpec, settings: Settings, content: bool) -> None:
        self.settings = settings
        self.content = Content(Redactor(spec.secrets)) if content else None
        self.runs: dict[str, RunTrace] = {}
        self.lock = threading.Lock()
        exporter(settings)  # made now: its settings' problems show at the first run, not in a thread

    def __call__(self, run_id: str, events: list[Event], status: str | None, *, earlier: list[Event]) -> None:
        """`events` just committed; `earlier`: what the run's journal holds (the events it was not told of are there)."""
        if not events:
            return
        with self.lock:
            trace = self._trace(run_id, events[0].seq, earlier)
            for event in events:
                trace.fold(event, live=True)
            spans = trace.take()
            if trace.segment is None:  # paused, stopped or ended: a later segment takes it up from its journal
                del self.runs[run_id]
        if spans:
            exporter(self.settings).export(trace.trace_id, spans)

    def _trace(self, run_id: str, first: int, earlier: list[Event]) -> RunTrace:
        """The run's state, brought up to just before `first` from the events committed without this observer."""
        trace = self.runs.get(run_id) or RunTrace(run_id, self.content)
        if first > trace.seq + 1:
            for event in earlier:
                if trace.seq < event.seq < first:  # seq 0: an event compaction let go (inside a finished part)
                    trace.fold(event, live=False)
        self.runs[run_id] = trace
        return trace
