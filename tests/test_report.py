"""promkit report: model, renderers and webhook digest on canned Prometheus API answers.

The canned answers have the shapes of Prometheus's real ``/api/v1`` JSON (vector and
matrix results, ``/alerts``, ``/targets``), kept small.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest

from promkit.tools.report import ReportError, Thresholds, generate
from promkit.tools.report._prom import parse_instant, parse_range
from promkit.tools.report.html import render_html, svg_line_chart
from promkit.tools.report.model import SCHEMA, Report, build_report, linear_fit
from promkit.tools.report.post import build_payload, detect_format, post_report
from promkit.tools.report.queries import (
    Collected,
    Window,
    instant_queries,
    parse_duration,
    parse_time,
)
from promkit.tools.report.render import fmt, render_json, render_markdown, render_text

END = datetime(2026, 11, 16, 12, 0, tzinfo=timezone.utc).timestamp()  # mid-month
WINDOW = Window(since="1h", seconds=3600, end=END)


def vector(*items: tuple[dict[str, str], float]) -> dict[str, Any]:
    """An instant-query ``data`` as Prometheus sends it."""
    return {"resultType": "vector",
            "result": [{"metric": m, "value": [END, repr(float(v))]} for m, v in items]}


def matrix(*items: tuple[dict[str, str], list[float]]) -> dict[str, Any]:
    return {"resultType": "matrix", "result": [
        {"metric": m, "values": [[END - 3600 + 30 * i, str(v)] for i, v in enumerate(vals)]}
        for m, vals in items]}


def route(r: str, method: str = "GET") -> dict[str, str]:
    return {"http_route": r, "http_request_method": method}


def buckets(labels: dict[str, str], cumulative: dict[float, float]
            ) -> list[tuple[dict[str, str], float]]:
    """Bucket samples (``le`` as prometheus-client writes it) of one histogram series."""
    return [({**labels, "le": "+Inf" if le == float("inf") else repr(le)}, count)
            for le, count in cumulative.items()]


INF = float("inf")
TARGETS = [
    {"labels": {"job": "api", "instance": "127.0.0.1:8000"}, "health": "up", "lastError": "",
     "scrapePool": "api", "lastScrape": "2026-11-16T12:00:00Z"},
    {"labels": {"job": "worker", "instance": "127.0.0.1:9464"}, "health": "down",
     "lastError": "connection refused", "scrapePool": "worker"},
]
ALERTS = [
    # Not a generated alert: the report cannot tell what it measures, so it stays current
    # (new: it became active inside the window).
    {"labels": {"alertname": "HighErrorRate", "severity": "critical", "job": "api"},
     "annotations": {"summary": "5xx above 2%"}, "state": "firing",
     "activeAt": "2026-11-16T11:50:00.123456789Z", "value": "0.4"},
    {"labels": {"alertname": "QueueDeep", "severity": "warning"}, "annotations": {},
     "state": "pending", "activeAt": "2026-11-16T11:59:00Z", "value": "31"},
    # Describes the /fail finding: merged into its line.
    {"labels": {"alertname": "HTTPErrorRatioHigh", "severity": "warning", "service": "demo"},
     "annotations": {}, "state": "firing", "activeAt": "2026-11-16T11:55:00Z"},
    # Left from an earlier latency fault on /ok: the window shows /ok fast.
    {"labels": {"alertname": "HTTPLatencyP95High", "severity": "warning",
                "http_route": "/ok", "http_request_method": "GET"},
     "annotations": {}, "state": "firing", "activeAt": "2026-11-16T10:30:00Z"},
]


def faulty() -> Collected:
    """A service whose /fail route answers 500 to 40% of requests (none in the hour
    before), among other troubles."""
    c = Collected(window=WINDOW, targets=TARGETS, alerts=ALERTS)
    ocr = {"queue": "jobs", "job_type": "ocr"}
    raw = {
        "up": vector(({"job": "api"}, 1), ({"job": "worker"}, 0)),
        # /ok: every request under the lowest bound; /fail: p50 0.5 s, p95 0.95 s.
        "http_buckets": vector(
            *buckets(route("/ok"), {0.1: 1000, 0.5: 1000, 1.0: 1000, INF: 1000}),
            *buckets(route("/fail"), {0.1: 10, 0.25: 20, 0.5: 50, 1.0: 100, INF: 100})),
        "prev_http_buckets": vector(
            *buckets(route("/fail"), {0.1: 100, 0.5: 100, 1.0: 100, INF: 100})),
        "http_requests": vector((route("/ok"), 1000), (route("/fail"), 100)),
        "prev_http_requests": vector((route("/ok"), 900), (route("/fail"), 100)),
        "http_errors": vector((route("/fail"), 40)),
        "http_error_codes": vector(({**route("/fail"), "http_response_status_code": "500"},
                                    33.9), ({**route("/fail"), "http_response_status_code":
                                             "503"}, 6.1)),
        "http_total": vector(({}, 1100)),
        "prev_http_total": vector(({}, 1000)),
        "http_total_errors": vector(({}, 40)),
        "http_fast": vector(({}, 1090)),
        # wait p95 = 1 + 4 * 95/100 = 4.8 s; run p95 = 10 + 10 * 45/50 = 19 s.
        "job_wait_buckets": vector(*buckets(ocr, {1.0: 0, 5.0: 100, INF: 100})),
        "job_run_buckets": vector(*buckets(ocr, {10.0: 50, 20.0: 100, INF: 100})),
        "job_total_buckets": vector(*buckets(ocr, {10.0: 0, 20.0: 100, INF: 100})),
        "job_count": vector((ocr, 50)),
        # Stage steps of 25 µs: all in the lowest bucket.
        "stage_buckets": vector(*buckets({"stage": "ocr"}, {5.0: 0, 10.0: 50, INF: 50}),
                                *buckets({"stage": "fetch"}, {0.1: 50, 0.5: 50, INF: 50})),
        "stage_mean": vector(({"stage": "ocr"}, 6.0), ({"stage": "fetch"}, 0.000025)),
        "stage_runs": vector(({"stage": "ocr"}, 50), ({"stage": "fetch"}, 50)),
        "stage_failures": vector(({"stage": "ocr", "error_code": "Timeout"}, 6)),
        "ext_outcomes": vector(
            ({"peer_service": "llm", "operation": "chat", "outcome": "success"}, 80),
            ({"peer_service": "llm", "operation": "chat", "outcome": "timeout"}, 19.6)),
        "prev_ext_outcomes": vector(
            ({"peer_service": "llm", "operation": "chat", "outcome": "success"}, 80),
            ({"peer_service": "llm", "operation": "chat", "outcome": "timeout"}, 20)),
        "usage_mtd": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"},
             600_000),
            ({"resource": "cpu_seconds", "provider": "", "model": "", "role": ""}, 200_000)),
        "usage_rate": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"}, 50)),
        "prev_usage_rate": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"}, 10)),
        "usage_price": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"},
             1e-6)),
        "usage_budget": vector(({"resource": "cpu_seconds"}, 100 * 3600)),
        "queue_depth": vector(({"queue": "jobs"}, 45)),
        "prev_queue_depth": vector(({"queue": "jobs"}, 45)),
        "queue_age": vector(({"queue": "jobs"}, 30)),
        "queue_up": vector(({"queue": "jobs"}, 1)),
        "disk": vector(({"path": "/"}, 0.5)),
    }
    c.instant = {name: parse_instant(data) for name, data in raw.items()}
    c.ranges = {
        "request_rate": parse_range(matrix(({}, [1.0 + i * 0.01 for i in range(120)]))),
        "error_ratio": parse_range(matrix(({}, [0.0] * 60 + [0.4] * 60))),
        "queue_depth": parse_range(matrix(({"queue": "jobs"}, [float(i // 3) for i in
                                                               range(120)]))),
        "disk": parse_range(matrix(({"path": "/"}, [0.5 + i * 0.001 for i in range(120)]))),
    }
    return c


def report(c: Collected | None = None) -> Report:
    return build_report(c or faulty(), prometheus="http://127.0.0.1:9090")


def subjects(r: Report, kind: str) -> list[str]:
    return [i.subject for i in r.issues if i.kind == kind]


def test_issues_name_the_faults() -> None:
    r = report()
    assert r.status == "issues"
    assert subjects(r, "http_errors") == ["GET /fail"]
    assert subjects(r, "http_latency") == ["GET /fail"]
    assert subjects(r, "target_down") == ["worker 127.0.0.1:9464"]
    assert subjects(r, "stage_failures") == ["ocr"]
    assert subjects(r, "external_errors") == ["llm/chat"]
    assert subjects(r, "queue_depth") == ["queue=jobs"]
    assert "availability" in subjects(r, "slo_budget")
    assert subjects(r, "budget") == ["cpu_seconds"]  # 200k of 360k s used mid-month
    http = next(i for i in r.issues if i.kind == "http_errors")
    assert http.severity == "critical" and http.value == pytest.approx(0.4)
    assert http.evidence == {"status_codes": {"500": 34, "503": 6}, "errors": 40,
                             "requests": 100}
    assert "34 × 500, 6 × 503" in http.message
    assert r.headline() == f"⚠ {len(r.current_issues)} issues"


def test_ranking_puts_what_changed_in_the_window_first() -> None:
    r = report()
    current = [(i.kind, i.subject) for i in r.current_issues]
    # New and critical: the /fail errors (none the hour before), then the unknown alert
    # that became active at 11:50; a new warning (the ocr failures) ties the steady
    # critical target and wins on change.
    assert current[:4] == [("http_errors", "GET /fail"), ("alert", "HighErrorRate"),
                           ("stage_failures", "ocr"), ("target_down", "worker 127.0.0.1:9464")]
    assert current.index(("http_latency", "GET /fail")) < current.index(
        ("queue_depth", "queue=jobs"))  # new (p95 was < 100 ms) before steady
    # Steady: same ratio as the hour before, ranked after everything new.
    ext = next(i for i in r.issues if i.kind == "external_errors")
    assert ext.change is not None and ext.change["trend"] == "steady"
    assert current[-1] == ("external_errors", "llm/chat")  # slightly down: last
    # Budgets and SLOs over long windows, and alerts that no longer hold, are background,
    # after every current issue, and do not count in the headline.
    background = [(i.kind, i.subject) for i in r.background_issues]
    assert ("budget", "cpu_seconds") in background
    assert ("slo_budget", "availability") in background
    assert ("alert", "HTTPLatencyP95High") in background
    assert r.issues == r.current_issues + r.background_issues
    assert all(i.scope == "background" for i in r.background_issues)


def test_an_alert_and_its_finding_are_one_line() -> None:
    r = report()
    assert subjects(r, "alert") == ["HighErrorRate", "HTTPLatencyP95High"]
    http = next(i for i in r.issues if i.kind == "http_errors")
    assert http.alerts == ["HTTPErrorRatioHigh"]
    assert "alert HTTPErrorRatioHigh firing" in render_text(r)
    stale = next(i for i in r.issues if i.subject == "HTTPLatencyP95High")
    assert stale.scope == "background" and "no longer holds" in stale.message


def test_a_stuck_worker_shows_in_the_queue_age_within_minutes() -> None:
    """Wait times are recorded only when a job is picked up: a stuck worker shows in the
    oldest item's age, read from the queue, long before the 300 s threshold when it is
    far over what jobs waited in the window (p95 4.8 s here)."""
    c = faulty()
    c.instant["queue_age"] = parse_instant(vector(({"queue": "jobs"}, 90)))
    c.instant["prev_queue_age"] = parse_instant(vector(({"queue": "jobs"}, 1)))
    r = report(c)
    (age,) = [i for i in r.current_issues if i.kind == "queue_age"]
    assert age.subject == "queue=jobs" and age.value == 90
    assert "waited 1.50 min" not in age.message and "waited 90.00 s" in age.message
    assert "jobs waited p95 4.80 s in the window" in age.message
    assert age.evidence == {"depth": 45, "oldest_age_seconds": 90.0, "up": True}
    assert age.change is not None and age.change["trend"] == "new"
    # 90 s is usual where jobs wait 30 s: no issue until the threshold.
    c.instant["job_wait_buckets"] = parse_instant(vector(
        *buckets({"queue": "jobs", "job_type": "ocr"}, {20.0: 0, 40.0: 100, INF: 100})))
    assert subjects(report(c), "queue_age") == []
    # A queue that cannot be read is critical and says so.
    c.instant["queue_up"] = parse_instant(vector(({"queue": "jobs"}, 0)))
    (down,) = [i for i in report(c).issues if i.kind == "queue_unreadable"]
    assert down.severity == "critical" and down.subject == "queue=jobs"


def test_a_target_that_just_went_down_ranks_as_new() -> None:
    c = faulty()
    c.instant["prev_up"] = parse_instant(vector(({"job": "worker",
                                                  "instance": "127.0.0.1:9464"}, 1)))
    r = report(c)
    down = next(i for i in r.issues if i.kind == "target_down")
    assert down.change is not None and down.change["trend"] == "new"
    assert [i.kind for i in r.current_issues][:3] == ["http_errors", "target_down", "alert"]
    # Down the hour before too: steady, behind what is new.
    c.instant["prev_up"] = parse_instant(vector(({"job": "worker",
                                                  "instance": "127.0.0.1:9464"}, 0)))
    r = report(c)
    assert next(i for i in r.issues if i.kind == "target_down").change["trend"] == "steady"
    assert [i.kind for i in r.current_issues][:3] == ["http_errors", "alert", "stage_failures"]


def test_failed_jobs_name_their_error_codes() -> None:
    c = faulty()
    ocr = {"queue": "jobs", "job_type": "ocr"}
    c.instant["job_finished"] = parse_instant(vector((ocr, 100)))
    c.instant["job_failures"] = parse_instant(vector(({**ocr, "error_code": "Timeout"}, 7.8),
                                                     ({**ocr, "error_code": "evicted"}, 4)))
    c.alerts = [{"labels": {"alertname": "SLOBurnRatePage", "severity": "critical",
                            "slo": "jobs-success", "sli": "job_success"},
                 "state": "firing", "annotations": {}}]
    r = report(c)
    (jobs,) = [i for i in r.issues if i.kind == "job_failures"]
    assert jobs.subject == "jobs/ocr" and jobs.value == pytest.approx(0.118)
    assert jobs.evidence == {"error_codes": {"Timeout": 8, "evicted": 4}, "failures": 12,
                             "jobs": 100}
    assert "failed 12 of 100 (11.8%): 8 × Timeout, 4 × evicted" in jobs.message
    assert jobs.alerts == ["SLOBurnRatePage"] and jobs.severity == "critical"


def test_slo_burn_alerts_fast_is_current_slow_is_background() -> None:
    """A fast burn (page) is about the last hours: merged into the finding of its SLI, or
    current when the report has no such finding; a slow burn (ticket, days) is the
    budget's long window: background."""
    c = faulty()
    slo = {"service": "demo", "severity": "critical"}
    c.alerts = [
        {"labels": {**slo, "alertname": "SLOBurnRatePage", "slo": "api-availability",
                    "sli": "availability"}, "state": "firing", "annotations": {}},
        {"labels": {**slo, "alertname": "SLOBurnRatePage", "slo": "auth-success",
                    "sli": "auth_success"}, "state": "firing", "annotations": {}},
        {"labels": {**slo, "severity": "warning", "alertname": "SLOBurnRateTicket",
                    "slo": "jobs-success", "sli": "job_success"}, "state": "firing",
         "annotations": {}},
    ]
    r = report(c)
    http = next(i for i in r.issues if i.kind == "http_errors")
    assert http.alerts == ["SLOBurnRatePage"]
    alerts = {(i.subject, i.scope, i.labels.get("slo")) for i in r.issues if i.kind == "alert"}
    assert alerts == {("SLOBurnRatePage", "current", "auth-success"),
                      ("SLOBurnRateTicket", "background", "jobs-success")}


