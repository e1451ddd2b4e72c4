"""What will it need? Traffic against the window before, and bounded trends of the
charted series with a projection only from enough data."""

from __future__ import annotations

import math
from typing import Any

from promkit.tools.report._change import change, ratio_change
from promkit.tools.report._figures import linear_fit, scalar
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import Collected, range_queries
from promkit.tools.report.thresholds import Thresholds

__all__ = [
    "MIN_PROJECTION_SECONDS",
    "PROJECTED",
    "PROJECTION_DAYS",
    "trends_section",
]


PROJECTION_DAYS = 30
PROJECTED = frozenset({"request_rate", "queue_depth", "rss", "disk"})
"""The charted series that are capacity (what it will need): only these get a slope
and a projection; an error ratio or a p95 "per day" means nothing."""
MIN_PROJECTION_SECONDS = 3600.0
"""A trend is extrapolated only from at least this much data (and half the window)."""




def _series_label(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "total"


def trends_section(c: Collected, t: Thresholds, issues: list[Issue]) -> tuple[
        dict[str, Any], list[dict[str, Any]]]:
    specs = range_queries(c.window, c.service)
    charts: list[dict[str, Any]] = []
    trends: list[dict[str, Any]] = []
    for name, (title, unit, _expr) in specs.items():
        series = c.ranges.get(name, [])
        chart_series: list[dict[str, Any]] = []
        for s in series:
            pts = [(p[0], p[1]) for p in s.points if math.isfinite(p[1])]
            label = _series_label(s.labels)
            chart_series.append({"label": label, "points": [[p[0], p[1]] for p in pts]})
            trends.append(_trend(name, title, unit, label, pts, c.window.seconds))
        charts.append({"name": name, "title": title, "unit": unit, "series": chart_series})
    for tr in trends:
        current, projected, slope = tr["current"], tr["projected_30d"], tr["slope_per_day"]
        if tr["name"] != "disk" or current is None:
            continue
        labels = {"path": tr["series"].removeprefix("path=")}
        if current > t.disk_used_ratio:
            issues.append(Issue("critical", "disk", tr["series"],
                                f"disk {tr['series']} is {current:.0%} full", current, "ratio",
                                labels=labels))
        elif projected is not None and projected > t.disk_used_ratio and slope and slope > 0:
            days = (t.disk_used_ratio - current) / slope
            if days <= PROJECTION_DAYS:
                issues.append(Issue("warning", "disk", tr["series"],
                                    f"disk {tr['series']} is {current:.0%} full and will pass "
                                    f"{t.disk_used_ratio:.0%} "
                                    + (f"in about {days:.0f} days" if days >= 1.5
                                       else "within a day")
                                    + " at the rate of this window", projected, "ratio",
                                    labels=labels, evidence={"used_ratio": current,
                                                             "slope_per_day": slope}))
    requests, before = scalar(c, "http_total"), scalar(c, "prev_http_total")
    traffic = change(requests, before, t.min_requests)
    return {"traffic_growth_ratio": ratio_change(traffic), "traffic_change": traffic,
            "projection_days": PROJECTION_DAYS,
            "min_projection_seconds": max(MIN_PROJECTION_SECONDS, c.window.seconds / 2),
            "series": trends}, charts


def _trend(name: str, title: str, unit: str, label: str, pts: list[tuple[float, float]],
           window: float) -> dict[str, Any]:
    values = [v for _, v in pts]
    current = values[-1] if values else None
    mean = sum(values) / len(values) if values else None
    slope = projected = None
    # Extrapolate (and give a per-day slope) only from enough data: minutes of a
    # fresh process projected 30 days ahead gave "40 GiB" and "disk full in 0 days".
    # (95%: a range query's points span the window less one step.)
    if name in PROJECTED and pts and pts[-1][0] - pts[0][0] >= 0.95 * max(
            MIN_PROJECTION_SECONDS, window / 2):
        fit = linear_fit(pts)
        if fit is not None:
            slope = fit[0]
            projected = fit[0] * (pts[-1][0] + PROJECTION_DAYS * 86400) + fit[1]
            if unit in ("ratio", "items", "bytes", "requests/s", "seconds"):
                projected = max(0.0, projected)
            if unit == "ratio":
                projected = min(1.0, projected)
    return {"name": name, "title": title, "unit": unit, "series": label, "current": current,
            "mean": mean, "max": max(values) if values else None,
            "slope_per_day": slope * 86400 if slope is not None else None,
            "growth_ratio": _half_growth(values), "projected_30d": projected}


def _half_growth(values: list[float]) -> float | None:
    """Mean of the window's second half against its first, ``- 1``; None when the first
    half's mean is near zero (under 5% of the largest value): no percentage off it."""
    if len(values) < 4:
        return None
    half = len(values) // 2
    first = sum(values[:half]) / half
    second = sum(values[half:]) / (len(values) - half)
    peak = max(abs(v) for v in values)
    if first <= 0 or first < 0.05 * peak:
        return None
    return second / first - 1
