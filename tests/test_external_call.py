"""External calls: decorator, context managers, classification, retries."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from _external_samples import calls, durations

from promkit.instrument import MetricsRegistry
from promkit.instrument.external import (
    default_classify,
    external_call,
    record_retry,
    status_class,
)


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
