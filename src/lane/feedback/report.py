"""`lane report`: a runbook's versions compared on every KPI, with intervals and tests from SciPy (lane[report]).

For each KPI and version: n (ended runs with a value), the figure (a share for yes/no KPIs, a median for numbers),
and a 95% interval (Wilson's score interval for a share; a percentile bootstrap of the median). Each version is
compared with the one before it that has runs: Fisher's exact test for shares, the Mann-Whitney U test for numbers;
the difference is significant when p < 0.05. The chart draws each KPI per version over time (report_chart.py).
"""

from __future__ import annotations

from typing import Any

from lane.errors import UsageError

ALPHA = 0.05
BUILT_IN = ("completed", "failed")  # every runbook has these: the share of ended runs that completed, and that failed


def scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise UsageError("lane report needs SciPy for its intervals and tests: pip install 'lane[report]'") from None
    return stats


def rows(store: Any, book: Any) -> list[dict[str, Any]]:
    """Each ended run of the runbook, oldest first: version, when, status and KPI values."""
    from lane.feedback.versions import kpis_of
    from lane.store.records import FINISHED

    out = []
    for record in store.runs_of(book.name):
        if record.parent_id is None and record.status in FINISHED:
            values = kpis_of(store.events(record.run_id))
            values |= {"completed": record.status == "completed", "failed": record.status == "failed"}
            out.append({"run_id": record.run_id, "version": record.version, "at": record.updated_at, "values": values})
    return out


def report(store: Any, book: Any) -> dict[str, Any]:
    stats = scipy_stats()
    ended = rows(store, book)
    versions = sorted({r["version"] for r in ended})
    declared = {name: getattr(kpi, "target", None) for name, kpi in book.file.kpis.items()}
    names = [*declared, *(n for n in sorted({k for r in ended for k in r["values"]}) if n not in declared and n not in BUILT_IN), *BUILT_IN]
    kpis = []
    for name in names:
        per_version = {v: [r["values"].get(name) for r in ended if r["version"] == v] for v in versions}
        kind = _kind([x for values in per_version.values() for x in values if x is not None])
        shown = [_figure(stats, kind, v, [x for x in values if x is not None]) for v, values in per_version.items()]
        compared = []
        with_values = [s for s in shown if s["n"]]
        for before, after in zip(with_values, with_values[1:], strict=False):
            compared.append(_compare(stats, kind, before, after,
                                     [x for x in per_version[before["version"]] if x is not None],
                                     [x for x in per_version[after["version"]] if x is not None]))
        kpis.append({"name": name, "kind": kind, "target": declared.get(name), "built_in": name in BUILT_IN,
                     "versions": shown, "comparisons": compared})
    return {"runbook": book.name, "versions": versions, "runs": len(ended), "alpha": ALPHA, "kpis": kpis}


def _kind(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "share"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "median"
    return "counts"


def _figure(stats: Any, kind: str, version: int, values: list[Any]) -> dict[str, Any]:
    n = len(values)
    out: dict[str, Any] = {"version": version, "n": n, "value": None, "low": None, "high": None, "interval": None}
    if not n:
        return out
    if kind == "share":
        held = sum(values)
        ci = stats.binomtest(held, n).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
        out |= {"value": held / n, "held": held, "low": float(ci.low), "high": float(ci.high), "interval": "Wilson score, 95%"}
    elif kind == "median":
        import numpy

        data = numpy.asarray(values, dtype=float)
        out["value"] = float(numpy.median(data))
        if n >= 2 and len(set(values)) > 1:
            found = stats.bootstrap((data,), numpy.median, confidence_level=1 - ALPHA, n_resamples=2000, method="percentile",
                                    rng=numpy.random.default_rng(0))
            out |= {"low": float(found.confidence_interval.low), "high": float(found.confidence_interval.high),
                    "interval": "bootstrap percentile of the median, 95%"}
        elif n >= 2:
            out |= {"low": out["value"], "high": out["value"], "interval": "every value is the same"}
    else:
        counts: dict[str, int] = {}
        for value in values:
            counts[str(value)] = counts.get(str(value), 0) + 1
        out["counts"] = counts
    return out


def _compare(stats: Any, kind: str, before: dict[str, Any], after: dict[str, Any], old: list[Any], new: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"from": before["version"], "to": after["version"], "difference": None, "p_value": None, "test": None,
                           "significant": None}
    if kind == "share":
        table = [[sum(old), len(old) - sum(old)], [sum(new), len(new) - sum(new)]]
        p = float(stats.fisher_exact(table).pvalue)
        out |= {"difference": after["value"] - before["value"], "p_value": p, "test": "Fisher's exact", "significant": p < ALPHA}
    elif kind == "median" and len(old) >= 1 and len(new) >= 1:
        if len(set(old) | set(new)) == 1:
            p = 1.0
        else:
            p = float(stats.mannwhitneyu(old, new, alternative="two-sided").pvalue)
        out |= {"difference": after["value"] - before["value"], "p_value": p, "test": "Mann-Whitney U", "significant": p < ALPHA}
    return out
