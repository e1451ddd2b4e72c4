"""Webhooks: :func:`send_webhook` posts JSON with the correlation ID, as an external call.

The correlation ID -- the caller's correlation header, else the body's
``correlation_id``, else the one bound, else a new one (the rule of
:func:`~promkit.instrument.correlation.resolve_correlation_id`) -- goes in the
``X-Correlation-ID`` header and the body's ``correlation_id`` field, and is
bound while the call runs; the call is recorded by
:func:`promkit.instrument.external.external_call`. The body is never logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from promkit.instrument.correlation import (
    CORRELATION_HEADER,
    CORRELATION_ID_FIELD,
    REQUEST_ID_HEADER,
    bind_correlation_id,
    resolve_correlation_id,
    valid_correlation_id,
)
from promkit.instrument.registry import MetricsRegistry

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_WEBHOOK_TIMEOUT", "send_webhook", "send_webhook_async"]

DEFAULT_WEBHOOK_TIMEOUT = 10.0


_CORRELATION_HEADERS = frozenset({CORRELATION_HEADER.lower(), REQUEST_ID_HEADER.lower()})


def _webhook_request(body: Mapping[str, Any], headers: Mapping[str, str] | None
                     ) -> tuple[str, dict[str, Any], dict[str, str]]:
    sent: dict[str, str] = {}
    header_name = CORRELATION_HEADER
    given: str | None = None
    named = False
    for name, value in (headers or {}).items():
        if name.lower() in _CORRELATION_HEADERS:
            # The caller's own correlation header is validated like an incoming one and
            # sent once, under the caller's name: two would leave the receiver to guess.
            if given is None:
                given = valid_correlation_id(value)
                if given is not None or not named:
                    header_name, named = name, True
            continue
        sent[name] = value
    # The caller's header, else the rule with the body as carrier.
    cid = given if given is not None else resolve_correlation_id(body, (CORRELATION_ID_FIELD,))
    data = dict(body)
    data[CORRELATION_ID_FIELD] = cid
    sent[header_name] = cid
    return cid, data, sent


def _external_call(service: str, operation: str, registry: MetricsRegistry | None) -> Any:
    try:
        from promkit.instrument.external import external_call
    except ImportError:  # pragma: no cover - external calls not available
        return contextlib.nullcontext(None)
    return external_call(service, operation, registry=registry)


def send_webhook(url: str, body: Mapping[str, Any], *, client: httpx.Client | None = None,
                 timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
                 headers: Mapping[str, str] | None = None, service: str = "webhook",
                 operation: str = "deliver", registry: MetricsRegistry | None = None
                 ) -> httpx.Response:
    """POST ``body`` as JSON to ``url`` with the correlation ID; returns the response.

    The correlation ID (:func:`~promkit.instrument.correlation.resolve_correlation_id`'s
    rule: the caller's correlation header, else the body's valid ``correlation_id``,
    else the bound one, else a new one) goes in the ``X-Correlation-ID`` header
    and the body's ``correlation_id`` field. A correlation header in
    ``headers`` (``X-Correlation-ID`` or ``X-Request-ID``, any case) is
    validated like an incoming one: a valid ID is used for both, an invalid
    one is replaced; either way exactly one correlation header is sent, under
    the caller's name. The call is recorded by
    :func:`promkit.instrument.external.external_call` as ``service``/``operation``
    (outcome from the status: 429 and 5xx are errors, timeouts are
    timeouts). Transport errors and timeouts raise (after being counted);
    an HTTP error status is returned for the caller to judge. Neither the
    body nor the URL is logged (webhook URLs often hold secrets). ``client``
    is an ``httpx.Client`` to reuse (don't pass one instrumented with
    ``instrument_httpx`` too, or the call counts twice).
    """
    import httpx

    cid, data, sent = _webhook_request(body, headers)
    # Bound for the call only (its log line and exemplar carry the ID the receiver
    # gets); a webhook sent outside a request leaves the caller's context as it was.
    with bind_correlation_id(cid), _external_call(service, operation, registry) as call:
        if client is None:
            response = httpx.post(url, json=data, headers=sent, timeout=timeout)
        else:
            response = client.post(url, json=data, headers=sent, timeout=timeout)
        if call is not None:
            call.status = response.status_code
    return response


async def send_webhook_async(url: str, body: Mapping[str, Any], *,
                             client: httpx.AsyncClient | None = None,
                             timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
                             headers: Mapping[str, str] | None = None,
                             service: str = "webhook", operation: str = "deliver",
                             registry: MetricsRegistry | None = None) -> httpx.Response:
    """:func:`send_webhook` with an ``httpx.AsyncClient`` (a short-lived one when not given)."""
    import httpx

    cid, data, sent = _webhook_request(body, headers)
    async with bind_correlation_id(cid), _external_call(service, operation, registry) as call:
        if client is None:
            async with httpx.AsyncClient() as own:
                response = await own.post(url, json=data, headers=sent, timeout=timeout)
        else:
            response = await client.post(url, json=data, headers=sent, timeout=timeout)
        if call is not None:
            call.status = response.status_code
    return response

