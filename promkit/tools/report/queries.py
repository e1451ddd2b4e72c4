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
    "parse_time",
    "range_queries",
    "recent_seconds",
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


def parse_time(text: str, *, now: float | None = None) -> float:
    """Unix seconds of ``2026-11-16T12:00:00Z`` (ISO 8601; no zone means UTC) or of a
    number of Unix seconds; ValueError for anything else or a time in the future."""
    value = text.strip()
    try:
        ts = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"invalid time {text!r}: use ISO 8601 (2026-11-16T12:00:00Z) or "
                             "Unix seconds") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        ts = parsed.timestamp()
    if not math.isfinite(ts) or ts <= 0:
        raise ValueError(f"invalid time {text!r}")
    if ts > (time.time() if now is None else now) + 60:
        raise ValueError(f"{text!r} is in the future")
    return ts


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


HISTOGRAMS: dict[str, tuple[str, str]] = {
    # name -> (histogram metric, the labels it is split by)
    "http": (HTTP, "http_route, http_request_method"),
    "job_wait": ("job_queue_wait_seconds", "queue, job_type"),
    "job_run": ("job_run_duration_seconds", "queue, job_type"),
    "job_total": ("job_duration_seconds", "queue, job_type"),
    "ext": ("external_call_duration_seconds", "peer_service, operation"),
    "stage": ("job_stage_duration_seconds", "stage"),
}
"""The histograms whose quantiles the report computes from their buckets
(``<name>_buckets``; see :mod:`promkit.tools.report._quantiles`)."""

PREVIOUS = ("http_buckets", "http_requests", "http_errors", "http_total", "job_total_buckets",
            "job_count", "job_finished", "job_failures", "ext_buckets", "ext_outcomes",
            "stage_runs", "stage_failures", "usage_rate", "queue_depth", "queue_age", "queue_up")
"""Queries also run over the window before (``prev_<name>``, the same PromQL with
``offset <window>``), for each finding's change."""


RECENT_SECONDS = 120.0
"""The last minutes, measured again (``recent_<name>``) when the window is at least twice
as long: a fault minutes old is diluted in a long window, and a fault that cleared
minutes ago is no longer happening. Two minutes: in the demo (5 s scrapes) a latency
fault cleared two minutes earlier still held a 5-minute p95 above its threshold; at
a 15 s scrape interval it is eight scrapes."""
RECENT = ("http_buckets", "http_requests", "http_errors", "http_error_codes",
          "job_total_buckets", "job_count", "job_finished", "job_failures", "ext_buckets",
          "ext_outcomes", "stage_runs", "stage_failures")


def recent_seconds(window: Window) -> float | None:
    """The length of the recent pass for ``window``, None when the window is too short."""
    return RECENT_SECONDS if window.seconds >= 2 * RECENT_SECONDS else None


def instant_queries(window: Window, service: str | None = None,
                    latency_slo_seconds: float = 0.5) -> dict[str, str]:
    """Name -> PromQL, evaluated at the window's end."""
    mtd = _d(window.month_to_date())

    def s(*m: str) -> str:
        return selector(service, *m)

    le = f'le="{float(latency_slo_seconds)!r}"'  # as prometheus-client writes it
    w = _d(window.seconds)
    q = _window_queries(w, "", s)
    previous = _window_queries(w, f" offset {w}", s)
    q.update({f"prev_{name}": previous[name] for name in PREVIOUS})
    recent = recent_seconds(window)
    if recent is not None:
        last = _window_queries(_d(recent), "", s)
        q.update({f"recent_{name}": last[name] for name in RECENT})
    q.update({
        "up": f"up{s()}",
        "prev_up": f"up{s()} offset {w}",
        "http_total_errors": f"sum(increase({HTTP}_count{s(_ERR)}[{w}]))",
        "http_fast": f"sum(increase({HTTP}_bucket{s(le)}[{w}]))",
        "jobs_finished": f"sum(increase(jobs_finished_total{s()}[{w}]))",
        "jobs_failed": f"sum(increase(jobs_finished_total{s(_NOT_SUCCESS)}[{w}]))",
        "auth_total": f"sum(increase(auth_attempts_total{s()}[{w}]))",
        "auth_failed": f"sum(increase(auth_attempts_total{s(_NOT_SUCCESS)}[{w}]))",
        "stage_mean": _mean("job_stage_duration_seconds", "stage", s(), w),
        "stage_cpu": f"sum by (stage) (increase(job_stage_cpu_seconds_total{s()}[{w}]))",
        "ext_mean": _mean("external_call_duration_seconds", "peer_service, operation", s(), w),
        # What it costs (month to date).
        "usage_mtd": f"sum by ({_USAGE}) (increase(usage_units_total{s()}[{mtd}]))",
        "usage_price": f"max by ({_USAGE}) (usage_unit_price{s()})",
        "usage_budget": f"max by (resource) (usage_monthly_budget_units{s()})",
        "cpu_seconds_mtd": f"sum(increase(process_cpu_time_seconds_total{s()}[{mtd}])) or "
                           f"sum(increase(process_cpu_seconds_total{s()}[{mtd}]))",
        # What it will need (now).
        "disk": f"max by (path) (system_filesystem_utilization_ratio{s()})",
    })
    return q


