"""The work chart of a runbook as SVG, drawn by the server (offline): each step, its owner, its autonomy,
the tools its agent may touch, and where people sign off; and a bar chart of a KPI over runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec
    from lane.spec.runbook import RunbookSpec, StepSpec

ROW, WIDTH, INDENT = 58, 640, 28
COLOURS = {"agent": "#dbe8ff", "tool": "#e6f4ea", "human": "#fff1cc", "check": "#eeeeee",
           "parallel": "#f3e8ff", "for_each": "#f3e8ff", "runbook": "#f3e8ff"}


def work_chart(project: ProjectSpec, book: RunbookSpec) -> str:
    """One box per step, top to bottom in the order they run, the steps inside groups indented."""
    rows = chart_rows(book)
    height = ROW * len(rows) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="workchart" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui, sans-serif" font-size="12">',
             f"<title>work chart of {escape(book.name)}</title>"]
    for i, (depth, step, prefix) in enumerate(rows):
        x, y = 5 + depth * INDENT, 5 + i * ROW
        owner, detail, signs = describe(project, book, step)
        fill = COLOURS.get(step.kind, "#ffffff")
        stroke = "#c77700" if signs else "#8a93a3"
        parts.append(f'<g class="step" data-step="{escape(prefix + step.step.id)}">'
                     f'<rect x="{x}" y="{y}" width="{WIDTH - x - 5}" height="{ROW - 10}" rx="6" fill="{fill}" stroke="{stroke}" '
                     f'stroke-width="{2 if signs else 1}"/>'
                     f'<text x="{x + 10}" y="{y + 18}" font-weight="bold">{escape(step.step.id)} · {escape(step.kind)} · {escape(owner)}</text>'
                     f'<text x="{x + 10}" y="{y + 36}" fill="#333">{escape(detail)}</text>'
                     + (f'<text x="{WIDTH - 15}" y="{y + 18}" text-anchor="end" fill="#c77700">a person signs off</text>' if signs else "")
                     + "</g>")
        if i + 1 < len(rows):
            parts.append(f'<line x1="{x + 14}" y1="{y + ROW - 10}" x2="{x + 14}" y2="{y + ROW}" stroke="#8a93a3"/>')
    parts.append("</svg>")
    return "".join(parts)


def chart_rows(book: RunbookSpec) -> list[tuple[int, StepSpec, str]]:
    """Each step in the order they run, with its depth and the prefix of its name inside a group: (depth, step, prefix)."""
    rows: list[tuple[int, StepSpec, str]] = []

    def walk(steps: list[StepSpec], depth: int, prefix: str) -> None:
        for step in steps:
            rows.append((depth, step, prefix))
            walk(step.body, depth + 1, f"{step.step.id}[item].")
            for name, branch in step.branches.items():
                walk(branch, depth + 1, f"{step.step.id}.{name}.")

    walk(book.steps, 0, "")
    return rows


def describe(project: ProjectSpec, book: RunbookSpec, step: StepSpec) -> tuple[str, str, bool]:
    """(owner, one line of detail, whether a person signs off there)."""
    s = step.step
    if step.kind == "agent":
        agent = project.agents.get(s.agent or "")
        tools = (s.tools if s.tools is not None else agent.file.tools) if agent else []
        level = agent.file.autonomy if agent else "?"
        return s.agent or "", f"autonomy {level} · tools: {', '.join(tools) or 'none'}", level in ("ask", "observe")
    if step.kind == "tool":
        level = s.autonomy or book.file.autonomy
        tool = project.tools.get(s.tool or "")
        effect = tool.effect if tool else "?"
        signs = level == "ask" or (level == "guarded" and effect == "external") or (level == "observe" and effect != "read")
        return s.tool or "", f"{effect} · autonomy {level}" + (f" · approver {s.approver}" if s.approver else ""), signs
    if step.kind == "human":
        return f"{s.human} (a person)", s.prompt or ("approves a value" if s.approve is not None else "gives an input"), True
    if step.kind == "check":
        loop = f" · on failure back to {s.on_fail.back_to} ({s.on_fail.attempts} attempts)" if s.on_fail else ""
        return "a command", " ".join(s.check or [])[:70] + loop, False
    if step.kind == "for_each":
        return "each item", f"over {s.for_each} · {s.max_concurrency} at once" + (f" · runbook {s.runbook}" if s.runbook else ""), False
    if step.kind == "parallel":
        return "at once", f"branches: {', '.join(step.branches)}", False
    return s.runbook or "", "a child run", False


def bars(values: list[tuple[str, float]], *, label: str) -> str:
    """A small bar chart of a number per run (oldest first)."""
    if not values:
        return ""
    top = max(abs(v) for _, v in values) or 1.0
    width, height = 640, 120
    step = width / len(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="kpichart" width="{width}" height="{height + 20}" '
             f'font-family="system-ui, sans-serif" font-size="11"><title>{escape(label)} over runs</title>']
    for i, (run, value) in enumerate(values):
        h = max(1.0, height * abs(value) / top)
        parts.append(f'<rect x="{i * step + 1:.1f}" y="{height - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" fill="#4a7bd0">'
                     f"<title>{escape(run)}: {value:g}</title></rect>")
    parts.append(f'<text x="0" y="{height + 15}">{escape(label)}: {values[0][1]:g} … {values[-1][1]:g} (max {top:g})</text></svg>')
    return "".join(parts)


def kpi_rows(book: RunbookSpec, runs: list[Any], values_of: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Each KPI across the runs of the runbook (summed up as `lane demo` does), and a chart per numeric one."""
    from lane.feedback.kpis import summarize

    per_run = [(r.run_id, values_of(r.run_id)) for r in runs]
    rows, charts = [], {}
    for name, kpi in book.file.kpis.items():
        values = [v.get(name) for _, v in per_run]
        rows.append({"name": name, "summary": summarize(name, values, kpi.target).describe(), "target": kpi.target or ""})
        numbers = [(run, float(v[name])) for run, v in per_run
                   if isinstance(v.get(name), (int, float)) and not isinstance(v.get(name), bool)]
        if numbers:
            charts[name] = bars(list(reversed(numbers)), label=name)
    return rows, charts
