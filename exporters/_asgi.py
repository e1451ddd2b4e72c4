"""The ``/metrics`` ASGI app: text, OpenMetrics or JSON, gzip, optional token."""

from __future__ import annotations

import gzip
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread

from exporters._exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    DEFAULT_CHUNK_SERIES,
    foreign_exposition,
    render_json,
    render_openmetrics,
    render_text,
)
from exporters._multiprocess import multiprocess_exposition, multiprocess_json
from instrument.registry import MetricsRegistry, default_registry

__all__ = ["MetricsApp", "metrics_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTENT_TYPE_JSON = "application/json"
# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def choose_format(accept: str, query: str) -> str:
    """``text``, ``openmetrics`` or ``json`` from the Accept header and ``?format=``."""
    requested = parse_qs(query).get("format", [""])[0].lower()
    if requested in ("text", "openmetrics", "json"):
        return requested
    accept = accept.lower()
    if "application/openmetrics-text" in accept:
        return "openmetrics"
    if "application/json" in accept:
        return "json"
    return "text"


class MetricsApp:
    """An ASGI app serving a :class:`MetricsRegistry` (see :func:`metrics_app`)."""

    def __init__(self, registry: MetricsRegistry | None = None, *, token: str | None = None,
                 chunk_series: int = DEFAULT_CHUNK_SERIES, gzip_level: int = 1) -> None:
        if token is not None and not token.strip():
            raise ValueError("metrics token is empty; pass None to serve without a token")
        if chunk_series < 1:
            raise ValueError(f"chunk_series must be at least 1, not {chunk_series}")
        self.registry = registry if registry is not None else default_registry()
        self._expected_auth = f"Bearer {token}".encode() if token else None
        self._chunk_series = chunk_series
        self._gzip_level = gzip_level
        self._duration = self.registry.histogram("promkit_exposition_duration_seconds")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websocket: not ours, close by returning
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8",
                           [(b"allow", b"GET, HEAD")])
            return
        if self._expected_auth is not None and not hmac.compare_digest(
            _header(scope, b"authorization").encode("latin-1"), self._expected_auth
        ):
            await _respond(send, 401, b"unauthorized\n", "text/plain; charset=utf-8",
                           [(b"www-authenticate", b'Bearer realm="metrics"')])
            return
        fmt = choose_format(_header(scope, b"accept"), scope.get("query_string", b"").decode("latin-1"))
        started = time.perf_counter()
        body, content_type = await self.render(fmt)
        headers: list[tuple[bytes, bytes]] = [(b"vary", b"accept, accept-encoding")]
        if len(body) >= _GZIP_MIN_BYTES and "gzip" in _header(scope, b"accept-encoding").lower():
            # zlib releases the GIL, so compressing in a thread keeps the loop free.
            body = await anyio.to_thread.run_sync(gzip.compress, body, self._gzip_level)
            headers.append((b"content-encoding", b"gzip"))
        self._duration.labels(fmt).observe(time.perf_counter() - started)
        if scope["method"] == "HEAD":
            headers.append((b"content-length", str(len(body)).encode()))
            body = b""
        await _respond(send, 200, body, content_type, headers)

    async def render(self, fmt: str) -> tuple[bytes, str]:
        """The exposition body and its content type, rendered without stalling the loop."""
        registry = self.registry
        if registry.multiprocess:
            if fmt == "json":
                data = await anyio.to_thread.run_sync(multiprocess_json)
                return json.dumps(data).encode(), CONTENT_TYPE_JSON
            text = await anyio.to_thread.run_sync(multiprocess_exposition, fmt == "openmetrics")
            return text.encode(), _content_type(fmt)
        if fmt == "json":
            return json.dumps(render_json(registry)).encode(), CONTENT_TYPE_JSON
        openmetrics = fmt == "openmetrics"
        renderer = render_openmetrics if openmetrics else render_text
        parts: list[str] = []
        for chunk in renderer(registry, self._chunk_series):
            parts.append(chunk)
            await anyio.sleep(0)  # let concurrent requests run between chunks
        parts.append(await anyio.to_thread.run_sync(
            foreign_exposition, registry.collector_registry, openmetrics))
        if openmetrics:
            parts.append("# EOF\n")
        return "".join(parts).encode(), _content_type(fmt)


def _content_type(fmt: str) -> str:
    return CONTENT_TYPE_OPENMETRICS if fmt == "openmetrics" else CONTENT_TYPE_TEXT


async def _respond(send: Send, status: int, body: bytes, content_type: str,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode())]
    if not any(k == b"content-length" for k, _ in extra or ()):
        headers.append((b"content-length", str(len(body)).encode()))
    headers.extend(extra or ())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def metrics_app(registry: MetricsRegistry | None = None, *, token: str | None = None,
                chunk_series: int = DEFAULT_CHUNK_SERIES) -> MetricsApp:
    """An ASGI app serving ``registry`` (None: the default registry).

    Mount it in Starlette or FastAPI, e.g. ``Mount("/metrics", metrics_app())``
    or ``app.mount("/metrics", metrics_app())``. It answers GET and HEAD with
    Prometheus text 0.0.4, OpenMetrics 1.0 (``Accept:
    application/openmetrics-text``) or a JSON snapshot (``Accept:
    application/json`` or ``?format=json``), gzipped when the client accepts
    it. With ``token``, requests without ``Authorization: Bearer <token>`` get
    401 and no data.
    """
    return MetricsApp(registry, token=token, chunk_series=chunk_series)
