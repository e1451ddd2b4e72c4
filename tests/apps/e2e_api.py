"""The API of the worker end-to-end test (tests/integration/test_worker_e2e.py).

Run as ``uvicorn e2e_api:app`` with ``E2E_REDIS_URL`` (the Redis holding the
queue), ``E2E_LOG_FILE`` (JSON lines, promkit's ``configure_logging``) and
optionally ``E2E_QUEUE`` (the list key, default ``e2e_jobs``).

  ``GET /``          readiness
  ``GET /ping``      a non-queue endpoint: 200 whatever Redis does
  ``POST /jobs``     enqueues ``{"n": ...}`` from the JSON body with
                     ``promkit.instrument.queues.enqueue_async`` (the request's
                     correlation ID goes into the payload); 202 with ``job_id``
                     and ``correlation_id``; 503 ``{"error": "queue unavailable"}``
                     when Redis cannot be reached (logged, never a crash)
  ``GET /metrics``   promkit's ``metrics_app``, including the queue exporter
                     (``RedisQueueCollector`` on ``list:<queue>``, 0.5 s timeout)
"""

from __future__ import annotations

import os

import redis
import redis.asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from promkit.exporters import RedisQueueCollector, metrics_app
from promkit.instrument import HttpMetricsMiddleware, configure_logging, get_correlation_id
from promkit.instrument.queues import enqueue_async

REDIS_URL = os.environ["E2E_REDIS_URL"]
QUEUE = os.environ.get("E2E_QUEUE", "e2e_jobs")
JOB_TYPE = "e2e"

configure_logging(service="e2e-api", stream=None, file=os.environ["E2E_LOG_FILE"])
log = structlog.get_logger("e2e.api")

# Fail fast when Redis is gone: 1 s socket timeouts and no retries, so a request
# answers 503 promptly instead of hanging in reconnect back-off.
client = redis.asyncio.Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0,
                                      retry=Retry(NoBackoff(), 0))
collector = RedisQueueCollector(REDIS_URL, [f"list:{QUEUE}"], timeout=0.5)


async def ready(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"pong": True})


async def create_job(request: Request) -> JSONResponse:
    body = await request.json()
    try:
        payload = await enqueue_async(client, QUEUE, {"n": body.get("n")}, job_type=JOB_TYPE)
    except (redis.RedisError, OSError) as exc:
        log.warning("enqueue failed", queue=QUEUE, error_type=type(exc).__name__)
        return JSONResponse({"error": "queue unavailable", "correlation_id": get_correlation_id()},
                            status_code=503)
    return JSONResponse({"job_id": payload["job_id"], "correlation_id": payload["correlation_id"]},
                        status_code=202)


app = Starlette(routes=[
    Route("/", ready),
    Route("/ping", ping),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/metrics", metrics_app()),
])
app.add_middleware(HttpMetricsMiddleware)
