"""An app that feeds every metric family the dashboards show (``dashboards_app:app``).

HTTP (the test drives it): ``/ok``, ``/slow`` (60 ms), ``/fail`` (500),
``/boom`` (an unhandled exception), ``/login?ok=0|1`` (auth attempts),
``POST /upload`` (a request body), the WebSocket ``/ws`` (echoes each message,
closes normally after ``bye``), ``/metrics``. In the background, every 50 ms,
a loop creates and runs a job on queue ``ocr`` through stages ``fetch`` and
``ocr`` (every fourth fails with ``OcrTimeout``), calls a fake LLM and OCR
provider through ``external_call`` (errors, timeouts, retries), records tokens,
pages and CPU seconds with prices and budgets, looks up a cache, skips and
recovers jobs, sets queue depth and oldest age, stream consumer groups and
queue reads, records database operations, job persist failures and client
disconnects, and trips promkit's own error and overflow counters. The resource
sampler runs on the event loop (event-loop lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from promkit.exporters import metrics_app
from promkit.instrument import (
    HttpMetricsMiddleware,
    JobTracker,
    PriceTable,
    ResourceSampler,
    default_registry,
    external_call,
    record_cpu_seconds,
    record_llm_tokens,
    record_retry,
    record_usage,
    set_error_code_mapper,
    set_monthly_budgets,
    stage_timer,
)
from promkit.instrument.usage import record_llm_duration

set_error_code_mapper(lambda exc: "OcrTimeout" if isinstance(exc, TimeoutError) else None)
registry = default_registry()
tracker = JobTracker(registry, queue="ocr", worker_type="ocr-worker")
# A custom metric with a tiny series limit, so the overflow counter moves.
tenants = registry.counter("demo_tenant_requests_total", "Requests by tenant.", ["tenant"],
                           series_limit=3)


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(0.06)
    return JSONResponse({"ok": True})


async def fail(request: Request) -> JSONResponse:
    return JSONResponse({"error": "injected fault"}, status_code=500)


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("injected exception")


async def login(request: Request) -> JSONResponse:
    good = request.query_params.get("ok") == "1"
    registry.counter("auth_attempts_total").labels(
        "password", "success" if good else "failure").inc()
    return JSONResponse({"ok": good}, status_code=200 if good else 401)


async def upload(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close(code=1000)
            return
        await websocket.send_text(text)


def _one_job(n: int) -> None:
    payload: dict[str, Any] = {}
    tracker.created(payload, "ocr", queue_depth=n % 7)
    try:
        with tracker.run(payload):
            with stage_timer("fetch"):
                sum(i * i for i in range(2000))
            with stage_timer("ocr"):
                sum(i * i for i in range(4000))
                if n % 4 == 0:
                    raise TimeoutError("ocr took too long")
    except TimeoutError:
        pass
    tracker.cache_lookup("pages", hit=n % 3 != 0)
    if n % 10 == 0:
        tracker.skipped("ocr", "expired")
    if n % 10 == 5:
        tracker.recovered("ocr", "worker_lost")


def _external(n: int) -> None:
    for service, operation in (("llm", "chat"), ("ocr-api", "submit")):
        try:
            with external_call(service, operation) as call:
                if n % 5 == 0:
                    raise TimeoutError("provider timed out")
                call.status = 503 if n % 3 == 0 else 200
        except TimeoutError:
            record_retry(service, operation)
    record_llm_tokens("openai", "gpt-4o", input_tokens=120, output_tokens=30)
    record_llm_duration("openai", "gpt-4o", 0.2 + (n % 5) / 10)
    record_usage("ocr_pages", 2, provider="textract")
    record_cpu_seconds(0.01, role="ocr")


def _queues_and_self(n: int) -> None:
    registry.gauge("queue_depth").labels("ocr").set(n % 9)
    registry.gauge("queue_oldest_item_age_seconds").labels("ocr").set((n % 9) * 1.5)
    registry.gauge("queue_up").labels("ocr").set(1)
    registry.gauge("queue_stream_pending").labels("events", "workers").set(n % 5)
    registry.gauge("queue_stream_lag").labels("events", "workers").set(n % 3)
    operation = ("SELECT", "INSERT", "UPDATE")[n % 3]
    registry.histogram("db_client_operation_duration_seconds").labels(
        "postgresql", operation).observe(0.002 * (1 + n % 3))
    if n % 10 == 3:
        tracker.persist_failed("redis")
        # A client that gave up on a slow answer (the middleware counts these).
        registry.counter("http_server_client_disconnects_total").labels("GET", "/slow").inc()
    record_usage("ocr_pages", -1)          # refused: counted as an instrumentation error
    tenants.labels(f"tenant-{n % 6}").inc()  # past 3 tenants: the overflow series


async def _background(stop: asyncio.Event) -> None:
    for n in itertools.count():
        _one_job(n)
        _external(n)
        _queues_and_self(n)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        if stop.is_set():
            return


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    PriceTable({
        ("llm_tokens", "openai", "gpt-4o", "input"): 2.5e-6,
        ("llm_tokens", "openai", "gpt-4o", "output"): 1.0e-5,
        ("ocr_pages", "textract"): 0.0015,
        ("cpu_seconds", "", "", "ocr"): 0.05 / 3600,
    }, currency="USD").export()
    set_monthly_budgets({"cpu_seconds": 100 * 3600, "llm_tokens": 5e7, "ocr_pages": 1e4})
    sampler = ResourceSampler(interval=0.5, disk_paths="/")
    await sampler.start_async()
    stop = asyncio.Event()
    task = asyncio.create_task(_background(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await sampler.stop_async()


app = Starlette(routes=[
    Route("/ok", ok),
    Route("/slow", slow),
    Route("/fail", fail),
    Route("/boom", boom),
    Route("/login", login),
    Route("/upload", upload, methods=["POST"]),
    WebSocketRoute("/ws", echo),
    Route("/metrics", metrics_app()),
], lifespan=lifespan)
app.add_middleware(HttpMetricsMiddleware, record_sizes=True)  # every panel has data