def with_recent(c: Collected) -> Collected:
    """The last 2 minutes of ``faulty()``: /fail still fails but is fast again, and /new,
    quiet over the hour, fails every request in them."""
    raw = {
        "http_buckets": vector(
            *buckets(route("/fail"), {0.1: 10, 0.5: 10, 1.0: 10, INF: 10}),
            *buckets(route("/new"), {0.1: 12, 0.5: 12, 1.0: 12, INF: 12})),
        "http_requests": vector((route("/fail"), 10), (route("/new"), 12)),
        "http_errors": vector((route("/fail"), 4), (route("/new"), 12)),
        "http_error_codes": vector(({**route("/new"), "http_response_status_code": "502"},
                                    12)),
    }
    c.instant.update({f"recent_{name}": parse_instant(data) for name, data in raw.items()})
    for name in ("job_total_buckets", "job_count", "job_finished", "job_failures",
                 "ext_buckets", "ext_outcomes", "stage_runs", "stage_failures"):
        c.instant[f"recent_{name}"] = []
    c.instant["http_requests"] += parse_instant(vector((route("/new"), 12)))
    return c


def test_the_last_minutes_catch_a_fresh_fault_and_a_cleared_one() -> None:
    """A fault minutes old is diluted in an hour's figures: the last 2 minutes, measured
    again, show it (ranked new). A fault that cleared in them ranks after the rest."""
    r = report(with_recent(faulty()))
    assert r.to_dict()["window"]["recent_seconds"] == 120
    by = {(i.kind, i.subject): i for i in r.current_issues}
    fresh = by[("http_errors", "GET /new")]
    assert fresh.recent == "new" and fresh.message.endswith("in the last 2 min")
    assert fresh.evidence["status_codes"] == {"502": 12}
    assert by[("http_errors", "GET /fail")].recent == "ongoing"
    cleared = by[("http_latency", "GET /fail")]
    assert cleared.recent == "cleared" and "not seen in the last 2 min" in cleared.message
    order = [(i.kind, i.subject) for i in r.current_issues]
    assert order[:2] == [("http_errors", "GET /fail"), ("http_errors", "GET /new")]
    # No stage or external figures in the last minutes: those findings cleared too.
    assert [i.recent for i in r.current_issues][-3:] == ["cleared"] * 3
    assert order[-3:] == [("stage_failures", "ocr"), ("http_latency", "GET /fail"),
                          ("external_errors", "llm/chat")]
    assert by[("target_down", "worker 127.0.0.1:9464")].recent is None  # not re-measured


