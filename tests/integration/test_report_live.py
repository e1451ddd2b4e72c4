"""``promkit report`` against a real Prometheus scraping an app driven into a fault.

The app (tests/apps/report_app.py) answers 500 on ``/fail``; the report, run as
a subprocess, must name that route in its issues. The HTML report is opened
in headless Chromium: the SVG plots must have rendered (paths with data in
the DOM), with no console errors; the screenshot is kept under the test's
tmp dir and its path printed. Unreachable and empty Prometheus servers give
a one-line error and exit 2.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ._servers import AppServer, PrometheusServer, free_port

REPORT = [sys.executable, "-m", "promkit", "report"]
ERRORS = 'sum(http_server_request_duration_seconds_count{http_response_status_class="5xx"})'


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REPORT, *args], capture_output=True, text=True, timeout=90)


def drive(app: AppServer, rounds: int) -> None:
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for _ in range(rounds):
            for _ in range(8):
                client.get("/ok")
            for _ in range(3):
                client.get("/fail")
            client.get("/job")


@pytest.fixture
def faulty_stack(prometheus: Callable[..., PrometheusServer],
                 uvicorn_app: Callable[..., AppServer]) -> PrometheusServer:
    app = uvicorn_app("report_app:app", ready_path="/ok")
    prom = prometheus(targets=[app.address], job="report-app")
    prom.client.wait_for_targets_up(count=1, timeout=20)
    # Counters must rise between scrapes for increase() to see them: drive
    # traffic across several scrapes (1 s apart), then wait for the last.
    for round_ in range(6):
        drive(app, 5)
        expected = 15 * (round_ + 1)
        prom.wait_for_value(ERRORS, lambda v, e=expected: v >= e, timeout=15)
    return prom


def test_report_json_names_the_fault(faulty_stack: PrometheusServer, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_report("--prometheus", faulty_stack.url, "--since", "5m", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "promkit.report/v1" and data["status"] == "issues"
    faults = [i for i in data["issues"] if i["kind"] == "http_errors"]
    assert [i["subject"] for i in faults] == ["GET /fail"], data["issues"]
    assert faults[0]["value"] == 1.0 and faults[0]["severity"] == "critical"
    assert any(i["kind"] == "slo_budget" and i["subject"] == "availability"
               for i in data["issues"])
    assert any(i["kind"] == "stage_failures" and i["subject"] == "ocr" for i in data["issues"])
    routes = {r["route"]: r for r in data["failures"]["routes"]}
    assert routes["/ok"]["error_ratio"] == 0 and routes["/fail"]["error_ratio"] == 1
    assert {s["stage"] for s in data["latency"]["stages"]} == {"fetch", "ocr"}
    assert data["failures"]["stages"][0]["error_code"] == "OcrTimeout"
    assert data["failures"]["external"][0]["service"] == "ocr-provider"
    assert data["health"]["targets_up"] == 1
    charts = {c["name"]: c for c in data["charts"]}
    assert charts["request_rate"]["series"][0]["points"]
    assert charts["rss"]["series"][0]["points"]
    # --fail-on-issues turns the issues into exit 1; text and Markdown render too.
    assert run_report("--prometheus", faulty_stack.url, "--since", "5m",
                      "--fail-on-issues").returncode == 1
    md = run_report("--prometheus", faulty_stack.url, "--since", "5m", "--markdown")
    assert md.returncode == 0 and "| GET /fail |" in md.stdout
    print(f"report run in {time.monotonic() - started:.1f}s")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (Debian package 'chromium')")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-default-apps",
                  "--hide-scrollbars"]


def test_html_report_renders_in_chromium(faulty_stack: PrometheusServer, tmp_path: Path) -> None:
    chromium = _chromium()
    page = tmp_path / "report.html"
    proc = run_report("--prometheus", faulty_stack.url, "--since", "5m", "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert "<script" not in html
    profile = tmp_path / "chromium-profile"
    shot = tmp_path / "report.png"
    url = page.resolve().as_uri()
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    svgs = re.findall(r"<svg\b.*?</svg>", dom.stdout, flags=re.S)
    assert len(svgs) == 6, dom.stdout[:500]
    drawn = [s for s in svgs if re.search(r'<path d="M[\d.]+,[\d.]+ L', s)]
    assert len(drawn) >= 3, "request rate, error ratio and RSS at least have lines"
    assert "⚠" in dom.stdout and "GET /fail" in dom.stdout
    shot_run = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                               "--window-size=1200,2000", url],
                              capture_output=True, text=True, timeout=90)
    assert shot_run.returncode == 0, shot_run.stderr[-2000:]
    console = [line for line in shot_run.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"report screenshot: {shot}")


def test_unreachable_prometheus_exit_2() -> None:
    port = free_port()  # nothing listens there
    proc = run_report("--prometheus", f"http://127.0.0.1:{port}", "--timeout", "3")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("promkit: error: cannot reach Prometheus")
    assert "Traceback" not in proc.stderr


def test_empty_prometheus_exit_2(prometheus: Callable[..., PrometheusServer]) -> None:
    empty = prometheus(targets=[])
    for args in ([], ["--json"], ["--html", "/dev/null"]):
        proc = run_report("--prometheus", empty.url, *args)
        assert proc.returncode == 2, proc.stdout
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "has no targets and no data" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_empty_prometheus_still_posts_the_digest(
        prometheus: Callable[..., PrometheusServer]) -> None:
    """With --post, an empty Prometheus posts a warning saying what could not be read."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
    from webhook_receiver import WebhookReceiver

    empty = prometheus(targets=[])
    with WebhookReceiver() as hook:
        proc = run_report("--prometheus", empty.url, "--post", hook.url("/digest"),
                          "--post-format", "ntfy")
        assert proc.returncode == 2, proc.stderr
        assert "has no targets and no data" in proc.stderr
        assert "posted the failure (ntfy)" in proc.stderr
        (request,) = hook.requests("/digest")
    text = request.body.decode()
    assert "the report could not be made: Prometheus at " in text
    assert "has no targets and no data" in text and empty.url in text
    assert request.headers["priority"] == "high" and request.headers["tags"] == "warning"


def test_unknown_service_exit_2(faulty_stack: PrometheusServer) -> None:
    proc = run_report("--prometheus", faulty_stack.url, "--service", "nope")
    assert proc.returncode == 2 and "job='nope'" in proc.stderr
    ok = run_report("--prometheus", faulty_stack.url, "--since", "5m",
                    "--service", "report-app", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["service"] == "report-app"
