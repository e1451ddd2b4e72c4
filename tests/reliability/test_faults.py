"""Faults with real processes: Redis slow (DEBUG SLEEP) and stopped, Prometheus and
Alertmanager down, a webhook receiver answering 500 or hanging, psutil failing, a full
disk under the log file, a worker killed -9 in multiprocess mode.

In every case the app's requests are unaffected, /metrics answers within a second with
the right up-metrics, live processes lose no counts, and each failure is counted in a
self-metric and logged once per cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from promkit.exporters import RedisQueueCollector, metrics_app
from promkit.instrument import HttpMetricsMiddleware, MetricsRegistry, ResourceSampler
from promkit.instrument.logs import configure_logging, get_logger
from promkit.instrument.queues import enqueue, send_webhook

from .conftest import add, asgi_call, wait_for

pytestmark = pytest.mark.integration

SCRAPE_BUDGET = 1.0


def errors(registry: MetricsRegistry) -> dict[str, float]:
    metric = registry.get("promkit_instrumentation_errors_total")
    assert metric is not None
    return {c.labelvalues[0]: c.get() for c in metric.children() if c.get()}


def logged_once_per_cause(caplog: pytest.LogCaptureFixture, causes: list[str]) -> None:
    messages = [r.getMessage() for r in caplog.records if r.name == "promkit"]
    for cause in causes:
        hits = [m for m in messages if f"failure {cause}:" in m]
        assert len(hits) == 1, (cause, hits)


def samples(text: str, name: str) -> list[Any]:
    return [s for f in parse_text(text) for s in f.samples if s.name == name]


class App:
    """An instrumented Starlette app called in-process, with a timed scrape."""

    def __init__(self, registry: MetricsRegistry) -> None:
        async def ping(request: Any) -> PlainTextResponse:
            return PlainTextResponse("pong")

        self.app = Starlette(
            routes=[Route("/ping", ping), Route("/metrics", metrics_app(registry))],
            middleware=[Middleware(HttpMetricsMiddleware, registry=registry,
                                   log_requests=False)])
        self.loop = asyncio.new_event_loop()

    def get(self, path: str) -> tuple[int, bytes, float]:
        start = time.monotonic()
        response = self.loop.run_until_complete(asgi_call(self.app, path))
        return response.status, response.body, time.monotonic() - start

    def requests_ok(self, n: int = 20) -> None:
        for _ in range(n):
            status, body, _ = self.get("/ping")
            assert (status, body) == (200, b"pong")

    def scrape(self) -> str:
        status, body, elapsed = self.get("/metrics")
        assert status == 200 and elapsed < SCRAPE_BUDGET, (status, elapsed)
        return body.decode()


# ------------------------------------------------------------------------------ Redis

def test_redis_slow_then_stopped(debug_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    client = debug_redis.client()
    for n in range(3):
        enqueue(client, "jobs", {"n": n}, job_type="t", registry=registry)
    RedisQueueCollector(debug_redis.url, ["list:jobs"], registry=registry, timeout=0.3)
    app = App(registry)
    # The first read connects within the 0.3 s timeout on a quiet machine; on a loaded
    # one it may not, which is not what this test is about: wait for a good read.
    wait_for(lambda: [s.value for s in samples(app.scrape(), "queue_up")] == [1.0], 5,
             what="a first good Redis read")
    assert [s.value for s in samples(app.scrape(), "queue_depth")] == [3.0]

    # slow: DEBUG SLEEP blocks the server
    sleeper = threading.Thread(target=lambda: debug_redis.client().execute_command(
        "DEBUG", "SLEEP", "3"), daemon=True)
    sleeper.start()

    def blocked() -> bool:
        # a raw PING: redis-py would retry and reconnect past a short timeout
        with socket.create_connection((debug_redis.host, debug_redis.port), 1) as sock:
            sock.settimeout(0.1)
            sock.sendall(b"PING\r\n")
            try:
                return not sock.recv(16)
            except TimeoutError:
                return True

    wait_for(blocked, 5, what="redis to block in DEBUG SLEEP")
    for _ in range(3):
        text = app.scrape()
        assert [s.value for s in samples(text, "queue_up")] == [0.0]
        assert samples(text, "queue_depth") == []
        app.requests_ok()
    sleeper.join(10)
    wait_for(lambda: [s.value for s in samples(app.scrape(), "queue_up")] == [1.0], 5,
             what="queue_up back to 1")

    # stopped
    debug_redis.stop()
    for _ in range(3):
        assert [s.value for s in samples(app.scrape(), "queue_up")] == [0.0]
        app.requests_ok()
    causes = sorted(errors(registry))
    assert causes and all(c.startswith("redis_queue_read:") for c in causes), causes
    logged_once_per_cause(caplog, causes)
    add("faults", "survived", 2)


# -------------------------------------------------------------- Prometheus, Alertmanager

def test_prometheus_and_alertmanager_down(uvicorn_app: Any, prometheus: Any, alertmanager: Any,
                                          tmp_path: Path) -> None:
    app = uvicorn_app("tests.reliability._soak_app:app")
    am = alertmanager()
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "r", "rules": [
        {"alert": "AlwaysFiring", "expr": "vector(1)"}]}]}))
    prom = prometheus(targets=[app.address], rule_files=[rules], alertmanagers=[am.address])
    prom.wait_for_value('up{job="app"}', lambda v: v == 1.0, timeout=30)
    am.wait_for_alerts(lambda alerts: any(a["labels"].get("alertname") == "AlwaysFiring"
                                          for a in alerts), timeout=30)

    def app_fine() -> None:
        with httpx.Client(base_url=app.url, timeout=5) as client:
            for i in range(30):
                assert client.get(f"/items/{i}").status_code == 200
            start = time.monotonic()
            response = client.get("/metrics")
            assert response.status_code == 200
            assert time.monotonic() - start < SCRAPE_BUDGET
            errs = samples(response.text, "promkit_instrumentation_errors_total")
            assert all(s.value == 0 for s in errs), errs

    am.stop()
    app_fine()
    # Prometheus notices the dead Alertmanager (its own /metrics); the app does not care.

    def notification_errors() -> bool:
        text = httpx.get(prom.url + "/metrics", timeout=5).text
        return sum(s.value for s in samples(text, "prometheus_notifications_errors_total")) > 0

    wait_for(notification_errors, 30, interval=0.2, what="Prometheus to fail notifications")
    prom.stop()
    app_fine()
    # a webhook to the dead Alertmanager fails fast, counted
    registry = MetricsRegistry(CollectorRegistry())
    start = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        send_webhook(am.url + "/api/v2/alerts", {"x": 1}, timeout=1.0, registry=registry)
    assert time.monotonic() - start < 1.0
    assert registry.collector_registry.get_sample_value("external_calls_total", {
        "peer_service": "webhook", "operation": "deliver", "outcome": "error",
        "status_class": "none"}) == 1 or _outcomes(registry) == {"error": 1.0}
    add("faults", "survived", 2)


def _outcomes(registry: MetricsRegistry) -> dict[str, float]:
    metric = registry.get("external_calls_total")
    assert metric is not None
    out: dict[str, float] = {}
    for child in metric.children():
        outcome = child.labelvalues[2]
        out[outcome] = out.get(outcome, 0.0) + child.get()
    return out


# ------------------------------------------------------------------------------ webhook

@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path.startswith("/hang"):
                release.wait(10)
            status = 500 if self.path.startswith("/500") else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_webhook_receiver_500s_and_hangs() -> None:
    registry = MetricsRegistry(CollectorRegistry())
    with receiver() as (url, _):
        for _ in range(5):
            response = send_webhook(url + "/500", {"job": 1}, registry=registry)
            assert response.status_code == 500  # returned for the caller to judge
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(httpx.TimeoutException):
                send_webhook(url + "/hang", {"job": 2}, timeout=0.3, registry=registry)
            assert time.monotonic() - start < 1.0
        assert send_webhook(url + "/ok", {"job": 3}, registry=registry).status_code == 200
    assert _outcomes(registry) == {"error": 5.0, "timeout": 3.0, "success": 1.0}
    assert errors(registry) == {}  # failures of the call, not of the instrumentation
    add("faults", "survived", 2)


# ------------------------------------------------------------------------------ psutil

def test_psutil_errors(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    sampler = ResourceSampler(registry, disk_paths=("/",))

    class Denied:
        """A psutil.Process whose every reading is refused."""

        def oneshot(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

        def memory_info(self) -> Any:
            raise psutil.AccessDenied(os.getpid())

        cpu_times = num_fds = num_threads = memory_info

    def disk_error(path: str) -> Any:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(sampler, "_process", Denied)
    monkeypatch.setattr(psutil, "disk_usage", disk_error)
    app = App(registry)
    for _ in range(3):
        sampler.sample_once()
        app.requests_ok(5)
        app.scrape()
    # the process itself gone (psutil.Process() raising)
    gone = ResourceSampler(registry, disk_paths=("/",))

    def no_such_process(pid: int | None = None) -> Any:
        raise psutil.NoSuchProcess(pid or 0)

    monkeypatch.setattr(psutil, "Process", no_such_process)
    for _ in range(2):
        gone.sample_once()
        app.requests_ok(5)
        app.scrape()
    assert errors(registry) == {
        "resources_memory:AccessDenied": 3.0, "resources_cpu:AccessDenied": 3.0,
        "resources_fds:AccessDenied": 3.0, "resources_threads:AccessDenied": 3.0,
        "resources_disk:OSError": 5.0, "resources_process:NoSuchProcess": 2.0}
    logged_once_per_cause(caplog, list(errors(registry)))
    add("faults", "survived", 1)


# ------------------------------------------------------------------------------ full disk

@contextlib.contextmanager
def tiny_filesystem(path: Path) -> Iterator[bool]:
    """A 64 KB tmpfs at ``path`` (True), or False when mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                             capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def test_full_disk_under_the_log_file(tmp_path: Path, clean_logging: None) -> None:
    registry = MetricsRegistry(CollectorRegistry())
    stream = io.StringIO()
    with tiny_filesystem(tmp_path / "full") as mounted:
        # Without root (no tmpfs): /dev/full, where every write fails with ENOSPC.
        log_file = tmp_path / "full" / "app.log" if mounted else Path("/dev/full")
        configure_logging("disk", stream=stream, file=log_file, file_max_bytes=0,
                          failures=registry.failures)
        log = get_logger("disk")
        for i in range(1500):
            log.info("order_placed", n=i, note="x" * 100)
        from promkit.instrument.logs import access_logger

        access = access_logger(registry.failures)
        for i in range(200):
            access.log_request("GET", "/items/{id}", 200, 0.001 * i)
        app = App(registry)
        app.requests_ok(20)
        app.scrape()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert sum(1 for r in lines if r["event"] == "order_placed") == 1500
        assert sum(1 for r in lines if r["event"] == "http_request") == 200
        warnings = [r for r in lines if "log_sink_file" in r["event"]]
        assert len(warnings) == 1, warnings  # logged once, to the sinks still working
        failed = errors(registry)
        assert set(failed) == {"log_sink_file:OSError"}, failed
        assert failed["log_sink_file:OSError"] > 500
        if mounted:
            written = log_file.read_bytes().split(b"\n")
            assert len(written) > 10
            for line in written[:-1]:
                json.loads(line)  # every complete line is whole JSON
    record_mode = "tmpfs 64k" if mounted else "/dev/full"
    add("faults", "survived", 1)
    from .conftest import record

    record("faults", full_disk=record_mode)


