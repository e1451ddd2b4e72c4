"""What ``promkit load`` runs against in the unit tests: a real local app and a fake
Prometheus, each served by uvicorn in a thread on 127.0.0.1.

The app answers after a delay that grows with the number of requests in flight, and
with 500s once too many are in flight, so the ramp has a breaking point to find. Its
delays keep it near 100 requests a second whatever the users, so the client (which
shares the test's process with the server) stays far from saturating a core.

A test module's ``slow_app`` fixture wraps :func:`slow_target`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from promkit.tools.loadgen import parse_flows

PER_REQUEST_IN_FLIGHT = 0.01  # seconds of delay per request in flight


class SlowApp:
    """ASGI app: delay = 10 ms x in-flight requests; 500 when ``fail_over`` are in flight.

    With ``cliff`` set the delay is a step instead: ``fast`` seconds while at most
    ``cliff`` requests are in flight, ``slow`` seconds beyond."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self.fail_over: int | None = None
        self.cliff: int | None = None
        self.fast = 0.05
        self.slow = 0.5
        self.polls = 0  # GET /jobs/...: "running" twice, then "done"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.in_flight += 1
        self.requests += 1
        try:
            if self.cliff is not None:
                await asyncio.sleep(self.slow if self.in_flight > self.cliff else self.fast)
            else:
                await asyncio.sleep(PER_REQUEST_IN_FLIGHT * self.in_flight)
            status = 500 if self.fail_over and self.in_flight > self.fail_over else 200
            if scope["path"] == "/jobs" and status == 200:
                status, body = 202, b'{"job_id": "j-42"}'
            elif scope["path"].startswith("/jobs/"):
                self.polls += 1
                body = json.dumps({"seen": scope["path"], "status": "done" if self.polls % 3 == 0
                                   else "running"}).encode()
            else:
                body = b"{}"
        finally:
            self.in_flight -= 1
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(app: Any, lifespan: str = "off") -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # uvicorn binds the port itself: a socket handed in via sockets= misses TCP_NODELAY
    # and every answer waits ~40 ms for a delayed ACK.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False,
                                           lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def slow_target() -> Iterator[tuple[SlowApp, str]]:
    """A :class:`SlowApp` served (with lifespan); yields it and its base URL."""
    app = SlowApp()
    with serving(app, lifespan="on") as url:
        yield app, url


FLOW = parse_flows([{"name": "get", "requests": [{"method": "GET", "path": "/work"}]}])


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakePrometheus:
    """Unit-test stand-in for Prometheus's /api/v1/query: the HTTP series exist, and
    the service's p95 is ``p95s[n]`` at the n-th step (the last value repeats)."""

    def __init__(self, p95s: list[float], *, series: bool = True) -> None:
        self.p95s = p95s
        self.series = series
        self.steps = 0
        self.queries: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        import urllib.parse

        expr = urllib.parse.parse_qs(scope["query_string"].decode())["query"][0]
        self.queries.append(expr)
        value: float | None
        if expr.startswith("count("):
            value = 3.0 if self.series else None
        elif expr.startswith("histogram_quantile"):
            value = self.p95s[min(self.steps, len(self.p95s) - 1)]
            self.steps += 1
        elif "queue_depth" in expr:
            value = 7.0
        elif "oldest" in expr:
            value = 1.5
        elif expr.startswith("(sum"):
            value = 0.0
        else:
            value = 42.0
        result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        body = json.dumps({"status": "success",
                           "data": {"resultType": "vector", "result": result}}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
