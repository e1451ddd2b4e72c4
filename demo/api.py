"""The demo API (default http://127.0.0.1:8000), instrumented with promkit.

Routes: ``POST /login`` (auth), ``POST /jobs`` and ``GET /jobs/{job_id}`` (the
Redis job queue), ``POST /assist`` (a fake LLM provider, token usage and
cost), ``GET/POST /recipes`` (SQLite), ``WS /ws/chat`` (echo chat),
``GET/POST /admin/faults`` (failure knobs), ``/metrics`` and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from demo import pricing, settings
from demo.pricing import LLM_MODEL, LLM_PROVIDER
from promkit import (
    HttpMetricsMiddleware,
    ResourceSampler,
    configure_logging,
    default_registry,
    get_correlation_id,
    instrument_httpx,
    metrics_app,
    record_llm_tokens,
    record_retry,
)
from promkit.instrument.queues import enqueue_async
from promkit.instrument.usage import record_llm_duration

log = structlog.get_logger("demo.api")
registry = default_registry()
auth_attempts = registry.counter("auth_attempts_total")
db_seconds = registry.histogram("db_client_operation_duration_seconds")

DEMO_PASSWORD = "demo-password"   # the one password /login accepts
DEMO_TOKEN = "demo-token"         # the one API token /login accepts

faults = settings.FaultReader(settings.faults_path())


# ------------------------------------------------------------------- fault knobs

Endpoint = Callable[[Request], Awaitable[Response]]


def knobs(path: str, endpoint: Endpoint) -> Endpoint:
    """Apply the ``latency_ms`` and ``error_rate`` knobs to the route of template ``path``.

    Inside the route (not a middleware in front of the router), so injected
    errors and latency are measured under the route's template like real ones.
    ``error_route``, when set, limits ``error_rate`` to the route of that template.
    """
    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        current = faults.get()
        if current["latency_ms"]:
            await asyncio.sleep(current["latency_ms"] / 1000 * random.uniform(0.8, 1.2))
        if (current["error_rate"] and current["error_route"] in ("", path)
                and random.random() < current["error_rate"]):
            return JSONResponse({"error": "injected fault (error_rate)"}, status_code=500)
        return await endpoint(request)

    return wrapper


def route(path: str, endpoint: Endpoint, **options: Any) -> Route:
    """A route whose endpoint the fault knobs reach."""
    return Route(path, knobs(path, endpoint), **options)


def redis_down() -> bool:
    return bool(faults.get()["redis_outage"])


# ------------------------------------------------------------------------ routes

async def index(request: Request) -> JSONResponse:
    return JSONResponse({"service": "demo-api", "routes": [
        "POST /login", "POST /jobs", "GET /jobs/{job_id}", "POST /assist",
        "GET /recipes", "POST /recipes", "WS /ws/chat", "GET|POST /admin/faults",
        "GET /metrics", "GET /healthz"]})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def login(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if "token" in body:
        auth_type, ok = "token", secrets.compare_digest(str(body["token"]), DEMO_TOKEN)
    else:
        auth_type = "password"
        ok = secrets.compare_digest(str(body.get("password", "")), DEMO_PASSWORD)
    auth_attempts.labels(auth_type, "success" if ok else "failure").inc()
    if not ok:
        log.warning("login_failed", auth_type=auth_type, user_id=body.get("username"))
        return JSONResponse({"error": "invalid credentials"}, status_code=401)
    log.info("login_succeeded", auth_type=auth_type, user_id=body.get("username"))
    return JSONResponse({"session": secrets.token_hex(8)})


async def create_job(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    pages = body.get("pages", random.randint(1, 8)) if isinstance(body, dict) else 1
    if not isinstance(pages, int) or not 1 <= pages <= 50:
        return JSONResponse({"error": "pages must be an integer from 1 to 50"}, status_code=422)
    if redis_down():
        return JSONResponse({"error": "queue unavailable"}, status_code=503)
    # The document reference repeats now and then, so the worker's cache gets hits.
    payload: dict[str, Any] = {"pages": pages, "document": f"doc-{random.randint(1, 40)}"}
    try:
        await enqueue_async(request.app.state.redis, settings.QUEUE, payload, job_type="ocr")
    except Exception as exc:  # Redis down or paused: say so, the job was not queued
        log.error("enqueue_failed", error_type=type(exc).__name__)
        return JSONResponse({"error": "queue unavailable"}, status_code=503)
    with contextlib.suppress(Exception):
        await request.app.state.redis.set(f"demo:job:{payload['job_id']}", "queued", ex=3600)
    return JSONResponse({"job_id": payload["job_id"],
                         "correlation_id": payload["correlation_id"],
                         "status": "queued"}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    job_id = request.path_params["job_id"]
    if redis_down():
        return JSONResponse({"error": "queue unavailable"}, status_code=503)
    try:
        status = await request.app.state.redis.get(f"demo:job:{job_id}")
    except Exception:
        return JSONResponse({"error": "queue unavailable"}, status_code=503)
    if status is None:
        return JSONResponse({"error": "unknown job"}, status_code=404)
    return JSONResponse({"job_id": job_id, "status": status.decode()})


async def assist(request: Request) -> JSONResponse:
    """Ask the fake LLM provider; record tokens (and so cost) and the call's duration."""
    try:
        body = await request.json()
    except ValueError:
        body = {}
    prompt = str(body.get("prompt", "Suggest a dinner.")) if isinstance(body, dict) else ""
    client: httpx.AsyncClient = request.app.state.llm
    request_body = {"model": LLM_MODEL, "messages": [{"role": "user", "content": prompt}]}
    started = time.perf_counter()
    response = None
    for attempt in range(2):
        try:
            response = await client.post("/v1/chat/completions", json=request_body)
        except httpx.HTTPError as exc:
            log.warning("llm_call_failed", error_type=type(exc).__name__)
            return JSONResponse({"error": "LLM provider unreachable"}, status_code=502)
        if response.status_code != 429 or attempt:
            break
        record_retry(LLM_PROVIDER, "chat")
        await asyncio.sleep(0.2)
    record_llm_duration(LLM_PROVIDER, LLM_MODEL, time.perf_counter() - started)
    assert response is not None
    if response.status_code >= 400:
        return JSONResponse({"error": f"LLM provider answered {response.status_code}"},
                            status_code=502 if response.status_code != 429 else 429)
    usage = response.json().get("usage", {})
    tokens_in = int(usage.get("prompt_tokens", 0))
    tokens_out = int(usage.get("completion_tokens", 0))
    record_llm_tokens(LLM_PROVIDER, LLM_MODEL, input_tokens=tokens_in, output_tokens=tokens_out)
    return JSONResponse({"answer": response.json()["choices"][0]["message"]["content"],
                         "tokens": {"input": tokens_in, "output": tokens_out}})