def test_changes_are_bounded_and_defined() -> None:
    from promkit.tools.report._change import change

    assert change(0.4, 0.0, 0.002) == {"previous": 0.0, "current": 0.4, "ratio": None,
                                       "trend": "new", "score": 1.0}
    assert change(0.4, 0.001, 0.002)["trend"] == "new"  # no percentage off near zero
    assert change(0.001, 0.4, 0.002)["trend"] == "gone"
    assert change(0.0, None, 0.002)["trend"] == "steady"
    up = change(30.0, 10.0, 1.0)
    assert up is not None and up["trend"] == "up" and up["ratio"] == 3.0
    assert up["score"] == pytest.approx(2 / 3)
    for cur, prev in ((1e9, 1.0), (1.0, 1e9), (5.0, 5.0)):
        c = change(cur, prev, 0.5)
        assert c is not None and -1 <= c["score"] <= 1
    assert change(None, 1.0, 0.5) is None


def test_quantiles_in_the_lowest_bucket_read_as_a_bound() -> None:
    from promkit.tools.report._quantiles import Quantile, bucket_quantile

    # histogram_quantile would interpolate 95 ms from zero: the report says "< 100 ms".
    assert bucket_quantile(0.95, [(0.1, 50), (0.5, 50), (INF, 50)]) == Quantile(0.1, "below")
    assert bucket_quantile(0.95, [(0.1, 0), (1.0, 0), (INF, 10)]) == Quantile(1.0, "above")
    assert bucket_quantile(0.5, [(0.25, 20), (0.5, 50), (1.0, 100), (INF, 100)]) == Quantile(0.5)
    assert bucket_quantile(0.95, [(0.1, 0), (INF, 0)]) is None
    assert bucket_quantile(0.95, [(0.1, 1)]) is None  # no +Inf bucket
    r = report()
    fetch = next(s for s in r.latency["stages"] if s["stage"] == "fetch")
    assert fetch["p95_seconds"] == 0.1 and fetch["quantile_bounds"] == {"p95_seconds": "below"}
    ok = next(x for x in r.latency["routes"] if x["route"] == "/ok")
    assert ok["quantile_bounds"] == {"p50_seconds": "below", "p95_seconds": "below"}
    fail = next(x for x in r.latency["routes"] if x["route"] == "/fail")
    assert (fail["p50_seconds"], fail["p95_seconds"]) == (pytest.approx(0.5),
                                                         pytest.approx(0.95))
    assert fail["quantile_bounds"] == {}
    text = render_text(r)
    assert re.search(r"fetch\s+50\s+25 µs\s+< 100 ms", text), text
    assert re.search(r"GET /ok\s+0\.28/s\s+< 100 ms\s+< 100 ms", text)


