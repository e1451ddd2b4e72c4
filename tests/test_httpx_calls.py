"""httpx instrumentation: transports, templated paths, headers, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from _external_samples import calls, durations

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import CORRELATION_HEADER, bind_correlation_id
from promkit.instrument.external import (
    AsyncInstrumentedTransport,
    InstrumentedTransport,
    instrument_httpx,
    template_path,
)

SLOW_SECONDS = 30.0
"""/slow and /stall-body stall until the client gives up (at most this long)."""
CLIENT_TIMEOUT = 0.3
"""The read timeout of /slow, which sends nothing until the client has left."""
# The read timeout of /stall-body, whose headers must come within it (its body never does),
# and the timeouts of the calls meant to succeed: not short on a loaded machine.
STALL_BODY_TIMEOUT = httpx.Timeout(10, read=1.0)
SLOW_TIMEOUT = httpx.Timeout(10, read=CLIENT_TIMEOUT)
OK_TIMEOUT = 10


def all_label_values(registry: MetricsRegistry) -> list[str]:
    return [value for family in registry.collector_registry.collect()
            for sample in family.samples for value in sample.labels.values()]


# ----------------------------------------------------------------- templated paths


def test_template_path_hides_ids_and_tokens():
    assert template_path("/v1/jobs/42") == "/v1/jobs/{id}"
    assert template_path("/v1/jobs/0b6f8c2e-58b4-4a8e-9a51-0c1fbbd7f1a2/result") == (
        "/v1/jobs/{id}/result")
    assert template_path("/blobs/3f2a9c0d1e2b3a4f5e6d7c8b") == "/blobs/{id}"
    assert template_path("/dl/AbCdEf123456GhIjKl7890mnop") == "/dl/{id}"
    assert template_path("/v1/chat/completions?key=abc") == "/v1/chat/completions"
    assert template_path("") == "/"


# ----------------------------------------------------------- a real HTTP server


class Upstream:
    """A small ASGI app on uvicorn in a thread: /ok, /limited, /down, /slow, /stall-body."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off", interface="asgi3")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append({**headers, ":path": scope["path"], ":query": scope["query_string"]
                          .decode()})
        path = scope["path"]
        status = {"/limited": 429, "/down": 503}.get(path, 200)
        if path == "/slow":
            await self.stall(receive)
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        if path == "/stall-body":
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            await self.stall(receive)
            return
        await send({"type": "http.response.body", "body": b"done"})

    @staticmethod
    async def stall(receive: Any) -> None:
        """Until the client gives up and disconnects (no race with its timeout)."""
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(disconnected(), SLOW_SECONDS)

    def __enter__(self) -> Upstream:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("upstream server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def test_httpx_client_outcomes_status_classes_and_durations(registry, upstream):
    client = instrument_httpx(httpx.Client(base_url=upstream.url, timeout=OK_TIMEOUT),
                              "upstream", registry=registry)
    with client:
        assert client.get("/ok").status_code == 200
        assert client.get("/limited").status_code == 429
        assert client.get("/down").status_code == 503
        with pytest.raises(httpx.ReadTimeout):
            client.get("/slow", timeout=SLOW_TIMEOUT)
        with pytest.raises(httpx.ReadTimeout):  # headers arrive, then the body stalls
            client.get("/stall-body", timeout=STALL_BODY_TIMEOUT)
    assert calls(registry, "upstream", "GET /ok", "success", "2xx") == 1
    assert calls(registry, "upstream", "GET /limited", "error", "4xx") == 1
    assert calls(registry, "upstream", "GET /down", "error", "5xx") == 1
    assert calls(registry, "upstream", "GET /slow", "timeout", "none") == 1
    assert calls(registry, "upstream", "GET /stall-body", "timeout", "2xx") == 1
    assert durations(registry, "upstream", "GET /ok", "success") == 1
    assert durations(registry, "upstream", "GET /slow", "timeout") == 1
    # The timed-out call took at least the client timeout and far less than the server's stall.
    slow_sum = registry.collector_registry.get_sample_value(
        "external_call_duration_seconds_sum",
        {"peer_service": "upstream", "operation": "GET /slow", "outcome": "timeout"})
    assert CLIENT_TIMEOUT * 0.9 <= slow_sum < SLOW_SECONDS


def test_httpx_injects_the_bound_correlation_id_and_no_tokens_reach_labels_or_logs(
        registry, upstream):
    secret_url = (f"http://svc-user:hunter2pass@127.0.0.1:{upstream.port}"
                  "/files/AbCdEf123456GhIjKl7890mnop?token=sk-SECRET0123456789abcdef&sig=zz9")
    with structlog.testing.capture_logs() as logs, bind_correlation_id() as cid, \
            instrument_httpx(httpx.Client(timeout=5), "files", registry=registry) as client:
        assert client.get(secret_url).status_code == 200
        client.get(f"{upstream.url}/ok", headers={CORRELATION_HEADER: "caller-chose-this"})
    received = [h for h in upstream.seen if h[":path"].startswith("/files/")][-1]
    assert received[CORRELATION_HEADER.lower()] == cid
    assert received[":query"].startswith("token=")  # the request itself is untouched
    assert upstream.seen[-1][CORRELATION_HEADER.lower()] == "caller-chose-this"
    assert calls(registry, "files", "GET /files/{id}", "success", "2xx") == 1
    exported = " ".join(all_label_values(registry)) + repr(logs)
    for secret in ("SECRET", "token", "sig=", "hunter2", "svc-user", "?", "AbCdEf123456"):
        assert secret not in exported, secret


def test_httpx_injects_w3c_trace_context(registry, upstream):
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk_trace.TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("outer") as span, \
            instrument_httpx(httpx.Client(timeout=5), "upstream", registry=registry) as client:
        client.get(f"{upstream.url}/ok")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in upstream.seen[-1]["traceparent"]


async def test_httpx_async_client(registry, upstream):
    async with instrument_httpx(
            httpx.AsyncClient(base_url=upstream.url, timeout=OK_TIMEOUT), "upstream",
            registry=registry, operation_from=lambda r: f"{r.method} fixed") as client:
        with bind_correlation_id() as cid:
            assert (await client.get("/ok")).status_code == 200
            assert upstream.seen[-1][CORRELATION_HEADER.lower()] == cid
        assert (await client.get("/down")).status_code == 503
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", timeout=SLOW_TIMEOUT)
        async with client.stream("GET", "/stall-body", timeout=STALL_BODY_TIMEOUT) as response:
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()
    assert calls(registry, "upstream", "GET fixed", "success", "2xx") == 1
    assert calls(registry, "upstream", "GET fixed", "error", "5xx") == 1
    assert calls(registry, "upstream", "GET fixed", "timeout", "none") == 1
    assert calls(registry, "upstream", "GET fixed", "timeout", "2xx") == 1


def test_connection_refused_is_an_error_and_instrumenting_twice_is_harmless(registry):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client = httpx.Client(timeout=2)
    instrument_httpx(client, "down", registry=registry, operation_from="ping")
    instrument_httpx(client, "down", registry=registry, operation_from="ping")
    with client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")
    assert calls(registry, "down", "ping", "error", "none") == 1


def test_transport_classes_build_instrumented_clients(registry, upstream):
    transport = InstrumentedTransport(httpx.HTTPTransport(), "upstream", registry=registry)
    with httpx.Client(transport=transport, base_url=upstream.url) as client:
        client.get("/limited")
    assert calls(registry, "upstream", "GET /limited", "error", "4xx") == 1
    assert issubclass(AsyncInstrumentedTransport, httpx.AsyncBaseTransport)
    with pytest.raises(TypeError, match=r"httpx\.Client or httpx\.AsyncClient"):
        instrument_httpx(object(), "x")  # type: ignore[type-var]
