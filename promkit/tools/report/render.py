"""Renderers: terminal text, Markdown and JSON, from one document outline.

:func:`outline` turns a :class:`~promkit.tools.report.model.Report` into blocks
(headings, paragraphs, tables, the issue list); :func:`render_text` and
:func:`render_markdown` lay the same blocks out for a terminal or for
Markdown, and the HTML renderer (:mod:`promkit.tools.report.html`) adds the
charts. :func:`render_json` is the versioned schema for scripts and agents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from promkit.tools.report._figures import BOUND_PREFIX, fmt_seconds
from promkit.tools.report.model import Issue, Report

__all__ = [
    "Block",
    "change_text",
    "fmt",
    "issue_line",
    "outline",
    "quantile",
    "render_json",
    "render_markdown",
    "render_text",
]

BlockKind = Literal["title", "headline", "issues", "h2", "h3", "p", "table"]
MAX_ROWS = 15


@dataclass
class Block:
    kind: BlockKind
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


def fmt(value: Any, unit: str = "") -> str:
    """A value for people: ``123 ms``, ``4.5%``, ``1.2 GiB``, ``–`` for missing."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    v = float(value)
    if not math.isfinite(v):
        return "–"
    if unit == "seconds":
        return fmt_seconds(v)
    if unit == "ratio":
        return f"{v:.1%}" if abs(v) >= 0.001 or v == 0 else f"{v:.3%}"
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(v) < 1024 or suffix == "TiB":
                return f"{v:.0f} {suffix}" if suffix == "B" else f"{v:.1f} {suffix}"
            v /= 1024
    if unit == "requests/s":
        return f"{v:.2f}/s" if v < 100 else f"{v:.0f}/s"
    if abs(v) >= 1000 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _signed(value: Any, unit: str) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    text = fmt(abs(float(value)), unit)
    return ("+" if float(value) >= 0 else "-") + text


def change_text(change: dict[str, Any] | None, unit: str = "") -> str:
    """How a figure moved against the window before: ``new``, ``was 2.0%``, ``gone``."""
    if not change:
        return ""
    trend = str(change["trend"])
    if trend == "new" and change.get("previous") is None and change.get("current") is not None:
        return "new: no data for the window before"
    if trend in ("new", "gone"):
        return trend
    if change.get("previous") is None:
        return ""
    ratio = change.get("ratio")
    word = {"up": "up", "down": "down"}.get(trend, "steady")
    times = f", ×{ratio:.1f}" if ratio is not None and trend == "up" and ratio < 100 else ""
    return f"{word}: was {fmt(change['previous'], unit)}{times}"


def quantile(row: dict[str, Any], name: str) -> str:
    """A quantile cell; one that is only a bucket bound reads ``< 100 ms`` / ``> 120 s``."""
    bound = str((row.get("quantile_bounds") or {}).get(name, ""))
    prefix = BOUND_PREFIX.get(bound, "")
    return prefix + fmt(row.get(name), "seconds") if row.get(name) is not None else "–"