def test_counts_read_as_whole_numbers() -> None:
    r = report()
    ext = r.failures["external"][0]
    assert (ext["calls"], ext["timeout"]) == (100, 20)  # 99.6 calls, 19.6 timeouts
    assert r.failures["top_error_codes"][0] == {"source": "http", "code": "500", "count": 34}
    assert "33.9" not in render_text(r) and "19.6" not in render_text(r)


def test_sections_hold_the_figures() -> None:
    r = report()
    slos = {s["name"]: s for s in r.health["slos"]}
    assert slos["availability"]["sli"] == pytest.approx(1 - 40 / 1100)
    assert slos["availability"]["error_budget_remaining"] < 0
    assert slos["availability"]["source"] == "raw"
    assert r.health["targets_down"] == 1
    assert [a["state"] for a in r.health["alerts"]] == ["firing", "firing", "firing",
                                                        "pending"]
    routes = r.latency["routes"]
    assert routes[0]["route"] == "/fail" and routes[0]["p95_seconds"] == pytest.approx(0.95)
    assert routes[1]["rps"] == pytest.approx(1000 / 3600)
    job = r.latency["jobs"][0]
    assert job["queue_wait_p95_seconds"] == pytest.approx(4.8)
    assert job["run_p95_seconds"] == pytest.approx(19.0)
    assert r.latency["stages"][0]["stage"] == "ocr"  # most total time first
    llm = next(x for x in r.cost["resources"] if x["resource"] == "llm_tokens")
    assert llm["cost_month_to_date"] == pytest.approx(0.6)
    # 15.5 days of 30 elapsed at Nov 16 12:00 UTC.
    assert llm["cost_projected_month_end"] == pytest.approx(0.6 * 30 / 15.5)
    # Over the window: 50 tokens/s at 1e-6 = 0.18 per hour, 5x the hour before.
    assert llm["rate_per_second"] == 50 and llm["rate_previous_per_second"] == 10
    assert llm["cost_per_hour"] == pytest.approx(0.18)
    assert llm["rate_change"]["trend"] == "up" and llm["rate_change"]["ratio"] == 5
    assert r.cost["cost_per_hour"] == pytest.approx(0.18)
    assert r.cost["cost_per_hour_previous"] == pytest.approx(0.036)
    assert r.cost["cpu"]["budget_hours"] == 100
    assert r.cost["cpu"]["source"] == "usage_units_total"
    assert r.queues == [{"queue": "jobs", "depth": 45, "oldest_age_seconds": 30.0, "up": True,
                         "depth_previous": 45, "oldest_age_previous_seconds": None}]
    # 1100 requests against 1000 the hour before.
    assert r.trends["traffic_growth_ratio"] == pytest.approx(0.1)
    assert r.trends["traffic_change"]["trend"] == "steady"
    text = render_text(r)
    assert "Traffic over the window: 1,100 requests, +10.0% against the window before" in text
    assert "Cost now: 0.18 per hour over the window (up: was 0.036, ×5.0)" in text


