"""The exporter server's request reader, fed from an in-memory stream (no sockets).

tests/test_server.py drives the same checks through a real server; these pin the
reader's own contract: what it returns, which status each refusal carries, and
when a connection closes quietly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promkit.exporters._http_request import ClientGone, HttpError, Request, RequestReader
from promkit.exporters._server_limits import ServerLimits


class _Writer:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


def read(data: bytes, *, first: bool = True, limits: ServerLimits | None = None,
         writer: _Writer | None = None) -> Request:
    async def main() -> Request:
        reader = asyncio.StreamReader(limit=8194)
        reader.feed_data(data)
        reader.feed_eof()
        out: Any = writer or _Writer()
        return await RequestReader(limits or ServerLimits()).read(reader, out, first=first)

    return asyncio.run(main())


def test_a_request_with_path_query_headers_and_body() -> None:
    request = read(b"POST /metrics%20x?name[]=a HTTP/1.1\r\nHost: h:9464\r\n"
                   b"Content-Length: 3\r\nX-A: b \r\n\r\nabc")
    assert (request.method, request.raw_path, request.path) == ("POST", b"/metrics%20x",
                                                                "/metrics x")
    assert request.query_string == b"name[]=a" and request.http_version == "1.1"
    assert request.headers == [(b"host", b"h:9464"), (b"content-length", b"3"), (b"x-a", b"b")]
    assert request.body == b"abc" and request.keep_alive


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
])
def test_keep_alive_follows_the_version_and_connection_header(head: bytes,
                                                              keep_alive: bool) -> None:
    assert read(head).keep_alive is keep_alive


def test_an_absolute_form_target_keeps_path_and_query() -> None:
    request = read(b"GET http://example.org/metrics?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert (request.path, request.query_string) == ("/metrics", b"x=1")


@pytest.mark.parametrize(("data", "status", "message"), [
    (b"GET /metrics HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without a Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host header"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host header: expected host[:port]"),
    (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400, "invalid Host header: expected host[:port]"),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"),
    (b"GET / HTTP/x\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
    (b"GET /\r\n\r\n", 400, "malformed request line"),
    (b"GET metrics HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target must be a path"),
    (b"GET /%ff HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request path is not valid UTF-8"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
     "transfer-encoding is not supported; send content-length"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n", 413,
     "request body too large"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1", 400, "request ended before its headers were complete"),
])
def test_refusals_carry_their_status_and_message(data: bytes, status: int, message: str) -> None:
    with pytest.raises(HttpError) as caught:
        read(data)
    assert (caught.value.status, caught.value.message) == (status, message)


def test_http_1_0_may_omit_host_and_a_valid_ipv6_host_passes() -> None:
    assert read(b"GET / HTTP/1.0\r\n\r\n").path == "/"
    assert read(b"GET / HTTP/1.1\r\nHost: [::1]:9464\r\n\r\n").path == "/"


def test_header_limits() -> None:
    limits = ServerLimits(max_headers=2, max_header_line=20)
    with pytest.raises(HttpError) as caught:
        read(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits=limits)
    assert (caught.value.status, caught.value.message) == (431, "more than 2 request headers")
    with pytest.raises(HttpError) as caught:
        read(b"GET / HTTP/1.1\r\nHost: a\r\nA: " + b"x" * 30 + b"\r\n\r\n", limits=limits)
    assert caught.value.status == 431


def test_a_clean_close_between_requests_is_quiet() -> None:
    with pytest.raises(ClientGone):
        read(b"", first=False)
    with pytest.raises(ClientGone):
        read(b"")


def test_expect_100_continue_is_answered_before_the_body() -> None:
    writer = _Writer()
    request = read(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 2\r\n\r\nok", writer=writer)
    assert request.body == b"ok" and writer.written == b"HTTP/1.1 100 Continue\r\n\r\n"
