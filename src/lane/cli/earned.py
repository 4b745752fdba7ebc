"""`lane autonomy`: a level up or down for each call site, proposed from the record; `lane autonomy accept ID`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lane.cli import render
from lane.cli.app import JsonFlag, ProjectDir, emit_json


def autonomy(
    what: Annotated[str | None, typer.Argument(metavar="[RUNBOOK | accept]", help="A runbook to look at (default: every one), "
                                                                                "or `accept` and a proposal's ID.")] = None,
    proposal: Annotated[str | None, typer.Argument(metavar="[ID]", help="With accept: the proposal to accept.")] = None,
    by: Annotated[str | None, typer.Option("--by", metavar="PERSON", help="Who accepts (recorded with the change).")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="How far back the record goes.")] = 30,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Propose, for each tool step and agent, a level of autonomy up or down from its record; accept one.

    The record of a call site over the last --days: calls a person approved without edit, edited or rejected
    (approvals by no person, such as --yes, are left out), failed checks sent back to an agent, and rolled-back
    versions. Up one level when nothing was rejected or failed and the 95% interval of approvals without edit
    starts at 60% or more; down on rejections, many edits, failed checks or a rollback (docs/lifecycle.md).

    `lane autonomy accept ID --by PERSON` writes the new level into the runbook (raising its version:) or the
    agent's file (raising the version: of each runbook that uses it): nothing changes silently, and the next
    release measures it. Needs SciPy: pip install 'lane[report]'.
    """
    from lane.cli.commands import _load, errors
    from lane.errors import UsageError

    with errors(as_json), _load(project) as loaded:
        if what == "accept":
            if proposal is None:
                raise UsageError("say which proposal: lane autonomy accept ID --by PERSON (`lane autonomy` lists them)")
            done = loaded.accept_autonomy(proposal, by=by, days=days)
        else:
            if proposal is not None:
                raise UsageError(f"unexpected {proposal!r}: `lane autonomy [RUNBOOK]` lists, `lane autonomy accept ID` accepts")
            found = loaded.autonomy(what, days=days)
    if what == "accept":
        if as_json:
            emit_json(done)
            return
        accepted = done["accepted"]
        render.out.print(f"accepted {escape(accepted['id'])}: {escape(accepted['from'])} → {escape(accepted['to'])}; wrote "
                         + escape(", ".join(done["files"])))
        for name, number in done["versions"].items():
            render.out.print(f"  {escape(name)} is now v{number}: `lane test {escape(name)}`, then `lane release {escape(name)} {number} "
                             "--share 10%` measures it")
        return
    if as_json:
        emit_json(found)
        return
    if not found["sites"]:
        render.out.print(f"no call site has a record in the last {found['days']} days: proposals come from runs")
    quiet = 0
    for site in found["sites"]:
        record = site["record"]
        if site["proposal"] is None and not (record["decided"] or record["failed_checks"]):
            quiet += 1  # it never waited for a person nor failed: nothing to say of it (the JSON has it)
        elif site["proposal"] is None:
            now = f" (the files say {site['now']} now)" if site.get("now") else ""
            render.out.print(f"  keep {escape(site['level'])}: {escape(site['summary'])}{escape(now)}")
    if quiet:
        render.out.print(f"  {quiet} call site{'s' if quiet != 1 else ''} ran with no person deciding and no failed check: "
                         "nothing to propose (--json lists them)")
    for site in found["proposals"]:
        p = site["proposal"]
        render.out.print(f"[bold]{escape(p['id'])}[/] {escape(p['text'])}")
    if found["proposals"]:
        render.out.print("accept one with: lane autonomy accept ID --by PERSON")
