"""What each `lane` command does: call the library, render, exit with the right code."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lane.cli import render
from lane.cli.app import EXIT, emit_json
from lane.errors import LaneError, ProjectInvalid, RunError, UsageError

if TYPE_CHECKING:
    from lane.cli.progress import RunProgress

EXAMPLES = {"support-triage": "support_triage", "coding": "coding"}


@contextmanager
def errors(as_json: bool = False) -> Iterator[None]:
    """Turn lane's errors into a message on stderr and the documented exit code."""
    try:
        yield
    except ProjectInvalid as exc:
        if as_json:
            emit_json([p.to_json() for p in exc.problems])
        else:
            render.problems(exc.problems)
        _exit(2)
    except UsageError as exc:
        render.error(str(exc))
        _exit(2)
    except RunError as exc:
        render.error(str(exc))
        _exit(1)
    except LaneError as exc:
        render.error(str(exc))
        _exit(1)


def _exit(code: int) -> NoReturn:
    raise SystemExit(code)


def _load(project: Path) -> Any:
    from lane.project import Project

    return Project.load(project)


def init(directory: Path, example: str) -> None:
    with errors():
        package = EXAMPLES.get(example)
        if package is None:
            raise UsageError(f"no example {example!r}; examples: {', '.join(EXAMPLES)}")
        if (directory / "lane.yaml").exists():
            raise UsageError(f"{directory / 'lane.yaml'} exists already; choose an empty folder")
        copy_example(package, directory)
        render.initialized(directory, example)


def copy_example(package: str, directory: Path) -> None:
    source = resources.files("lane.examples") / package
    with resources.as_file(source) as path:
        shutil.copytree(path, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".lane", "outbox", "*.db"))
    (directory / ".gitignore").write_text(".lane/\noutbox/\n*.db\n__pycache__/\n")


def validate(project: Path, as_json: bool) -> None:
    from lane.spec.project import check_project

    with errors(as_json):
        _, problems = check_project(project)
        if problems:
            raise ProjectInvalid(problems)
        if as_json:
            emit_json([])
        else:
            render.valid(project)


def run(project: Path, runbook: str, pairs: list[str], input_file: Path | None, as_json: bool, quiet: bool) -> None:
    from lane.cli.inputs import parse_inputs

    with errors():
        inputs = parse_inputs(pairs, input_file)
        proj = _load(project)
        with progress(as_json or quiet) as shown:
            result = proj.run(runbook, inputs, on_event=shown and shown.on_event, on_stream=shown and shown.on_stream)
        _finish(result, as_json)


def resume(project: Path, run_id: str, pairs: list[str], as_json: bool, quiet: bool) -> None:
    from lane.cli.inputs import parse_pairs

    with errors():
        budget = parse_pairs(pairs, "--budget", json_values=False)
        proj = _load(project)
        with progress(as_json or quiet) as shown:
            result = proj.resume(run_id, budget=budget, on_event=shown and shown.on_event, on_stream=shown and shown.on_stream)
        _finish(result, as_json)


@contextmanager
def progress(off: bool = False, *, label: str = "", step_lines: bool = True) -> Iterator[RunProgress | None]:
    """Live progress on a terminal; nothing at all otherwise, so piped output stays clean."""
    if off or not render.out.is_terminal or not os.isatty(1):  # FORCE_COLOR makes Rich think a pipe is a terminal
        yield None
        return
    from lane.cli.progress import RunProgress

    with RunProgress(render.out, label=label, step_lines=step_lines) as shown:
        yield shown


def _finish(result: Any, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"run_id": result.run_id, "status": result.status, "reason": result.reason})
    else:
        render.outcome(result)
    _exit(EXIT[result.status])


def runs(project: Path, as_json: bool) -> None:
    with errors():
        records = _load(project).runs()
        if as_json:
            emit_json([{k: r.to_json()[k] for k in ("run_id", "runbook", "version", "status", "started_at")} for r in records])
        else:
            render.runs(records)


def show(project: Path, run_id: str, as_json: bool) -> None:
    with errors():
        view = _load(project).show(run_id)
        if as_json:
            emit_json(view)
        else:
            render.timeline(view)


def audit(project: Path, run_id: str, as_json: bool) -> None:
    with errors():
        rows = _load(project).audit(run_id)
        if as_json:
            emit_json(rows)
        else:
            render.audit(run_id, rows)


def decide(project: Path, run_id: str, approve: bool, call: str | None, as_role: str | None, edit: str | None, result: str | None, reason: str | None) -> None:
    with errors():
        proj = _load(project)
        if approve:
            extras = {k: _json_option(f"--{k}", v) for k, v in (("edit", edit), ("result", result)) if v is not None}
            decision = proj.approve(run_id, call, as_role=as_role, **extras)
        else:
            decision = proj.reject(run_id, call, as_role=as_role, reason=reason or "")
        render.decided(decision)


def _json_option(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} must be JSON ({exc}); for example {name} '{{\"body\": \"Hello\"}}'") from None


