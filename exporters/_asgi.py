"""The ``/metrics`` ASGI app: text, OpenMetrics or JSON, gzip, optional token."""

from __future__ import annotations

import gzip
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread

from promkit.exporters._exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    DEFAULT_CHUNK_SERIES,
    foreign_exposition,
    json_chunks,
    render_json_chunks,
    render_openmetrics,
    render_text,
)
from promkit.exporters._multiprocess import multiprocess_exposition, multiprocess_json
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = ["MetricsApp", "metrics_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTENT_TYPE_JSON = "application/json"
# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024
# Streamed bodies go out in pieces of about this size.
_STREAM_BYTES = 64 * 1024


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _media_ranges(header: str) -> list[tuple[str, float]]:
    """``(lowercased media range or coding, q)`` for each entry of an Accept-style header."""
    ranges: list[tuple[str, float]] = []
    for entry in header.lower().split(","):
        value, *params = entry.split(";")
        q = 1.0
        for param in params:
            key, _, raw = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        if value.strip():
            ranges.append((value.strip(), q))
    return ranges


_FORMAT_OF_MEDIA = {
    "application/openmetrics-text": "openmetrics",
    "application/json": "json",
    "text/plain": "text",
}


def choose_format(accept: str, query: str) -> str:
    """``text``, ``openmetrics`` or ``json`` from the Accept header and ``?format=``.

    ``?format=`` wins. Otherwise the Accept entry with the highest q (the first
    of equals) among OpenMetrics, JSON and ``text/plain`` decides; a q of 0
    refuses a format. Anything else, or nothing, gets Prometheus text.
    """
    requested = parse_qs(query).get("format", [""])[0].lower()
    if requested in ("text", "openmetrics", "json"):
        return requested
    best, best_q = "text", 0.0
    for media, q in _media_ranges(accept):
        fmt = _FORMAT_OF_MEDIA.get(media)
        if fmt is not None and q > best_q:
            best, best_q = fmt, q
    return best


def _accepts_gzip(accept_encoding: str) -> bool:
    return any(coding in ("gzip", "x-gzip") and q > 0
               for coding, q in _media_ranges(accept_encoding))


def _bearer_token(authorization: str) -> bytes:
    # The auth scheme is case-insensitive (RFC 9110); the token is compared as given.
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip().encode("latin-1") if scheme.lower() == "bearer" else b""


class MetricsApp:
    """An ASGI app serving a :class:`MetricsRegistry` (see :func:`metrics_app`)."""

    def __init__(self, registry: MetricsRegistry | None = None, *, token: str | None = None,
                 chunk_series: int = DEFAULT_CHUNK_SERIES, gzip_level: int = 1) -> None:
        if token is not None and not token.strip():
            raise ValueError("metrics token is empty; pass None to serve without a token")
        if chunk_series < 1:
            raise ValueError(f"chunk_series must be at least 1, not {chunk_series}")
        self.registry = registry if registry is not None else default_registry()
        self._token = token.encode() if token else None
        self._chunk_series = chunk_series
        # An OpenMetrics or JSON piece costs about 4x a text piece of as many label sets
        # (text reuses cached sample strings: 1.0 ms vs 0.2 ms per 256 at 50k series), so
        # its pieces hold a quarter as many and each turn away from the loop stays short.
        self._heavy_chunk_series = max(1, chunk_series // 4)
        self._gzip_level = gzip_level
        self._duration = self.registry.histogram("promkit_exposition_duration_seconds")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websocket: not ours, close by returning
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8",
                           [(b"allow", b"GET, HEAD")])
            return
        head = method == "HEAD"
        if self._token is not None and not hmac.compare_digest(
            _bearer_token(_header(scope, b"authorization")), self._token
        ):
            await _respond(send, 401, b"unauthorized\n", "text/plain; charset=utf-8",
                           [(b"www-authenticate", b'Bearer realm="metrics"')], head=head)
            return
        fmt = choose_format(_header(scope, b"accept"),
                            scope.get("query_string", b"").decode("latin-1"))
        started = time.perf_counter()
        gzip_ok = _accepts_gzip(_header(scope, b"accept-encoding"))
        if not head and not gzip_ok and (fmt == "json" or not self.registry.multiprocess):
            await self._stream(fmt, send)
            self._duration.labels(fmt).observe(time.perf_counter() - started)
            return
        body, content_type = await self.render(fmt)
        headers: list[tuple[bytes, bytes]] = [(b"vary", b"accept, accept-encoding")]
        if len(body) >= _GZIP_MIN_BYTES and gzip_ok:
            # zlib releases the GIL, so compressing in a thread keeps the loop free.
            body = await anyio.to_thread.run_sync(gzip.compress, body, self._gzip_level)
            headers.append((b"content-encoding", b"gzip"))
        self._duration.labels(fmt).observe(time.perf_counter() - started)
        await _respond(send, 200, body, content_type, headers, head=head)

    async def _text_pieces(self, fmt: str) -> AsyncIterator[str]:
        """Text or OpenMetrics in pieces: promkit's metrics chunk by chunk (the loop
        runs other requests in between), then the other collectors rendered in a
        thread, then ``# EOF`` for OpenMetrics."""
        openmetrics = fmt == "openmetrics"
        renderer = render_openmetrics if openmetrics else render_text
        series = self._heavy_chunk_series if openmetrics else self._chunk_series
        for chunk in renderer(self.registry, series):
            yield chunk
            await anyio.sleep(0)
        yield await anyio.to_thread.run_sync(
            foreign_exposition, self.registry.collector_registry, openmetrics)
        if openmetrics:
            yield "# EOF\n"

    async def _json_pieces(self) -> AsyncIterator[str]:
        """The JSON snapshot, encoded in pieces of a quarter of ``chunk_series`` label sets.

        ``json.dumps`` of the whole document is one C call that holds the GIL
        (a worker thread would stall the loop as much), so each piece is
        snapshotted and encoded on its own and the loop runs in between.
        """
        registry = self.registry
        if registry.multiprocess:
            # Merging the mmap files is Python code, so a thread lets the loop run;
            # the registry's catalog supplies the units the files don't store.
            document = await anyio.to_thread.run_sync(partial(multiprocess_json, registry))
            pieces = json_chunks(document, self._heavy_chunk_series)
        else:
            pieces = render_json_chunks(registry, self._heavy_chunk_series)
        for piece in pieces:
            yield piece
            await anyio.sleep(0)

    def _pieces(self, fmt: str) -> AsyncIterator[str]:
        return self._json_pieces() if fmt == "json" else self._text_pieces(fmt)

    async def _stream(self, fmt: str, send: Send) -> None:
        # Uncompressed: send the body as it is rendered, in pieces of about
        # _STREAM_BYTES, so the server writes while the loop serves other
        # requests instead of holding one large body (chunked transfer encoding).
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", _content_type(fmt).encode()),
            (b"vary", b"accept, accept-encoding"),
        ]})
        pending: list[str] = []
        size = 0
        async for piece in self._pieces(fmt):
            pending.append(piece)
            size += len(piece)
            if size >= _STREAM_BYTES:
                await send({"type": "http.response.body", "body": "".join(pending).encode(),
                            "more_body": True})
                pending.clear()
                size = 0
        await send({"type": "http.response.body", "body": "".join(pending).encode(),
                    "more_body": False})

    async def render(self, fmt: str) -> tuple[bytes, str]:
        """The exposition body and its content type, rendered without stalling the loop."""
        registry = self.registry
        if registry.multiprocess and fmt != "json":
            # The registry's catalog supplies the units the mmap files don't store.
            text = await anyio.to_thread.run_sync(
                partial(multiprocess_exposition, fmt == "openmetrics", registry=registry))
            return text.encode(), _content_type(fmt)
        parts = [piece async for piece in self._pieces(fmt)]
        return "".join(parts).encode(), _content_type(fmt)