# ---------------------------------------------------------------------- kill -9 worker

def test_worker_killed_in_multiprocess_mode(gunicorn_app: Any, multiproc_dir: Path) -> None:
    app = gunicorn_app("metrics_demo:app", workers=2,
                       env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
                       extra_args=["--config", "python:gunicorn_conf"])
    served: Tally[int] = Tally()
    sent = 0
    deadline = time.monotonic() + 20
    while len(served) < 2 or sent < 40:
        assert time.monotonic() < deadline, f"requests reached only {dict(served)}"
        served[httpx.get(app.url + "/hold?block=0.02", timeout=5).json()["pid"]] += 1
        sent += 1
    victim = min(served)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        pid = httpx.get(app.url + "/", timeout=5).json()["pid"]
        return pid != victim and psutil.pid_exists(pid) and len(
            [p for p in psutil.Process(app.pid).children() if p.pid != victim]) >= 2

    wait_for(replaced, 20, interval=0.1, what="a replacement worker")
    for _ in range(10):
        assert httpx.get(app.url + "/hold", timeout=5).status_code == 200
    start = time.monotonic()
    response = httpx.get(app.url + "/metrics/", timeout=5)  # a Mount in metrics_demo
    assert response.status_code == 200 and time.monotonic() - start < SCRAPE_BUDGET
    total = [s.value for s in samples(response.text, "app_requests_total")
             if s.labels.get("route") == "/hold"]
    # every count is there: the killed worker's (kept in its file) and the live ones'
    assert total == [float(sent + 10)], (total, sent + 10)
    add("faults", "survived", 1)
