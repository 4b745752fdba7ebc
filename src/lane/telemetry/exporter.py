"""The OpenTelemetry side of traces (lane[otel]): lane's spans through the SDK to an OTLP/HTTP endpoint.

lane's own TracerProvider, never the global one (a program that embeds lane
keeps its own). Spans are made after the fact from the journal, so each is
started with the ids the journal gives it (`Given`) and the times of its events.
A BatchSpanProcessor exports in its own thread: a collector that is down or
slow costs a run nothing. At exit lane waits at most EXIT_GRACE seconds for the
last spans, then drops them.
"""

from __future__ import annotations

import atexit
import logging
import threading
from datetime import UTC, datetime, timedelta

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from lane import __version__
from lane.telemetry.settings import Settings
from lane.telemetry.spans import Span

EXIT_GRACE = 2.0  # seconds lane waits at exit for the last spans to reach the collector
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# An unreachable collector is not the person's problem at the terminal: the exporter's retries and failures
# are logged, and shown only where the program configured logging (as the PostgreSQL store does for its pool).
for _name in ("opentelemetry.exporter", "opentelemetry.sdk"):
    logging.getLogger(_name).addHandler(logging.NullHandler())


class Given(IdGenerator):
    """The ids of the span being started, set just before: the journal decides them, not chance."""

    def __init__(self) -> None:
        self.trace_id = self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class Exporter:
    """One OTLP/HTTP exporter, its batch processor and thread, for the runs of every project with these settings."""

    def __init__(self, settings: Settings) -> None:
        self.ids = Given()
        self.exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers) or None)
        resource = Resource.create({"service.name": settings.service, "service.version": __version__})
        self.provider = TracerProvider(resource=resource, id_generator=self.ids, shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("lane", __version__)
        self.lock = threading.Lock()  # the ids are set for one span at a time
        self.closing, self.closed = threading.Event(), threading.Event()
        # Started now, not at exit: from Python 3.12 no thread may start while the interpreter shuts down.
        threading.Thread(target=self._give_up, name="lane-telemetry-close", daemon=True).start()

    def export(self, trace_id: int, spans: list[Span]) -> None:
        with self.lock:
            for span in spans:
                self._start(trace_id, span)

    def _start(self, trace_id: int, span: Span) -> None:
        parent = Context() if span.parent_id is None else set_span_in_context(NonRecordingSpan(_context(trace_id, span.parent_id)))
        attributes: dict[str, AttributeValue] = {key: value for key, value in span.attributes.items() if value is not None}
        if span.error is not None:
            attributes["error.type"] = span.error
        self.ids.trace_id, self.ids.span_id = trace_id, span.span_id
        started = self.tracer.start_span(span.name, parent, SpanKind.CLIENT if span.client else SpanKind.INTERNAL, attributes,
                                         [Link(_context(trace_id, earlier)) for earlier in span.links], _nanos(span.start))
        for name, at, said in span.events:
            started.add_event(name, {key: value for key, value in said.items() if value is not None}, _nanos(at))
        if span.error is not None:
            started.set_status(Status(StatusCode.ERROR))
        started.end(_nanos(span.end))

    def close(self) -> None:
        """Export what is queued and stop the threads; EXIT_GRACE seconds at most, for a collector that does not answer."""
        self.closing.set()
        self.provider.shutdown()
        self.closed.set()

    def _give_up(self) -> None:
        """Once closing, wait EXIT_GRACE seconds for the last export, then stop the exporter's retries: the rest is dropped."""
        self.closing.wait()
        if not self.closed.wait(EXIT_GRACE):
            self.exporter.shutdown()  # type: ignore[no-untyped-call]


_exporters: dict[Settings, Exporter] = {}
_made = threading.Lock()


def exporter(settings: Settings) -> Exporter:
    """The process's exporter for these settings, made at first use (again after `close_all`)."""
    with _made:
        found = _exporters.get(settings)
        if found is None:
            found = _exporters[settings] = Exporter(settings)
        return found


def close_all() -> None:
    """Export what every exporter has queued and stop their threads (at exit, or when a host says so)."""
    with _made:
        closing = list(_exporters.values())
        _exporters.clear()
    for each in closing:
        each.close()


atexit.register(close_all)


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=SAMPLED)


def _nanos(at: str) -> int:
    return (datetime.fromisoformat(at) - EPOCH) // timedelta(microseconds=1) * 1000
