"""The public surface: names users import must not vanish or move."""

from __future__ import annotations

import subprocess
import sys

import lane
import lane.testing


def test_the_public_names_are_pinned() -> None:
    assert sorted(lane.__all__) == [
        "Decision", "DecisionError", "Event", "LaneError", "Model", "ModelCallFailed", "ModelError", "ModelRequest",
        "ModelResponse", "PauseRun", "Pending", "Problem", "Project", "ProjectInvalid", "Run", "RunBusy", "RunError",
        "RunNotFound", "ScriptExhausted", "StopRun", "ToolCall", "ToolContext", "ToolError", "ToolSpec", "Usage",
        "UsageError", "tool",
    ]
    for name in lane.__all__:
        assert getattr(lane, name) is not None
    assert sorted(lane.testing.__all__) == ["Answer", "FakeHuman", "ScriptedModel", "ScriptedWorstCase", "approve", "reject"]


def test_errors_fall_in_three_families() -> None:
    assert issubclass(lane.ProjectInvalid, lane.UsageError)
    assert issubclass(lane.DecisionError, lane.UsageError)
    assert issubclass(lane.ScriptExhausted, lane.ModelError) and issubclass(lane.ModelError, lane.RunError)
    assert not issubclass(lane.PauseRun, lane.LaneError) and not issubclass(lane.StopRun, lane.LaneError)


def test_importing_lane_and_its_help_stay_light() -> None:
    code = "import sys, lane, lane.cli.app; print(sorted(m for m in ('pydantic', 'jinja2', 'jsonschema', 'ruamel') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
