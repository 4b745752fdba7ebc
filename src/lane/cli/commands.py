"""What each `lane` command does: call the library, render, exit with the right code."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
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
        copy_example(package, directory)
        render.initialized(directory, example)


GITIGNORE = ".lane/\noutbox/\n*.db\n__pycache__/\n"
_SKIPPED = ("__pycache__", ".lane", "outbox")


def copy_example(package: str, directory: Path) -> list[Path]:
    """Write the example into `directory` and return the files written; refuses, writing nothing, when any is there already."""
    source = resources.files("lane.examples") / package
    with resources.as_file(source) as root:
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and not _skipped(p.relative_to(root))]
        names = [p.relative_to(root) for p in files] + [Path(".gitignore")]
        if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
            raise UsageError(f"{directory} is {'a symlink' if directory.is_symlink() else 'a file'}; choose a new folder for the project")
        taken = sorted({str(clash) for name in names if (clash := _in_the_way(directory, name)) is not None})
        if taken:
            shown = ", ".join(taken[:10]) + (f" and {len(taken) - 10} more" if len(taken) > 10 else "")
            raise UsageError(f"{directory} already has {shown}; lane never overwrites a file: choose an empty or new folder, "
                             "or move these files away")
        for file in files:
            target = directory / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return [directory / name for name in names]


def remove_example(written: list[Path], directory: Path) -> None:
    """Take back what `copy_example` wrote (and the folders left empty), so the same folder can be used again."""
    for path in written:
        path.unlink(missing_ok=True)
    for folder in sorted({p.parent for p in written}, key=lambda p: len(p.parts), reverse=True):
        while folder != directory and folder.is_relative_to(directory) and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _in_the_way(directory: Path, name: Path) -> Path | None:
    """What already at `directory` would be written over, or followed out of it: the file itself, or one of
    its folders that is a file or a symlink (writing through it would land elsewhere)."""
    for depth in range(1, len(name.parts)):
        folder = directory.joinpath(*name.parts[:depth])
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return Path(*name.parts[:depth])
    target = directory / name
    return name if target.exists() or target.is_symlink() else None


def _skipped(relative: Path) -> bool:
    return any(part in _SKIPPED for part in relative.parts) or relative.suffix in (".db", ".pyc")


def validate(project: Path, as_json: bool) -> None:
    import sys

    from lane.spec.project import check_project

    with errors(as_json):
        spec, problems = check_project(project)
        if not problems and spec is not None and _store_exists(spec):  # a version with runs is kept as it was
            from lane.project import Project

            with Project(spec) as loaded:
                problems = loaded.version_problems()
        if problems:
            raise ProjectInvalid(problems)
        for warning in spec.warnings if spec is not None else []:
            print(f"warning: {warning}", file=sys.stderr)
        if as_json:
            emit_json([])
        else:
            render.valid(project)


def _store_exists(spec: Any) -> bool:
    """Whether the project's store has been made (validating never makes one). A PostgreSQL store is the team's
    shared database: it is there to check against (and opening it makes only lane's tables)."""
    from lane.store.url import PostgresURL, SQLiteURL, parse_store_url

    parsed = parse_store_url(spec.config.store)
    if isinstance(parsed, PostgresURL):
        return True
    return isinstance(parsed, SQLiteURL) and (parsed.path if parsed.path.is_absolute() else spec.root / parsed.path).is_file()


def run(project: Path, runbook: str, pairs: list[str], input_file: Path | None, as_json: bool, quiet: bool, ask: bool = True) -> None:
    from lane.cli.inputs import parse_inputs

    with errors(as_json):
        inputs = parse_inputs(pairs, input_file)
        proj = _load(project)
        _carry_on(lambda **shown: proj.run(runbook, inputs, **shown), as_json, quiet, ask)


def resume(project: Path, run_id: str, pairs: list[str], as_json: bool, quiet: bool, ask: bool = True) -> None:
    from lane.cli.inputs import parse_pairs

    with errors(as_json):
        budget = parse_pairs(pairs, "--budget", json_values=False)
        proj = _load(project)
        _carry_on(lambda **shown: proj.resume(run_id, budget=budget, **shown), as_json, quiet, ask)


def retry(project: Path, run_id: str, from_step: str | None, as_json: bool, quiet: bool, ask: bool = True) -> None:
    with errors(as_json):
        proj = _load(project)
        _carry_on(lambda **shown: proj.retry(run_id, from_step=from_step, **shown), as_json, quiet, ask)


def _carry_on(start: Callable[..., Any], as_json: bool, quiet: bool, ask: bool) -> NoReturn:
    """Run `start` with live progress; on a terminal, ask the person what a pause waits for and resume, until it ends."""
    from lane.cli import asking

    ask = ask and not as_json and asking.can_ask()
    while True:
        with progress(as_json or quiet) as shown:
            result = start(**({"on_event": shown.on_event, "on_stream": shown.on_stream} if shown else {}))
        if result.status != "paused" or not ask or not result.pending:  # no pending: paused for a provider, not a person
            break
        render.paused(result)
        if not asking.decide_all(result):
            break
        start = result.resume
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
    with errors(as_json):
        records = _load(project).runs()
        if as_json:
            emit_json([{**{k: r.to_json()[k] for k in ("run_id", "runbook", "version", "status", "started_at")},
                        "parent_id": r.parent_id, "parent_step": r.parent_step} for r in records])
        else:
            render.runs(records)


def show(project: Path, run_id: str, as_json: bool) -> None:
    with errors(as_json):
        view = _load(project).show(run_id)
        if as_json:
            emit_json(view)
        else:
            render.timeline(view)


def audit(project: Path, run_id: str, as_json: bool) -> None:
    with errors(as_json):
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
            if isinstance(extras.get("edit"), dict):  # an object is a merge patch: change one field, keep the rest
                extras["patch"] = extras.pop("edit")
            decision = proj.approve(run_id, call, as_role=as_role, **extras)
        else:
            decision = proj.reject(run_id, call, as_role=as_role, reason=reason or "")
        render.decided(decision)


def _json_option(name: str, text: str) -> Any:
    from lane.cli.inputs import json_option

    return json_option(text, name)