def issue_line(issue: Issue) -> str:
    """An issue as one line: its message, and its change against the window before."""
    moved = change_text(issue.change, issue.unit)
    alerts = f"; alert {', '.join(issue.alerts)} firing" if issue.alerts and issue.kind != "alert" \
        else ""
    return issue.message + (f" ({moved}{alerts})" if moved else (f" ({alerts[2:]})"
                                                                   if alerts else ""))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def outline(report: Report) -> list[Block]:
    """The report as blocks, in the order of the five questions."""
    r = report
    blocks: list[Block] = []
    scope = f"job={r.service}" if r.service else "all jobs"
    blocks.append(Block("title", f"promkit report — {scope} — last {r.since}"))
    blocks.append(Block("p", f"{_when(r.generated_at - r.window_seconds)} → "
                             f"{_when(r.generated_at)} · Prometheus {r.prometheus}"))
    blocks.append(Block("headline", r.headline()))
    if r.current_issues:
        blocks.append(Block("issues", issues=r.current_issues))
    if r.background_issues:
        blocks.append(Block("p", "Background (long windows, month to date, alerts whose "
                                 "condition no longer holds in this window):"))
        blocks.append(Block("issues", issues=r.background_issues))

    blocks.append(Block("h2", "1. Is it healthy?"))
    h = r.health
    firing = [a for a in h["alerts"] if a["state"] == "firing"]
    pending = [a for a in h["alerts"] if a["state"] == "pending"]
    blocks.append(Block("p", f"Alerts: {len(firing)} firing, {len(pending)} pending. "
                             f"Targets: {h['targets_up']} up, {h['targets_down']} down."))
    if h["alerts"]:
        blocks.append(Block("table", headers=["alert", "state", "severity", "since", "summary"],
                            rows=[[a["name"], a["state"], a["severity"] or "–",
                                   str(a["active_at"] or "–")[:19], a["summary"] or ""]
                                  for a in h["alerts"][:MAX_ROWS]]))
    down = [t for t in h["targets"] if not t["up"]]
    if down:
        blocks.append(Block("table", headers=["job", "instance", "health", "last error"],
                            rows=[[t["job"], t["instance"], str(t["health"]),
                                   t["last_error"] or ""] for t in down[:MAX_ROWS]]))
    if h["slos"]:
        blocks.append(Block("table", headers=["SLO", "objective", "SLI", "budget left", "source"],
                            rows=[[s["name"], fmt(s["objective"], "ratio"),
                                   fmt(s["sli"], "ratio"),
                                   fmt(s["error_budget_remaining"], "ratio"), s["source"]]
                                  for s in h["slos"]]))
    else:
        blocks.append(Block("p", "SLOs: no traffic to compute them from."))

    blocks.append(Block("h2", "2. Where is the time going?"))
    lat = r.latency
    _table(blocks, "HTTP routes (slowest p95 first)", lat["routes"],
           ["route", "requests/s", "p50", "p95"],
           lambda x: [f"{x['method']} {x['route']}", fmt(x["rps"], "requests/s"),
                      quantile(x, "p50_seconds"), quantile(x, "p95_seconds")])
    _table(blocks, "Queues now", r.queues,
           ["queue", "depth", "oldest item", "readable", "depth before", "oldest before"],
           lambda x: [x["queue"], fmt(x["depth"]), fmt(x["oldest_age_seconds"], "seconds"),
                      fmt(x["up"]), fmt(x["depth_previous"]),
                      fmt(x["oldest_age_previous_seconds"], "seconds")])
    _table(blocks, "Jobs: queue wait / run / total", lat["jobs"],
           ["queue/type", "jobs", "wait p50", "wait p95", "run p50", "run p95", "total p95"],
           lambda x: [f"{x['queue']}/{x['job_type']}", fmt(x["jobs"]),
                      quantile(x, "queue_wait_p50_seconds"), quantile(x, "queue_wait_p95_seconds"),
                      quantile(x, "run_p50_seconds"), quantile(x, "run_p95_seconds"),
                      quantile(x, "total_p95_seconds")])
    _table(blocks, "External calls", lat["external"],
           ["service/operation", "mean", "p95"],
           lambda x: [f"{x['service']}/{x['operation']}", fmt(x["mean_seconds"], "seconds"),
                      quantile(x, "p95_seconds")])
    _table(blocks, "Stages (most total time first)", lat["stages"],
           ["stage", "runs", "mean", "p95", "CPU"],
           lambda x: [x["stage"], fmt(x["runs"]), fmt(x["mean_seconds"], "seconds"),
                      quantile(x, "p95_seconds"), fmt(x["cpu_seconds"], "seconds")])

    blocks.append(Block("h2", "3. What is failing and why?"))
    f = r.failures
    _table(blocks, "Error ratio by route (5xx)", [x for x in f["routes"] if x["errors"]],
           ["route", "requests", "errors", "error ratio"],
           lambda x: [f"{x['method']} {x['route']}", fmt(x["requests"]), fmt(x["errors"]),
                      fmt(x["error_ratio"], "ratio")], empty="no 5xx answers")
    _table(blocks, "Stage failures by error code", f["stages"], ["stage", "error code", "count"],
           lambda x: [x["stage"], x["error_code"], fmt(x["count"])])
    _table(blocks, "Failed jobs by error code", f["jobs"],
           ["queue/type", "error code", "count"],
           lambda x: [f"{x['queue']}/{x['job_type']}", x["error_code"], fmt(x["count"])])
    _table(blocks, "External-call outcomes", f["external"],
           ["service/operation", "calls", "success", "error", "timeout", "error ratio"],
           lambda x: [f"{x['service']}/{x['operation']}", fmt(x["calls"]), fmt(x["success"]),
                      fmt(x["error"]), fmt(x["timeout"]), fmt(x["error_ratio"], "ratio")])
    _table(blocks, "Top error codes", f["top_error_codes"], ["source", "code", "count"],
           lambda x: [x["source"], x["code"], fmt(x["count"])], empty="none")

    blocks.append(Block("h2", "4. What does it cost?"))
    c = r.cost
    if c["cost_per_hour"] is not None:
        moved = change_text(c["cost_per_hour_change"])
        blocks.append(Block("p", f"Cost now: {fmt(c['cost_per_hour'])} per hour over the "
                                 f"window" + (f" ({moved})" if moved else "") + "."))
    _table(blocks, "Usage over the window", [x for x in c["resources"]
                                             if x["rate_per_second"] is not None],
           ["resource", "units/s", "before", "change", "cost/h", "cost/h before"],
           lambda x: [x["resource"], fmt(x["rate_per_second"]),
                      fmt(x["rate_previous_per_second"]), change_text(x["rate_change"]) or "–",
                      fmt(x["cost_per_hour"]), fmt(x["cost_per_hour_previous"])])
    blocks.append(Block("h3", "Month to date"))
    blocks.append(Block("p", f"Month {fmt(c['month_elapsed_ratio'], 'ratio')} elapsed. "
                             f"Cost month to date: {fmt(c['cost_month_to_date'])}, "
                             f"projected month end: {fmt(c['cost_projected_month_end'])}."))
    _table(blocks, "Usage this month", c["resources"],
           ["resource", "used", "projected", "budget", "projected/budget", "cost", "cost proj."],
           lambda x: [x["resource"], fmt(x["used_month_to_date"]),
                      fmt(x["projected_month_end"]), fmt(x["budget"]),
                      fmt(x["budget_projected_ratio"], "ratio"), fmt(x["cost_month_to_date"]),
                      fmt(x["cost_projected_month_end"])])
    cpu = c["cpu"]
    if cpu["used_hours"] is not None:
        budget = (f" of a {fmt(cpu['budget_hours'])} h budget"
                  if cpu["budget_hours"] is not None else "")
        blocks.append(Block("p", f"CPU: {cpu['used_hours']:.2f} h this month, projected "
                                 f"{cpu['projected_hours']:.1f} h{budget} "
                                 f"(from {cpu['source']})."))

    blocks.append(Block("h2", "5. What will it need?"))
    t = r.trends
    traffic = t["traffic_change"]
    if traffic is None:
        said = "no data"
    else:
        said = f"{fmt(traffic['current'])} requests"
        if traffic["previous"] is None:
            said += ", no data for the window before"
        elif traffic["trend"] == "new":
            said += f", new ({fmt(traffic['previous'])} in the window before)"
        elif t["traffic_growth_ratio"] is not None:
            said += (f", {_signed(t['traffic_growth_ratio'], 'ratio')} against the window "
                     "before")
    hours = t["min_projection_seconds"] / 3600
    blocks.append(Block("p", f"Traffic over the window: {said}. Projections are linear, "
                             f"{t['projection_days']} days ahead, from at least "
                             f"{hours:.3g} h of data."))
    _table(blocks, "Trends", t["series"],
           ["series", "", "current", "max", "per day", f"in {t['projection_days']} d"],
           lambda x: [x["title"], "" if x["series"] == "total" else x["series"],
                      fmt(x["current"], x["unit"]), fmt(x["max"], x["unit"]),
                      _signed(x["slope_per_day"], x["unit"]), fmt(x["projected_30d"], x["unit"])])
    if r.query_errors:
        blocks.append(Block("p", f"{len(r.query_errors)} queries failed; the report is "
                                 "partial (see issues)."))
    return blocks


