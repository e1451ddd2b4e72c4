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
from promkit.tools.report.queries import Collected, Window, instant_queries, parse_duration
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


TARGETS = [
    {"labels": {"job": "api", "instance": "127.0.0.1:8000"}, "health": "up", "lastError": "",
     "scrapePool": "api", "lastScrape": "2026-11-16T12:00:00Z"},
    {"labels": {"job": "worker", "instance": "127.0.0.1:9464"}, "health": "down",
     "lastError": "connection refused", "scrapePool": "worker"},
]
ALERTS = [
    {"labels": {"alertname": "HighErrorRate", "severity": "critical", "job": "api"},
     "annotations": {"summary": "5xx above 2%"}, "state": "firing",
     "activeAt": "2026-11-16T11:50:00Z", "value": "0.4"},
    {"labels": {"alertname": "QueueDeep", "severity": "warning"}, "annotations": {},
     "state": "pending", "activeAt": "2026-11-16T11:59:00Z", "value": "31"},
]


def faulty() -> Collected:
    """A service whose /fail route answers 500 to 40% of requests, among other troubles."""
    c = Collected(window=WINDOW, targets=TARGETS, alerts=ALERTS)
    raw = {
        "up": vector(({"job": "api"}, 1), ({"job": "worker"}, 0)),
        "http_p50": vector((route("/ok"), 0.01), (route("/fail"), 0.02)),
        "http_p95": vector((route("/ok"), 0.09), (route("/fail"), 0.8)),
        "http_requests": vector((route("/ok"), 1000), (route("/fail"), 100)),
        "http_errors": vector((route("/fail"), 40)),
        "http_error_codes": vector(({"http_response_status_code": "500"}, 40)),
        "http_total": vector(({}, 1100)),
        "http_total_errors": vector(({}, 40)),
        "http_fast": vector(({}, 1090)),
        "job_wait_p95": vector(({"queue": "jobs", "job_type": "ocr"}, 4.0)),
        "job_run_p95": vector(({"queue": "jobs", "job_type": "ocr"}, 12.0)),
        "job_total_p95": vector(({"queue": "jobs", "job_type": "ocr"}, 16.0)),
        "job_count": vector(({"queue": "jobs", "job_type": "ocr"}, 50)),
        "stage_p95": vector(({"stage": "ocr"}, 9.0), ({"stage": "fetch"}, 0.5)),
        "stage_mean": vector(({"stage": "ocr"}, 6.0), ({"stage": "fetch"}, 0.2)),
        "stage_runs": vector(({"stage": "ocr"}, 50), ({"stage": "fetch"}, 50)),
        "stage_failures": vector(({"stage": "ocr", "error_code": "Timeout"}, 6)),
        "ext_outcomes": vector(
            ({"peer_service": "llm", "operation": "chat", "outcome": "success"}, 80),
            ({"peer_service": "llm", "operation": "chat", "outcome": "timeout"}, 20)),
        "usage_mtd": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"},
             600_000),
            ({"resource": "cpu_seconds", "provider": "", "model": "", "role": ""}, 200_000)),
        "usage_price": vector(
            ({"resource": "llm_tokens", "provider": "fake", "model": "m", "role": "input"},
             1e-6)),
        "usage_budget": vector(({"resource": "cpu_seconds"}, 100 * 3600)),
        "queue_depth": vector(({"queue": "jobs"}, 45)),
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
    assert subjects(r, "alert") == ["HighErrorRate"]
    assert subjects(r, "target_down") == ["worker 127.0.0.1:9464"]
    assert subjects(r, "stage_failures") == ["ocr"]
    assert subjects(r, "external_errors") == ["llm/chat"]
    assert subjects(r, "queue_depth") == ["queue=jobs"]
    assert "availability" in subjects(r, "slo_budget")
    assert subjects(r, "budget") == ["cpu_seconds"]  # 200k of 360k s used mid-month
    # Critical first.
    severities = [i.severity for i in r.issues]
    assert severities == sorted(severities, key=lambda s: s != "critical")
    http = next(i for i in r.issues if i.kind == "http_errors")
    assert http.severity == "critical" and http.value == pytest.approx(0.4)
    assert r.headline() == f"⚠ {len(r.issues)} issues"


def test_sections_hold_the_figures() -> None:
    r = report()
    slos = {s["name"]: s for s in r.health["slos"]}
    assert slos["availability"]["sli"] == pytest.approx(1 - 40 / 1100)
    assert slos["availability"]["error_budget_remaining"] < 0
    assert slos["availability"]["source"] == "raw"
    assert r.health["targets_down"] == 1
    assert [a["state"] for a in r.health["alerts"]] == ["firing", "pending"]
    routes = r.latency["routes"]
    assert routes[0]["route"] == "/fail" and routes[0]["p95_seconds"] == 0.8
    assert routes[1]["rps"] == pytest.approx(1000 / 3600)
    job = r.latency["jobs"][0]
    assert (job["queue_wait_p95_seconds"], job["run_p95_seconds"]) == (4.0, 12.0)
    assert r.latency["stages"][0]["stage"] == "ocr"  # most total time first
    assert r.failures["top_error_codes"][0] == {"source": "http", "code": "500", "count": 40.0}
    llm = r.cost["resources"][1]
    assert llm["resource"] == "llm_tokens"
    assert llm["cost_month_to_date"] == pytest.approx(0.6)
    # 15.5 days of 30 elapsed at Nov 16 12:00 UTC.
    assert llm["cost_projected_month_end"] == pytest.approx(0.6 * 30 / 15.5)
    assert r.cost["cpu"]["budget_hours"] == 100
    assert r.cost["cpu"]["source"] == "usage_units_total"
    growth = r.trends["traffic_growth_ratio"]
    assert growth is not None and growth > 0.5
    disk = next(t for t in r.trends["series"] if t["name"] == "disk")
    assert disk["slope_per_day"] == pytest.approx(0.001 / 30 * 86400)


def test_disk_projection_issue() -> None:
    c = faulty()
    c.ranges["disk"] = parse_range(matrix(({"path": "/data"},
                                           [0.70 + i * 0.0005 for i in range(120)])))
    r = report(c)
    disk = [i for i in r.issues if i.kind == "disk"]
    assert len(disk) == 1 and disk[0].severity == "warning" and "path=/data" in disk[0].subject


def test_nominal_when_quiet() -> None:
    c = Collected(window=WINDOW, targets=TARGETS[:1])
    c.instant = {"up": parse_instant(vector(({"job": "api"}, 1))),
                 "http_requests": parse_instant(vector((route("/ok"), 500))),
                 "http_total": parse_instant(vector(({}, 500))),
                 "http_fast": parse_instant(vector(({}, 500)))}
    r = report(c)
    assert r.issues == [] and r.status == "nominal" and r.headline() == "✓ nominal"
    assert {s["name"] for s in r.health["slos"]} == {"availability", "latency < 200 ms"}


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
                              "end": "2026-11-16T12:00:00Z"}
    for issue in data["issues"]:
        assert set(issue) == {"severity", "kind", "subject", "message", "value", "unit"}
        assert issue["severity"] in ("critical", "warning")
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
    assert 'job="api"' in q["http_p95"] and "[3600s]" in q["http_p95"]
    assert 'le="0.2"' in q["http_fast"]


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
