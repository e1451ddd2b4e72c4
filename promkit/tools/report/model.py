"""The report model: the five questions answered from what Prometheus said.

:func:`build_report` is pure: it takes a :class:`~promkit.tools.report.queries.Collected`
(the answers to the named queries) and thresholds, and returns a
:class:`Report`, whose :meth:`Report.to_dict` is the versioned JSON schema
documented in docs/report.md. Units are base units (seconds, bytes, ratios
0..1); every finding that needs attention is an :class:`Issue`. Each section
lives in its own module (``_health``, ``_latency``, ``_failures``, ``_queues``,
``_cost``, ``_trends``; ``_recent`` measures the last minutes again), and
:mod:`~promkit.tools.report.issues` merges alerts into findings and ranks them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from promkit.tools.report._cost import cost_section
from promkit.tools.report._failures import failures_section
from promkit.tools.report._figures import linear_fit
from promkit.tools.report._health import health_section
from promkit.tools.report._latency import latency_section
from promkit.tools.report._queues import queues_section
from promkit.tools.report._recent import with_recent
from promkit.tools.report._trends import trends_section
from promkit.tools.report.issues import Issue, merge_alerts, rank
from promkit.tools.report.queries import Collected
from promkit.tools.report.thresholds import Thresholds

__all__ = [
    "SCHEMA",
    "Issue",
    "Report",
    "Thresholds",
    "build_report",
    "linear_fit",
]

SCHEMA = "promkit.report/v1"
"""The JSON schema id; additions keep it, a renamed or removed field bumps it."""

@dataclass
class Report:
    """A report; sections are plain dicts (see docs/report.md for every field)."""

    generated_at: float
    prometheus: str
    since: str
    window_seconds: float
    service: str | None
    health: dict[str, Any]
    latency: dict[str, Any]
    failures: dict[str, Any]
    cost: dict[str, Any]
    queues: list[dict[str, Any]]
    trends: dict[str, Any]
    charts: list[dict[str, Any]]
    issues: list[Issue]
    query_errors: dict[str, str]
    recent_seconds: float | None = None
    """The last minutes measured again (None: not done, the window being too short)."""

    @property
    def current_issues(self) -> list[Issue]:
        """What is happening in the window: these set the status and the headline."""
        return [i for i in self.issues if i.scope == "current"]

    @property
    def background_issues(self) -> list[Issue]:
        return [i for i in self.issues if i.scope == "background"]

    @property
    def status(self) -> str:
        return "issues" if self.current_issues else "nominal"

    def headline(self) -> str:
        """``✓ nominal`` or ``⚠ n issue(s)`` (current ones): the first line of every digest."""
        n = len(self.current_issues)
        if not n:
            return "✓ nominal"
        return f"⚠ {n} issue{'s' if n != 1 else ''}"

    def to_dict(self, *, charts: bool = True) -> dict[str, Any]:
        end = self.generated_at
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "generated_at": _iso(end),
            "prometheus": self.prometheus,
            "service": self.service,
            "window": {"since": self.since, "seconds": self.window_seconds,
                       "start": _iso(end - self.window_seconds), "end": _iso(end),
                       "recent_seconds": self.recent_seconds},
            "status": self.status,
            "headline": self.headline(),
            "issues": [asdict(i) for i in self.issues],
            "health": self.health,
            "latency": self.latency,
            "failures": self.failures,
            "cost": self.cost,
            "queues": self.queues,
            "trends": self.trends,
            "query_errors": dict(self.query_errors),
        }
        if charts:
            data["charts"] = self.charts
        cleaned: dict[str, Any] = _clean(data)
        return cleaned


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _clean(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def build_report(c: Collected, *, prometheus: str, thresholds: Thresholds | None = None
                 ) -> Report:
    t = thresholds or Thresholds()
    findings: list[Issue] = []
    health = health_section(c, t, findings)
    failures = failures_section(c, t, findings)
    latency = latency_section(c, t, findings)
    findings, recent = with_recent(c, t, findings)
    queues = queues_section(c, t, findings)
    cost = cost_section(c, findings)
    trends, charts = trends_section(c, t, findings)
    for name, error in sorted(c.errors.items()):
        # A refused query makes the report partial; it says nothing about the service.
        findings.append(Issue("warning", "query_failed", name, error, scope="background"))
    issues = rank(merge_alerts(findings, health["alerts"], window_start=c.window.start))
    return Report(generated_at=c.window.end, prometheus=prometheus, since=c.window.since,
                  window_seconds=c.window.seconds, service=c.service, health=health,
                  latency=latency, failures=failures, cost=cost, queues=queues, trends=trends,
                  charts=charts, issues=issues, query_errors=dict(c.errors),
                  recent_seconds=recent)
