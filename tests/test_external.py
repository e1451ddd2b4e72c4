"""External calls: decorator, context managers, classification, and httpx against a real server."""

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

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import CORRELATION_HEADER, bind_correlation_id
from promkit.instrument.external import (
    AsyncInstrumentedTransport,
    InstrumentedTransport,
    default_classify,
    external_call,
    instrument_httpx,
    record_retry,
    status_class,
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


def calls(registry: MetricsRegistry, service: str, operation: str, outcome: str,
          status_class: str) -> float | None:
    return registry.collector_registry.get_sample_value(
        "external_calls_total", {"peer_service": service, "operation": operation,
                                 "outcome": outcome, "status_class": status_class})


def durations(registry: MetricsRegistry, service: str, operation: str,
              outcome: str) -> float | None:
    return registry.collector_registry.get_sample_value(
        "external_call_duration_seconds_count",
        {"peer_service": service, "operation": operation, "outcome": outcome})


def all_label_values(registry: MetricsRegistry) -> list[str]:
    return [value for family in registry.collector_registry.collect()
            for sample in family.samples for value in sample.labels.values()]


def failures(registry: MetricsRegistry, cause: str) -> float | None:
    return registry.collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": cause})


# ------------------------------------------------------------------ classification


def test_default_classify_and_status_class():
    assert default_classify(None, None) == "success"
    assert default_classify(None, 200) == "success"
    assert default_classify(None, 404) == "success"
    assert default_classify(None, 429) == "error"
    assert default_classify(None, 503) == "error"
    assert default_classify(TimeoutError(), None) == "timeout"
    assert default_classify(asyncio.TimeoutError(), None) == "timeout"
    assert default_classify(socket.timeout(), None) == "timeout"  # noqa: UP041
    assert default_classify(asyncio.CancelledError(), None) == "timeout"
    assert default_classify(httpx.ReadTimeout("slow"), None) == "timeout"
    assert default_classify(httpx.ConnectError("refused"), None) == "error"
    assert default_classify(ValueError(), 200) == "error"
    assert [status_class(s) for s in (None, 204, 301, 429, 503, 42)] == [
        "none", "2xx", "3xx", "4xx", "5xx", "none"]


def test_template_path_hides_ids_and_tokens():
    assert template_path("/v1/jobs/42") == "/v1/jobs/{id}"
    assert template_path("/v1/jobs/0b6f8c2e-58b4-4a8e-9a51-0c1fbbd7f1a2/result") == (
        "/v1/jobs/{id}/result")
    assert template_path("/blobs/3f2a9c0d1e2b3a4f5e6d7c8b") == "/blobs/{id}"
    assert template_path("/dl/AbCdEf123456GhIjKl7890mnop") == "/dl/{id}"
    assert template_path("/v1/chat/completions?key=abc") == "/v1/chat/completions"
    assert template_path("") == "/"


# ---------------------------------------------------------------- wrapper and hooks


def test_sync_context_manager_records_status_outcome_and_duration(registry):
    with external_call("ocr", "submit", registry=registry) as call:
        call.status = 201
    with external_call("ocr", "submit", registry=registry) as call:
        call.status = 503
    assert call.outcome == "error" and call.duration is not None and call.duration >= 0
    assert calls(registry, "ocr", "submit", "success", "2xx") == 1
    assert calls(registry, "ocr", "submit", "error", "5xx") == 1
    assert durations(registry, "ocr", "submit", "success") == 1
    assert durations(registry, "ocr", "submit", "error") == 1


def test_exceptions_propagate_unchanged_and_are_classified(registry):
    boom = ValueError("bad input")
    with pytest.raises(ValueError) as info, external_call("ocr", "submit", registry=registry):
        raise boom
    assert info.value is boom
    with pytest.raises(TimeoutError), external_call("ocr", "submit", registry=registry):
        raise TimeoutError
    assert calls(registry, "ocr", "submit", "error", "none") == 1
    assert calls(registry, "ocr", "submit", "timeout", "none") == 1


def test_status_is_read_from_http_status_errors(registry):
    request = httpx.Request("GET", "http://example.invalid/x")
    response = httpx.Response(502, request=request)
    with pytest.raises(httpx.HTTPStatusError), external_call("llm", "chat", registry=registry):
        response.raise_for_status()
    assert calls(registry, "llm", "chat", "error", "5xx") == 1


async def test_async_context_manager_and_outcome_override(registry):
    async with external_call("llm", "chat", registry=registry) as call:
        await asyncio.sleep(0)
        call.status = 200
        call.outcome = "error"  # a 200 whose body says it failed
    assert calls(registry, "llm", "chat", "error", "2xx") == 1


def test_sync_decorator_reads_status_from_the_result(registry):
    class Resp:
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code

    @external_call("tts", "synthesize", registry=registry)
    def synthesize(status: int) -> Resp:
        return Resp(status)

    assert synthesize(200).status_code == 200
    synthesize(429)
    assert synthesize.__name__ == "synthesize"
    assert calls(registry, "tts", "synthesize", "success", "2xx") == 1
    assert calls(registry, "tts", "synthesize", "error", "4xx") == 1


async def test_async_decorator_counts_timeouts_and_cancellation(registry):
    @external_call("llm", "chat", registry=registry)
    async def chat(delay: float) -> str:
        await asyncio.sleep(delay)
        return "ok"

    assert await chat(0) == "ok"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(chat(5), 0.05)  # cancelled inside: a timeout
    assert calls(registry, "llm", "chat", "success", "none") == 1
    assert calls(registry, "llm", "chat", "timeout", "none") == 1


def test_custom_classifier_and_a_broken_one(registry):
    def lenient(exc: BaseException | None, status: int | None) -> str:
        return "success" if status == 503 else default_classify(exc, status)

    with external_call("cdn", "get", registry=registry, classify=lenient) as call:
        call.status = 503
    assert calls(registry, "cdn", "get", "success", "5xx") == 1

    def broken(exc: BaseException | None, status: int | None) -> str:
        raise RuntimeError("classifier bug")

    def odd(exc: BaseException | None, status: int | None) -> str:
        return "meh"

    with external_call("cdn", "get", registry=registry, classify=broken) as call:
        call.status = 200
    with external_call("cdn", "get", registry=registry, classify=odd) as call:
        call.status = 200
    assert calls(registry, "cdn", "get", "success", "2xx") == 2  # the default decided
    assert failures(registry, "external_classify:RuntimeError") == 1
    assert failures(registry, "external_classify:ValueError") == 1


def test_bad_status_or_outcome_never_raises(registry):
    with external_call("cdn", "get", registry=registry) as call:
        call.outcome = "kinda"
    assert calls(registry, "cdn", "get", "success", "none") == 1
    with external_call("cdn", "get", registry=registry) as call:
        call.status = "200"  # type: ignore[assignment]
    assert failures(registry, "external_call:TypeError") == 1


def test_record_retry(registry):
    record_retry("llm", "chat", registry=registry)
    record_retry("llm", "chat", registry=registry)
    assert registry.collector_registry.get_sample_value(
        "external_call_retries_total", {"peer_service": "llm", "operation": "chat"}) == 2


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
