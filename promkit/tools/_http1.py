"""A lean HTTP/1.1 client for ``promkit load``: one keep-alive connection per user.

Why not httpx (which the load generator used): measured against a loopback endpoint
answering ``{}`` (uvicorn, 16 users, 2-core machine), httpx's ``AsyncClient`` cost the
client 1.84 ms of CPU per request, so one core drove ~450 req/s and the "breaking
point" found was the client's (issue #17). This client writes the request bytes
itself and parses the status line, ``Content-Length`` and chunked bodies by hand on
asyncio streams; see CHANGELOG.md and docs/report.md for its measured cost.

Only what a load generator needs: no redirects, no cookies, no compression, no
proxies; bodies are read whole (they are measured, not streamed).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from dataclasses import dataclass

__all__ = ["Connection", "HTTPError", "Response", "Target"]

_MAX_HEADER = 64 * 1024


class HTTPError(Exception):
    """The request did not complete: connection error, timeout, or a malformed answer."""

    before_answer = False
    """True when not a byte of the answer arrived (a stale keep-alive connection)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port, TLS, and the base path prefixed to every path."""

    host: str
    port: int
    tls: bool
    base_path: str
    host_header: bytes

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urllib.parse.urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if tls else 80)
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return cls(host, port, tls, parts.path.rstrip("/"), netloc.encode("idna"))


class Connection:
    """One keep-alive connection, opened on first use and re-opened after a failure."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._timed_out = False

    async def request(self, method: str, path: str, body: bytes | None = None,
                      content_type: bytes = b"application/json") -> Response:
        """Send one request and read its whole answer; HTTPError if it does not complete."""
        head = self._head(method, path, body, content_type)
        reused = self._writer is not None
        try:
            return await self._exchange(method, head, body)
        except HTTPError as exc:
            # A kept-alive connection the server closed while idle fails before any
            # answer byte: open a fresh one and send again, once.
            if reused and exc.before_answer:
                return await self._exchange(method, head, body)
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def _head(self, method: str, path: str, body: bytes | None, content_type: bytes) -> bytes:
        t = self.target
        if not path.isascii() or " " in path:
            path = urllib.parse.quote(path, safe="/?&=%:@!$'()*+,;~-._#[]")
        lines = [f"{method} {t.base_path}{path} HTTP/1.1".encode(),
                 b"Host: " + t.host_header, b"User-Agent: promkit-load", b"Accept: */*"]
        if body is not None:
            lines.append(b"Content-Type: " + content_type)
            lines.append(b"Content-Length: " + str(len(body)).encode())
        elif method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: 0")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(self, method: str, head: bytes, body: bytes | None) -> Response:
        loop = asyncio.get_running_loop()
        self._timed_out = False
        timer = loop.call_later(self.timeout, self._expire)
        answered = False
        try:
            if self._writer is None:
                try:  # the timer cannot abort a connection not yet made
                    await asyncio.wait_for(self._open(), self.timeout)
                except asyncio.TimeoutError:
                    self._timed_out = True
                    raise OSError("connect timed out") from None
            reader, writer = self._reader, self._writer
            assert reader is not None and writer is not None
            writer.write(head + body if body else head)
            while True:
                try:
                    header = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        answered = True
                    raise
                answered = True
                status, length, chunked, close = _parse_head(header)
                if status >= 200 or status == 101:
                    break  # 1xx (100 Continue, 103) precede the real answer
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                data = b""
            elif chunked:
                data = await _read_chunked(reader)
            elif length is not None:
                data = await reader.readexactly(length)
            else:
                data = await reader.read()  # until the server closes
                close = True
            if close:
                self.close()
            return Response(status, data)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, ssl.SSLError) as exc:
            self.close()
            if self._timed_out:
                raise HTTPError(f"no complete answer within {self.timeout:g} s") from None
            error = HTTPError(_describe(exc))
            error.before_answer = not answered
            raise error from None
        finally:
            timer.cancel()

    async def _open(self) -> None:
        t = self.target
        context = ssl.create_default_context() if t.tls else None
        self._reader, self._writer = await asyncio.open_connection(
            t.host, t.port, ssl=context, limit=_MAX_HEADER)

    def _expire(self) -> None:
        self._timed_out = True
        if self._writer is not None:
            self._writer.transport.abort()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the server closed the connection before a complete answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _parse_head(header: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, Content-Length, chunked, and whether the server closes after this answer."""
    lines = header.split(b"\r\n")
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
    status = int(status_line[9:12])
    http10 = status_line[7:8] == b"0"
    length: int | None = None
    chunked = False
    close = http10
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            token = value.strip().lower()
            if token == b"close":
                close = True
            elif token == b"keep-alive":
                close = False
    return status, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # trailers, then the blank line
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