def test_disk_projection_issue() -> None:
    c = faulty()
    c.ranges["disk"] = parse_range(matrix(({"path": "/data"},
                                           [0.70 + i * 0.0005 for i in range(120)])))
    r = report(c)
    disk = [i for i in r.issues if i.kind == "disk"]
    assert len(disk) == 1 and disk[0].severity == "warning" and "path=/data" in disk[0].subject
    assert "is 76% full and will pass 80% within a day" in disk[0].message


def test_no_projection_from_minutes_of_data() -> None:
    """A fresh process: three minutes of data in a 1 h window give no slope, no
    projection and no disk warning, however steep."""
    c = faulty()
    minutes = {"resultType": "matrix", "result": [
        {"metric": {"path": "/"}, "values": [[END - 180 + 30 * i, str(0.247 + 0.01 * i)]
                                            for i in range(7)]}]}
    c.ranges["disk"] = parse_range(minutes)
    c.ranges["rss"] = parse_range({"resultType": "matrix", "result": [
        {"metric": {"job": "api"}, "values": [[END - 180 + 30 * i, str(1e8 * (1 + i))]
                                             for i in range(7)]}]})
    r = report(c)
    assert subjects(r, "disk") == []
    for series in r.trends["series"]:
        if series["name"] in ("disk", "rss"):
            assert series["projected_30d"] is None and series["slope_per_day"] is None
    assert r.trends["min_projection_seconds"] == 3600


