"""A small Starlette app recording into promkit, served by uvicorn/gunicorn in tests.

Run as ``metrics_demo:app`` (tests/apps is put on PYTHONPATH by the fixtures).
With ``PROMETHEUS_MULTIPROC_DIR`` set before the workers start, the same app
runs in multiprocess mode: every worker writes mmap files and ``/metrics``
merges them.

Endpoints:
  ``/``             readiness; returns this worker's pid
  ``/work?d=0.05``  counts a request and observes ``d`` seconds (exemplar: a trace id)
  ``/hold?block=s`` raises this worker's held-requests gauge by one and blocks the
                    event loop for ``s`` seconds (so concurrent new connections
                    land on other workers)
  ``/metrics``      promkit's metrics_app
"""

from __future__ import annotations

import os
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from promkit.exporters import metrics_app
from promkit.instrument import default_registry

registry = default_registry()

REQUESTS = registry.counter("app_requests_total", "Requests handled by the test app.", ["route"])
WORK_SECONDS = registry.histogram(
    "app_work_duration_seconds", "Time the test app says a unit of work took.", ["route"],
    buckets=[0.01, 0.1, 1.0], unit="seconds",
)
HELD = registry.gauge(
    "app_held_requests", "Requests this worker has been asked to hold (never released).",
    multiprocess_mode="livesum",
)
WORKERS = registry.gauge(
    "app_worker_info", "1 per live worker process, labelled by pid in multiprocess mode.",
    multiprocess_mode="liveall",
)
WORKERS.set(1)


def _pid() -> dict[str, int]:
    return {"pid": os.getpid()}


async def index(request: Request) -> JSONResponse:
    return JSONResponse(_pid())


async def work(request: Request) -> JSONResponse:
    seconds = float(request.query_params.get("d", "0.05"))
    trace_id = uuid.uuid4().hex
    REQUESTS.labels("/work").inc(exemplar={"trace_id": trace_id})
    WORK_SECONDS.labels("/work").observe(seconds, exemplar={"trace_id": trace_id})
    return JSONResponse({**_pid(), "trace_id": trace_id})


async def hold(request: Request) -> JSONResponse:
    HELD.inc()
    REQUESTS.labels("/hold").inc()
    block = float(request.query_params.get("block", "0"))
    if block > 0:
        time.sleep(block)  # deliberately blocks this worker's loop
    return JSONResponse(_pid())


app = Starlette(routes=[
    Route("/", index),
    Route("/work", work),
    Route("/hold", hold),
    Mount("/metrics", app=metrics_app(registry)),
])
