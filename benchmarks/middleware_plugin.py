"""promkit's entries for the shared peer harness (``../shared/bench/middleware_bench.py``).

Loaded with ``--plugin benchmarks/middleware_plugin.py``; ``python -m benchmarks
--only middleware`` does that for you. Two configurations of
:class:`promkit.HttpMetricsMiddleware`, both with route templating:

* ``promkit_all``: every feature on: duration, in-flight, request/response
  sizes, correlation ID (bound, returned in a header), exemplars, and the
  request log line at INFO through promkit's logging into a null sink;
* ``promkit_metrics``: the request duration histogram only;
* ``promkit_defaults``: ``HttpMetricsMiddleware`` with its defaults (every
  feature, the request log line included) in a process where nothing
  configured logging, so promkit writes no line and skips the log work.

Logging is process-wide, and ``promkit_all`` needs promkit's set-up while
``promkit_defaults`` needs none, so each of the two entries puts its own set-up
in place whenever the harness takes its app (``entry.app`` is read once per
block of requests: before verifying, warming up and each timed chunk), outside
the timed requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from middleware_bench import Entry, make_starlette, register  # type: ignore[import-not-found]
from prometheus_client import CollectorRegistry
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
    app = make_starlette([Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg))])
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
                         config="defaults (every feature), nothing configured logging: "
                                "no request line, log work skipped")


@register("promkit_metrics")
def _promkit_metrics() -> Entry:
    reg = CollectorRegistry()
    middleware = Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg),
                            correlation=False, record_sizes=False, track_in_flight=False,
                            exemplars=False, log_requests=False)
    return Entry(name="promkit_metrics", app=make_starlette([middleware]), registry=reg,
                 middleware_class=HttpMetricsMiddleware,
                 config="metrics only: request duration histogram by method/route/status")
