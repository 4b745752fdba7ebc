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
    as_person: Annotated[str | None, typer.Option("--as", help="Who the printed sign-in link signs in (one of people:); "
                                                  "default: the only person, or, with no people, you with every human role.")] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve the HTTP API over the project, and execute the runs started through it.

    One process: the API (JSON, the documents `--json` prints; OpenAPI at /api/openapi.json) and a worker
    that executes runs started with POST /api/runs and resumes a run as soon as what it waits for is
    decided through POST /api/runs/ID/decisions, with no separate resume. Every request is a person's:
    `lane token create NAME` gives one of lane.yaml's `people:` a token. The CLI keeps working on the same
    project meanwhile; a run is never executed by two processes at once.

    The console (sign in, then the inbox: everything waiting for your roles, to approve, edit or reject)
    is at the same address. On loopback lane serve prints a one-time sign-in link, for the only person
    of people:, the one --as names, or, with no people, you with every human role.
    """
    from lane.cli.commands import _load, errors

    with errors():
        loaded = _load(project)
        if not _loopback(host) and not loaded.spec.config.people:
            from lane.errors import UsageError

            raise UsageError(f"--host {host} is reachable from other machines, but lane.yaml names no people to sign in; "
                             "add people: (name: {roles: [ROLE]}) and create their tokens with `lane token create NAME`")
        person = _link_person(loaded.spec.config.people, as_person) if _loopback(host) else None
    try:
        import uvicorn

        from lane.serve.app import create_app
    except ImportError:
        render.error("lane serve needs its extra: pip install 'lane[serve]'")
        raise typer.Exit(2) from None
    app = create_app(loaded)
    people = ", ".join(sorted(loaded.spec.config.people)) or "none yet (add people: to lane.yaml)"
    render.err.print(f"lane serve: the console and HTTP API of {loaded.root} at http://{host}:{port}/ (people: {people}); Ctrl-C stops it")
    if person is not None:  # as Jupyter does: one sign-in, for the person at this machine
        code = app.state.api.console.sessions.one_time(person)
        render.err.print(f"sign in as {person}, once: http://{'127.0.0.1' if host == 'localhost' else host}:{port}/login/once?code={code}")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                    proxy_headers=False)  # the client's own address, not a header it sends, limits its sign-ins  # open event streams end
    finally:
        loaded.close()
    sys.exit(0)


def _link_person(people: dict[str, object], chosen: str | None) -> str | None:
    from lane.errors import UsageError
    from lane.serve.sessions import LOCAL

    if chosen is not None:
        if chosen not in people:
            raise UsageError(f"--as {chosen!r} is not one of the people in lane.yaml ({', '.join(sorted(people)) or 'none'})")
        return chosen
    if not people:
        return LOCAL
    return next(iter(people)) if len(people) == 1 else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
