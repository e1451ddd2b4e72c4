"""The app the soak and fault tests serve with uvicorn: middleware + JSON logging.

``tests.reliability._soak_app:app``. ``SOAK_LOG_FILE`` names the JSON-lines log file
(else logs go nowhere); ``SOAK_METRICS_TOKEN`` protects ``/metrics`` with a token.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from promkit.exporters import metrics_app
from promkit.instrument import (
    HttpMetricsMiddleware,
    configure_logging,
    default_registry,
    get_logger,
)

registry = default_registry()
configure_logging("soak", stream=None, file=os.environ.get("SOAK_LOG_FILE") or None,
                  file_max_bytes=0)
log = get_logger("soak")
ORDERS = registry.counter("soak_orders_total", "Orders the soak app took.", ["channel"])


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


async def item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    ORDERS.labels("web" if item_id % 2 else "api").inc()
    log.info("item_viewed", item_id=item_id, user_id=f"user-{item_id % 50}")
    return JSONResponse({"item": item_id})


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


app = Starlette(routes=[
    Route("/", index),
    Route("/items/{item_id:int}", item),
    Route("/fail", fail),
    Route("/metrics", metrics_app(registry, token=os.environ.get("SOAK_METRICS_TOKEN") or None)),
])
app.add_middleware(HttpMetricsMiddleware)
