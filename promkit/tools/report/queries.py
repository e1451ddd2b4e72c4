"""The PromQL behind ``promkit report``, and collecting the answers.

Every query is named; :func:`collect` runs them and returns a
:class:`Collected` keyed by those names, which :mod:`promkit.tools.report.model`
turns into the report. Unit tests build a :class:`Collected` from canned API
answers, so the analysis never needs a live server.

Window aggregates use the raw catalog metrics over the report window
(``increase``/``rate`` over ``[<window>]``), so they work with or without
recording rules; SLOs come from the SLO recording rules when Prometheus has
them and are computed from the raw metrics otherwise.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from promkit.instrument.usage import month_bounds
from promkit.tools.report._prom import PrometheusClient, PrometheusError, Sample, Series
from promkit.tools.report._stores import fill_from_series

__all__ = [
    "Collected",
    "Window",
    "collect",
    "instant_queries",
    "parse_duration",
    "range_queries",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RANGE_POINTS = 120
"""Points per range series (the step is the window divided by this)."""
MIN_RATE_WINDOW = 60.0
"""Shortest ``rate()`` window of the range series: four 15 s scrapes."""

HTTP = "http_server_request_duration_seconds"
_ERR = 'http_response_status_class="5xx"'
_ERROR_CODES = 'http_response_status_code=~"5..|429"'
_NOT_SUCCESS = 'outcome!="success"'


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``1h``, ``24h``, ``7d``, ``2w``; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h, d or w "
                         "(e.g. 1h, 24h, 7d)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 60:
        raise ValueError(f"duration {text!r} is shorter than a minute")
    if seconds > 90 * 86400:
        raise ValueError(f"duration {text!r} is longer than 90 days")
    return seconds


@dataclass(frozen=True)
class Window:
    """The report window ``[end - seconds, end]``."""

    since: str
    seconds: float
    end: float

    @property
    def start(self) -> float:
        return self.end - self.seconds

    @property
    def step(self) -> float:
        return max(1.0, round(self.seconds / RANGE_POINTS))

    @property
    def rate_window(self) -> float:
        return max(MIN_RATE_WINDOW, 4 * self.step)

    def month_to_date(self) -> float:
        """Seconds from the start of the (UTC) month to ``end``; at least 60."""
        start, _ = month_bounds(datetime.fromtimestamp(self.end, tz=timezone.utc))
        return max(60.0, self.end - start.timestamp())


def selector(service: str | None, *matchers: str) -> str:
    """``{job="svc", m1, m2}`` (``job`` only when a service is given)."""
    parts = [f'job="{_escape(service)}"'] if service else []
    parts.extend(m for m in matchers if m)
    return "{" + ", ".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _d(seconds: float) -> str:
    return f"{math.ceil(seconds)}s"


def instant_queries(window: Window, service: str | None = None,
                    latency_slo_seconds: float = 0.2) -> dict[str, str]:
    """Name -> PromQL, evaluated at the window's end."""
    w = _d(window.seconds)
    mtd = _d(window.month_to_date())

    def s(*m: str) -> str:
        return selector(service, *m)

    route = "http_route, http_request_method"
    le = f'le="{float(latency_slo_seconds)!r}"'  # as prometheus-client writes it
    q: dict[str, str] = {
        "up": f"up{s()}",
        # Where the time goes.
        "http_p50": f"histogram_quantile(0.5, sum by (le, {route}) "
                    f"(rate({HTTP}_bucket{s()}[{w}])))",
        "http_p95": f"histogram_quantile(0.95, sum by (le, {route}) "
                    f"(rate({HTTP}_bucket{s()}[{w}])))",
        "http_requests": f"sum by ({route}) (increase({HTTP}_count{s()}[{w}]))",
        "http_errors": f"sum by ({route}) (increase({HTTP}_count{s(_ERR)}[{w}]))",
        "http_error_codes": f"sum by (http_response_status_code) (increase({HTTP}_count"
                            f"{s(_ERROR_CODES)}[{w}])) > 0",
        "http_total": f"sum(increase({HTTP}_count{s()}[{w}]))",
        "http_total_errors": f"sum(increase({HTTP}_count{s(_ERR)}[{w}]))",
        "http_fast": f"sum(increase({HTTP}_bucket{s(le)}[{w}]))",
        "job_wait_p50": _quantile(0.5, "job_queue_wait_seconds", "queue, job_type", s(), w),
        "job_wait_p95": _quantile(0.95, "job_queue_wait_seconds", "queue, job_type", s(), w),
        "job_run_p50": _quantile(0.5, "job_run_duration_seconds", "queue, job_type", s(), w),
        "job_run_p95": _quantile(0.95, "job_run_duration_seconds", "queue, job_type", s(), w),
        "job_total_p95": _quantile(0.95, "job_duration_seconds", "queue, job_type", s(), w),
        "job_count": f"sum by (queue, job_type) (increase(job_run_duration_seconds_count"
                     f"{s()}[{w}]))",
        "ext_p95": _quantile(0.95, "external_call_duration_seconds", "peer_service, operation",
                             s(), w),
        "ext_mean": _mean("external_call_duration_seconds", "peer_service, operation", s(), w),
        "stage_p95": _quantile(0.95, "job_stage_duration_seconds", "stage", s(), w),
        "stage_mean": _mean("job_stage_duration_seconds", "stage", s(), w),
        "stage_runs": f"sum by (stage) (increase(job_stage_duration_seconds_count{s()}[{w}]))",
        "stage_cpu": f"sum by (stage) (increase(job_stage_cpu_seconds_total{s()}[{w}]))",
        # What fails.
        "stage_failures": f"sum by (stage, error_code) (increase(job_stage_failures_total"
                          f"{s()}[{w}])) > 0",
        "ext_outcomes": f"sum by (peer_service, operation, outcome) (increase(external_calls_total"
                        f"{s()}[{w}]))",
        "job_failures": f"sum by (queue, job_type, error_code) (increase(jobs_finished_total"
                        f"{s(_NOT_SUCCESS)}[{w}])) > 0",
        "jobs_finished": f"sum(increase(jobs_finished_total{s()}[{w}]))",
        "jobs_failed": f"sum(increase(jobs_finished_total{s(_NOT_SUCCESS)}[{w}]))",
        "auth_total": f"sum(increase(auth_attempts_total{s()}[{w}]))",
        "auth_failed": f"sum(increase(auth_attempts_total{s(_NOT_SUCCESS)}[{w}]))",
        # What it costs (month to date).
        "usage_mtd": f"sum by (resource, provider, model, role) (increase(usage_units_total"
                     f"{s()}[{mtd}]))",
        "usage_price": f"max by (resource, provider, model, role) (usage_unit_price{s()})",
        "usage_budget": f"max by (resource) (usage_monthly_budget_units{s()})",
        "cpu_seconds_mtd": f"sum(increase(process_cpu_time_seconds_total{s()}[{mtd}])) or "
                           f"sum(increase(process_cpu_seconds_total{s()}[{mtd}]))",
        # What it will need (now).
        "queue_depth": f"max by (queue) (queue_depth{s()})",
        "disk": f"max by (path) (system_filesystem_utilization_ratio{s()})",
    }
    return q


