"""An app behind promkit's middleware whose only output is log lines (uvicorn logging tests).

Run as ``uvicorn_logs_app:app``. With ``APP_CONFIGURES_LOGGING=1`` it calls
``configure_logging("uvicorn-logs")`` at import, as an app started with plain
``uvicorn app:app`` does; without it, logging is set up by uvicorn's
``--log-config`` (``promkit.uvicorn_log_config``). ``/`` answers readiness
probes, ``/ping`` the requests the test counts, ``/warn`` logs a warning through
the stdlib.
"""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from promkit import HttpMetricsMiddleware, configure_logging

if os.environ.get("APP_CONFIGURES_LOGGING") == "1":
    configure_logging("uvicorn-logs")


async def ready(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def ping(request: object) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def warn(request: object) -> PlainTextResponse:
    logging.getLogger("app").warning("something odd")
    return PlainTextResponse("warned")


app = Starlette(routes=[Route("/", ready), Route("/ping", ping), Route("/warn", warn)])
app.add_middleware(HttpMetricsMiddleware)
