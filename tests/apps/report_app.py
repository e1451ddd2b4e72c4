"""A small instrumented app for the live ``promkit report`` test (``report_app:app``).

``/ok`` answers 200; ``/fail`` answers 500 (the injected fault); ``/job`` runs
two timed stages, the second failing every third call with error code
``OcrTimeout``, and one external call; ``/metrics`` is promkit's endpoint.
"""

from __future__ import annotations

import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from promkit.exporters import metrics_app
from promkit.instrument import HttpMetricsMiddleware, external_call, stage_timer
from promkit.instrument.resources import ResourceSampler
from promkit.instrument.stages import set_error_code_mapper

_calls = itertools.count(1)
set_error_code_mapper(lambda exc: "OcrTimeout" if isinstance(exc, TimeoutError) else None)


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def fail(request: Request) -> JSONResponse:
    return JSONResponse({"error": "injected fault"}, status_code=500)


async def job(request: Request) -> JSONResponse:
    n = next(_calls)
    with stage_timer("fetch"):
        pass
    try:
        with stage_timer("ocr"):
            if n % 3 == 0:
                raise TimeoutError("ocr took too long")
    except TimeoutError:
        pass
    with external_call("ocr-provider", "submit") as call:
        call.status = 200 if n % 4 else 503
    return JSONResponse({"n": n})


app = Starlette(routes=[
    Route("/ok", ok),
    Route("/fail", fail),
    Route("/job", job),
    Route("/metrics", metrics_app()),
])
app.add_middleware(HttpMetricsMiddleware)
# RSS and disk use for the report's trends.
ResourceSampler(interval=1.0, disk_paths="/").start()
