"""The two apps of the stall benchmark (uvicorn ``--factory`` targets).

Both serve a tiny ``/ping`` and mount a ``/metrics`` endpoint over
``BENCH_SERIES`` (default 10000) identical synthetic series: ``promkit_app``
with promkit's ``metrics_app``, ``prometheus_client_app`` with
prometheus-client's ``make_asgi_app``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from benchmarks._common import build_prometheus_client, build_promkit


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def _series() -> int:
    return int(os.environ.get("BENCH_SERIES", "10000"))


def promkit_app() -> Starlette:
    from promkit.exporters import metrics_app
    from promkit.instrument import MetricsRegistry

    registry = MetricsRegistry(CollectorRegistry(), multiprocess=False)
    build_promkit(_series(), registry)
    return Starlette(routes=[Route("/ping", ping), Mount("/metrics", app=metrics_app(registry))])


def prometheus_client_app() -> Starlette:
    registry = CollectorRegistry()
    build_prometheus_client(_series(), registry)
    return Starlette(routes=[Route("/ping", ping),
                             Mount("/metrics", app=make_asgi_app(registry=registry))])