def _quantile(phi: float, metric: str, by: str, sel: str, w: str) -> str:
    return f"histogram_quantile({phi:g}, sum by (le, {by}) (rate({metric}_bucket{sel}[{w}])))"


def _mean(metric: str, by: str, sel: str, w: str) -> str:
    return (f"sum by ({by}) (increase({metric}_sum{sel}[{w}])) / "
            f"sum by ({by}) (increase({metric}_count{sel}[{w}]))")


# name -> (title, unit, PromQL) of the charted series.
def range_queries(window: Window, service: str | None = None) -> dict[str, tuple[str, str, str]]:
    r = _d(window.rate_window)

    def s(*m: str) -> str:
        return selector(service, *m)

    return {
        "request_rate": ("Request rate", "requests/s",
                         f"sum(rate({HTTP}_count{s()}[{r}]))"),
        "error_ratio": ("Error ratio (5xx)", "ratio",
                        f"(sum(rate({HTTP}_count{s(_ERR)}[{r}])) or vector(0)) / "
                        f"sum(rate({HTTP}_count{s()}[{r}]))"),
        "p95_latency": ("p95 latency", "seconds",
                        f"histogram_quantile(0.95, sum by (le) (rate({HTTP}_bucket{s()}[{r}])))"),
        "queue_depth": ("Queue depth", "items", f"max by (queue) (queue_depth{s()})"),
        "rss": ("Resident memory", "bytes",
                f"sum by (job) (process_memory_usage_bytes{s()}) or "
                f"sum by (job) (process_resident_memory_bytes{s()})"),
        "disk": ("Disk used", "ratio",
                 f"max by (path) (system_filesystem_utilization_ratio{s()})"),
    }


