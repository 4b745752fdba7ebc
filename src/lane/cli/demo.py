"""`lane demo`: the support-triage example, run over its inbox, with a person at each gate.

Until lane's local model lands, the demo rehearses on the scripted model.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from lane.cli import render
from lane.cli.commands import copy_example, errors
from lane.errors import UsageError


def demo(yes: bool, directory: Path | None) -> None:
    from rich.prompt import Prompt

    from lane.cli.inputs import read_data_file
    from lane.project import Project

    with errors():
        target = directory or Path(tempfile.mkdtemp(prefix="lane-demo-"))
        if (target / "lane.yaml").exists():
            raise UsageError(f"{target} already holds a project; pick another --dir")
        copy_example("support_triage", target)
        render.out.print(f"demo project: [bold]{target}[/] (model: scripted rehearsal; the local model comes in a later version)")
        project = Project.load(target)
        interactive = sys.stdin.isatty() and not yes
        rows = []
        for email in sorted((target / "inbox").glob("*.json")):
            render.out.print(f"\n[bold]{email.name}[/]")
            run = project.run("support-triage", read_data_file(email, "inbox"))
            while run.status == "paused" and (yes or interactive):
                for item in run.pending:
                    render.out.print(f"  {item['question']}")
                    answer = "a" if yes else Prompt.ask("  approve or reject?", choices=["a", "r"], default="a")
                    if answer == "a":
                        run.approve(item["call_id"])
                    else:
                        run.reject(item["call_id"], reason="rejected in the demo")
                run = run.resume()
            render.outcome(run, project=target)
            rows.append((email.name, run.run_id, run.status))
        render.out.print("")
        for name, run_id, status in rows:
            render.out.print(f"{name}: run {run_id} {status}")
        outbox = sorted((target / "outbox").glob("*.txt")) if (target / "outbox").exists() else []
        render.out.print(f"{len(outbox)} repl{'y' if len(outbox) == 1 else 'ies'} in {target / 'outbox'}")
        if any(status == "paused" for *_, status in rows):
            render.out.print(f"runs wait for a person: approve each as shown above, then resume it (--project {target})")
