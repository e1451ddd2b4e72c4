"""Calls to external services: outcome, status class, duration and retries.

``external_call(service, operation)`` is a decorator (sync and async
functions) and a context manager (``with`` and ``async with``). Each call is
recorded once, when it ends, in

- ``external_calls_total{service, operation, outcome, status_class}``
- ``external_call_duration_seconds{service, operation, outcome}``

where ``outcome`` is ``success``, ``error`` or ``timeout`` and
``status_class`` is ``2xx``...``5xx`` when an HTTP status is known, else
``none``. :func:`record_retry` counts retries in
``external_call_retries_total{service, operation}``.

The outcome comes from a classifier, ``classify(exc, status) -> outcome``;
:func:`default_classify` is the documented default and any callable with that
signature replaces it. The application's exceptions always propagate
unchanged: recording happens beside them and never raises.

:func:`instrument_httpx` (or the transports it installs,
:class:`InstrumentedTransport` and :class:`AsyncInstrumentedTransport`) records
every request an ``httpx.Client``/``httpx.AsyncClient`` sends, counts httpx
timeouts as ``timeout`` (also those raised while the body is read), and adds
the current correlation ID (``X-Correlation-ID``) and W3C trace context to
each outbound request. Labels and logs carry the method and a templated path
only: never the query string, the userinfo or the full URL.
"""


from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promkit.instrument._external_call import (
    ExternalCall,
    Outcome,
    default_classify,
    external_call,
    record_retry,
    status_class,
)
from promkit.instrument._httpx_calls import instrument_httpx, template_path, transport_classes

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AsyncInstrumentedTransport",
    "ExternalCall",
    "InstrumentedTransport",
    "Outcome",
    "default_classify",
    "external_call",
    "instrument_httpx",
    "record_retry",
    "status_class",
    "template_path",
]


def __getattr__(name: str) -> Any:
    # The transports subclass httpx's base classes, so they are built on first
    # use: httpx is a test/optional dependency, not a runtime one.
    if name == "InstrumentedTransport":
        return transport_classes()[0]
    if name == "AsyncInstrumentedTransport":
        return transport_classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # what the lazy names are, for type checkers
    InstrumentedTransport: type[httpx.BaseTransport]
    AsyncInstrumentedTransport: type[httpx.AsyncBaseTransport]
