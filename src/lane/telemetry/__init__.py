"""OpenTelemetry traces of runs, built from the journal as it is committed (lane[otel])."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec


def observer(spec: ProjectSpec) -> Callable[[str, list[Any], str | None], None] | None:
    """The commit observer that exports this project's traces, or None when it has no telemetry (not yet built)."""
    return None