def test_projections_stay_in_the_metric_unit() -> None:
    """A ratio is projected at most 1 (was ``projected_30d: 59.89``); growth is the
    second half against the first, undefined off a near-zero first half."""
    c = faulty()
    c.ranges["disk"] = parse_range(matrix(({"path": "/"}, [0.2 + i * 0.002 for i in range(120)])))
    c.ranges["error_ratio"] = parse_range(matrix(({}, [0.0] * 60 + [0.4] * 60)))
    r = report(c)
    disk = next(t for t in r.trends["series"] if t["name"] == "disk")
    assert disk["projected_30d"] == 1.0
    errors = next(t for t in r.trends["series"] if t["name"] == "error_ratio")
    assert errors["growth_ratio"] is None  # not +10115.9%
    rate = next(t for t in r.trends["series"] if t["name"] == "request_rate")
    first, second = (sum(1.0 + i * 0.01 for i in rng) / 60 for rng in (range(60),
                                                                       range(60, 120)))
    assert rate["growth_ratio"] == pytest.approx(second / first - 1)


def test_nominal_when_quiet() -> None:
    c = Collected(window=WINDOW, targets=TARGETS[:1])
    c.instant = {"up": parse_instant(vector(({"job": "api"}, 1))),
                 "http_requests": parse_instant(vector((route("/ok"), 500))),
                 "http_total": parse_instant(vector(({}, 500))),
                 "http_fast": parse_instant(vector(({}, 500)))}
    r = report(c)
    assert r.issues == [] and r.status == "nominal" and r.headline() == "✓ nominal"
    assert {s["name"] for s in r.health["slos"]} == {"availability", "latency < 500 ms"}


def test_background_alone_reads_nominal() -> None:
    """An alert left from a fault the window no longer shows, and an SLO budget spent over
    its 7 d window: shown apart, and the report reads healthy."""
    c = Collected(window=WINDOW, targets=TARGETS[:1], alerts=ALERTS[3:])
    c.instant = {"up": parse_instant(vector(({"job": "api"}, 1))),
                 "http_requests": parse_instant(vector((route("/ok"), 500))),
                 "http_total": parse_instant(vector(({}, 500)))}
    labels = {"slo": "api-availability", "service": "demo"}
    c.slo_rules = {"slo:error_budget_remaining:ratio": parse_instant(vector((labels, -0.2)))}
    r = report(c)
    assert r.status == "nominal" and r.headline() == "✓ nominal" and r.current_issues == []
    assert [(i.kind, i.subject) for i in r.background_issues] == [
        ("slo_budget", "api-availability"), ("alert", "HTTPLatencyP95High")]
    text = render_text(r)
    assert text.index("✓ nominal") < text.index("Background") < text.index("HTTPLatencyP95High")
    from promkit.tools.report.render import digest

    assert "2 more in the background" in digest(r)[1]


def test_slos_from_recording_rules_win() -> None:
    c = faulty()
    labels = {"slo": "api-availability", "service": "demo"}
    c.slo_rules = {
        "slo:error_budget_remaining:ratio": parse_instant(vector((labels, 0.6))),
        "slo:objective:ratio": parse_instant(vector((labels, 0.99))),
        "slo:sli_error:ratio_rate1h": parse_instant(vector((labels, 0.02))),
        "slo:sli_error:ratio_rate7d": parse_instant(vector((labels, 0.004))),
    }
    slos = report(c).health["slos"]
    assert slos == [{"name": "api-availability", "type": None, "objective": 0.99,
                     "sli": pytest.approx(0.996), "error_budget_remaining": 0.6,
                     "events": None, "source": "recording_rule"}]


def test_thresholds_change_the_verdict() -> None:
    r = build_report(faulty(), prometheus="x",
                     thresholds=Thresholds(http_error_ratio=0.5, queue_depth=100))
    assert subjects(r, "http_errors") == [] and subjects(r, "queue_depth") == []


