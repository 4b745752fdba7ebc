"""`lane release`, `lane promote` and `lane rollback`: a new version given a share of new runs, then made the stable
one or sent back, on the numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lane.cli import render
from lane.cli.app import JsonFlag, ProjectDir, emit_json

By = Annotated[str | None, typer.Option("--by", metavar="PERSON", help="Who decides (recorded in the release journal).")]


def release(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    version: Annotated[int | None, typer.Argument(metavar="[VERSION]", help="The version to release: the runbook's current one. "
                                                                            "Without it: show the release.")] = None,
    share: Annotated[str | None, typer.Option("--share", help="The share of new runs it gets: 10% or 0.1.",
                                              show_default="the runbook's release.share, else 10%")] = None,
    key: Annotated[str | None, typer.Option("--key", metavar="EXPRESSION", help="What routes a run, over the inputs (inputs.customer): "
                                            "the same key stays on one version.", show_default="release.key, else the run id")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Run the fixtures with every agent on this model.")] = None,
    by: By = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Release a runbook's new version to a share of new runs, against the stable version; or show the release.

    The version must be the runbook's current one, and its fixtures (fixtures/RUNBOOK/*.yaml) must pass: they
    run first. New runs are routed by a hash of the key, so a customer stays on one version; each run's
    `run_started` event says where it went and why. Run it again with another --share to widen the release.
    `lane promote` makes it the stable version; `lane rollback` sends every new run back. The runbook's
    `release:` block does the same at the version's first run, and its rollback_when and promote_when are
    checked after each run.
    """
    from lane.feedback.releases import parse_share

    if version is None:
        _state(project, as_json, lambda loaded: loaded.release_status(runbook))
        return
    _state(project, as_json, lambda loaded: loaded.release(runbook, version, share=parse_share(share) if share is not None else None,
                                                           key=key, model=model, by=by, on_result=_progress(as_json)))


