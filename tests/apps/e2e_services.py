"""The two helper services of the worker end-to-end test (tests/integration/test_worker_e2e.py).

Both are Starlette app factories for ``uvicorn --factory``; each JSON-logs
with promkit's ``configure_logging`` to the file named by ``E2E_LOG_FILE``
and runs ``HttpMetricsMiddleware`` (so the ``X-Correlation-ID`` a caller sends
is bound for the request and appears in every line it logs).

``e2e_services:external_app`` -- a slow "lookup" service the worker calls:
  ``GET /lookup/{key}`` answers after ``E2E_FAST_DELAY`` seconds (0.02), except
  every ``E2E_SLOW_EVERY``-th call (3), which sleeps ``E2E_SLOW_DELAY`` seconds
  (2.0) -- past the worker's client timeout. Deterministic: a process-wide call
  counter decides. ``GET /calls`` returns the count.

``e2e_services:receiver_app`` -- the webhook receiver:
  ``POST /hook`` logs ``webhook received`` (``job_id``, ``status`` and the
  body's ``correlation_id`` as ``body_correlation_id``) and answers 200;
  ``GET /received`` lists the bodies received so far.

``GET /`` is the readiness check of both.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from promkit.instrument import HttpMetricsMiddleware, configure_logging


def _configure(service: str) -> None:
    configure_logging(service=service, stream=None, file=os.environ["E2E_LOG_FILE"])


async def _ready(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def external_app() -> Starlette:
    _configure("e2e-external")
    log = structlog.get_logger("e2e.external")
    slow_every = int(os.environ.get("E2E_SLOW_EVERY", "3"))
    slow_delay = float(os.environ.get("E2E_SLOW_DELAY", "2.0"))
    fast_delay = float(os.environ.get("E2E_FAST_DELAY", "0.02"))
    counter = itertools.count(1)
    calls = [0]

    async def lookup(request: Request) -> JSONResponse:
        n = next(counter)
        calls[0] = n
        slow = n % slow_every == 0
        log.info("lookup", call=n, slow=slow)
        await asyncio.sleep(slow_delay if slow else fast_delay)
        return JSONResponse({"key": request.path_params["key"], "call": n, "value": n * 7})

    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"calls": calls[0]})

    app = Starlette(routes=[Route("/", _ready), Route("/lookup/{key}", lookup),
                            Route("/calls", count)])
    app.add_middleware(HttpMetricsMiddleware)
    return app


def receiver_app() -> Starlette:
    _configure("e2e-receiver")
    log = structlog.get_logger("e2e.receiver")
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        log.info("webhook received", job_id=body.get("job_id"), status=body.get("status"),
                 body_correlation_id=body.get("correlation_id"))
        return JSONResponse({"ok": True})

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse(received)

    app = Starlette(routes=[Route("/", _ready), Route("/hook", hook, methods=["POST"]),
                            Route("/received", listing)])
    app.add_middleware(HttpMetricsMiddleware)
    return app
