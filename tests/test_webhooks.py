"""send_webhook: the correlation ID in header and body, the call recorded, nothing logged.
No server needed: httpx's MockTransport answers."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import structlog

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import (
    CORRELATION_HEADER,
    bind_correlation_id,
    get_correlation_id,
)
from promkit.instrument.queues import send_webhook


def sample(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def test_webhook_sends_correlation_id_and_records_the_call(registry: MetricsRegistry) -> None:
    received: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(202)

    secret_body = {"text": "alice@example.com said hi", "job_id": "j1"}
    with httpx.Client(transport=httpx.MockTransport(handle)) as client, \
            structlog.testing.capture_logs() as logs, bind_correlation_id() as cid:
        response = send_webhook("https://hooks.example/T000/secret-token", secret_body,
                                client=client, registry=registry)
    assert response.status_code == 202
    request = received[0]
    assert request.headers[CORRELATION_HEADER] == cid
    assert json.loads(request.content) == {**secret_body, "correlation_id": cid}
    assert "correlation_id" not in secret_body  # the caller's dict is not changed
    assert sample(registry, "external_calls_total", peer_service="webhook", operation="deliver",
                  outcome="success", status_class="2xx") == 1
    flat = json.dumps(logs, default=str)
    assert "alice" not in flat and "secret-token" not in flat


def test_webhook_failures_raise_and_are_counted(registry: MetricsRegistry) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(httpx.ConnectError):
        send_webhook("http://127.0.0.1:9/hook", {}, client=client, registry=registry)
    assert get_correlation_id() is None  # outside a request: nothing left bound
    assert sample(registry, "external_calls_total", peer_service="webhook", operation="deliver",
                  outcome="error", status_class="none") == 1
    with httpx.Client(transport=httpx.MockTransport(error)) as client:
        assert send_webhook("http://x/hook", {}, client=client, registry=registry,
                            service="ntfy").status_code == 503
    assert sample(registry, "external_calls_total", peer_service="ntfy", operation="deliver",
                  outcome="error", status_class="5xx") == 1


def test_webhook_keeps_the_bodys_valid_correlation_id(registry: MetricsRegistry) -> None:
    sent: list[httpx.Request] = []
    body_cid = "0b4c3f0e-8f51-4c1c-9a43-5c0d6bd1c0de"
    with httpx.Client(transport=httpx.MockTransport(
            lambda r: sent.append(r) or httpx.Response(200))) as client:
        send_webhook("http://x/hook", {"correlation_id": body_cid}, client=client,
                     registry=registry)
    assert sent[0].headers[CORRELATION_HEADER] == body_cid


def test_webhook_sends_one_correlation_header_validating_the_callers_own(
        registry: MetricsRegistry) -> None:
    sent: list[httpx.Request] = []

    def correlation_headers(request: httpx.Request) -> list[tuple[str, str]]:
        return [(k, v) for k, v in request.headers.multi_items()
                if k.lower() in ("x-correlation-id", "x-request-id")]

    hex_id = uuid.uuid4().hex
    with httpx.Client(transport=httpx.MockTransport(
            lambda r: sent.append(r) or httpx.Response(200))) as client:
        with bind_correlation_id() as cid:
            # Not an ID: replaced by the current one, sent once.
            send_webhook("http://x/hook", {}, client=client, registry=registry,
                         headers={"x-correlation-id": "evil\tvalue", "X-Token": "t"})
        # A valid ID in the receiver's own header: kept, in that header, and in the body.
        send_webhook("http://x/hook", {}, client=client, registry=registry,
                     headers={"X-Request-ID": hex_id})
    assert correlation_headers(sent[0]) == [("x-correlation-id", cid)]
    assert sent[0].headers["x-token"] == "t" and json.loads(sent[0].content) == {
        "correlation_id": cid}
    assert correlation_headers(sent[1]) == [("x-request-id", hex_id)]
    assert json.loads(sent[1].content) == {"correlation_id": hex_id}