def promote(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    by: By = None,
    kill_date: Annotated[str | None, typer.Option("--kill-date", metavar="YYYY-MM-DD", help="The date the version it replaces must be "
                                                  "gone by (`lane killdates --check`).")] = None,
    sunset: Annotated[str | None, typer.Option("--sunset", metavar="TEXT", help="When the replaced version may go, in words.")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Make the released version the stable one: every new run goes to it. Runs already started on the one it
    replaces go on there; --kill-date sets the date that version must be gone by."""
    _state(project, as_json, lambda loaded: loaded.promote(runbook, by=by, kill_date=kill_date, sunset=sunset))


def rollback(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded in the release journal).")] = None,
    by: By = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Send every new run back to the stable version: the open release is rolled back, or, with none open, the
    last promotion. Runs already started go on on their own version. A version rolled back is released again
    only under a new number."""
    _state(project, as_json, lambda loaded: loaded.rollback(runbook, by=by, reason=reason))


def _state(project: Path, as_json: bool, act: Callable[[Any], dict[str, Any]]) -> None:
    """Load the project, act on its release, and print the release's state (or its JSON)."""
    from lane.cli.commands import _load, errors

    with errors(as_json), _load(project) as loaded:
        state = act(loaded)
    if as_json:
        emit_json(state)
    else:
        _show(state)


def _progress(as_json: bool) -> Any:
    if as_json:
        return None

    def shown(result: dict[str, Any]) -> None:
        render.err.print(f"  fixture {escape(result['fixture'])}: {'passed' if result['passed'] else 'FAILED'}")

    return shown


def _show(state: dict[str, Any]) -> None:
    name = escape(state["runbook"])
    stable, candidate = state["stable"], state["candidate"]
    if candidate is not None:
        render.out.print(f"{name}: v{candidate['version']} released to {candidate['share']:.0%} of new runs against "
                         f"v{candidate['stable']['version']}, routed by {escape(candidate['key'] or 'the run id')}")
        figures = state.get("figures") or {}
        for label, shown in (("v" + str(candidate["version"]), figures), ("v" + str(candidate["stable"]["version"]), figures.get("stable", {}))):
            if shown:
                kpis = ", ".join(f"{escape(k)} {v:.3g}" for k, v in shown.get("kpis", {}).items() if isinstance(v, float))
                render.out.print(f"  {label}: {shown['runs']} runs since the release, {shown['n']} ended, failed {shown['failed_share']:.0%}"
                                 + (f" · {kpis}" if kpis else ""))
        for guard in ("rollback_when", "promote_when"):
            if candidate.get(guard):
                render.out.print(f"  {guard}: {escape(candidate[guard])}")
    elif stable is not None:
        render.out.print(f"{name}: every new run goes to v{stable['version']} (stable); no release is open")
    else:
        render.out.print(f"{name}: every new run goes to v{state['version']}; nothing was released yet")
    for number, why in state["rolled_back"].items():
        render.out.print(f"  v{number} rolled back: {escape(why)}")
    for number, kill in state["kill_dates"].items():
        render.out.print(f"  v{number} kill date {kill['kill_date']}" + (f" ({escape(kill['sunset'])})" if kill.get("sunset") else ""))
    for entry in state["log"]:
        if entry["type"] == "promotion_proposed" and candidate and entry["data"]["version"] == candidate["version"]:
            render.out.print(f"  [bold]promotion proposed[/]: {escape(entry['data']['reason'])}")


def report(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    chart: Annotated[Path | None, typer.Option("--chart", metavar="FILE.svg", help="Where to write the chart.",
                                               show_default=".lane/reports/RUNBOOK.svg")] = None,
    project: ProjectDir = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Compare a runbook's versions on every KPI, and draw each KPI per version over time.

    For each KPI and version: the ended runs with a value (n), the share or median, and its 95% interval
    (Wilson's for a share, a bootstrap of the median); each version against the one before it, by Fisher's
    exact test (shares) or the Mann-Whitney U test (numbers): significant when p < 0.05. `completed` and
    `failed` (shares of ended runs) are measured for every runbook. Needs SciPy: pip install 'lane[report]'.
    """
    from lane.cli.commands import _load, errors

    with errors(as_json), _load(project) as loaded:
        found = loaded.report(runbook, chart=chart)
    if as_json:
        emit_json(found)
        return
    if not found["runs"]:
        render.out.print(f"{escape(runbook)} has no ended runs to report on yet")
    for kpi in found["kpis"]:
        target = f" · target {escape(kpi['target'].strip())}" if kpi.get("target") else ""
        kind = kpi["kind"] if any(v["n"] for v in kpi["versions"]) else "no values yet"
        render.out.print(f"[bold]{escape(kpi['name'])}[/] ({kind}){target}")
        for figure in kpi["versions"]:
            render.out.print("  " + _figure_text(kpi["kind"], figure))
        for c in kpi["comparisons"]:
            if c.get("p_value") is not None:
                verdict = "[bold]significant[/]" if c["significant"] else "not significant"
                difference = f"{c['difference']:+.0%}" if kpi["kind"] == "share" else f"{c['difference']:+.3g}"
                render.out.print(f"  v{c['from']} → v{c['to']}: {difference}, {escape(c['test'])} p={c['p_value']:.3g}, {verdict}")
    render.out.print(f"chart: {escape(found['chart'])}")


def _figure_text(kind: str, figure: dict[str, Any]) -> str:
    head = f"v{figure['version']}: n={figure['n']}"
    if figure["value"] is None:
        counts = figure.get("counts")
        return head + (": " + ", ".join(f"{escape(k)} {v}" for k, v in counts.items()) if counts else ": no values")
    value = f"{figure['value']:.0%}" if kind == "share" else f"{figure['value']:.4g}"
    if figure.get("low") is None:
        return f"{head}: {value}"
    low, high = (f"{figure['low']:.0%}", f"{figure['high']:.0%}") if kind == "share" else (f"{figure['low']:.4g}", f"{figure['high']:.4g}")
    return f"{head}: {value} (95% {low} to {high})"
