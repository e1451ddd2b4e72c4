"""promkit's middleware beside starlette_exporter's and prometheus-fastapi-instrumentator's.

Run as ``compat_peers_app:app``: all three record into prometheus-client's
default registry, served at ``/metrics`` (the peers count that route, promkit
does not). For the live compat-rules test.
"""

from __future__ import annotations

from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette_exporter import PrometheusMiddleware

from promkit import HttpMetricsMiddleware, metrics_app


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"]})


async def create(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse("created " * len(body), status_code=201)


async def boom(request: Request) -> None:
    raise RuntimeError("boom")


app = Starlette(routes=[Route("/items/{item_id}", item),
                        Route("/items", create, methods=["POST"]),
                        Route("/boom", boom),
                        Route("/metrics", metrics_app())])
app.add_middleware(PrometheusInstrumentatorMiddleware)
app.add_middleware(PrometheusMiddleware, app_name="shop")
app.add_middleware(HttpMetricsMiddleware, log_requests=False,
                   record_sizes=True)  # the instrumentator's size metrics map onto them
