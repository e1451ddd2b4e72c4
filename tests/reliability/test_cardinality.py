"""Cardinality attack: distinct raw paths and label values through the middleware
(in-process ASGI calls, no network) and the registry. Series stay within each metric's
limit (+1 overflow series), the overflow self-metric counts every fold, RSS stays flat."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from promkit.instrument import HttpMetricsMiddleware, MetricsRegistry
from promkit.instrument.logs import NullSink, configure_logging
from promkit.instrument.metrics import OVERFLOW_VALUE

from .conftest import no_pytest_log_capture, record, rss_after_gc, size

N = size(20_000, 1_000_000)
RSS_LIMIT = 10 * 1024 * 1024


def overflow_count(registry: MetricsRegistry, metric: str) -> float:
    value = registry.collector_registry.get_sample_value(
        "promkit_series_overflow_total", {"metric": metric})
    return value or 0.0


def errors(registry: MetricsRegistry) -> float:
    metric = registry.get("promkit_instrumentation_errors_total")
    assert metric is not None
    return sum(child.get() for child in metric.children())


async def _drive(app: Any, paths: Any) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] in (200, 404)

    for path in paths:
        await app({"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                   "query_string": b"", "root_path": "", "headers": [], "http_version": "1.1",
                   "scheme": "http", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)},
                  receive, send)


def test_distinct_paths_through_the_middleware(clean_logging: None) -> None:
    """Real routes: raw paths collapse to templates; unmatched ones to one value."""
    registry = MetricsRegistry(CollectorRegistry())
    configure_logging("attack", stream=NullSink(), failures=registry.failures)

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{item_id}", item)],
                    middleware=[Middleware(HttpMetricsMiddleware, registry=registry)])
    with no_pytest_log_capture(), contextlib.closing(asyncio.new_event_loop()) as loop:
        loop.run_until_complete(_drive(app, (f"/items/w{i}" for i in range(2000))))
        before = rss_after_gc()
        # half match the route with a distinct id, half are distinct unmatched paths
        loop.run_until_complete(_drive(app, (
            f"/items/{i:x}-{i}" if i % 2 else f"/scan/{i}/{i * 7919 % 104729}?q={i}"
            for i in range(N))))
        growth = rss_after_gc() - before
    duration = registry.get("http_server_request_duration_seconds")
    assert duration is not None
    routes = {child.labelvalues[1] for child in duration.children()}
    assert routes == {"/items/{item_id}", "__unmatched__"}
    assert duration.series_count() == 2
    assert errors(registry) == 0
    assert growth < RSS_LIMIT, f"RSS grew {growth / 1e6:.1f} MB over {N} distinct paths"
    record("cardinality", middleware_paths=N, middleware_route_series=duration.series_count(),
           middleware_rss_growth_mb=round(growth / 1e6, 2))


def test_leaked_raw_paths_and_label_values_stop_at_the_series_limit() -> None:
    """A route that leaks raw paths as templates, and raw values as labels: limits hold."""
    registry = MetricsRegistry(CollectorRegistry())
    leaky = registry.counter("leaky_requests_total", "Labelled by raw user input.", ["user"],
                             series_limit=500)

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = Route(scope["path"], lambda r: None)  # a raw path as its "template"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = HttpMetricsMiddleware(raw_app, registry=registry, log_requests=False, record_sizes=True)
    duration = registry.get("http_server_request_duration_seconds")
    assert duration is not None
    limit = duration.spec.series_limit
    with no_pytest_log_capture(), contextlib.closing(asyncio.new_event_loop()) as loop:
        loop.run_until_complete(_drive(app, (f"/warm/{i}" for i in range(limit))))
        for i in range(500):
            leaky.labels(f"warm{i}").inc()
        before = rss_after_gc()
        loop.run_until_complete(_drive(app, (f"/u/{i}" for i in range(N))))
        for i in range(N):
            leaky.labels(f"user-{i}@{i % 977}").inc()
        growth = rss_after_gc() - before

    for name in ("http_server_request_duration_seconds", "http_server_request_body_size_bytes",
                 "http_server_response_body_size_bytes", "leaky_requests_total"):
        metric = registry.get(name)
        assert metric is not None
        assert metric.series_count() == metric.spec.series_limit + 1, name
        assert any(c.labelvalues and c.labelvalues[0] == OVERFLOW_VALUE
                   for c in metric.children()), name
    assert overflow_count(registry, "http_server_request_duration_seconds") == N
    assert overflow_count(registry, "leaky_requests_total") == N
    # every recording still counted, in the overflow series
    # (read the child directly: labels("__overflow__") would itself be one more fold)
    assert [c.get() for c in leaky.children() if c.labelvalues == (OVERFLOW_VALUE,)] == [N]
    assert errors(registry) == 0
    assert growth < RSS_LIMIT, f"RSS grew {growth / 1e6:.1f} MB over {N} distinct values"
    record("cardinality", registry_values=N, series_limit_http=limit,
           series_http=duration.series_count(), series_limit_custom=500,
           series_custom=leaky.series_count(),
           overflow_counted=int(overflow_count(registry, "leaky_requests_total")),
           registry_rss_growth_mb=round(growth / 1e6, 2))
