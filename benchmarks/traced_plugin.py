"""The middleware with tracing on: a plugin for ``python -m benchmarks.instructions``.

``PK_PLUGIN=benchmarks/traced_plugin.py python -m benchmarks.instructions promkit_all
traced_bare promkit_traced`` counts the instructions of a request when the
application runs :class:`promkit.HttpMetricsMiddleware` inside an OpenTelemetry
server span, as users with tracing on do. It loads
:mod:`benchmarks.middleware_plugin` (so its entries stay available) and adds:

* ``traced_bare``: bare Starlette inside :class:`ServerSpan`, a minimal outer
  ASGI middleware that makes a recording server span current for the request
  (an SDK ``TracerProvider``, the default sampler, a span processor that
  discards every span): the cost of the span alone;
* ``promkit_traced``: ``promkit_all``'s middleware (every feature, the request
  line at INFO to a null sink) inside the same span, so the middleware
  annotates the span, links the exemplar to the trace and writes the trace IDs
  in its line. ``promkit_traced - traced_bare`` is what promkit adds to a traced
  request.

A separate file, not entries of ``middleware_plugin``: OpenTelemetry's global
tracer provider is set once per process, and the timed harness builds every
registered entry in one process, where a real provider would change others
(``otel_asgi`` would start recording spans). ``benchmarks.instructions`` runs
each entry in a process of its own, and the provider is set only when one of
these entries is built. Timed, from ``../shared/bench``: ``python
middleware_bench.py --plugin <this file> --entries traced_bare,promkit_traced
--json /tmp/traced.json`` (without ``--json`` the harness overwrites its
shared ``results-baseline.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import middleware_bench as mb  # type: ignore[import-not-found]
from middleware_bench import Entry, make_starlette, register  # type: ignore[import-not-found]
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from promkit.instrument import MetricsRegistry
from promkit.instrument.logs import configure_logging, reset_logging
from promkit.instrument.middleware import HttpMetricsMiddleware

mb.load_plugin(str(Path(__file__).resolve().with_name("middleware_plugin.py")))


class _Discard(SpanProcessor):
    """Takes every span and keeps nothing (SpanProcessor's methods all do nothing)."""


_tracer: list[Tracer] = []


def _global_tracer() -> Tracer:
    # The global provider: promkit's middleware checks it (tracing_active()).
    if not _tracer:
        provider = TracerProvider()
        provider.add_span_processor(_Discard())
        trace.set_tracer_provider(provider)
        _tracer.append(provider.get_tracer("bench"))
    return _tracer[0]


class ServerSpan:
    """A recording server span current for each HTTP request, as OpenTelemetry's ASGI
    middleware makes one (without its attributes and its spans per message)."""

    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self._tracer = tracer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._tracer.start_as_current_span(scope["method"], kind=SpanKind.SERVER):
            await self.app(scope, receive, send)


@register("traced_bare")
def _traced_bare() -> Entry:
    reset_logging()
    app = make_starlette([Middleware(ServerSpan, tracer=_global_tracer())])
    return Entry(name="traced_bare", app=app, registry=None, middleware_class=ServerSpan,
                 config="bare Starlette inside a recording OpenTelemetry server span "
                        "(SDK TracerProvider, spans discarded)")


@register("promkit_traced")
def _promkit_traced() -> Entry:
    configure_logging(service="bench", stream=None)  # the request line to a null sink
    reg = CollectorRegistry()
    app = make_starlette([
        Middleware(ServerSpan, tracer=_global_tracer()),  # outermost first
        Middleware(HttpMetricsMiddleware, registry=MetricsRegistry(reg), record_sizes=True),
    ])
    return Entry(name="promkit_traced", app=app, registry=reg,
                 middleware_class=HttpMetricsMiddleware,
                 config="promkit_all inside a recording OpenTelemetry server span: span "
                        "annotated, trace exemplars, trace IDs in the INFO request line")
