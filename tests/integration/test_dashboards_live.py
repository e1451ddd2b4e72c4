"""Every query of every generated dashboard, run against a live Prometheus with traffic.

A real Prometheus (1 s scrape and rule evaluation, the generated recording,
alert and SLO rules loaded) scrapes ``tests/apps/dashboards_app.py``, which
feeds every metric family the dashboards show while the test sends HTTP
traffic. Each panel target, annotation and template-variable query, with the
variables replaced by concrete values (``$__rate_interval`` by ``30s``,
``$__range`` by ``10m``), must parse and return at least one series. Queries
that return nothing are retried until a deadline, then listed all at once.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools.generate import generate, load_config
from promkit.tools.generate._grafana_check import Query, dashboard_queries, substitute

from ._servers import AppServer, PrometheusAPIError, PrometheusServer

pytest.importorskip("grafana_foundation_sdk", reason="needs promkit[dashboards] (Python >= 3.11)")
pytest.importorskip("websockets", reason="the traffic opens WebSocket sessions")

ROUTES = ("/ok", "/slow", "/fail", "/boom", "/login", "/upload")
STAGES = ("fetch", "ocr")
DEADLINE = 60.0  # seconds from the first scrape for every query to return a series
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*),\s*([a-zA-Z_]\w*)\s*\)\s*$", re.DOTALL)


def _traffic(app: AppServer, stop: threading.Event) -> None:
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    paths = ["/ok", "/ok", "/ok", "/slow", "/fail", "/boom", "/login?ok=1", "/login?ok=0"]
    ws_url = app.url.replace("http://", "ws://") + "/ws"
    with httpx.Client(base_url=app.url, timeout=5.0) as client:
        while not stop.is_set():
            for path in paths:
                with contextlib.suppress(httpx.HTTPError):
                    client.get(path)
            with contextlib.suppress(httpx.HTTPError):
                client.post("/upload", content=b"x" * 700)
            # A WebSocket session through the middleware: two messages each way, a normal
            # close (1000) from the server.
            with contextlib.suppress(OSError, WebSocketException), \
                    connect(ws_url, open_timeout=5) as ws:
                for text in ("a", "b"):
                    ws.send(text)
                    ws.recv(timeout=5)
                ws.send("bye")
                with contextlib.suppress(WebSocketException):
                    ws.recv(timeout=5)
            stop.wait(0.05)


def _promql(query: Query, values: dict[str, str]) -> str:
    text = substitute(query.expr, values)
    match = _LABEL_VALUES.match(text)
    if match:  # a variable query: Grafana lists the label's values of the selector
        return f"count by ({match.group(2)}) ({match.group(1)})"
    return text


def _problems(prometheus: PrometheusServer,
              queries: list[tuple[Query, str]]) -> list[tuple[Query, str, str]]:
    """``(query, expr, what is wrong)`` for each query that fails or answers nothing."""
    problems = []
    for query, expr in queries:
        try:
            result = prometheus.query(expr)
        except PrometheusAPIError as exc:
            problems.append((query, expr, f"ERROR {exc}"))
            continue
        if not result:
            problems.append((query, expr, f"no series for {expr!r}"))
            continue
        # The labels the legend shows must be on the series (a renamed label otherwise
        # leaves the legend blank while the query still answers).
        missing = {label for label in query.legend_labels()
                   if not any(label in r["metric"] for r in result)}
        if missing:
            problems.append((query, expr, f"legend labels {sorted(missing)} on no series of "
                                          f"{expr!r}"))
    return problems


def test_every_dashboard_query_returns_series(
        tmp_path: Path, prometheus: Callable[..., PrometheusServer],
        uvicorn_app: Callable[..., AppServer]) -> None:
    started = time.monotonic()
    config = load_config(DEMO_CONFIG)
    out = tmp_path / "generated"
    generate(config, out)
    # Every rule group at the 1 s interval (the month-to-date group's 1m would keep the
    # CPU-hours panel empty for up to two minutes; its expressions read no interval).
    for path in (out / "prometheus" / "rules").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            group.pop("interval", None)
        path.write_text(yaml.safe_dump(data))
    boards = [json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((out / "grafana" / "dashboards").glob("*.json"))]
    assert len(boards) == 8

    app = uvicorn_app("dashboards_app:app", ready_path="/ok")
    stop = threading.Event()
    driver = threading.Thread(target=_traffic, args=(app, stop), daemon=True)
    driver.start()
    try:
        prom = prometheus(
            rule_files=sorted((out / "prometheus" / "rules").glob("*.yml")),
            scrape_configs=[{
                "job_name": "dashboards-app",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [app.address],
                                    "labels": {"service": config.service}}],
            }],
            features=["exemplar-storage"],
        )
        prom.client.wait_for_targets_up(count=1, timeout=20.0)
        values = {
            "service": config.service,
            "instance": app.address,  # a regex; its dots match themselves too
            "route": "|".join(ROUTES),
            "stage": "|".join(STAGES),
            "__rate_interval": "30s",
            "__range": "10m",
        }
        queries = [(q, _promql(q, values)) for board in boards for q in dashboard_queries(board)]
        assert len(queries) > 80
        unresolved = [m for q, e in queries for m in re.findall(r"\$\{?\w+", e)]
        assert unresolved == [], f"template variables left unreplaced: {unresolved}"
        deadline = time.monotonic() + DEADLINE
        problems = _problems(prom, queries)
        while problems and time.monotonic() < deadline:
            time.sleep(2.0)  # rate windows and rule chains fill in; retry only the failing
            problems = _problems(prom, [(q, e) for q, e, _ in problems])
        assert not problems, (
            f"{len(problems)} of {len(queries)} dashboard queries returned nothing after "
            f"{time.monotonic() - started:.0f}s:\n"
            + "\n".join(f"{q.dashboard} {q.where}: {what}" for q, _, what in problems))
        # Exemplars reach Prometheus for the latency panels that ask for them.
        exemplars = prom.client.query_exemplars(
            f'http_server_request_duration_seconds_bucket{{service="{config.service}"}}',
            time.time() - 300, time.time())
        assert exemplars, "no exemplars stored for the HTTP duration histogram"
    finally:
        stop.set()
        driver.join(timeout=10)
    assert time.monotonic() - started < 90
