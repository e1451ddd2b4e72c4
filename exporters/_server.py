"""A small asyncio HTTP/1.1 server for ``/metrics``, for processes with no web app.

It speaks just enough HTTP/1.1 for Prometheus scrapes, curl and browsers:
request line and headers are parsed with limits (oversized or malformed
requests, and HTTP/1.1 requests without exactly one valid ``Host``, are
answered 400/414/431 and the connection closed), the request head has one
deadline, keep-alive is supported, TLS (with optional client certificates)
is available, and ``/metrics`` is served by a
:class:`~promkit.exporters.MetricsApp` through a plain ASGI ``http`` scope. An error
inside a request is answered 500 and logged; it never stops the server.

Connections are slots (``ServerLimits.max_connections``). A connection whose
current request is not fully received — a new one that has sent nothing, a
keep-alive one between requests, one part-way through its headers or body —
is idle; one whose request is being answered is busy. A new connection at
capacity evicts the connection idle the longest (closed without a response),
so silent or slow clients cannot lock scrapes out; only when every slot is
busy is it answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from promkit.exporters._asgi import Message, MetricsApp
from promkit.exporters._tls import StrPath, server_tls_context
from promkit.instrument.registry import MetricsRegistry

__all__ = ["MetricsServer", "ServerLimits", "serve_metrics", "start_metrics_server"]

logger = logging.getLogger("promkit.server")

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Field values may hold visible characters, spaces and tabs, nothing else below 0x20 or DEL.
_BAD_VALUE_CHARS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(rb"^[\x21-\x7e]+$")
# RFC 9112 section 3.2 / RFC 3986: Host = uri-host [ ":" port ], where uri-host is
# an IP-literal in brackets, or a reg-name (which covers IPv4 and DNS names; may be empty).
_HOST = re.compile(
    rb"^(?:\[[0-9A-Za-z._~!$&'()*+,;=:%-]+\]"
    rb"|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?$")
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


@dataclass(frozen=True)
class ServerLimits:
    """Size, count and time limits of the exporter server (sizes in bytes, times in seconds)."""

    max_request_line: int = 8192
    max_header_line: int = 8192
    max_headers: int = 100
    max_header_bytes: int = 65536
    max_body_bytes: int = 65536
    header_timeout: float = 10.0
    """From a request's first byte (a new connection: from accept) to the end of its headers."""
    body_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    """How long a keep-alive connection may wait for the first byte of its next request."""
    write_timeout: float = 30.0
    max_requests_per_connection: int = 1000
    max_connections: int = 256
    """Open connections; past it the longest-idle one is evicted, or 503 when all are busy."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"ServerLimits.{name} must be positive, not {value!r}")


class _HttpError(Exception):
    """A request we answer with an error status, then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    """The client closed or went silent before sending a request: close quietly."""


@dataclass
class _Request:
    method: str
    raw_path: bytes
    path: str
    query_string: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def _header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _tokens(value: bytes | None) -> set[bytes]:
    if not value:
        return set()
    return {part.strip().lower() for part in value.split(b",")}


@dataclass(eq=False)
class _Connection:
    """One accepted connection: its task and writer, and whether to abort it on the way out."""

    task: asyncio.Task[Any]
    writer: asyncio.StreamWriter
    abort: bool = field(default=False)


def _format_url(host: str, port: int, scheme: str = "http") -> str:
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