@dataclass
class Collected:
    """Everything the report read from Prometheus, keyed by query name."""

    window: Window
    service: str | None = None
    instant: dict[str, list[Sample]] = field(default_factory=dict)
    ranges: dict[str, list[Series]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """Query name -> why it failed (the report is then partial, and says so)."""
    slo_rules: dict[str, list[Sample]] = field(default_factory=dict)
    """Recording-rule name -> its current samples, for the SLO recording rules present."""


SLO_RULE_PREFIX = "slo:"


def collect(client: PrometheusClient, window: Window, service: str | None = None, *,
            latency_slo_seconds: float = 0.2, workers: int = 8) -> Collected:
    """Run every query. Raises :class:`PrometheusError` only when Prometheus is unreachable
    (a refused single query is recorded in ``errors`` and the rest goes on)."""
    out = Collected(window=window, service=service)
    # The first call tells an unreachable server apart before the fan-out.
    out.targets = client.targets()
    instant = instant_queries(window, service, latency_slo_seconds)
    ranges = range_queries(window, service)

    def guard(name: str, call: Callable[[], Any]) -> tuple[str, Any, str | None]:
        try:
            return name, call(), None
        except PrometheusError as exc:
            if exc.unreachable:
                raise
            return name, None, str(exc)

    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("alerts", client.alerts),
        ("rules", client.rules),
    ]
    for name, expr in instant.items():
        jobs.append((name, _bind_query(client, expr, window.end)))
    for name, (_, _, expr) in ranges.items():
        jobs.append(("range:" + name,
                     _bind_range(client, expr, window.start, window.end, window.step)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: guard(*job), jobs))
    for name, value, error in results:
        if error is not None:
            out.errors[name] = error
        elif name == "alerts":
            out.alerts = value
        elif name == "rules":
            out.rules = value
        elif name.startswith("range:"):
            out.ranges[name[len("range:"):]] = value
        else:
            out.instant[name] = value
    for rule in out.rules:
        name = str(rule.get("name", ""))
        if rule.get("type") == "recording" and name.startswith(SLO_RULE_PREFIX):
            try:
                # Generated SLO rules aggregate away ``job`` (they carry ``service``).
                out.slo_rules[name] = client.query(name, at=window.end)
            except PrometheusError as exc:
                if exc.unreachable:
                    raise
                out.errors[name] = str(exc)
    # A remote-write store (VictoriaMetrics, a Prometheus receiver) lists no targets,
    # and VictoriaMetrics no rules or alerts: read those from its series instead.
    fill_from_series(client, out)
    return out


def _bind_query(client: PrometheusClient, expr: str, at: float) -> Callable[[], list[Sample]]:
    return lambda: client.query(expr, at=at)


def _bind_range(client: PrometheusClient, expr: str, start: float, end: float,
                step: float) -> Callable[[], list[Series]]:
    return lambda: client.query_range(expr, start, end, step)


def now() -> float:
    return time.time()
