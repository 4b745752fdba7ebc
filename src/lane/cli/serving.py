"""`lane serve` and `lane token`: the HTTP API over a project, and the people's sign-in tokens."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer

from lane.cli import render

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml).", show_default="current folder")]

token_app = typer.Typer(name="token", add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, no_args_is_help=True)


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A person of lane.yaml's `people:`.", metavar="NAME")],
    project: ProjectOpt = Path("."),
) -> None:
    """Create a sign-in token for NAME and print it alone on stdout, once: lane keeps only its hash.

    The person sends it as `Authorization: Bearer TOKEN` to `lane serve`'s HTTP API, and decides only as
    the roles lane.yaml's `people:` gives them. Run it again for a new token; each one works until the store is reset.
    """
    from lane.cli.commands import _load, errors

    with errors():
        with _load(project) as loaded:
            token = loaded.create_token(name)
    print(token)  # alone on stdout: `TOKEN=$(lane token create alice)`
    render.err.print(f"a sign-in token for {name} (roles: {', '.join(loaded.spec.config.people[name].roles)}); "
                     "it is shown once: keep it where a password would be kept")


def serve(
    host: Annotated[str, typer.Option("--host", help="The address to listen on; beyond loopback only with people: in lane.yaml.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port.", min=1, max=65535)] = 8700,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve the HTTP API over the project, and execute the runs started through it.

    One process: the API (JSON, the documents `--json` prints; OpenAPI at /api/openapi.json) and a worker
    that executes runs started with POST /api/runs and resumes a run as soon as what it waits for is
    decided through POST /api/runs/ID/decisions, with no separate resume. Every request is a person's:
    `lane token create NAME` gives one of lane.yaml's `people:` a token. The CLI keeps working on the same
    project meanwhile; a run is never executed by two processes at once. The web console is not in this
    version of lane yet: this serves the API.
    """
    from lane.cli.commands import _load, errors

    with errors():
        loaded = _load(project)
        if not _loopback(host) and not loaded.spec.config.people:
            from lane.errors import UsageError

            raise UsageError(f"--host {host} is reachable from other machines, but lane.yaml names no people to sign in; "
                             "add people: (name: {roles: [ROLE]}) and create their tokens with `lane token create NAME`")
    try:
        import uvicorn

        from lane.serve.app import create_app
    except ImportError:
        render.error("lane serve needs its extra: pip install 'lane[serve]'")
        raise typer.Exit(2) from None
    app = create_app(loaded)
    people = ", ".join(sorted(loaded.spec.config.people)) or "none yet (add people: to lane.yaml)"
    render.err.print(f"lane serve: the HTTP API of {loaded.root} at http://{host}:{port}/api (people: {people}); Ctrl-C stops it")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        loaded.close()
    sys.exit(0)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
