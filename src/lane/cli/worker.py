"""`lane worker`: execute the project's runs for Temporal (`engine: temporal` in lane.yaml)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from lane.cli import render

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="The project folder (holds lane.yaml).", show_default="current folder")]


def worker(
    project: ProjectOpt = Path("."),
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=10000,
                                             help="Stretches of runs this worker executes at once.")] = 100,
) -> None:
    """Poll the project's Temporal task queue and execute its runs, until Ctrl-C or SIGTERM.

    Start as many as you like, on as many machines as share the project's store (PostgreSQL for
    several machines). A worker that dies is noticed within temporal.heartbeat_seconds (10 s) and
    another takes its runs up from their journals; a stopped worker gives its runs back. See docs/scale.md."""
    from lane.cli.commands import _load, errors
    from lane.errors import UsageError

    if importlib.util.find_spec("temporalio") is None:
        render.error("lane worker needs its extra: pip install 'lane[temporal]'")
        raise typer.Exit(2)
    with errors():
        loaded = _load(project)
        if loaded.spec.config.engine != "temporal":
            loaded.close()
            raise UsageError(f"{project / 'lane.yaml'} says engine: local; a worker serves engine: temporal "
                             "(add `engine: temporal` and, if not on localhost:7233, `temporal: {address: HOST:PORT}`)")
        import asyncio

        from lane.backends.temporal.worker import serve

        try:
            asyncio.run(serve(loaded._executing_here(), concurrency=concurrency, ready=lambda line: render.err.print(line)))
        except KeyboardInterrupt:
            pass
        finally:
            loaded.close()
