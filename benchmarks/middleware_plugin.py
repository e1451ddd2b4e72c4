"""promkit's entries for the shared peer harness (``../shared/bench/middleware_bench.py``).

Loaded with ``--plugin benchmarks/middleware_plugin.py``; ``python -m benchmarks
--only middleware`` does that for you. Three configurations of
:class:`promkit.HttpMetricsMiddleware`, all with route templating, the
defaults' hand-written equivalent and the peer stack that gives
``promkit_all``'s features:

* ``promkit_all``: every feature on: duration, in-flight, request/response
  sizes, correlation ID (bound, returned in a header), exemplars, and the
  request log line at INFO through promkit's logging into a null sink;
* ``promkit_metrics``: the request duration histogram only;
* ``promkit_defaults``: ``HttpMetricsMiddleware`` with its defaults (every
  feature but the opt-in body sizes, the request log line included) in a
  process where nothing configured logging, so promkit writes no line and
  skips the log work;
* ``handwritten_equivalent``: the harness's hand-written prometheus-client
  middleware plus what ``promkit_defaults`` adds (a correlation ID validated or
  made with ``uuid.uuid4()``, bound and returned; in-flight by method; the ID
  as exemplar), written plainly: DESIGN wants the defaults to cost no more;
* ``peer_stack``: asgi-correlation-id (ID bound, returned in ``X-Correlation-ID``)
  + a structlog JSON access-log middleware (one line per request with method,
  route template, status, duration and correlation ID, to a logger that
  discards it) + starlette_exporter (duration, in-progress, body sizes,
  correlation ID exemplars): issue 16 wants ``promkit_all`` at <= 0.2x its
  overhead.

Logging is process-wide, and ``promkit_all`` needs promkit's set-up while
``promkit_defaults`` needs none, so each of the two entries puts its own set-up
in place whenever the harness takes its app (``entry.app`` is read once per
block of requests: before verifying, warming up and each timed chunk), outside
the timed requests.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from middleware_bench import (  # type: ignore[import-not-found]
    LATE_REGISTRY,
    Entry,
    make_starlette,
    register,
    view_registry,
)
from prometheus_client import CollectorRegistry, Gauge, Histogram
from starlette.middleware import Middleware

from promkit.instrument import MetricsRegistry
from promkit.instrument.logs import configure_logging, reset_logging
from promkit.instrument.middleware import HttpMetricsMiddleware

_current: list[str] = [""]  # the logging set-up in place: "null" (promkit's) or "none"


def _null_logging() -> None:
    # The request log line is produced in full and written to a sink that
    # discards it, so formatting is measured and terminal I/O is not.
    if _current[0] != "null":
        configure_logging(service="bench", stream=None)
        _current[0] = "null"


def _no_logging() -> None:
    # As in an application that configured nothing: structlog's defaults, no handlers.
    if _current[0] != "none":
        reset_logging()
        _current[0] = "none"


class _LoggingEntry(Entry):  # type: ignore[misc]
    """An entry whose logging set-up is put in place each time its app is taken."""

    def __init__(self, *, setup: Callable[[], None], **fields: Any) -> None:
        self._setup = setup
        super().__init__(**fields)

    @property  # type: ignore[misc]
    def app(self) -> Any:
        self._setup()
        return self._app

    @app.setter
    def app(self, value: Any) -> None:
        self._app = value


@register("promkit_all")
def _promkit_all() -> Entry:
    _null_logging()
    reg = CollectorRegistry()
    app = make_starlette([Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg),
                                     record_sizes=True)])
    return _LoggingEntry(setup=_null_logging, name="promkit_all", app=app, registry=reg,
                         middleware_class=HttpMetricsMiddleware,
                         config="every feature: duration, in-flight, sizes, correlation ID, "
                                "exemplars, INFO request log line to a null sink")


@register("promkit_defaults")
def _promkit_defaults() -> Entry:
    reg = CollectorRegistry()
    app = make_starlette([Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg))])
    return _LoggingEntry(setup=_no_logging, name="promkit_defaults", app=app, registry=reg,
                         middleware_class=HttpMetricsMiddleware,
                         config="defaults (every feature but body sizes), nothing configured "
                                "logging: no request line, log work skipped")


@register("promkit_metrics")
def _promkit_metrics() -> Entry:
    reg = CollectorRegistry()
    middleware = Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg),
                            correlation=False, track_in_flight=False,
                            exemplars=False, log_requests=False)
    return Entry(name="promkit_metrics", app=make_starlette([middleware]), registry=reg,
                 middleware_class=HttpMetricsMiddleware,
                 config="metrics only: request duration histogram by method/route/status")


# ------------------------------------------------- the defaults' hand-written equivalent

_HANDWRITTEN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "handwritten_correlation_id", default=None)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                   re.IGNORECASE)


class HandWrittenEquivalent:
    """What ``promkit_defaults`` records, written by hand with prometheus-client (pure ASGI).

    DESIGN's rule: out of the box promkit costs no more than a hand-written
    equivalent. The harness's hand-written middleware records the duration
    only; this one adds what the defaults add, written plainly as a team
    would: the client's ``X-Correlation-ID`` when it is a UUID, else
    ``uuid.uuid4()``, bound in a contextvar for the request and returned in
    the response header; requests in flight by method; the ID as the
    duration's exemplar. Label children are cached as in the harness's.
    """

    def __init__(self, app: Any, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ("method", "route", "status")
        self.hist = Histogram("http_request_duration_seconds", "HTTP request duration",
                              labels, registry=registry)
        self.active = Gauge("http_requests_active", "HTTP requests in flight", ["method"],
                            registry=registry)
        self._children: dict[tuple[str, str, int], Any] = {}
        self._active: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope["headers"]:
            if key == b"x-correlation-id":
                incoming = value.decode("latin-1")
        cid = incoming if incoming and _UUID.fullmatch(incoming) else str(uuid.uuid4())
        token = _HANDWRITTEN_ID.set(cid)
        header = (b"x-correlation-id", cid.encode())
        method = scope["method"]
        active = self._active.get(method)
        if active is None:
            active = self._active[method] = self.active.labels(method)
        active.inc()
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            key = (method, route.path if route is not None else "", status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.hist.labels(
                    method, key[1] or "__unmatched__", str(status))
            child.observe(time.perf_counter() - start, {"correlation_id": cid})
            active.dec()
            _HANDWRITTEN_ID.reset(token)


@register("handwritten_equivalent")
def _handwritten_equivalent() -> Entry:
    reg = CollectorRegistry()
    app = make_starlette([Middleware(HandWrittenEquivalent, registry=reg)])
    return Entry(name="handwritten_equivalent", app=app, registry=reg,
                 middleware_class=HandWrittenEquivalent,
                 config="hand-written with promkit_defaults' features: duration with the "
                        "correlation ID as exemplar, in-flight by method, X-Correlation-ID "
                        "(valid UUID or uuid4) bound and returned")


# ------------------------------------------------------------------ the peer stack


class _NullLogger:
    """structlog's final logger for the peer stack: takes the rendered line, keeps nothing."""

    def msg(self, message: str) -> None:
        pass

    info = warning = error = msg


