"""OpenTelemetry traces of runs, built from the journal as it is committed (lane[otel]); see docs/telemetry.md.

On with `telemetry:` in lane.yaml, or OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT.
Nothing of OpenTelemetry is imported for a project that has neither.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lane.telemetry.settings import problem, settings

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec
    from lane.telemetry.tracing import Tracing

__all__ = ["observer", "problem", "shutdown"]


def observer(spec: ProjectSpec) -> Tracing | None:
    """The commit observer that exports this project's traces, or None when it has no telemetry.
    Raises UsageError when `telemetry:` cannot work (lane[otel] not installed, a header's variable not set)."""
    found = settings(spec)
    if found is None:
        return None
    from lane.telemetry.tracing import Tracing

    return Tracing(spec, *found)


def shutdown() -> None:
    """Export the spans still queued and stop the exporters' threads. lane does it at exit (waiting at most a
    few seconds for a collector); a host that embeds lane may do it sooner. Runs after it export again."""
    if "lane.telemetry.exporter" in sys.modules:  # else none was ever made, and OpenTelemetry stays unloaded
        from lane.telemetry.exporter import close_all

        close_all()