_USAGE = "resource, provider, model, role"
_ROUTE = "http_route, http_request_method"


def _window_queries(w: str, off: str, s: Callable[..., str]) -> dict[str, str]:
    """The queries over the window (``off`` empty) or the window before (``off`` is
    `` offset <window>``); gauges are read at the window's end."""
    q = {f"{name}_buckets": f"sum by (le, {by}) (increase({metric}_bucket{s()}[{w}]{off}))"
         for name, (metric, by) in HISTOGRAMS.items()}
    q.update({
        "http_requests": f"sum by ({_ROUTE}) (increase({HTTP}_count{s()}[{w}]{off}))",
        "http_errors": f"sum by ({_ROUTE}) (increase({HTTP}_count{s(_ERR)}[{w}]{off}))",
        "http_error_codes": f"sum by ({_ROUTE}, http_response_status_code) (increase("
                            f"{HTTP}_count{s(_ERROR_CODES)}[{w}]{off})) > 0",
        "http_total": f"sum(increase({HTTP}_count{s()}[{w}]{off}))",
        "job_count": f"sum by (queue, job_type) (increase(job_run_duration_seconds_count"
                     f"{s()}[{w}]{off}))",
        "job_finished": f"sum by (queue, job_type) (increase(jobs_finished_total"
                        f"{s()}[{w}]{off}))",
        "job_failures": f"sum by (queue, job_type, error_code) (increase(jobs_finished_total"
                        f"{s(_NOT_SUCCESS)}[{w}]{off})) > 0",
        "stage_runs": f"sum by (stage) (increase(job_stage_duration_seconds_count"
                      f"{s()}[{w}]{off}))",
        "stage_failures": f"sum by (stage, error_code) (increase(job_stage_failures_total"
                          f"{s()}[{w}]{off})) > 0",
        "ext_outcomes": f"sum by (peer_service, operation, outcome) (increase("
                        f"external_calls_total{s()}[{w}]{off}))",
        "usage_rate": f"sum by ({_USAGE}) (rate(usage_units_total{s()}[{w}]{off}))",
        "queue_depth": f"max by (queue) (queue_depth{s()}{off})",
        "queue_age": f"max by (queue) (queue_oldest_item_age_seconds{s()}{off})",
        "queue_up": f"min by (queue) (queue_up{s()}{off})",
    })
    return q


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
            latency_slo_seconds: float = 0.5, workers: int = 8) -> Collected:
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

    # /api/v1/alerts is the state now; a window ending in the past reads the
    # ALERTS series at its end instead.
    past = time.time() - window.end > PAST_AFTER_SECONDS
    alerts: Callable[[], Any] = (_bind_alerts_at(client, window.end) if past
                                 else client.alerts)
    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("alerts", alerts),
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


PAST_AFTER_SECONDS = 120.0
"""A window ending more than this before now is read as history (alerts from ``ALERTS``)."""


def _bind_alerts_at(client: PrometheusClient, at: float) -> Callable[[], list[dict[str, Any]]]:
    def alerts() -> list[dict[str, Any]]:
        out = []
        for sample in client.query('ALERTS{alertstate=~"firing|pending"}', at=at):
            labels = {k: v for k, v in sample.labels.items()
                      if k not in ("__name__", "alertstate")}
            out.append({"labels": labels, "annotations": {},
                        "state": sample.labels.get("alertstate"), "activeAt": None})
        return out
    return alerts


def _bind_query(client: PrometheusClient, expr: str, at: float) -> Callable[[], list[Sample]]:
    return lambda: client.query(expr, at=at)


def _bind_range(client: PrometheusClient, expr: str, start: float, end: float,
                step: float) -> Callable[[], list[Series]]:
    return lambda: client.query_range(expr, start, end, step)


def now() -> float:
    return time.time()
