"""A small asyncio HTTP/1.1 server for ``/metrics``, for processes with no web app.

It speaks just enough HTTP/1.1 for Prometheus scrapes, curl and browsers:
request line and headers are parsed with limits (oversized or malformed
requests, and HTTP/1.1 requests without exactly one valid ``Host``, are
answered 400/414/431 and the connection closed), the request head has one
deadline, keep-alive is supported, TLS (with optional client certificates)
is available, and ``/metrics`` is served by a
:class:`~promkit.exporters.MetricsApp` through a plain ASGI ``http`` scope. An error
inside a request is answered 500 and logged; it never stops the server.

Connections hold slots (``ServerLimits.max_connections``): at capacity a new
connection evicts the one idle the longest, so silent or slow clients cannot
lock scrapes out, and only when every slot is busy is it answered 503 (see
``_connections``).

This module is the server's lifecycle: :class:`MetricsServer` on a daemon
thread (:func:`start_metrics_server`) or :func:`serve_metrics` in the current
event loop. The parts live beside it: limits (``_server_limits``), request
parsing and Host validation (``_http_request``), connection slots and
eviction (``_connections``), connection handling (``_http_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable

from promkit.exporters._asgi import MetricsApp
from promkit.exporters._http_server import HttpServer
from promkit.exporters._server_limits import ServerLimits
from promkit.exporters._tls import StrPath, server_tls_context
from promkit.instrument.registry import MetricsRegistry

__all__ = ["MetricsServer", "ServerLimits", "serve_metrics", "start_metrics_server"]

logger = logging.getLogger("promkit.server")


class MetricsServer:
    """A running exporter server on a background daemon thread (see :func:`start_metrics_server`).

    Usable as a context manager; ``stop()`` closes the socket and joins the thread.
    """

    def __init__(self, app: MetricsApp, host: str, port: int,
                 limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._http = HttpServer(app, limits, ssl_context)
        self._requested = (host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="promkit-metrics-server",
                                        daemon=True)

    @property
    def host(self) -> str:
        """The address the server is bound to."""
        return self._http.host

    @property
    def port(self) -> int:
        """The port the server is bound to (the actual one when started with port 0)."""
        return self._http.port

    @property
    def url(self) -> str:
        """The full ``/metrics`` URL, e.g. ``http://127.0.0.1:9464/metrics`` (https with TLS)."""
        return self._http.url

    def _start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            if self._ready.is_set():
                logger.exception("promkit metrics server stopped on an error")
            else:
                self._error = exc
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        await self._http.start(*self._requested)
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self._http.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, free the port and join the thread; calling it again does nothing."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "serving"
        return f"<MetricsServer {self.url} {state}>"


def start_metrics_server(port: int = 0, host: str = "127.0.0.1",
                         registry: MetricsRegistry | None = None, token: str | None = None,
                         *, limits: ServerLimits | None = None,
                         certfile: StrPath | None = None, keyfile: StrPath | None = None,
                         client_cafile: StrPath | None = None,
                         client_capath: StrPath | None = None,
                         client_auth_required: bool = False) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a background daemon thread.

    ``port=0`` picks a free port (read it back from ``.port``); ``registry=None``
    serves the default registry. With ``token``, scrapes need
    ``Authorization: Bearer <token>``. Raises ``OSError`` when the address
    cannot be bound. Call ``.stop()`` (or use it as a context manager) to end it.

    TLS, as prometheus-client's ``start_http_server``: ``certfile`` and
    ``keyfile`` (PEM; without ``keyfile`` the key is read from ``certfile``)
    serve ``https``; ``client_cafile`` / ``client_capath`` verify client
    certificates against those CAs, and ``client_auth_required=True`` refuses
    clients without one. A missing, unreadable or mismatched file raises
    ``ValueError`` naming it.
    """
    _check_port(port)
    context = server_tls_context(certfile, keyfile, client_cafile=client_cafile,
                                 client_capath=client_capath,
                                 client_auth_required=client_auth_required)
    server = MetricsServer(MetricsApp(registry, token=token), host, port, limits, context)
    server._start()
    return server


async def serve_metrics(host: str, port: int, registry: MetricsRegistry | None = None,
                        token: str | None = None, *, limits: ServerLimits | None = None,
                        on_started: Callable[[str], None] | None = None,
                        certfile: StrPath | None = None, keyfile: StrPath | None = None,
                        client_cafile: StrPath | None = None,
                        client_capath: StrPath | None = None,
                        client_auth_required: bool = False) -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` in the current event loop, forever.

    Cancel the task to stop it (the socket is closed on the way out).
    ``on_started`` is called with the ``/metrics`` URL once the port is bound.
    TLS arguments as :func:`start_metrics_server`; they are checked before the
    port is bound.
    """
    _check_port(port)
    context = server_tls_context(certfile, keyfile, client_cafile=client_cafile,
                                 client_capath=client_capath,
                                 client_auth_required=client_auth_required)
    http = HttpServer(MetricsApp(registry, token=token), limits, context)
    await http.start(host, port)
    try:
        if on_started is not None:
            on_started(http.url)
        await asyncio.Event().wait()  # until cancelled
    finally:
        await http.close()


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")
