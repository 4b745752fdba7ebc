"""`lane versions`, `lane diff` and `lane outcome`: a runbook's kept versions, what changed between two of them,
and the results of its runs known only later."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lane.cli import render
from lane.cli.app import JsonFlag, ProjectDir, emit_json


def versions(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """List a runbook's versions, newest first: their runs by status and their KPIs over the finished runs.

    A version is kept in the store (its runbook, agents, context files and tools' fingerprints) when its first
    run starts, and every run resumes on its own version, whatever the files say later. Change a version that
    has runs only by raising its `version:`; `lane diff RUNBOOK V1 V2` shows what changed.
    """
    from lane.cli.commands import _load, errors

    with errors(as_json), _load(project) as loaded:
        rows = loaded.versions(runbook)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        render.out.print(f"runbook {escape(runbook)} has no kept versions yet: a version is kept when its first run starts")
        return
    for row in rows:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(row["statuses"].items())) or "no runs"
        current = " (current)" if row["current"] else ""
        render.out.print(f"[bold]v{row['version']}[/]{current} · {row['runs']} run{'s' if row['runs'] != 1 else ''}: {escape(statuses)}"
                         + (f" · kept {escape(str(row['kept_at'])[:19].replace('T', ' '))}" if row["kept_at"] else ""))
        for name, summary in row["kpis"].items():
            render.out.print(f"  {escape(name)}: {escape(summary)}")


def diff(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    v1: Annotated[int, typer.Argument(metavar="V1", help="The earlier version's number.")],
    v2: Annotated[int, typer.Argument(metavar="V2", help="The later version's number.")],
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Show what changed between two kept versions of a runbook: each file (runbook, agents, context files) as a
    unified diff, and each tool whose description, arguments or effect changed."""
    from lane.cli.commands import _load, errors

    with errors(as_json), _load(project) as loaded:
        found = loaded.diff(runbook, v1, v2)
    if as_json:
        emit_json(found)
        return
    if not found["changes"]:
        render.out.print(f"{escape(runbook)} v{v1} and v{v2} are the same")
        return
    for line in found["changes"]:
        render.out.print(escape(line))
    for text in found["diffs"].values():
        render.out.print("")
        for line in text.splitlines():
            style = "green" if line.startswith("+") and not line.startswith("+++") else "red" if line.startswith("-") and not line.startswith("---") else ""
            render.out.print(f"[{style}]{escape(line)}[/]" if style else escape(line), highlight=False)


def outcome(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id, or a unique prefix of one.")],
    pair: Annotated[str, typer.Argument(metavar="NAME=VALUE", help="The outcome: VALUE is JSON if it parses (true, 42), else text.")],
    by: Annotated[str | None, typer.Option("--by", metavar="PERSON", help="Who says so (recorded with it).")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Record a result known only after the run: `lane outcome RUN resolved=yes --by alice`.

    The outcome is journaled on the run; a later one of the same name replaces it. KPIs read it as
    `outcomes.NAME` (write `outcomes.NAME | default(none)`: unknown until recorded), and a run that has
    ended has its KPIs measured again, so `lane versions` and the console count it.
    """
    from lane.cli.commands import _load, errors
    from lane.cli.inputs import parse_pairs
    with errors(as_json), _load(project) as loaded:
        [(name, value)] = parse_pairs([pair], "outcome").items()
        result = loaded.outcome(run_id, name, value, by=by)
    if as_json:
        emit_json(result)
        return
    who = f" by {by}" if by else ""
    render.out.print(f"recorded {escape(name)}={escape(json_text(value))}{escape(who)} on run {result['run_id']}")
    for key, shown in result["kpis"].get("values", {}).items():
        render.out.print(f"  {escape(key)}: {escape(json_text(shown))}")


def json_text(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
