"""``promkit report`` on a real Prometheus fed a day of known history.

The test writes OpenMetrics text for a day of series whose every figure is known
(one sample a minute, integer increments), backfills it with ``promtool tsdb
create-blocks-from openmetrics`` into a fresh data dir, starts Prometheus on it
and runs ``promkit report --at <the data's end> --since 1h --json``. The
report's numbers must equal the ones computed here by hand, and its ranking
must put the fault injected in the last hour first, with the old conditions
(an alert left from a latency fault hours ago, a month-to-date budget) in the
background.

The history, with W the last hour (the report window) and W-1 the hour before:

- ``GET /api``: 600 requests a minute, all under the lowest bucket (0.1 s); in W,
  18 of them answer 500 and 12 answer 503 (5%); the ``HTTPErrorRatioHigh`` alert
  (critical) fires for the last 50 minutes.
- ``GET /slow``: 60 a minute in (0.1, 0.5] in W and W-1, over 1 s from 6 h to 4 h
  before the end; ``HTTPLatencyP95High`` for /slow still fires (stale).
- ``GET /upload``: 60 a minute in (0.1, 0.5], over 1 s in the last two minutes: too
  few to move the hour's p95 (0.493 s), but all of the last two minutes.
- stage ``resize``: 30 steps a minute of 25 µs each (all in the lowest bucket).
- queue ``jobs``: 3 waiting, oldest 2 s, until the worker gets stuck 15 minutes
  before the end: then one more item a minute and the oldest ages with the clock.
- queue ``mail``: cannot be read for the last 10 minutes (``queue_up`` 0).
- ``ocr_pages`` usage: 2 pages/s at 0.001 each, 6 pages/s in W; a monthly budget
  of 1000 pages (long spent: background).
- disk ``/data`` at 24.7% all day.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ._servers import PrometheusServer, prometheus_config, start_prometheus
from .conftest import require_binary

STEP = 60
DAY = 86400
HOUR = 3600
HTTP = "http_server_request_duration_seconds"
BASE = 'job="demo",instance="app:8000"'


def _labels(**labels: str) -> str:
    return "{" + ",".join([BASE] + [f'{k}="{v}"' for k, v in labels.items()]) + "}"


class _Family:
    """One OpenMetrics metric family: its samples, series after series."""

    def __init__(self, name: str, kind: str) -> None:
        self.lines = [f"# TYPE {name} {kind}"]

    def series(self, sample: str, points: Iterator[tuple[int, float]]) -> None:
        self.lines.extend(f"{sample} {value!r} {ts}" for ts, value in points)


def _counter(increments: Any, times: list[int]) -> Iterator[tuple[int, float]]:
    """Cumulative values of ``increments(t)`` (what was added in the minute ending at t)."""
    total = 0.0
    for t in times:
        total += increments(t)
        yield t, total


def history(end: int) -> str:
    times = list(range(end - DAY, end + 1, STEP))
    window = end - HOUR  # increments at t > window fall in the report window
    stuck = end - 900
    out: list[str] = []

    http = _Family(HTTP, "histogram")

    def histogram(fam: _Family, name: str, labels: dict[str, str],
                  per_minute: Any, bucket_of: Any, bounds: tuple[float, ...],
                  seconds_each: Any) -> None:
        for le in (*bounds, float("inf")):
            text = "+Inf" if le == float("inf") else repr(le)
            fam.series(f"{name}_bucket{_labels(**labels, le=text)}",
                       _counter(lambda t, le=le: per_minute(t) if bucket_of(t) <= le else 0,
                                times))
        fam.series(f"{name}_count{_labels(**labels)}", _counter(per_minute, times))
        fam.series(f"{name}_sum{_labels(**labels)}",
                   _counter(lambda t: per_minute(t) * seconds_each(t), times))

    bounds = (0.1, 0.5, 1.0)
    api = {"http_route": "/api", "http_request_method": "GET"}
    for code, in_window in (("200", 570), ("500", 18), ("503", 12)):
        histogram(http, HTTP, {**api, "http_response_status_code": code,
                               "http_response_status_class": code[0] + "xx"},
                  lambda t, code=code, n=in_window: n if t > window else (
                      600 if code == "200" else 0),
                  lambda t: 0.05, bounds, lambda t: 0.02)
    slow_then = range(end - 6 * HOUR + 1, end - 4 * HOUR + 1)
    histogram(http, HTTP, {"http_route": "/slow", "http_request_method": "GET",
                           "http_response_status_code": "200",
                           "http_response_status_class": "2xx"},
              lambda t: 60, lambda t: 2.0 if t in slow_then else 0.3, bounds,
              lambda t: 2.0 if t in slow_then else 0.3)
    fresh = end - 120  # /upload turns slow two minutes before the end
    histogram(http, HTTP, {"http_route": "/upload", "http_request_method": "GET",
                           "http_response_status_code": "200",
                           "http_response_status_class": "2xx"},
              lambda t: 60, lambda t: 2.0 if t > fresh else 0.3, bounds,
              lambda t: 2.0 if t > fresh else 0.3)
    out += http.lines

    stage = _Family("job_stage_duration_seconds", "histogram")
    histogram(stage, "job_stage_duration_seconds", {"stage": "resize"}, lambda t: 30,
              lambda t: 0.000025, (0.1, 0.25), lambda t: 0.000025)
    out += stage.lines

    def gauge(name: str, labels: dict[str, str], value: Any,
              span: range | None = None) -> None:
        fam = _Family(name, "gauge")
        fam.series(f"{name}{_labels(**labels)}",
                   ((t, float(value(t))) for t in times if span is None or t in span))
        out.extend(fam.lines)

    gauge("up", {}, lambda t: 1)
    jobs = {"queue": "jobs"}
    gauge("queue_depth", jobs, lambda t: 3 + max(0, (t - stuck) // 60))
    gauge("queue_oldest_item_age_seconds", jobs, lambda t: max(2, t - stuck))
    gauge("queue_up", jobs, lambda t: 1)
    # Queue mail cannot be read for the last 10 minutes: the collector then exports
    # queue_up 0 and no depth or age.
    mail, unread = {"queue": "mail"}, end - 600
    readable = range(times[0], unread)
    gauge("queue_depth", mail, lambda t: 0, readable)
    gauge("queue_oldest_item_age_seconds", mail, lambda t: 0, readable)
    gauge("queue_up", mail, lambda t: 1 if t < unread else 0)
    gauge("system_filesystem_utilization_ratio", {"path": "/data"}, lambda t: 0.247)
    pages = {"resource": "ocr_pages", "provider": "fake", "model": "m", "role": "page"}
    usage = _Family("usage_units", "counter")
    usage.series(f"usage_units_total{_labels(**pages)}",
                 _counter(lambda t: 360 if t > window else 120, times))
    out += usage.lines
    gauge("usage_unit_price", pages, lambda t: 0.001)
    gauge("usage_monthly_budget_units", {"resource": "ocr_pages"}, lambda t: 1000)
    alerts = _Family("ALERTS", "gauge")
    alerts.series('ALERTS{alertname="HTTPErrorRatioHigh",alertstate="firing",'
                  'severity="critical",service="demo"}',
                  ((t, 1.0) for t in times if t >= end - 50 * 60))
    alerts.series('ALERTS{alertname="HTTPLatencyP95High",alertstate="firing",'
                  'severity="warning",service="demo",http_route="/slow",'
                  'http_request_method="GET"}',
                  ((t, 1.0) for t in times if t >= end - 6 * HOUR + 600))
    out += alerts.lines
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, int]]:
    promtool = require_binary("promtool")
    binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("backfill")
    # A round minute well past (the window ends in history: alerts come from ALERTS),
    # and the day within Prometheus's retention.
    end = int(time.time()) // 60 * 60 - 600
    source = workdir / "history.om"
    source.write_text(history(end))
    made = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source),
                           str(workdir / "data")], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    server = start_prometheus(workdir, prometheus_config([]), binary=binary)
    try:
        yield server, end
    finally:
        server.stop()


def run_report(server: PrometheusServer, end: int, *args: str) -> dict[str, Any]:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    proc = subprocess.run([sys.executable, "-m", "promkit", "report", "--prometheus",
                           server.url, "--at", at, "--json", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_report_numbers_match_the_history(backfilled: tuple[PrometheusServer, int]) -> None:
    server, end = backfilled
    data = run_report(server, end, "--since", "1h")
    assert data["window"]["seconds"] == HOUR and data["generated_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    assert data["query_errors"] == {}

    routes = {r["route"]: r for r in data["failures"]["routes"]}
    assert routes["/api"]["requests"] == 60 * 600 and routes["/api"]["errors"] == 60 * 30
    assert routes["/api"]["error_ratio"] == pytest.approx(30 / 600)
    assert routes["/slow"]["errors"] == 0
    latency = {r["route"]: r for r in data["latency"]["routes"]}
    # Every /api request is under the lowest bucket: "< 100 ms", not 95 ms.
    assert latency["/api"]["p95_seconds"] == 0.1
    assert latency["/api"]["quantile_bounds"] == {"p50_seconds": "below",
                                                  "p95_seconds": "below"}
    assert latency["/api"]["rps"] == pytest.approx(10.0)
    # /slow, all in (0.1, 0.5]: p50 = 0.1 + 0.4 * 0.5, p95 = 0.1 + 0.4 * 0.95.
    assert latency["/slow"]["p50_seconds"] == pytest.approx(0.3)
    assert latency["/slow"]["p95_seconds"] == pytest.approx(0.48)
    assert latency["/slow"]["quantile_bounds"] == {}
    (resize,) = data["latency"]["stages"]
    assert resize["runs"] == 60 * 30 and resize["mean_seconds"] == pytest.approx(25e-6)
    assert resize["p95_seconds"] == 0.1 and resize["quantile_bounds"] == {"p95_seconds": "below"}
    assert {"source": "http", "code": "500", "count": 1080} in data["failures"]["top_error_codes"]

    # The stuck worker: read from the queue itself, at the window's end and the hour before.
    assert data["queues"] == [
        {"queue": "jobs", "depth": 18, "oldest_age_seconds": 900.0, "up": True,
         "depth_previous": 3, "oldest_age_previous_seconds": 2.0},
        {"queue": "mail", "depth": None, "oldest_age_seconds": None, "up": False,
         "depth_previous": 0, "oldest_age_previous_seconds": 0.0}]

    (pages,) = [r for r in data["cost"]["resources"] if r["resource"] == "ocr_pages"]
    assert pages["rate_per_second"] == pytest.approx(6.0)
    assert pages["rate_previous_per_second"] == pytest.approx(2.0)
    assert pages["cost_per_hour"] == pytest.approx(6 * 0.001 * 3600)
    assert pages["cost_per_hour_previous"] == pytest.approx(2 * 0.001 * 3600)
    assert pages["rate_change"]["trend"] == "up"
    assert pages["rate_change"]["ratio"] == pytest.approx(3.0)
    assert data["cost"]["cost_per_hour"] == pytest.approx(21.6)

    # The hour's p95 of /upload: rank 0.95 * 3600 = 3420 of the 3480 under 0.5 s.
    assert latency["/upload"]["p95_seconds"] == pytest.approx(0.1 + 0.4 * 3420 / 3480)
    traffic = data["trends"]["traffic_change"]
    assert (traffic["current"], traffic["previous"]) == (pytest.approx(43200),
                                                         pytest.approx(43200))
    assert data["trends"]["traffic_growth_ratio"] == pytest.approx(0.0)
    disk = next(s for s in data["trends"]["series"] if s["name"] == "disk")
    assert disk["current"] == pytest.approx(0.247)
    assert disk["projected_30d"] == pytest.approx(0.247)  # an hour of flat data


def test_report_ranks_the_new_fault_first(backfilled: tuple[PrometheusServer, int]) -> None:
    server, end = backfilled
    data = run_report(server, end, "--since", "1h")
    current = [i for i in data["issues"] if i["scope"] == "current"]
    background = [i for i in data["issues"] if i["scope"] == "background"]
    assert data["issues"] == current + background
    first = current[0]
    # The 5% errors are a warning by ratio; the critical alert describing them is merged in.
    assert (first["kind"], first["subject"], first["severity"]) == (
        "http_errors", "GET /api", "critical")
    assert first["alerts"] == ["HTTPErrorRatioHigh"]
    assert first["evidence"] == {"status_codes": {"500": 1080, "503": 720}, "errors": 1800,
                                 "requests": 36000}
    assert first["change"]["trend"] == "new" and first["change"]["previous"] == 0
    assert first["recent"] == "ongoing"
    # As new and as critical; a finding's kind breaks the tie.
    unreadable = current[1]
    assert (unreadable["kind"], unreadable["subject"], unreadable["severity"]) == (
        "queue_unreadable", "queue=mail", "critical")
    assert unreadable["change"]["trend"] == "new"
    # Two minutes old, diluted in the hour: the last two minutes show it (p95 in +Inf).
    upload = current[2]
    assert (upload["kind"], upload["subject"], upload["recent"]) == (
        "http_latency", "GET /upload", "new")
    assert upload["value"] == 1.0 and "p95 is > 1.00 s" in upload["message"]
    age = current[3]
    assert (age["kind"], age["subject"], age["value"]) == ("queue_age", "queue=jobs", 900.0)
    assert age["change"]["trend"] == "new"
    assert len(current) == 4, current
    assert data["status"] == "issues" and data["headline"] == "⚠ 4 issues"
    # The old latency alert (its condition held hours ago) and the month's budget.
    kinds = {(i["kind"], i["subject"]) for i in background}
    assert ("alert", "HTTPLatencyP95High") in kinds and ("budget", "ocr_pages") in kinds
    assert not any(i["kind"] == "alert" and i["subject"] == "HTTPErrorRatioHigh"
                   for i in data["issues"])  # one line per fact
