"""docs/api.md, run for real: its example project, every `# example: NAME` block, its JSON shapes and its event table.

The doc's conventions (also written at the top of docs/api.md):
- a fenced block right after a line "File `helpdesk/PATH`:" is a file of the example project;
- a ```python block whose first line is "# example: NAME" is run, in a fresh temporary folder that holds
  the project as `helpdesk/`, with that folder as the current directory;
- a ```json block right after "<!-- shape: NAME -->" has the keys the real output has, at every level;
- the event table under "## Events" names exactly the event types the engine records.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

import lane
import lane.testing
from conftest import write_project
from lane.testing import FakeHuman

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "api.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = r"```[\w-]*\n(.*?)^```"


def project_files() -> dict[str, str]:
    return dict(re.findall(r"^File `helpdesk/([^`]+)`:\n\n" + FENCE, TEXT, re.M | re.S))


def examples() -> dict[str, str]:
    """Each runnable example by name, padded with blank lines so tracebacks give the doc's own line numbers."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^```python\n(# example: ([\w-]+)\n.*?)^```", TEXT, re.M | re.S):
        name = match.group(2)
        assert name not in found, f"two examples are named {name}"
        found[name] = "\n" * TEXT.count("\n", 0, match.start(1)) + match.group(1)
    return found


def shape(name: str) -> Any:
    match = re.search(rf"^<!-- shape: {name} -->\n```json\n(.*?)^```", TEXT, re.M | re.S)
    assert match is not None, f"docs/api.md has no shape {name}"
    return json.loads(match.group(1))


EXAMPLES = examples()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder holding the doc's project as helpdesk/, and the current directory."""
    write_project(tmp_path / "helpdesk", project_files())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_example(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"api_doc_example_{name.replace('-', '_')}"}
    exec(compile(EXAMPLES[name], str(DOC), "exec"), namespace)  # the doc's own examples, run as a reader would
    return namespace


def test_the_doc_holds_its_project_and_examples() -> None:
    assert sorted(project_files()) == ["agents/triager.md", "lane.yaml", "runbooks/reply.yaml", "tools/desk.py", "triage.yaml"]
    assert {"run", "exit-codes", "decide", "reject", "fake-human", "events", "read", "retry", "scripted",
            "custom-model", "worst-case", "async", "errors"} <= set(EXAMPLES)
    for block in re.findall(r"^```python\n(.*?)^```", TEXT, re.M | re.S):  # the ones not run still parse
        ast.parse(block)


def test_the_example_project_is_valid(folder: Path) -> None:
    with lane.Project.load(folder / "helpdesk") as project:
        assert sorted(project.spec.runbooks) == ["reply"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_runs(name: str, folder: Path) -> None:
    run_example(name)


def test_the_exit_codes_are_the_commands(folder: Path) -> None:
    from lane.cli.app import EXIT

    assert run_example("exit-codes")["EXIT"] == EXIT


def same_keys(doc: Any, real: Any, where: str = "") -> None:
    """Every object in the doc's shape has exactly the keys of its counterpart in the real output."""
    if isinstance(doc, dict):
        assert isinstance(real, dict), f"{where}: the doc shows an object, lane gives {real!r}"
        assert set(doc) == set(real), f"{where}: the doc has {sorted(set(doc) - set(real))}, lane has {sorted(set(real) - set(doc))}"
        for key, value in doc.items():
            same_keys(value, real[key], f"{where}.{key}")
    elif isinstance(doc, list) and isinstance(real, list):
        for item in doc:
            if not isinstance(item, dict):
                continue
            ident = {k: item[k] for k in ("id", "call_id", "role", "turn") if k in item}
            fits = [r for r in real if isinstance(r, dict) and set(r) == set(item) and all(r.get(k) == v for k, v in ident.items())]
            assert fits, f"{where}: lane gives no item like the doc's {ident or sorted(item)}"
            same_keys(item, fits[0], f"{where}[{ident}]")


def test_show_and_audit_have_the_shapes_the_doc_shows(folder: Path) -> None:
    with lane.Project.load(folder / "helpdesk") as project:
        run = FakeHuman("lead").drive(project.run("reply", {"from": "ann@example.com", "body": "I was charged twice."}))
        assert run.status == "completed"
        same_keys(shape("show"), project.show(run.run_id), "show")
        same_keys(shape("audit"), project.audit(run.run_id), "audit")


def recorded_event_types() -> set[str]:
    """The event types lane's source records: journal.record/once("TYPE"), the run endings, and the decision event."""
    types: set[str] = set()
    for path in (REPO / "src" / "lane").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ENDINGS" for t in node.targets):
                types |= {v.value for v in ast.walk(node.value) if isinstance(v, ast.Constant) and isinstance(v.value, str)}
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("record", "once"):
                first = node.args[0]
                options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
                types |= {o.value for o in options if isinstance(o, ast.Constant) and isinstance(o.value, str)}
            elif name == "Event" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                types.add(node.args[1].value)
    return types - set(("completed", "paused", "stopped", "failed", "rejected"))  # ENDINGS' keys are statuses


def test_the_event_table_lists_every_event_the_engine_records() -> None:
    section = TEXT[TEXT.index("\n## Events\n"):TEXT.index("\n## Read runs\n")]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`([a-z_]+)`", cell)}
    recorded = recorded_event_types()
    assert len(recorded) > 25, "the scan of the source found too few event types"
    assert documented == recorded, f"not in the doc: {sorted(recorded - documented)}; not recorded: {sorted(documented - recorded)}"


def test_every_public_name_is_in_the_doc() -> None:
    for name in [*lane.__all__, *lane.testing.__all__]:
        assert re.search(rf"\b{name}\b", TEXT), f"docs/api.md never mentions {name}"
