"""lane: an orchestration engine for human-directed AI agents.

The public API. Heavy parts load on first use, so `import lane` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lane.errors import (
    DecisionError,
    LaneError,
    ModelError,
    PauseRun,
    Problem,
    ProjectInvalid,
    RunError,
    RunNotFound,
    ScriptExhausted,
    StopRun,
    ToolError,
    UsageError,
)
from lane.tools.base import ToolContext, tool

if TYPE_CHECKING:
    from lane.project import Project, Run

__version__ = "0.1.0"

__all__ = [
    "DecisionError",
    "LaneError",
    "ModelError",
    "PauseRun",
    "Problem",
    "Project",
    "ProjectInvalid",
    "Run",
    "RunError",
    "RunNotFound",
    "ScriptExhausted",
    "StopRun",
    "ToolContext",
    "ToolError",
    "UsageError",
    "tool",
]


def __getattr__(name: str) -> Any:
    if name in ("Project", "Run"):
        from lane import project

        return getattr(project, name)
    raise AttributeError(f"module 'lane' has no attribute {name!r}")
