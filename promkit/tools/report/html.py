"""The HTML report: one self-contained page (inline CSS and SVG, no script, no network).

:func:`svg_line_chart` is a tiny line-chart renderer: time on x, the value on
y from zero (or the minimum when negative), a few labelled grid lines, one
path per series (a gap in the data starts a new sub-path) and a legend.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from promkit.tools.report.model import Report
from promkit.tools.report.render import Block, fmt, issue_line, numeric_cell, outline

__all__ = ["render_html", "svg_line_chart"]

COLORS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")
MAX_SERIES = len(COLORS)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _time_label(ts: float, span: float) -> str:
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return d.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")


def svg_line_chart(title: str, unit: str, series: Sequence[dict[str, Any]], *,
                   start: float, end: float, width: int = 560, height: int = 220) -> str:
    """An ``<svg>`` line chart of ``series`` (``{"label", "points": [[t, v], ...]}``)."""
    left, right, top, bottom = 64, 12, 28, 44
    pw, ph = width - left - right, height - top - bottom
    shown = [s for s in series if s.get("points")][:MAX_SERIES]
    values = [float(v) for s in shown for _, v in s["points"] if math.isfinite(float(v))]
    lo = min(0.0, min(values)) if values else 0.0
    hi = _nice_max(max(values) if values else 1.0)
    if unit == "ratio" and hi > 1 and max(values or [0]) <= 1:
        hi = 1.0
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return left + (t - start) / span * pw

    def y(v: float) -> float:
        return top + ph - (v - lo) / ((hi - lo) or 1.0) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(title)}">',
             f'<text x="{left}" y="18" class="title">{_e(title)}</text>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        yy = y(v)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">'
                     f"{_e(fmt(v, unit))}</text>")
    for i in range(3):
        t = start + span * i / 2
        anchor = ("start", "middle", "end")[i]
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 16}" class="tick" '
                     f'text-anchor="{anchor}">{_e(_time_label(t, span))} UTC</text>')
    if not shown:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" class="empty" '
                     'text-anchor="middle">no data</text>')
    for n, s in enumerate(shown):
        pts = sorted((float(t), float(v)) for t, v in s["points"] if math.isfinite(float(v)))
        steps = [b[0] - a[0] for a, b in itertools.pairwise(pts)]
        gap = 2.5 * min(steps) if steps else span
        d: list[str] = []
        prev: float | None = None
        for t, v in pts:
            cmd = "M" if prev is None or t - prev > gap else "L"
            d.append(f"{cmd}{x(t):.1f},{y(v):.1f}")
            prev = t
        if len(pts) == 1:  # a lone point still shows: a short flat stroke
            d.append(f"L{x(pts[0][0]) + 2:.1f},{y(pts[0][1]):.1f}")
        color = COLORS[n % len(COLORS)]
        parts.append(f'<path d="{" ".join(d)}" fill="none" stroke="{color}" '
                     f'stroke-width="1.6" stroke-linejoin="round"><title>{_e(s["label"])}'
                     "</title></path>")
        if len(shown) > 1 or s["label"] != "total":
            lx = left + (n % 3) * (pw / 3)
            ly = height - 14 + (n // 3) * 12
            parts.append(f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="3" '
                         f'fill="{color}"/><text x="{lx + 14:.1f}" y="{ly - 4}" class="legend">'
                         f"{_e(s['label'][:40])}</text>")
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1180px;color:#111827;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px;color:#374151}
.headline{font-size:18px;font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block}
.ok{background:#dcfce7;color:#166534}.bad{background:#fef3c7;color:#92400e}
ul.issues{padding-left:20px}.critical{color:#b91c1c;font-weight:600}.warning{color:#b45309;
font-weight:600}table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #f3f4f6;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{color:#6b7280;font-weight:500}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
svg.chart{border:1px solid #e5e7eb;border-radius:6px;background:#fff}
svg .title{font-size:13px;font-weight:600;fill:#111827}svg .tick{font-size:10px;fill:#6b7280}
svg .grid{stroke:#f3f4f6}svg .legend{font-size:10px;fill:#374151}
svg .empty{font-size:13px;fill:#9ca3af}p.meta{color:#6b7280;margin:0 0 12px}
"""


def _block_html(b: Block, report: Report) -> str:
    if b.kind == "title":
        return f"<h1>{_e(b.text)}</h1>"
    if b.kind == "headline":
        cls = "bad" if report.current_issues else "ok"
        return f'<div class="headline {cls}" id="headline">{_e(b.text)}</div>'
    if b.kind == "issues":
        items = "".join(f'<li><span class="{_e(i.severity)}">{_e(i.severity)}</span> '
                        f"<code>{_e(i.kind)}</code> {_e(issue_line(i))}</li>" for i in b.issues)
        return f'<ul class="issues">{items}</ul>'
    if b.kind == "h2":
        return f"<h2>{_e(b.text)}</h2>"
    if b.kind == "h3":
        return f"<h3>{_e(b.text)}</h3>"
    if b.kind == "p":
        return f'<p class="{"meta" if "Prometheus" in b.text else ""}">{_e(b.text)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in b.headers)
    rows = "".join("<tr>" + "".join(
        f'<td class="num">{_e(c)}</td>' if i and numeric_cell(c) else f"<td>{_e(c)}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in b.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(report: Report) -> str:
    """The whole page; charts go right after the headline and issues."""
    start, end = report.generated_at - report.window_seconds, report.generated_at
    charts = "".join(svg_line_chart(c["title"] + f" ({c['unit']})", c["unit"], c["series"],
                                    start=start, end=end) for c in report.charts)
    body: list[str] = []
    placed = False
    for b in outline(report):
        if b.kind == "h2" and not placed:
            body.append(f'<h2>Key series</h2><div class="charts">{charts}</div>')
            placed = True
        body.append(_block_html(b, report))
    title = _e(f"promkit report — {report.headline()}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><meta name=\"viewport\" "
            "content=\"width=device-width,initial-scale=1\">"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
