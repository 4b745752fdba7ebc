"""The report's chart: each KPI per version over time, as one SVG a person can open in any browser.

A panel per KPI; in it a line per version: the share (or the median) of that version's runs so far, at each of
its runs in the order all runs ended (so a burst of runs is as readable as a slow week), with the dates of the
first and last under it, and the version's 95% interval as a bar at its last point.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from html import escape
from typing import Any

COLORS = ("#8a8f98", "#2f6fd6", "#d9822b", "#2a9d6f", "#b04bb5", "#c23b3b")  # oldest version grey
PANEL_W, PANEL_H, PAD = 560, 150, 60


def chart(report: dict[str, Any], ended: list[dict[str, Any]]) -> str:
    """The SVG of `report` (report.report) over the ended runs it was made from (report.rows)."""
    kpis = [k for k in report["kpis"] if k["kind"] in ("share", "median")]
    ended = sorted(ended, key=lambda r: r["at"])
    colors = {v: COLORS[i % len(COLORS)] for i, v in enumerate(report["versions"])}
    height = 50 + len(kpis) * (PANEL_H + PAD)
    width = PANEL_W + 140
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="system-ui, sans-serif" font-size="12"><title>{escape(report["runbook"])}: KPIs per version over time</title>',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="10" y="22" font-size="15" font-weight="600">{escape(report["runbook"])}: each KPI per version over time</text>']
    for i, kpi in enumerate(kpis):
        top = 60 + i * (PANEL_H + PAD)
        parts += _panel(kpi, ended, colors, top)
    parts.append("</svg>")
    return "\n".join(parts)


def _panel(kpi: dict[str, Any], ended: list[dict[str, Any]], colors: dict[int, str], top: float) -> list[str]:
    left = 50.0
    share = kpi["kind"] == "share"
    series = {}
    for version in colors:
        points, seen = [], []
        for order, r in enumerate(ended):
            value = r["values"].get(kpi["name"])
            if r["version"] == version and value is not None:
                seen.append(float(value))
                current = sum(seen) / len(seen) if share else statistics.median(seen)
                points.append((float(order), current))
        if points:
            series[version] = points
    values = [y for points in series.values() for _, y in points]
    values += [v[key] for v in kpi["versions"] for key in ("low", "high") if v.get(key) is not None]
    low, high = (0.0, 1.0) if share else (min(values, default=0.0), max(values, default=1.0))
    if high == low:
        high = low + 1.0

    last = max(len(ended) - 1, 1)

    def x(order: float) -> float:
        return left + order / last * (PANEL_W - left - 20)

    def y(v: float) -> float:
        return top + PANEL_H - (v - low) / (high - low) * PANEL_H

    title = f"{kpi['name']} ({'share of runs' if share else 'median'})" + (f" · target {kpi['target'].strip()}" if kpi.get("target") else "")
    out = [f'<text x="{left}" y="{top - 8}" font-weight="600">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{PANEL_W - left - 20}" height="{PANEL_H}" fill="#f7f8fa" stroke="#dde1e6"/>']
    for tick in (low, (low + high) / 2, high):
        label = f"{tick:.0%}" if share else f"{tick:.3g}"
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#555">{label}</text>')
    for version, points in series.items():
        color = colors[version]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"><title>v{version}</title></polyline>')
        figure: dict[str, Any] = next((f for f in kpi["versions"] if f["version"] == version), {})
        last_x, last_y = x(points[-1][0]), y(points[-1][1])
        if figure.get("low") is not None and figure.get("high") is not None:
            out.append(f'<line x1="{last_x:.1f}" x2="{last_x:.1f}" y1="{y(figure["low"]):.1f}" y2="{y(figure["high"]):.1f}" '
                       f'stroke="{color}" stroke-width="6" stroke-opacity="0.35"><title>v{version} 95% interval</title></line>')
        out.append(f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="3.5" fill="{color}"/>')
    for j, version in enumerate(series):
        figure = next((f for f in kpi["versions"] if f["version"] == version), {})
        value = figure.get("value")
        shown = "" if value is None else f"{value:.0%}" if share else f"{value:.3g}"
        out.append(f'<rect x="{PANEL_W - 6}" y="{top + 6 + j * 20}" width="12" height="12" fill="{colors[version]}"/>'
                   f'<text x="{PANEL_W + 12}" y="{top + 16 + j * 20}">v{version}: {shown} (n={figure.get("n", 0)})</text>')
    if ended:
        out.append(f'<text x="{left}" y="{top + PANEL_H + 14}" fill="#888" font-size="10">{_day(ended[0]["at"])}</text>'
                   f'<text x="{PANEL_W - 20}" y="{top + PANEL_H + 14}" fill="#888" font-size="10" text-anchor="end">'
                   f'{_day(ended[-1]["at"])} · runs in the order they ended</text>')
    comparison = next((c for c in reversed(kpi["comparisons"]) if c.get("p_value") is not None), None)
    if comparison is not None:
        verdict = "significant" if comparison["significant"] else "not significant"
        out.append(f'<text x="{left}" y="{top + PANEL_H + 30}" fill="#555">v{comparison["from"]} → v{comparison["to"]}: '
                   f'{escape(comparison["test"])} p = {comparison["p_value"]:.3g} ({verdict})</text>')
    return out


def _day(at: str) -> str:
    return datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M")