class StructlogAccessLog:
    """A structlog JSON access-log middleware as a team would write it (pure ASGI).

    One JSON line per request (method, route template, status, duration, the
    correlation ID asgi-correlation-id bound) through its own structlog logger
    (structlog's documented production chain: level, ISO timestamp, JSON),
    rendered and handed to a logger that discards it, like promkit's null sink.
    It owns its logger rather than ``structlog.configure``: that is global, and
    ``promkit_all`` configures structlog in the same process.
    """

    def __init__(self, app: Any) -> None:
        from asgi_correlation_id import correlation_id

        self.app = app
        self._cid = correlation_id
        self._log = structlog.wrap_logger(
            _NullLogger(),
            processors=[structlog.contextvars.merge_contextvars,
                        structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            cache_logger_on_first_use=True)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            log = self._log.error if status >= 500 else (
                self._log.warning if status >= 400 else self._log.info)
            log("http_request", http_method=scope["method"],
                http_path=route.path if route is not None else "__unmatched__",
                http_status=status,
                latency_ms=round((time.perf_counter() - start) * 1000.0, 3),
                correlation_id=self._cid.get())


def _peer_exemplar() -> dict[str, str]:
    from asgi_correlation_id import correlation_id

    return {"correlation_id": correlation_id.get() or ""}


@register("peer_stack")
def _peer_stack() -> Entry:
    from asgi_correlation_id import CorrelationIdMiddleware
    from starlette_exporter import PrometheusMiddleware, optional_metrics

    app = make_starlette([
        # outermost first: the ID is bound before the log line and the exemplar read it
        Middleware(CorrelationIdMiddleware, header_name="X-Correlation-ID"),
        Middleware(StructlogAccessLog),
        Middleware(PrometheusMiddleware, group_paths=True, app_name="bench",
                   # its own prefix: the harness's starlette_exporter entry shares the
                   # class-level metric cache and the global REGISTRY
                   prefix="peer_stack",
                   optional_metrics=[optional_metrics.request_body_size,
                                     optional_metrics.response_body_size],
                   exemplars=_peer_exemplar),
    ])
    return Entry(name="peer_stack", app=app, registry=None,
                 middleware_class=PrometheusMiddleware,
                 config="the peers giving promkit_all's features: asgi-correlation-id "
                        "(X-Correlation-ID) + structlog JSON access line to a null logger + "
                        "starlette_exporter (group_paths, in-progress, body sizes, "
                        "correlation ID exemplars)",
                 notes=["starlette_exporter keeps its metrics on the global REGISTRY; "
                        "scraped via a view registry"])


def _peer_stack_registry() -> CollectorRegistry:
    from starlette_exporter import PrometheusMiddleware

    return view_registry([m for name, m in PrometheusMiddleware._metrics.items()
                          if name.startswith("peer_stack_")])


LATE_REGISTRY["peer_stack"] = _peer_stack_registry