# ------------------------------------------------------------------------ SQLite

RECIPES = ["tomato soup", "lentil curry", "pancakes", "green salad", "mushroom risotto",
           "bean chili", "fried rice", "apple pie", "pesto pasta", "onion tart"]


def db_path() -> Path:
    return settings.run_dir() / "demo-api.sqlite3"


def _db(operation: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    started = time.perf_counter()
    try:
        with contextlib.closing(sqlite3.connect(db_path(), timeout=5)) as conn, conn:
            return conn.execute(sql, params).fetchall()
    finally:
        db_seconds.labels("sqlite", operation).observe(time.perf_counter() - started)


def init_db() -> None:
    db_path().parent.mkdir(parents=True, exist_ok=True)
    _db("CREATE", "CREATE TABLE IF NOT EXISTS recipes (id INTEGER PRIMARY KEY, name TEXT, "
                  "minutes INTEGER)")
    if not _db("SELECT", "SELECT 1 FROM recipes LIMIT 1"):
        for name in RECIPES:
            _db("INSERT", "INSERT INTO recipes (name, minutes) VALUES (?, ?)",
                (name, random.randint(10, 90)))


async def list_recipes(request: Request) -> JSONResponse:
    query = request.query_params.get("q", "")
    rows = await asyncio.to_thread(
        _db, "SELECT", "SELECT id, name, minutes FROM recipes WHERE name LIKE ? "
                       "ORDER BY minutes LIMIT 20", (f"%{query}%",))
    return JSONResponse([{"id": r[0], "name": r[1], "minutes": r[2]} for r in rows])


async def add_recipe(request: Request) -> JSONResponse:
    body = await request.json()
    name = str(body.get("name", "")).strip()[:80] if isinstance(body, dict) else ""
    if not name:
        return JSONResponse({"error": "name is required"}, status_code=422)
    await asyncio.to_thread(_db, "INSERT", "INSERT INTO recipes (name, minutes) VALUES (?, ?)",
                            (name, int(body.get("minutes", 30))))
    return JSONResponse({"name": name}, status_code=201)


# --------------------------------------------------------------------- WebSocket

async def chat_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text[:200]}")
    except WebSocketDisconnect:
        pass


# ------------------------------------------------------------------------ admin

async def get_faults(request: Request) -> JSONResponse:
    return JSONResponse(faults.get())


async def set_faults(request: Request) -> JSONResponse:
    """Merge switches into the faults file the worker and the launcher read too."""
    try:
        change = settings.clean_faults(await request.json())
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    current = {**faults.get(), **change}
    settings.write_faults(current)
    faults.get(fresh=True)
    log.warning("faults_changed", extra_faults=current, correlation_id=get_correlation_id())
    return JSONResponse(current)


# --------------------------------------------------------------------------- app

@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    import redis.asyncio as aioredis

    configure_logging(service="demo-api")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one line per call is noise here
    pricing.export()
    await asyncio.to_thread(init_db)
    app.state.redis = aioredis.Redis.from_url(settings.redis_url(), socket_timeout=1.0,
                                              socket_connect_timeout=1.0)
    app.state.llm = instrument_httpx(
        httpx.AsyncClient(base_url=settings.url("fake_services"), timeout=5.0),
        LLM_PROVIDER, operation_from="chat")
    sampler = ResourceSampler(disk_paths=(str(settings.run_dir()),))
    await sampler.start_async()
    log.info("api_started", port=settings.port("api"))
    try:
        yield
    finally:
        await sampler.stop_async()
        await app.state.llm.aclose()
        await app.state.redis.aclose()


app = Starlette(
    routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics_app()),
        route("/login", login, methods=["POST"]),
        route("/jobs", create_job, methods=["POST"]),
        route("/jobs/{job_id}", job_status),
        route("/assist", assist, methods=["POST"]),
        route("/recipes", list_recipes, methods=["GET"]),
        route("/recipes", add_recipe, methods=["POST"]),
        WebSocketRoute("/ws/chat", chat_socket),
        Route("/admin/faults", get_faults, methods=["GET"]),
        Route("/admin/faults", set_faults, methods=["POST"]),
    ],
    lifespan=lifespan,
)
app.add_middleware(HttpMetricsMiddleware, record_sizes=True)  # the dashboards' payload panels


def main() -> None:
    import uvicorn

    uvicorn.run(app, host=settings.host(), port=settings.port("api"), log_config=None,
                access_log=False, ws="websockets")


if __name__ == "__main__":
    main()
