"""The exporter server's connection handling: one asyncio server, HTTP/1.1 in and out.

:class:`HttpServer` binds one socket, admits each connection to a slot
(:mod:`promkit.exporters._connections`), reads its requests
(:mod:`promkit.exporters._http_request`), answers ``/metrics`` through the
:class:`~promkit.exporters.MetricsApp` with a plain ASGI ``http`` scope (``/``
is a small index page) and writes the responses, keep-alive included. An
error inside a request is answered 500 and logged; it never stops the server.
The thread and foreground servers of :mod:`promkit.exporters._server` run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
from http import HTTPStatus
from typing import Any

from promkit.exporters._asgi import Message, MetricsApp
from promkit.exporters._connections import Connection, ConnectionSlots, drop
from promkit.exporters._http_request import ClientGone, HttpError, Request, RequestReader
from promkit.exporters._server_limits import ServerLimits

__all__ = ["HttpServer", "format_url"]

logger = logging.getLogger("promkit.server")

# Room for a burst of new connections while the loop is busy (the kernel caps it at somaxconn).
_BACKLOG = 1024
_TLS_SHUTDOWN_TIMEOUT = 5.0
# Hop-by-hop framing is ours to decide, whatever the app says.
_FRAMING_HEADERS = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})

_INDEX_HTML = (
    b"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>promkit exporter</title>"
    b"</head>\n<body><h1>promkit exporter</h1><p><a href=\"/metrics\">/metrics</a></p>"
    b"</body></html>\n"
)


def format_url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    # One socket, bound by us: "localhost" would otherwise bind IPv4 and IPv6
    # separately, and with port 0 each would get a different port.
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve {host!r}")
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class HttpServer:
    """The connection handling shared by the thread and the foreground servers."""

    def __init__(self, app: MetricsApp, limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.limits = limits if limits is not None else ServerLimits()
        self.ssl_context = ssl_context
        self.host = ""
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()  # every connection, with a slot or not
        self.slots = ConnectionSlots(self.limits.max_connections)
        self._requests = RequestReader(self.limits)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        """The ``/metrics`` URL this server answers on."""
        return format_url(self.host, self.port, self.scheme) + "/metrics"

    async def start(self, host: str, port: int) -> None:
        sock = _bind(host, port)
        limits = self.limits
        tls: dict[str, Any] = {}
        if self.ssl_context is not None:
            # asyncio completes the handshake before it hands us the connection,
            # so a handshaking connection holds no slot: bound it like a request head.
            tls = {"ssl": self.ssl_context, "ssl_handshake_timeout": limits.header_timeout}
            if sys.version_info >= (3, 11):
                # Waiting for a client's close_notify (asyncio's default: 30 s) keeps
                # the socket of a connection that already gave up its slot.
                tls["ssl_shutdown_timeout"] = _TLS_SHUTDOWN_TIMEOUT
        try:
            self._server = await asyncio.start_server(
                self._connection, sock=sock, backlog=_BACKLOG,
                limit=max(limits.max_request_line, limits.max_header_line) + 2, **tls,
            )
        except BaseException:
            sock.close()
            raise
        self.host, self.port = sock.getsockname()[:2]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        connections = list(self._connections)
        for connection in connections:
            drop(connection)
        if connections:
            await asyncio.gather(*(c.task for c in connections), return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self._server = None

    # -- one connection -----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = Connection(task, writer)
        self._connections.add(connection)
        try:
            if not self.slots.admit(connection):
                await self._write_error(writer, 503, "too many connections")
                await self._discard_input(reader, writer)
                return
            await self._serve_connection(connection, reader, writer)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stopped reading: nothing to answer
        except asyncio.CancelledError:
            # close() cancels idle keep-alive connections (Prometheus always holds
            # one), eviction cancels idle ones; ending quietly keeps asyncio from
            # logging the cancellation as an error in the stream protocol's callback.
            pass
        except Exception:
            logger.exception("promkit metrics server: unexpected error on a connection")
        finally:
            self._connections.discard(connection)
            self.slots.release(connection)
            if connection.abort:
                writer.transport.abort()  # free the socket now, flush nothing
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve_connection(self, connection: Connection, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        limits, slots = self.limits, self.slots
        for served in range(limits.max_requests_per_connection):
            slots.set_idle(connection)
            try:
                request = await self._requests.read(reader, writer, first=served == 0)
            except ClientGone:
                return
            except HttpError as err:
                slots.set_busy(connection)
                await self._write_error(writer, err.status, err.message)
                slots.set_idle(connection)
                await self._discard_input(reader, writer)
                return
            slots.set_busy(connection)
            keep_alive = request.keep_alive and served + 1 < limits.max_requests_per_connection
            status, headers, body = await self._dispatch(request, writer)
            await self._write_response(writer, status, headers, body, keep_alive,
                                       head=request.method == "HEAD")
            if not keep_alive:
                return

    # -- routing and the ASGI call -----------------------------------------------------

    async def _dispatch(self, request: Request, writer: asyncio.StreamWriter
                        ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if request.path == "/metrics":
            return await self._call_app(request, writer)
        if request.path == "/":
            if request.method not in ("GET", "HEAD"):
                return 405, [(b"allow", b"GET, HEAD")], b""
            headers = [(b"content-type", b"text/html; charset=utf-8"),
                       (b"content-length", str(len(_INDEX_HTML)).encode())]
            return 200, headers, b"" if request.method == "HEAD" else _INDEX_HTML
        body = b"not found; metrics are at /metrics\n"
        return 404, [(b"content-type", b"text/plain; charset=utf-8")], body

    async def _call_app(self, request: Request, writer: asyncio.StreamWriter
                        ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        peer = writer.get_extra_info("peername")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "method": request.method,
            "scheme": self.scheme,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query_string,
            "root_path": "",
            "headers": request.headers,
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": (self.host, self.port),
        }
        done = asyncio.Event()
        body_given = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        complete = False

        async def receive() -> Message:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await done.wait()  # the response is complete (we buffer it): then "disconnect"
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers, complete
            kind = message["type"]
            if kind == "http.response.start":
                if status is not None:
                    raise RuntimeError("http.response.start sent twice")
                status = int(message["status"])
                headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            elif kind == "http.response.body":
                if status is None or complete:
                    raise RuntimeError(f"{kind} sent before http.response.start or after "
                                       "the last body part")
                chunks.append(bytes(message.get("body", b"")))
                complete = not message.get("more_body", False)

        try:
            await self.app(scope, receive, send)
        except Exception:
            if not complete:
                logger.exception("promkit metrics server: error while serving %s %s",
                                 request.method, request.path)
                return self._internal_error()
            logger.exception("promkit metrics server: error after a complete response")
        finally:
            done.set()
        if status is None:
            logger.error("promkit metrics server: the app returned without a response")
            return self._internal_error()
        return status, headers, b"".join(chunks)

    @staticmethod
    def _internal_error() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 500, [(b"content-type", b"text/plain; charset=utf-8")], b"internal server error\n"

    # -- writing -------------------------------------------------------------------------

    async def _write_response(self, writer: asyncio.StreamWriter, status: int,
                              headers: list[tuple[bytes, bytes]], body: bytes,
                              keep_alive: bool, *, head: bool = False) -> None:
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        lines = [b"HTTP/1.1 %d %s" % (status, reason)]
        has_length = False
        for name, value in headers:
            if name in _FRAMING_HEADERS:
                continue
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                # a header injection from the app: refuse the whole response
                logger.error("promkit metrics server: the app sent a header with a line break")
                await self._write_response(writer, *self._internal_error(), keep_alive)
                return
            has_length = has_length or name == b"content-length"
            lines.append(name + b": " + value)
        if not has_length:
            lines.append(b"content-length: %d" % len(body))
        lines.append(b"connection: keep-alive" if keep_alive else b"connection: close")
        # HEAD: the headers describe the body we would send, but no body follows.
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body))
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout)

    async def _write_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = (message + "\n").encode()
        await self._write_response(
            writer, status, [(b"content-type", b"text/plain; charset=utf-8")], body, False)

    @staticmethod
    async def _discard_input(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Closing a socket with unread input makes the kernel send RST, and the
        # client may then lose our error response: half-close (the client sees
        # the end of our response), then read and drop what is left, briefly.
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()

        async def drain() -> None:
            for _ in range(64):
                if not await reader.read(65536):
                    return

        with contextlib.suppress(Exception):
            await asyncio.wait_for(drain(), 1.0)