def test_query_errors_are_issues() -> None:
    c = faulty()
    c.errors["stage_p95"] = "Prometheus refused /api/v1/query: parse error"
    r = report(c)
    assert subjects(r, "query_failed") == ["stage_p95"]
    assert r.to_dict()["query_errors"] == {"stage_p95": c.errors["stage_p95"]}


def test_json_schema() -> None:
    data = json.loads(render_json(report()))
    assert data["schema"] == SCHEMA == "promkit.report/v1"
    assert set(data) >= {"generated_at", "prometheus", "service", "window", "status",
                         "headline", "issues", "health", "latency", "failures", "cost",
                         "trends", "charts", "query_errors"}
    assert data["window"] == {"since": "1h", "seconds": 3600, "start": "2026-11-16T11:00:00Z",
                              "end": "2026-11-16T12:00:00Z", "recent_seconds": None}
    for issue in data["issues"]:
        assert set(issue) == {"severity", "kind", "subject", "message", "value", "unit",
                              "scope", "change", "evidence", "labels", "alerts", "recent"}
        assert issue["severity"] in ("critical", "warning")
        assert issue["scope"] in ("current", "background")
    http = next(i for i in data["issues"] if i["kind"] == "http_errors")
    assert http["change"] == {"previous": 0.0, "current": 0.4, "ratio": None, "trend": "new",
                              "score": 1.0}
    assert http["labels"] == {"http_route": "/fail", "http_request_method": "GET"}
    assert data["queues"][0]["queue"] == "jobs"
    assert data["status"] == "issues"
    assert {c["name"] for c in data["charts"]} == {"request_rate", "error_ratio",
                                                   "p95_latency", "queue_depth", "rss", "disk"}
    text = render_json(report())
    assert "NaN" not in text and "Infinity" not in text


def test_text_colour_only_when_asked() -> None:
    plain = render_text(report())
    assert "\033[" not in plain
    assert "⚠" in plain and "GET /fail" in plain
    for heading in ("1. Is it healthy?", "2. Where is the time going?",
                    "3. What is failing and why?", "4. What does it cost?",
                    "5. What will it need?"):
        assert heading in plain
    assert "\033[31m" in render_text(report(), color=True)


def test_markdown() -> None:
    md = render_markdown(report())
    assert md.startswith("# promkit report")
    assert "## 3. What is failing and why?" in md
    assert "| GET /fail | 100 | 40 | 40.0% |" in md


def test_html_self_contained_with_charts() -> None:
    page = render_html(report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "").replace("http://127.0.0.1:9090", "")
    assert page.count("<svg") == 6
    paths = re.findall(r'<path d="([^"]+)"', page)
    assert len(paths) >= 4 and all(p.startswith("M") for p in paths)
    assert "no data" in page  # p95 and rss have no series here


def test_svg_chart_breaks_at_gaps_and_escapes() -> None:
    pts = [[0, 1.0], [10, 2.0], [20, 3.0], [100, 1.0], [110, 2.0]]
    svg = svg_line_chart("a <b>", "ratio", [{"label": "x&y", "points": pts}], start=0, end=110)
    d = re.search(r'<path d="([^"]+)"', svg)
    assert d is not None and d.group(1).count("M") == 2
    assert "a &lt;b&gt;" in svg and "x&amp;y" in svg