class _HttpServer:
    """The connection handling shared by the thread and the foreground servers."""

    def __init__(self, app: MetricsApp, limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.limits = limits if limits is not None else ServerLimits()
        self.ssl_context = ssl_context
        self.host = ""
        self.port = 0
        self.evicted = 0
        """Connections evicted so far to make room for new ones."""
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()  # every connection, with a slot or not
        # The connections holding a slot, and those of them that are idle, the
        # longest-idle first (insertion order: a connection re-enters at the end).
        self._open: set[_Connection] = set()
        self._idle: OrderedDict[_Connection, None] = OrderedDict()

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        """The ``/metrics`` URL this server answers on."""
        return _format_url(self.host, self.port, self.scheme) + "/metrics"

    @property
    def open_connections(self) -> int:
        """Connections holding a slot (idle or busy)."""
        return len(self._open)

    @property
    def idle_connections(self) -> int:
        """Connections holding a slot whose current request is not fully received."""
        return len(self._idle)

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
            self._drop(connection)
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
        connection = _Connection(task, writer)
        self._connections.add(connection)
        try:
            if not self._admit(connection):
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
            self._open.discard(connection)
            self._idle.pop(connection, None)
            if connection.abort:
                writer.transport.abort()  # free the socket now, flush nothing
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    # -- slots: admission, idle and busy, eviction ---------------------------------------

    def _admit(self, connection: _Connection) -> bool:
        """Give ``connection`` a slot, evicting the longest-idle one at capacity."""
        if len(self._open) >= self.limits.max_connections:
            if not self._idle:
                return False  # every slot is answering a request
            victim, _ = self._idle.popitem(last=False)
            self._open.discard(victim)
            self._drop(victim)
            self.evicted += 1
        self._open.add(connection)
        return True

    @staticmethod
    def _drop(connection: _Connection) -> None:
        """Close ``connection`` now, without a response, and end its task."""
        connection.abort = True
        # Aborting the transport first ends the task even when the cancellation is
        # lost: on Python < 3.12 asyncio.wait_for swallows a cancel that arrives as
        # the awaited operation completes, and the task would go on to its next read.
        connection.writer.transport.abort()
        connection.task.cancel()

    def _set_idle(self, connection: _Connection) -> None:
        self._idle.pop(connection, None)
        self._idle[connection] = None

    def _set_busy(self, connection: _Connection) -> None:
        self._idle.pop(connection, None)

    async def _serve_connection(self, connection: _Connection, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        for served in range(limits.max_requests_per_connection):
            self._set_idle(connection)
            try:
                request = await self._read_request(reader, writer, first=served == 0)
            except _ClientGone:
                return
            except _HttpError as err:
                self._set_busy(connection)
                await self._write_error(writer, err.status, err.message)
                self._set_idle(connection)
                await self._discard_input(reader, writer)
                return
            self._set_busy(connection)
            keep_alive = request.keep_alive and served + 1 < limits.max_requests_per_connection
            status, headers, body = await self._dispatch(request, writer)
            await self._write_response(writer, status, headers, body, keep_alive,
                                       head=request.method == "HEAD")
            if not keep_alive:
                return

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            *, first: bool) -> _Request:
        limits = self.limits
        prefix = b""
        if not first:
            # Between requests: wait for the next one's first byte, quietly.
            try:
                prefix = await asyncio.wait_for(reader.read(1), limits.keepalive_timeout)
            except asyncio.TimeoutError:
                raise _ClientGone from None
            if not prefix:
                raise _ClientGone
        # One deadline for the whole head, however it trickles in: a client
        # sending a byte every few seconds cannot keep a request open forever.
        try:
            method, raw_target, version, headers = await asyncio.wait_for(
                self._read_head(reader, prefix), limits.header_timeout)
        except asyncio.TimeoutError:
            raise _HttpError(408, "request timeout") from None
        self._check_host(headers, version)
        raw_path, _, query = raw_target.partition(b"?")
        try:
            path = unquote(raw_path.decode("ascii"), encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise _HttpError(400, "request path is not valid UTF-8") from None
        connection = _tokens(_header_value(headers, b"connection"))
        # HTTP/1.1 keeps the connection unless told not to; HTTP/1.0 only when asked.
        keep_alive = (b"close" not in connection) if version == "1.1" else (
            b"keep-alive" in connection)
        body = await self._read_body(reader, writer, headers)
        return _Request(method, raw_path, path, query, version, headers, body, keep_alive)

    async def _read_head(self, reader: asyncio.StreamReader, prefix: bytes
                         ) -> tuple[str, bytes, str, list[tuple[bytes, bytes]]]:
        line = await self._read_line(reader, self.limits.max_request_line, 414,
                                     "request line too long", first_line=True, prefix=prefix)
        method, raw_target, version = self._parse_request_line(line)
        return method, raw_target, version, await self._read_headers(reader)

    @staticmethod
    def _check_host(headers: list[tuple[bytes, bytes]], version: str) -> None:
        # RFC 9112 section 3.2: 400 for an HTTP/1.1 request without Host, and for
        # any request with more than one Host or an invalid one (HTTP/1.0 may omit it).
        hosts = [value for name, value in headers if name == b"host"]
        if len(hosts) > 1:
            raise _HttpError(400, "more than one Host header")
        if not hosts:
            if version == "1.1":
                raise _HttpError(400, "HTTP/1.1 request without a Host header")
            return
        if not _HOST.match(hosts[0]):
            raise _HttpError(400, "invalid Host header: expected host[:port]")

    async def _read_line(self, reader: asyncio.StreamReader, max_length: int, status: int,
                         message: str, *, first_line: bool = False, prefix: bytes = b"") -> bytes:
        try:
            line = prefix + await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _HttpError(status, message) from None
        except asyncio.IncompleteReadError as exc:
            if first_line and not (prefix or exc.partial):
                raise _ClientGone from None  # a clean close between requests
            raise _HttpError(400, "request ended before its headers were complete") from None
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if len(line) > max_length:
            raise _HttpError(status, message)
        return line

    async def _read_headers(self, reader: asyncio.StreamReader) -> list[tuple[bytes, bytes]]:
        limits = self.limits
        headers: list[tuple[bytes, bytes]] = []
        total = 0
        while True:
            line = await self._read_line(reader, limits.max_header_line, 431,
                                         "request header field too large")
            if not line:
                return headers
            total += len(line) + 2
            if total > limits.max_header_bytes:
                raise _HttpError(431, "request headers too large")
            if len(headers) >= limits.max_headers:
                raise _HttpError(431, f"more than {limits.max_headers} request headers")
            if line[:1] in (b" ", b"\t"):
                raise _HttpError(400, "folded header lines are not accepted")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.match(name):
                raise _HttpError(400, "malformed header line")
            value = value.strip(b" \t")
            if _BAD_VALUE_CHARS.search(value):
                raise _HttpError(400, "control character in a header value")
            headers.append((name.lower(), value))

    @staticmethod
    def _parse_request_line(line: bytes) -> tuple[str, bytes, str]:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise _HttpError(400, "malformed request line")
        method, target, version = parts
        if not _TOKEN.match(method):
            raise _HttpError(400, "malformed request method")
        if not version.startswith(b"HTTP/") or not re.fullmatch(rb"HTTP/\d\.\d", version):
            raise _HttpError(400, "malformed HTTP version")
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            raise _HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        if not _TARGET.match(target):
            raise _HttpError(400, "malformed request target")
        if target.startswith((b"http://", b"https://")):
            # absolute-form: keep only path and query
            rest = target.split(b"://", 1)[1]
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
        elif not target.startswith(b"/"):
            raise _HttpError(400, "request target must be a path")
        return method.decode("ascii"), target, version[5:].decode("ascii")

    async def _read_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         headers: list[tuple[bytes, bytes]]) -> bytes:
        if _header_value(headers, b"transfer-encoding") is not None:
            raise _HttpError(501, "transfer-encoding is not supported; send content-length")
        lengths = {value for key, value in headers if key == b"content-length"}
        if not lengths:
            return b""
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise _HttpError(400, "invalid content-length")
        length = int(next(iter(lengths)))
        if length == 0:
            return b""
        if length > self.limits.max_body_bytes:
            raise _HttpError(413, "request body too large")
        if b"100-continue" in _tokens(_header_value(headers, b"expect")):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.readexactly(length), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise _HttpError(408, "request timeout") from None
        except asyncio.IncompleteReadError:
            raise _ClientGone from None

    # -- routing and the ASGI call -----------------------------------------------------

    async def _dispatch(self, request: _Request, writer: asyncio.StreamWriter
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

    async def _call_app(self, request: _Request, writer: asyncio.StreamWriter
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


class MetricsServer:
    """A running exporter server on a background daemon thread (see :func:`start_metrics_server`).

    Usable as a context manager; ``stop()`` closes the socket and joins the thread.
    """

    def __init__(self, app: MetricsApp, host: str, port: int,
                 limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._http = _HttpServer(app, limits, ssl_context)
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
    http = _HttpServer(MetricsApp(registry, token=token), limits, context)
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