def _content_type(fmt: str) -> str:
    if fmt == "json":
        return CONTENT_TYPE_JSON
    return CONTENT_TYPE_OPENMETRICS if fmt == "openmetrics" else CONTENT_TYPE_TEXT


async def _respond(send: Send, status: int, body: bytes, content_type: str,
                   extra: list[tuple[bytes, bytes]] | None = None, *, head: bool = False) -> None:
    # A HEAD response carries the GET response's headers (Content-Length included), no body.
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    headers.extend(extra or ())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


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

    Route it in Starlette or FastAPI, e.g. ``Route("/metrics", metrics_app())``
    or ``app.add_route("/metrics", metrics_app())``; a ``Mount`` works too, but
    Starlette then redirects ``/metrics`` to ``/metrics/``. It answers GET and HEAD with
    Prometheus text 0.0.4, OpenMetrics 1.0 (``Accept:
    application/openmetrics-text``) or a JSON snapshot (``Accept:
    application/json`` or ``?format=json``), gzipped when the client accepts
    it. With ``token``, requests without ``Authorization: Bearer <token>`` get
    401 and no data. An uncompressed answer is rendered in pieces of
    ``chunk_series`` label sets (a quarter of that for OpenMetrics and JSON, which
    cost more per label set) and the event loop serves other requests in between.
    """
    return MetricsApp(registry, token=token, chunk_series=chunk_series)