def test_helpers() -> None:
    assert parse_duration("24h") == 86400 and parse_duration("7d") == 7 * 86400
    for bad in ("1x", "", "10s", "100d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    fit = linear_fit([(0, 1), (1, 3), (2, 5)])
    assert fit is not None and fit[0] == pytest.approx(2) and fit[1] == pytest.approx(1)
    assert linear_fit([(0, 1)]) is None
    assert fmt(0.1234, "seconds") == "123 ms" and fmt(0.02, "ratio") == "2.0%"
    assert fmt(3 * 1024 ** 2, "bytes") == "3.0 MiB" and fmt(None) == "–"
    q = instant_queries(WINDOW, "api")
    assert 'job="api"' in q["http_buckets"] and "[3600s])" in q["http_buckets"]
    assert q["prev_http_buckets"].endswith("[3600s] offset 3600s))")
    assert q["queue_up"] == 'min by (queue) (queue_up{job="api"})'
    assert parse_time("2026-11-16T12:00:00Z") == END == parse_time("2026-11-16T12:00:00")
    assert parse_time(str(END)) == END
    for bad in ("yesterday", "2999-01-01T00:00:00Z", "-5"):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert 'le="0.5"' in q["http_fast"]


def test_payload_formats() -> None:
    r = report()
    assert detect_format("https://discord.com/api/webhooks/1/x") == "discord"
    assert detect_format("https://hooks.slack.com/services/x") == "slack"
    assert detect_format("https://ntfy.sh/mytopic") == "ntfy"
    assert detect_format("http://127.0.0.1:9099/digest") == "generic"
    body, _ = build_payload(r, "discord")
    content = json.loads(body)["content"]
    assert content.startswith("**⚠") and len(content) <= 2000
    body, headers = build_payload(r, "ntfy")
    assert headers["Priority"] == "high" and b"GET /fail" in body
    body, _ = build_payload(r, "generic")
    payload = json.loads(body)
    assert payload["status"] == "issues" and payload["report"]["schema"] == SCHEMA
    assert "charts" not in payload["report"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(204 if self.path != "/broken" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_post_always_sends(receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    quiet = Collected(window=WINDOW, targets=TARGETS[:1])
    assert post_report(report(quiet), url + "/digest") == "generic"
    assert post_report(report(), url + "/digest", fmt="slack") == "slack"
    first, second = (json.loads(body) for _, _, body in received)
    assert first["title"].startswith("✓ nominal") and first["issues"] == 0
    assert second["text"].startswith("*⚠")
    from promkit.tools.report.post import PostError

    with pytest.raises(PostError, match="answered 500"):
        post_report(report(), url + "/broken")


def test_generate_unreachable() -> None:
    with pytest.raises(ReportError, match="cannot reach Prometheus"):
        generate("http://127.0.0.1:1", "1h", timeout=2)
    with pytest.raises(ReportError, match="--since"):
        generate("http://127.0.0.1:1", "1y")
    with pytest.raises(ReportError, match="not an http"):
        generate("ftp://x", "1h")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promkit", "report", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_unreachable_exit_2() -> None:
    proc = _cli("--prometheus", "http://127.0.0.1:1", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().startswith("promkit: error: cannot reach Prometheus")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cli_bad_at_exit_2() -> None:
    proc = _cli("--prometheus", "http://127.0.0.1:1", "--at", "yesterday")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("promkit: error: --at: invalid time 'yesterday': use ISO "
                                   "8601 (2026-11-16T12:00:00Z) or Unix seconds")


def test_cli_not_prometheus_exit_2(receiver: tuple[str, list[Any]]) -> None:
    url, _ = receiver  # answers GET with 501: not a Prometheus
    proc = _cli("--prometheus", url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("promkit: error:")


# -- the digest always fires -----------------------------------------------------------------


def test_unreachable_prometheus_still_posts_what_could_not_be_read(
        receiver: tuple[str, list[Any]]) -> None:
    """The timer's digest arrives as a warning when Prometheus cannot be read; exit 2."""
    url, received = receiver
    proc = _cli("--prometheus", "http://127.0.0.1:1", "--timeout", "3",
                "--post", url + "/digest")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert "promkit: error: cannot reach Prometheus at http://127.0.0.1:1" in proc.stderr
    assert "promkit: posted the failure (generic)" in proc.stderr
    ((path, headers, body),) = received
    assert path == "/digest" and headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["title"].startswith("⚠ promkit report failed") and payload["status"] == "failed"
    assert payload["error"].startswith("cannot reach Prometheus at http://127.0.0.1:1")
    assert "could not be made: cannot reach Prometheus at http://127.0.0.1:1" in payload["text"]
    assert payload["prometheus"] == "http://127.0.0.1:1" and payload["report"] is None


def test_not_a_prometheus_posts_too(receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver  # answers GET with 501: not a Prometheus
    proc = _cli("--prometheus", url, "--post", url + "/digest", "--post-format", "slack")
    assert proc.returncode == 2 and "posted the failure (slack)" in proc.stderr
    ((_, _, body),) = received
    assert json.loads(body)["text"].startswith("*⚠ promkit report failed")


def test_only_a_failed_post_is_silent_and_exit_3_says_so(
        receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    proc = _cli("--prometheus", "http://127.0.0.1:1", "--timeout", "3",
                "--post", url + "/broken")
    assert proc.returncode == 3
    assert "webhook http://127.0.0.1:" in proc.stderr and "answered 500" in proc.stderr
    assert "nothing was posted" in proc.stderr and "Traceback" not in proc.stderr
    assert [path for path, _, _ in received] == ["/broken"]  # tried, refused
    closed = _cli("--prometheus", "http://127.0.0.1:1", "--timeout", "3",
                  "--post", "http://127.0.0.1:1/digest")
    assert closed.returncode == 3 and "cannot reach webhook" in closed.stderr


def test_failure_payload_formats() -> None:
    from promkit.tools.report.post import build_failure_payload

    error = "cannot reach Prometheus at http://prom:9090: connection refused"
    body, _ = build_failure_payload(error, "discord", prometheus="http://prom:9090", since="24h",
                                    service="api")
    content = json.loads(body)["content"]
    assert content.startswith("**⚠ promkit report failed — promkit report api (last 24h)**")
    assert error in content
    body, headers = build_failure_payload(error, "ntfy", prometheus="http://prom:9090",
                                          since="24h")
    assert headers["Priority"] == "high" and headers["Tags"] == "warning"
    assert error.encode() in body
