"""HTTP/1.1 requests as the exporter server reads them: parsing, limits and Host validation.

The request line and headers are parsed with limits (oversized or malformed
requests are :class:`HttpError` 400/414/431), the request head has one
deadline, and an HTTP/1.1 request needs exactly one valid ``Host`` (RFC 9112
section 3.2; HTTP/1.0 may omit it). Bodies need ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import unquote

from promkit.exporters._server_limits import ServerLimits

__all__ = ["ClientGone", "HttpError", "Request", "RequestReader", "header_value", "tokens"]

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


class HttpError(Exception):
    """A request we answer with an error status, then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed or went silent before sending a request: close quietly."""


@dataclass
class Request:
    method: str
    raw_path: bytes
    path: str
    query_string: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def tokens(value: bytes | None) -> set[bytes]:
    if not value:
        return set()
    return {part.strip().lower() for part in value.split(b",")}



class RequestReader:
    """Reads one request from a connection within :class:`ServerLimits`, or raises
    :class:`HttpError` (answer it, then close) or :class:`ClientGone` (close quietly)."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits

    async def read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   *, first: bool) -> Request:
        limits = self.limits
        prefix = b""
        if not first:
            # Between requests: wait for the next one's first byte, quietly.
            try:
                prefix = await asyncio.wait_for(reader.read(1), limits.keepalive_timeout)
            except asyncio.TimeoutError:
                raise ClientGone from None
            if not prefix:
                raise ClientGone
        # One deadline for the whole head, however it trickles in: a client
        # sending a byte every few seconds cannot keep a request open forever.
        try:
            method, raw_target, version, headers = await asyncio.wait_for(
                self._read_head(reader, prefix), limits.header_timeout)
        except asyncio.TimeoutError:
            raise HttpError(408, "request timeout") from None
        self._check_host(headers, version)
        raw_path, _, query = raw_target.partition(b"?")
        try:
            path = unquote(raw_path.decode("ascii"), encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise HttpError(400, "request path is not valid UTF-8") from None
        connection = tokens(header_value(headers, b"connection"))
        # HTTP/1.1 keeps the connection unless told not to; HTTP/1.0 only when asked.
        keep_alive = (b"close" not in connection) if version == "1.1" else (
            b"keep-alive" in connection)
        body = await self._read_body(reader, writer, headers)
        return Request(method, raw_path, path, query, version, headers, body, keep_alive)

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
            raise HttpError(400, "more than one Host header")
        if not hosts:
            if version == "1.1":
                raise HttpError(400, "HTTP/1.1 request without a Host header")
            return
        if not _HOST.match(hosts[0]):
            raise HttpError(400, "invalid Host header: expected host[:port]")

    async def _read_line(self, reader: asyncio.StreamReader, max_length: int, status: int,
                         message: str, *, first_line: bool = False, prefix: bytes = b"") -> bytes:
        try:
            line = prefix + await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise HttpError(status, message) from None
        except asyncio.IncompleteReadError as exc:
            if first_line and not (prefix or exc.partial):
                raise ClientGone from None  # a clean close between requests
            raise HttpError(400, "request ended before its headers were complete") from None
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if len(line) > max_length:
            raise HttpError(status, message)
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
                raise HttpError(431, "request headers too large")
            if len(headers) >= limits.max_headers:
                raise HttpError(431, f"more than {limits.max_headers} request headers")
            if line[:1] in (b" ", b"\t"):
                raise HttpError(400, "folded header lines are not accepted")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.match(name):
                raise HttpError(400, "malformed header line")
            value = value.strip(b" \t")
            if _BAD_VALUE_CHARS.search(value):
                raise HttpError(400, "control character in a header value")
            headers.append((name.lower(), value))

    @staticmethod
    def _parse_request_line(line: bytes) -> tuple[str, bytes, str]:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        if not _TOKEN.match(method):
            raise HttpError(400, "malformed request method")
        if not version.startswith(b"HTTP/") or not re.fullmatch(rb"HTTP/\d\.\d", version):
            raise HttpError(400, "malformed HTTP version")
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        if not _TARGET.match(target):
            raise HttpError(400, "malformed request target")
        if target.startswith((b"http://", b"https://")):
            # absolute-form: keep only path and query
            rest = target.split(b"://", 1)[1]
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
        elif not target.startswith(b"/"):
            raise HttpError(400, "request target must be a path")
        return method.decode("ascii"), target, version[5:].decode("ascii")

    async def _read_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         headers: list[tuple[bytes, bytes]]) -> bytes:
        if header_value(headers, b"transfer-encoding") is not None:
            raise HttpError(501, "transfer-encoding is not supported; send content-length")
        lengths = {value for key, value in headers if key == b"content-length"}
        if not lengths:
            return b""
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise HttpError(400, "invalid content-length")
        length = int(next(iter(lengths)))
        if length == 0:
            return b""
        if length > self.limits.max_body_bytes:
            raise HttpError(413, "request body too large")
        if b"100-continue" in tokens(header_value(headers, b"expect")):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.readexactly(length), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise HttpError(408, "request timeout") from None
        except asyncio.IncompleteReadError:
            raise ClientGone from None

