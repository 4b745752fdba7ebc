"""Where a project's traces go: `telemetry:` in lane.yaml, else OpenTelemetry's standard variables.

Read without importing OpenTelemetry: a project without telemetry never loads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lane.errors import UsageError

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec

INSTALL = "pip install 'lane[otel]'"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class Settings:
    """One exporter's settings; runs of projects with the same ones share it."""

    endpoint: str | None  # the full /v1/traces URL; None: the exporter reads OTEL_EXPORTER_OTLP_*ENDPOINT itself
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # env: values read: never shown
    service: str = "lane"


def settings(spec: ProjectSpec) -> tuple[Settings, bool] | None:
    """The project's exporter settings and whether spans hold content, or None when it has no telemetry.

    A `telemetry:` that cannot work (`problem`) is a UsageError. OTEL_EXPORTER_OTLP_ENDPOINT alone turns traces on only where lane[otel] is installed: the variable
    may be set for other programs of the same environment."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    config = spec.config.telemetry
    service = (config.service_name if config else None) or os.environ.get("OTEL_SERVICE_NAME") or "lane"
    if config is None:
        if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES) or not installed():
            return None
        return Settings(None, (), service), False
    found = problem(spec)
    if found is not None:
        raise UsageError(found)
    endpoint = config.endpoint.rstrip("/") if config.endpoint else None
    if endpoint is not None and not endpoint.endswith("/v1/traces"):  # the collector's address; the path is OTLP's
        endpoint += "/v1/traces"
    headers = tuple((name, _value(value)) for name, value in sorted(config.headers.items()))
    return Settings(endpoint, headers, service), config.content


def problem(spec: ProjectSpec) -> str | None:
    """What keeps the project's `telemetry:` from working, in one line (for `lane validate` too), if anything."""
    config = spec.config.telemetry
    if config is None:
        return None
    if not installed():
        return f"telemetry: in lane.yaml needs OpenTelemetry, which is not installed: {INSTALL}"
    if config.endpoint is not None and not config.endpoint.startswith(("http://", "https://")):
        return f"telemetry.endpoint is the collector's OTLP/HTTP address, such as http://localhost:4318, not {config.endpoint!r}"
    for name, value in config.headers.items():
        if value.startswith("env:") and not os.environ.get(value[4:]):
            return (f"telemetry.headers.{name} reads the environment variable {value[4:]}, which is not set; "
                    "set it, or take the header out of telemetry: in lane.yaml")
    return None


def installed() -> bool:
    """Whether lane[otel] is installed (the SDK and the OTLP/HTTP exporter)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def _value(value: str) -> str:
    return os.environ.get(value[4:], "") if value.startswith("env:") else value