def _table(blocks: list[Block], title: str, items: Sequence[dict[str, Any]], headers: list[str],
           row: Any, *, empty: str = "no data") -> None:
    blocks.append(Block("h3", title))
    if not items:
        blocks.append(Block("p", empty))
        return
    rows = [row(x) for x in items[:MAX_ROWS]]
    blocks.append(Block("table", headers=headers, rows=rows))
    if len(items) > MAX_ROWS:
        blocks.append(Block("p", f"… and {len(items) - MAX_ROWS} more (see --json)."))


# ---------------------------------------------------------------------------------- text

_RESET = "\033[0m"
_STYLE = {"bold": "\033[1m", "dim": "\033[2m", "red": "\033[31m", "yellow": "\033[33m",
          "green": "\033[32m", "cyan": "\033[36m"}


def numeric_cell(cell: str) -> bool:
    """Whether a table cell is a number (right-aligned): digits after a sign, or the dash."""
    head = cell.lstrip("+-")[:1]
    return head.isdigit() or cell == "–"


def render_text(report: Report, *, color: bool = False) -> str:
    def style(text: str, *names: str) -> str:
        if not color:
            return text
        return "".join(_STYLE[n] for n in names) + text + _RESET

    lines: list[str] = []
    indent = "  "
    for b in outline(report):
        if b.kind == "title":
            lines.append(style(b.text, "bold"))
        elif b.kind == "headline":
            lines.append("")
            lines.append(style(b.text, "bold", "green" if not report.issues else "yellow"))
        elif b.kind == "issues":
            for i in b.issues:
                tag = style(f"{i.severity.upper():8}", "red" if i.severity == "critical"
                            else "yellow")
                lines.append(f"  {tag} {issue_line(i)}  {style(f'[{i.kind}]', 'dim')}")
        elif b.kind == "h2":
            lines.extend(["", style(b.text, "bold", "cyan")])
            indent = "  "
        elif b.kind == "h3":
            lines.append(style(f"  {b.text}", "bold"))
            indent = "    "
        elif b.kind == "p":
            lines.append(f"{indent}{b.text}")
        elif b.kind == "table":
            widths = [max(len(h), *(len(r[i]) for r in b.rows)) for i, h in enumerate(b.headers)]
            numeric = [all(numeric_cell(r[i]) for r in b.rows) and i > 0
                       for i in range(len(b.headers))]

            def cells(row: list[str], widths: list[int] = widths,
                      numeric: list[bool] = numeric) -> str:
                return "  ".join(c.rjust(w) if n else c.ljust(w)
                                 for c, w, n in zip(row, widths, numeric)).rstrip()

            lines.append("    " + style(cells(b.headers), "dim"))
            lines.extend("    " + cells(r) for r in b.rows)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines: list[str] = []
    for b in outline(report):
        if b.kind == "title":
            lines.extend([f"# {b.text}", ""])
        elif b.kind == "headline":
            lines.extend([f"**{b.text}**", ""])
        elif b.kind == "issues":
            lines.extend(f"- **{i.severity}** `{i.kind}` {_md_cell(issue_line(i))}"
                         for i in b.issues)
            lines.append("")
        elif b.kind == "h2":
            lines.extend([f"## {b.text}", ""])
        elif b.kind == "h3":
            lines.extend([f"### {b.text}", ""])
        elif b.kind == "p":
            lines.extend([_md_cell(b.text), ""])
        elif b.kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            lines.append("|" + "|".join(" --- " for _ in b.headers) + "|")
            lines.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------- json


def render_json(report: Report, *, charts: bool = True) -> str:
    return json.dumps(report.to_dict(charts=charts), indent=2, ensure_ascii=False) + "\n"


def digest(report: Report, *, limit: int = 1800) -> tuple[str, str]:
    """``(title, body)`` of a short digest for chat webhooks: headline and top issues."""
    scope = f" {report.service}" if report.service else ""
    title = f"{report.headline()} — promkit report{scope} (last {report.since})"
    lines = [f"• [{i.severity}] {issue_line(i)}" for i in report.current_issues]
    if report.background_issues:
        lines.append(f"({len(report.background_issues)} more in the background: long-window "
                     "SLO budgets, month-to-date budgets, alerts whose condition has cleared)")
    body = ""
    for n, line in enumerate(lines):
        if len(body) + len(line) + 40 > limit:
            body += f"… and {len(lines) - n} more"
            break
        body += line + "\n"
    if not report.current_issues:
        h = report.health
        body = f"{h['targets_up']} targets up, nothing needs attention in this window."
        if report.background_issues:
            body += "\n" + lines[-1]
        else:
            body += f" {len(h['slos'])} SLOs within budget."
    return title, body.rstrip()
