"""promkit load's lean HTTP/1.1 client (promkit/tools/_http1.py), against raw servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def _raw_server_run(answers: list[bytes], calls: list[tuple[str, bytes]], *,
                    close_after: int | None = None, hang: bool = False) -> Any:
    """Run ``scenario(target)`` against a raw server that answers each request on a
    connection with the next of ``answers`` and records (request line, body)."""
    from promkit.tools._http1 import Target

    async def run(scenario: Any) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served = 0
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    length = next((int(v) for n, _, v in (x.partition(b":") for x in lines)
                                   if n.lower() == b"content-length"), 0)
                    body = await reader.readexactly(length) if length else b""
                    calls.append((lines[0].decode(), body))
                    if hang:
                        await asyncio.Event().wait()
                    writer.write(answers[min(len(calls), len(answers)) - 1])
                    await writer.drain()
                    served += 1
                    if close_after is not None and served >= close_after:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await scenario(Target.from_url(f"http://127.0.0.1:{port}/base"))
        finally:
            server.close()

    return run


def test_http1_keep_alive_lengths_chunked_and_1xx() -> None:
    from promkit.tools._http1 import Connection

    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]
    calls: list[tuple[str, bytes]] = []

    async def scenario(target: Any) -> list[Any]:
        conn = Connection(target, 5)
        out = [await conn.request("GET", "/a"),
               await conn.request("POST", "/jobs", b'{"pages": 2}'),
               await conn.request("DELETE", "/x y/\u00e9"),
               await conn.request("GET", "/gone")]
        conn.close()
        return out

    got = asyncio.run(_raw_server_run(answers, calls)(scenario))
    assert [(r.status, r.body) for r in got] == [
        (200, b"{}"), (201, b'{"a": 1}'), (204, b""), (404, b"")]
    assert calls == [("GET /base/a HTTP/1.1", b""), ("POST /base/jobs HTTP/1.1", b'{"pages": 2}'),
                     ("DELETE /base/x%20y/%C3%A9 HTTP/1.1", b""),
                     ("GET /base/gone HTTP/1.1", b"")]


def test_http1_reopens_a_connection_the_server_closed_and_reads_to_eof() -> None:
    from promkit.tools._http1 import Connection

    # The server closes after each answer without saying so: the next request on the
    # kept connection fails before any answer byte and is sent again on a new one.
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.0 200 OK\r\n\r\nuntil-eof"]
    calls: list[tuple[str, bytes]] = []

    async def scenario(target: Any) -> list[Any]:
        conn = Connection(target, 5)
        first = await conn.request("GET", "/1")
        await asyncio.sleep(0)  # let the server's close arrive
        second = await conn.request("GET", "/2")
        conn.close()
        return [first, second]

    got = asyncio.run(_raw_server_run(answers, calls, close_after=1)(scenario))
    assert [(r.status, r.body) for r in got] == [(200, b"ok"), (200, b"until-eof")]
    assert [c[0] for c in calls] == ["GET /base/1 HTTP/1.1", "GET /base/2 HTTP/1.1"]


def test_http1_timeout_and_garbage_are_errors() -> None:
    from promkit.tools._http1 import Connection, HTTPError

    calls: list[tuple[str, bytes]] = []

    async def timeout(target: Any) -> str:
        with pytest.raises(HTTPError) as info:
            await Connection(target, 0.2).request("GET", "/slow")
        return str(info.value)

    assert "within 0.2 s" in asyncio.run(_raw_server_run([b""], calls, hang=True)(timeout))

    async def garbage(target: Any) -> str:
        with pytest.raises(HTTPError) as info:
            await Connection(target, 5).request("GET", "/")
        return str(info.value)

    assert "not an HTTP/1.x answer" in asyncio.run(
        _raw_server_run([b"SSH-2.0-OpenSSH\r\n\r\n"], calls)(garbage))
