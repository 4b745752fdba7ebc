"""`lane test`: a runbook's golden fixtures, each run in a store of its own and held to its expectations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lane.cli import render
from lane.cli.app import JsonFlag, ProjectDir, emit_json


def test(
    runbook: Annotated[str, typer.Argument(help="The runbook whose fixtures/RUNBOOK/*.yaml to run.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run every agent on this model (an id, or a name of lane.yaml's models:), "
                                              "whatever each fixture says.")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Run a runbook's golden fixtures and report each expectation; exit 1 when a fixture fails.

    Each fixture (fixtures/RUNBOOK/NAME.yaml: inputs, an optional model, decisions for the requests,
    expectations per step and as expressions) runs in a temporary store of its own; the project's runs are
    not touched, but tools run for real. The result is kept in .lane/tests/RUNBOOK.json: the next run says
    which fixtures and expectations changed since (drift). See docs/lifecycle.md.
    """
    from lane.cli.commands import _load, errors

    def shown(result: dict[str, Any]) -> None:
        if as_json:
            return
        held = f" (held at {result['held_at']})" if result["held_at"] else ""
        mark = "[green]pass[/]" if result["passed"] else "[red]FAIL[/]"
        render.out.print(f"{mark} {escape(result['fixture'])}: {escape(result['status'])}{escape(held)} · {result['seconds']:.1f} s")
        for expectation in result["expectations"]:
            if not expectation["passed"]:
                got = json.dumps(expectation["got"], ensure_ascii=False, default=str) if expectation["got"] is not None else "false"
                got = got if len(got) <= 120 else got[:119] + "…"
                render.out.print(f"     {escape(expectation['expect'])}  [red]got {escape(got)}[/]", highlight=False)

    with errors(as_json), _load(project) as loaded:
        summary = loaded.test(runbook, model=model, on_result=shown)
    if as_json:
        emit_json(summary)
    else:
        total = summary["passed"] + summary["failed"]
        render.out.print(f"\n{summary['passed']} of {total} fixtures pass · {escape(runbook)} v{summary['version']}"
                         + (f" · model {escape(model)}" if model else ""))
        for name, text in summary["kpis"].items():
            render.out.print(f"  {escape(name)}: {escape(text)}")
        if summary["previous"]:
            before = summary["previous"]
            render.out.print(f"since the last test ({escape(str(before.get('at', ''))[:19].replace('T', ' '))}: "
                             f"{before.get('passed')} of {before.get('passed', 0) + before.get('failed', 0)} passed):"
                             + ("" if summary["changes"] else " no change"))
            for change in summary["changes"]:
                what = f" · {change['expect']}" if "expect" in change else ""
                render.out.print(f"  {escape(change['fixture'])}{escape(what)}: {escape(change['change'])}")
    raise typer.Exit(1 if summary["failed"] else 0)
