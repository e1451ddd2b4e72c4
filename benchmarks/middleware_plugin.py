"""promkit's entries for the shared peer harness (``../shared/bench/middleware_bench.py``).

Loaded with ``--plugin benchmarks/middleware_plugin.py``; ``python -m benchmarks
--only middleware`` does that for you. Two configurations of
:class:`promkit.HttpMetricsMiddleware`, both with route templating:

* ``promkit_all``: every feature on: duration, in-flight, request/response
  sizes, correlation ID (bound, returned in a header), exemplars, and the
  request log line at INFO through promkit's logging into a null sink;
* ``promkit_metrics``: the request duration histogram only.
"""

from __future__ import annotations

from middleware_bench import Entry, make_starlette, register  # type: ignore[import-not-found]
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from promkit.instrument import MetricsRegistry
from promkit.instrument.middleware import HttpMetricsMiddleware


def _null_logging() -> None:
    # The request log line is produced in full and written to a sink that
    # discards it, so formatting is measured and terminal I/O is not.
    try:
        from promkit.instrument.logs import configure_logging
    except ImportError:  # logging not available: the entry says so in its config
        return
    configure_logging(service="bench", stream=None)


@register("promkit_all")
def _promkit_all() -> Entry:
    _null_logging()
    reg = CollectorRegistry()
    app = make_starlette([Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg))])
    return Entry(name="promkit_all", app=app, registry=reg,
                 middleware_class=HttpMetricsMiddleware,
                 config="every feature: duration, in-flight, sizes, correlation ID, exemplars, "
                        "INFO request log line to a null sink")


@register("promkit_metrics")
def _promkit_metrics() -> Entry:
    reg = CollectorRegistry()
    middleware = Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg),
                            correlation=False, record_sizes=False, track_in_flight=False,
                            exemplars=False, log_requests=False)
    return Entry(name="promkit_metrics", app=make_starlette([middleware]), registry=reg,
                 middleware_class=HttpMetricsMiddleware,
                 config="metrics only: request duration histogram by method/route/status")
