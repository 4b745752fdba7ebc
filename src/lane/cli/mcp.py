"""`lane mcp`: serve the project's runbooks, runs and the coding track's reports to an MCP client."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from lane.cli import render

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml), or a repository "
                                          "for the coding tools alone.", show_default="current folder")]


def mcp(
    project: ProjectOpt = Path("."),
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio.")] = False,
    port: Annotated[int, typer.Option("--port", help="The port for --http (loopback only).", min=1, max=65535)] = 8701,
    as_person: Annotated[str | None, typer.Option("--as", metavar="PERSON", help="Decide as this person of lane.yaml's people: "
                                                  "the decide tool is offered, limited to their roles. Without it, no decide tool.")] = None,
) -> None:
    """Serve the project to an MCP client (Claude Code, Cursor, Codex, ...): a run_RUNBOOK tool per runbook, run_status,
    pending, show_run, decide (with --as), the coding track's reports, and each runbook's work chart and each run's
    timeline as resources. Runs started through it are executed by this process. Over stdio by default.

    Set up a client: docs/mcp.md."""
    from lane.cli.commands import errors
    from lane.errors import UsageError

    if importlib.util.find_spec("mcp") is None or importlib.util.find_spec("uvicorn") is None:
        render.error("lane mcp needs its extra: pip install 'lane[mcp]'")
        raise typer.Exit(2)
    with errors():
        loaded = None
        if (project / "lane.yaml").is_file():
            from lane.project import Project

            loaded = Project.load(project)
        elif not project.is_dir():
            raise UsageError(f"no folder {project}: pass the project with --project DIR")
        if as_person is not None:
            people = loaded.spec.config.people if loaded else {}
            if as_person not in people:
                if loaded is not None:
                    loaded.close()
                raise UsageError(f"--as {as_person!r} is not one of the people in {project / 'lane.yaml'} "
                                 f"(people: {', '.join(sorted(people)) or 'none; add them under people:'})")
    import anyio

    from lane.mcp.desk import Desk
    from lane.mcp.server import serve_http, serve_stdio

    desk = Desk(project.resolve(), loaded, as_person)
    what = f"the project {loaded.root}" if loaded else f"the coding tools over {project.resolve()} (no lane.yaml)"
    who = f", deciding as {as_person}" if as_person else ""
    if http:
        render.err.print(f"lane mcp: {what}{who} at http://127.0.0.1:{port}/mcp; Ctrl-C stops it")
        try:
            anyio.run(serve_http, desk, port)
        except KeyboardInterrupt:
            pass
    else:
        anyio.run(serve_stdio, desk)
