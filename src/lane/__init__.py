"""lane: an orchestration engine for human-directed AI agents.

The public API. Every name loads on first use, so `import lane` (and `lane --help`) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lane.engine.approvals import Pending
    from lane.engine.decisions import Decision
    from lane.errors import (
        DecisionError,
        LaneError,
        ModelCallFailed,
        ModelError,
        PauseRun,
        Problem,
        ProjectInvalid,
        RunBusy,
        RunError,
        RunNotFound,
        ScriptExhausted,
        StopRun,
        ToolError,
        UsageError,
    )
    from lane.models.base import Model, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage
    from lane.project import Project, Run
    from lane.store.records import Event
    from lane.tools.base import ToolContext, tool

__version__ = "0.1.0"

__all__ = [
    "Decision",
    "DecisionError",
    "Event",
    "LaneError",
    "Model",
    "ModelCallFailed",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "PauseRun",
    "Pending",
    "Problem",
    "Project",
    "ProjectInvalid",
    "Run",
    "RunBusy",
    "RunError",
    "RunNotFound",
    "ScriptExhausted",
    "StopRun",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "Usage",
    "UsageError",
    "tool",
]


# name: the module it lives in, imported on first use (so `import lane` and `lane --help` stay quick)
_ERRORS = ("DecisionError", "LaneError", "ModelCallFailed", "ModelError", "PauseRun", "Problem", "ProjectInvalid", "RunBusy",
           "RunError", "RunNotFound", "ScriptExhausted", "StopRun", "ToolError", "UsageError")
_LAZY = {
    **dict.fromkeys(_ERRORS, "lane.errors"), "ToolContext": "lane.tools.base", "tool": "lane.tools.base",
    "Project": "lane.project", "Run": "lane.project", "Decision": "lane.engine.decisions", "Pending": "lane.engine.approvals",
    "Event": "lane.store.records", "Model": "lane.models.base", "ModelRequest": "lane.models.base",
    "ModelResponse": "lane.models.base", "ToolCall": "lane.models.base", "ToolSpec": "lane.models.base", "Usage": "lane.models.base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lane' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
