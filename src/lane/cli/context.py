"""`lane context build` and `lane context check`: the canon rendered into the files coding tools read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from lane.cli import render

if TYPE_CHECKING:
    from lane.coding.context_files import BuildReport, Finding

app = typer.Typer(
    name="context",
    help=(
        "Render canon/*.md (front matter `tier: 1`, or `tier: 2` with `read_when:`) into AGENTS.md, CLAUDE.md, "
        ".cursor/rules/*.mdc and .github/copilot-instructions.md, place canon/skills/NAME/ where each coding tool reads "
        "skills, and check that they still match it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="The repository folder (holds canon/; need not hold lane.yaml).", show_default="current folder")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ACTION_STYLE = {"created": "green", "updated": "green", "appended": "yellow", "removed": "magenta", "kept": "yellow", "unchanged": "dim"}


@app.command()
def build(
    project: ProjectDir = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite generated parts that were edited by hand (the edit is lost).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the generated files. Only the text between the lane:generated markers is lane's: everything
    outside them is kept. A Markdown file without markers gets a generated block appended after its text.
    Exit 2, writing nothing, when the canon has a problem or a generated part was edited by hand."""
    from lane.cli.app import emit_json
    from lane.cli.commands import errors
    from lane.coding.context_files import build as build_files

    with errors(as_json):
        report = build_files(project, force=force)
    if as_json:
        emit_json({"files": [vars(c) for c in report.changes], "warnings": [w.to_json() for w in report.warnings]})
        return
    _render_build(report)


@app.command()
def check(project: ProjectDir = Path("."), as_json: JsonFlag = False) -> None:
    """Exit 1 when a generated file is missing, stale (the canon changed) or edited inside its generated part;
    warn, with figures, when a file is over what its tool loads (Codex: 32 KiB of AGENTS.md). Exit 2 on a canon problem."""
    from lane.cli.app import emit_json
    from lane.cli.commands import errors
    from lane.coding.context_files import check as check_files

    with errors(as_json):
        findings = check_files(project)
    failed = [f for f in findings if f.level == "error"]
    if as_json:
        emit_json({"ok": not failed, "findings": [f.to_json() for f in findings]})
    else:
        _render_check(findings, failed)
    raise typer.Exit(1 if failed else 0)


def _render_build(report: BuildReport) -> None:
    for change in report.changes:
        style = ACTION_STYLE.get(change.action, "")
        note = f": {escape(change.note)}" if change.note else ""
        render.out.print(f"[{style}]{change.action:<9}[/] {escape(change.path)}{note}")
    for warning in report.warnings:
        render.out.print(_finding(warning))


def _render_check(findings: list[Finding], failed: list[Finding]) -> None:
    for finding in findings:
        render.out.print(_finding(finding))
    if failed:
        render.err.print(f"[red]{len(failed)} problem{'s' if len(failed) != 1 else ''}[/] in the generated context files")
    else:
        render.out.print("[green]ok[/]: the context files match the canon")


def _finding(finding: Finding) -> str:
    text = escape(str(finding))
    return text.replace(": warning: ", ": [yellow]warning[/]: ", 1) if finding.level == "warning" else text
