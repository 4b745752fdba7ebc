"""`lane mcp`: serve the project's runbooks, runs and the coding track's reports to an MCP client."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lane.cli import render

if TYPE_CHECKING:
    from lane.project import Project

TOKEN_VAR = "LANE_TOKEN"  # where `--as NAME` over stdio finds NAME's sign-in token

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml), or a repository "
                                          "for the coding tools alone.", show_default="current folder")]


def mcp(
    project: ProjectOpt = Path("."),
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio: "
                                       "needs people: in lane.yaml, and every request a person's token (Authorization: Bearer).")] = False,
    port: Annotated[int, typer.Option("--port", help="The port for --http (loopback only).", min=1, max=65535)] = 8701,
    as_person: Annotated[str | None, typer.Option("--as", metavar="PERSON", help="Decide as this person of lane.yaml's people: "
                                                  "the decide tool is offered, limited to their roles (over stdio, their token from `lane token create PERSON` "
                                                  "must be in LANE_TOKEN). Without it, no decide tool.")] = None,
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
        try:
            _check_who(project, loaded, http, as_person)
        except BaseException:
            if loaded is not None:
                loaded.close()
            raise
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


def _check_who(project: Path, loaded: Project | None, http: bool, as_person: str | None) -> None:
    """Refuse (UsageError) what would serve without a sign-in: `--http` with no `people:` to take tokens from, and
    `--as NAME` over stdio without NAME's token in LANE_TOKEN (over HTTP each request's token says who it is)."""
    from lane.errors import UsageError

    token = os.environ.pop(TOKEN_VAR, "").strip()  # read once, and kept from every command a run or VALIDATE starts
    people = loaded.spec.config.people if loaded else {}
    if http and not people:
        where = f"lane.yaml in {project}" if loaded is None else f"{project / 'lane.yaml'}"
        raise UsageError(f"lane mcp --http serves only people with a sign-in token: add people: to {where} "
                         "(people: {NAME: {roles: [ROLE]}}), then give each client a token of `lane token create NAME`")
    if as_person is None:
        return
    if as_person not in people:
        raise UsageError(f"--as {as_person!r} is not one of the people in {project / 'lane.yaml'} "
                         f"(people: {', '.join(sorted(people)) or 'none; add them under people:'})")
    if http:
        return  # every request carries a bearer token, which must be as_person's
    assert loaded is not None
    how = (f"make one with `lane token create {as_person}` and pass it to lane mcp in the environment variable {TOKEN_VAR} "
           f'(the client\'s env block: "env": {{"{TOKEN_VAR}": "${{{TOKEN_VAR}}}"}} in .mcp.json; see docs/mcp.md)')
    if not token:
        raise UsageError(f"--as {as_person} needs {as_person}'s sign-in token: {how}")
    if loaded.person_of(token) != as_person:
        raise UsageError(f"--as {as_person}: {TOKEN_VAR} is not a sign-in token of {as_person}: {how}")
