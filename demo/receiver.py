"""The demo's webhook receiver (default http://127.0.0.1:9099).

Receives the worker's job-completion webhooks (``POST /webhook``) and
Alertmanager notifications (generic webhook JSON, ``POST /alertmanager``;
any other POST path is accepted too). Each one is printed as one JSON log
line with its correlation ID, and the last ``DEMO_RECEIVER_KEEP`` (200) are
kept in memory: ``GET /received?kind=alertmanager|job&limit=N``. It also
serves the repository's runbook pages, ``GET /runbooks/<AlertName>.md`` (the
demo config's ``runbook_base``), so the ``runbook_url`` of a demo alert opens.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from demo import settings
from promkit import configure_logging
from promkit.instrument.correlation import CORRELATION_HEADER, extract

log = structlog.get_logger("demo.receiver")
KEEP = int(os.environ.get("DEMO_RECEIVER_KEEP", "200"))
received: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP)
sequence = itertools.count(1)


def _kind(body: Any) -> str:
    if isinstance(body, dict) and "alerts" in body and "groupKey" in body:
        return "alertmanager"
    if isinstance(body, dict) and str(body.get("event", "")).startswith("job."):
        return "job"
    return "other"


async def receive(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "expected a JSON body"}, status_code=400)
    kind = _kind(body)
    correlation_id = extract(body if isinstance(body, dict) else {}) or extract(
        {"correlation_id": request.headers.get(CORRELATION_HEADER, "")})
    entry: dict[str, Any] = {"seq": next(sequence), "received_at": time.time(), "kind": kind,
                             "path": request.url.path, "correlation_id": correlation_id,
                             "body": body}
    received.append(entry)
    summary: dict[str, Any] = {}
    if kind == "alertmanager":
        summary = {"notification_status": body.get("status"),
                   "alertnames": sorted({a.get("labels", {}).get("alertname", "?")
                                         for a in body.get("alerts", [])}),
                   "alerts": len(body.get("alerts", []))}
    elif kind == "job":
        summary = {"job_id": body.get("job_id"), "job_status": body.get("status")}
    log.info("webhook_received", kind=kind, path=request.url.path,
             correlation_id=correlation_id, **summary)
    return JSONResponse({"ok": True, "seq": entry["seq"]})


async def list_received(request: Request) -> JSONResponse:
    kind = request.query_params.get("kind")
    try:
        limit = max(1, min(int(request.query_params.get("limit", KEEP)), KEEP))
    except ValueError:
        return JSONResponse({"error": "limit must be a number"}, status_code=422)
    items = [e for e in received if kind is None or e["kind"] == kind]
    return JSONResponse(items[-limit:])


RUNBOOKS = Path(__file__).resolve().parents[1] / "docs" / "runbooks"


async def runbook(request: Request) -> PlainTextResponse:
    name = request.path_params["name"]
    path = RUNBOOKS / name
    if not re.fullmatch(r"[A-Za-z0-9]+\.md", name) or not path.is_file():
        return PlainTextResponse(f"no runbook {name}\n", status_code=404)
    return PlainTextResponse(path.read_text(encoding="utf-8"),
                             media_type="text/markdown; charset=utf-8")


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[
    Route("/healthz", healthz),
    Route("/received", list_received, methods=["GET"]),
    Route("/runbooks/{name}", runbook, methods=["GET"]),
    Route("/{path:path}", receive, methods=["POST"]),
])


def main() -> None:
    import uvicorn

    configure_logging(service="demo-receiver")
    uvicorn.run(app, host=settings.host(), port=settings.port("receiver"), log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
