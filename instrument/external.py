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

import asyncio
import concurrent.futures
import functools
import inspect
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from promkit.instrument._log_output import library_logger
from promkit.instrument.correlation import CORRELATION_HEADER, correlation_id_var, inject
from promkit.instrument.metrics import Counter, Histogram
from promkit.instrument.registry import MetricsRegistry, default_registry

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

Outcome = Literal["success", "error", "timeout"]
Classifier = Callable[[BaseException | None, int | None], str]
OperationFrom = Callable[["httpx.Request"], str]

OUTCOMES: frozenset[str] = frozenset({"success", "error", "timeout"})
NO_STATUS = "none"

_CALLS = "external_calls_total"
_DURATION = "external_call_duration_seconds"
_RETRIES = "external_call_retries_total"

F = TypeVar("F", bound=Callable[..., Any])

logger = library_logger("promkit.external")  # the app's logging, or nothing

# Exception classes that mean "the call ran out of time" without importing any
# HTTP library: TimeoutError covers socket.timeout and (3.11+) asyncio's and
# concurrent.futures' TimeoutError; on 3.10 those two are separate classes.
# asyncio.CancelledError is how asyncio.timeout() and wait_for() stop the code
# running inside them, so a call cut short that way counts as a timeout.
_TIMEOUT_TYPES: tuple[type[BaseException], ...] = tuple(
    {TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError, asyncio.CancelledError}
)


def _library_timeouts() -> tuple[type[BaseException], ...]:
    # Only libraries already imported can have raised their exceptions, so we
    # look in sys.modules instead of importing httpx/requests ourselves.
    found: list[type[BaseException]] = []
    httpx_mod = sys.modules.get("httpx")
    if httpx_mod is not None:
        found.append(httpx_mod.TimeoutException)
    requests_exc = sys.modules.get("requests.exceptions")
    if requests_exc is not None:
        found.append(requests_exc.Timeout)
    return tuple(found)


def status_class(status: int | None) -> str:
    """``"2xx"``...``"5xx"`` for an HTTP status, ``"none"`` when there is none."""
    if status is None or not 100 <= status <= 599:
        return NO_STATUS
    return f"{status // 100}xx"


def default_classify(exc: BaseException | None, status: int | None) -> Outcome:
    """The default outcome of a call.

    - a timeout exception (``TimeoutError``, ``asyncio.TimeoutError``,
      ``socket.timeout``, ``httpx.TimeoutException``, ``requests.Timeout``) or
      ``asyncio.CancelledError`` (how ``asyncio.timeout``/``wait_for`` stop the
      code inside them) → ``timeout``;
    - any other exception → ``error``;
    - an HTTP status ≥ 500 or 429 → ``error``;
    - anything else → ``success``.
    """
    if exc is not None:
        if isinstance(exc, _TIMEOUT_TYPES):
            return "timeout"
        library = _library_timeouts()
        if library and isinstance(exc, library):
            return "timeout"
        return "error"
    if status is not None and (status >= 500 or status == 429):
        return "error"
    return "success"


def _status_of(obj: object) -> int | None:
    """The HTTP status of a response-like object (``status_code`` or ``status``)."""
    for attr in ("status_code", "status"):
        value = getattr(obj, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _status_of_exception(exc: BaseException) -> int | None:
    # httpx.HTTPStatusError (raise_for_status) and many SDK errors carry the
    # response, or the status itself.
    status = _status_of(exc)
    if status is None:
        status = _status_of(getattr(exc, "response", None))
    return status


# ----------------------------------------------------------------------- metrics


def _counter(registry: MetricsRegistry, name: str) -> Counter:
    metric = registry.get(name)
    return metric if isinstance(metric, Counter) else registry.counter(name)


def _histogram(registry: MetricsRegistry, name: str) -> Histogram:
    metric = registry.get(name)
    return metric if isinstance(metric, Histogram) else registry.histogram(name)


def record_retry(service: str, operation: str, *, registry: MetricsRegistry | None = None) -> None:
    """Count one retry of ``service``/``operation``; never raises."""
    reg = registry if registry is not None else default_registry()
    try:
        _counter(reg, _RETRIES).labels(service, operation).inc()
    except Exception as exc:
        reg.failures.failure("external_retry", exc)


# ------------------------------------------------------------------- the wrapper


class ExternalCall:
    """One call to an external service; see :func:`external_call`.

    Inside a ``with`` block set :attr:`status` to the HTTP status you got
    (``call.status = resp.status_code``), or :attr:`outcome` to override the
    classifier (e.g. ``"error"`` for a 200 whose body reports a failure).
    After the block, :attr:`duration` holds the seconds it took and
    :attr:`outcome` the recorded outcome.
    """

    __slots__ = ("_classify", "_registry", "_start", "duration", "operation", "outcome",
                 "service", "status")

    def __init__(self, service: str, operation: str, *, registry: MetricsRegistry | None = None,
                 classify: Classifier | None = None) -> None:
        self.service = service
        self.operation = operation
        self._registry = registry
        self._classify = classify
        self.status: int | None = None
        self.outcome: str | None = None
        self.duration: float | None = None
        self._start = 0.0

    # -- recording ----------------------------------------------------------------

    def _begin(self) -> None:
        self.status = None
        self.outcome = None
        self.duration = None
        self._start = time.perf_counter()

    def _end(self, exc: BaseException | None) -> None:
        duration = time.perf_counter() - self._start
        self.duration = duration
        try:
            registry = self._registry if self._registry is not None else default_registry()
        except Exception:  # pragma: no cover - nowhere to count it
            return
        try:
            status = self.status
            if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
                raise TypeError(f"call.status must be an int HTTP status, not {status!r}")
            if status is None and exc is not None:
                status = _status_of_exception(exc)
            outcome = self.outcome
            if outcome is not None and outcome not in OUTCOMES:
                registry.failures.failure(
                    "external_outcome", ValueError(f"outcome {outcome!r} is not one of "
                                                   f"{sorted(OUTCOMES)}"))
                outcome = None
            if outcome is None:
                outcome = self._run_classifier(registry, exc, status)
            self.outcome = outcome
            self.status = status
            cls = status_class(status)
            _counter(registry, _CALLS).labels(self.service, self.operation, outcome, cls).inc()
            _histogram(registry, _DURATION).labels(
                self.service, self.operation, outcome).observe(duration)
        except Exception as failure:
            registry.failures.failure("external_call", failure)
            return
        self._log(registry, exc, duration)

    def _run_classifier(self, registry: MetricsRegistry, exc: BaseException | None,
                        status: int | None) -> str:
        if self._classify is None:
            return default_classify(exc, status)
        try:
            outcome = self._classify(exc, status)
            if outcome not in OUTCOMES:
                raise ValueError(f"classify returned {outcome!r}, not one of {sorted(OUTCOMES)}")
            return outcome
        except Exception as failure:
            registry.failures.failure("external_classify", failure)
            return default_classify(exc, status)

    def _log(self, registry: MetricsRegistry, exc: BaseException | None,
             duration: float) -> None:
        try:
            fields: dict[str, Any] = {
                "service": self.service, "operation": self.operation, "outcome": self.outcome,
                "status_code": self.status, "latency_ms": round(duration * 1000.0, 3),
            }
            if exc is not None:
                fields["error_type"] = type(exc).__name__
            if self.outcome == "success":
                logger.debug("external call completed", **fields)
            else:
                logger.info("external call completed", **fields)
        except Exception as failure:
            registry.failures.failure("external_log", failure)

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> ExternalCall:
        self._begin()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._end(exc)  # returns None: the exception, if any, propagates unchanged

    async def __aenter__(self) -> ExternalCall:
        self._begin()
        return self

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._end(exc)

    # -- decorator --------------------------------------------------------------------

    def _fresh(self) -> ExternalCall:
        return ExternalCall(self.service, self.operation, registry=self._registry,
                            classify=self._classify)

    def __call__(self, func: F) -> F:
        """Wrap ``func``; each invocation is one call. A returned response-like object
        (with an int ``status_code`` or ``status``) gives the call its status."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = self._fresh()
                call._begin()
                try:
                    result = await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                except BaseException as exc:
                    call._end(exc)
                    raise
                if call.status is None:
                    call.status = _status_of(result)
                call._end(None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._fresh()
            call._begin()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                call._end(exc)
                raise
            call.status = _status_of(result)
            call._end(None)
            return result

        return cast(F, wrapper)


def external_call(service: str, operation: str, *, registry: MetricsRegistry | None = None,
                  classify: Classifier | None = None) -> ExternalCall:
    """Record a call to ``service``/``operation``: decorator or (async) context manager.

    ``classify(exc, status)`` returns the outcome (``success``, ``error`` or
    ``timeout``); it defaults to :func:`default_classify`. A classifier that
    raises or returns anything else is counted as an instrumentation failure
    and the default decides. Use a new ``external_call(...)`` per ``with``
    block; as a decorator one is reused safely (each invocation gets its own
    record).
    """
    return ExternalCall(service, operation, registry=registry, classify=classify)


# ------------------------------------------------------------------------ httpx

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})$",
    re.IGNORECASE,
)
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~%=+]{20,}$")


def _looks_like_token(segment: str) -> bool:
    # Long strings mixing letters and digits are IDs, hashes or signed tokens.
    return bool(_TOKENISH.match(segment)) and any(c.isdigit() for c in segment) and any(
        c.isalpha() for c in segment)


def template_path(path: str) -> str:
    """A path with ID-like segments replaced by ``{id}``; no query string.

    Numbers, UUIDs, long hex strings and long letter-and-digit runs (tokens,
    hashes) become ``{id}``: ``/v1/jobs/42/files/3f2a...`` → ``/v1/jobs/{id}/files/{id}``.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path:
        return "/"
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment and (_ID_SEGMENT.match(segment) or _looks_like_token(segment)):
            segments[i] = "{id}"
    return "/".join(segments)


def _default_operation(request: httpx.Request) -> str:
    return f"{request.method} {template_path(request.url.path)}"


def _inject_headers(request: httpx.Request, registry: MetricsRegistry) -> None:
    try:
        cid = correlation_id_var.get()
        if cid and CORRELATION_HEADER not in request.headers:
            inject(cast(Any, request.headers), key=CORRELATION_HEADER, correlation_id=cid)
    except Exception as exc:
        registry.failures.failure("external_correlation_header", exc)
    try:
        from opentelemetry import propagate

        propagate.inject(request.headers)
    except Exception as exc:
        registry.failures.failure("external_trace_header", exc)


class _HttpxRecorder:
    """What the sync and async transports share: naming, headers, recording."""

    def __init__(self, service: str, *, operation_from: str | OperationFrom | None,
                 registry: MetricsRegistry | None, classify: Classifier | None) -> None:
        self.service = service
        self.operation_from = operation_from
        self.registry = registry
        self.classify = classify

    def _registry(self) -> MetricsRegistry:
        return self.registry if self.registry is not None else default_registry()

    def start(self, request: httpx.Request) -> ExternalCall:
        registry = self._registry()
        operation = "__unknown__"
        try:
            if isinstance(self.operation_from, str):
                operation = self.operation_from
            elif self.operation_from is not None:
                operation = str(self.operation_from(request))
            else:
                operation = _default_operation(request)
        except Exception as exc:
            registry.failures.failure("external_operation", exc)
        _inject_headers(request, registry)
        call = ExternalCall(self.service, operation, registry=registry, classify=self.classify)
        call._begin()
        return call


class _RecordingStream:
    """Wraps a response body: the call is recorded when the body is closed,
    so the duration includes the body and a timeout while reading it counts."""

    def __init__(self, inner: Any, call: ExternalCall) -> None:
        self._inner = inner
        self._call = call
        self._error: BaseException | None = None
        self._done = False

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._call._end(self._error)


def _rewrap(response: httpx.Response, stream: Any) -> httpx.Response:
    import httpx

    return httpx.Response(status_code=response.status_code, headers=response.headers,
                          stream=stream, extensions=response.extensions)


def _make_transports() -> tuple[type[Any], type[Any]]:
    import httpx

    class _SyncRecordingStream(_RecordingStream, httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self._inner
            except GeneratorExit:
                raise  # the reader stopped early; not a failure of the call
            except BaseException as exc:
                self._error = exc
                raise

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._finish()

    class _AsyncRecordingStream(_RecordingStream, httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                self._error = exc
                raise

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._finish()

    class _InstrumentedTransport(httpx.BaseTransport):
        """An httpx transport that records each request as an external call."""

        def __init__(self, transport: httpx.BaseTransport, service: str, *,
                     operation_from: str | OperationFrom | None = None,
                     registry: MetricsRegistry | None = None,
                     classify: Classifier | None = None) -> None:
            self.transport = transport
            self.recorder = _HttpxRecorder(service, operation_from=operation_from,
                                           registry=registry, classify=classify)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            call = self.recorder.start(request)
            try:
                response = self.transport.handle_request(request)
            except BaseException as exc:
                call._end(exc)
                raise
            call.status = response.status_code
            return _rewrap(response, _SyncRecordingStream(response.stream, call))

        def close(self) -> None:
            self.transport.close()

    class _AsyncInstrumentedTransport(httpx.AsyncBaseTransport):
        """An httpx async transport that records each request as an external call."""

        def __init__(self, transport: httpx.AsyncBaseTransport, service: str, *,
                     operation_from: str | OperationFrom | None = None,
                     registry: MetricsRegistry | None = None,
                     classify: Classifier | None = None) -> None:
            self.transport = transport
            self.recorder = _HttpxRecorder(service, operation_from=operation_from,
                                           registry=registry, classify=classify)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            call = self.recorder.start(request)
            try:
                response = await self.transport.handle_async_request(request)
            except BaseException as exc:
                call._end(exc)
                raise
            call.status = response.status_code
            return _rewrap(response, _AsyncRecordingStream(response.stream, call))

        async def aclose(self) -> None:
            await self.transport.aclose()

    _InstrumentedTransport.__name__ = _InstrumentedTransport.__qualname__ = "InstrumentedTransport"
    _AsyncInstrumentedTransport.__name__ = "AsyncInstrumentedTransport"
    _AsyncInstrumentedTransport.__qualname__ = "AsyncInstrumentedTransport"
    return _InstrumentedTransport, _AsyncInstrumentedTransport


_transports: tuple[type[Any], type[Any]] | None = None


def _transport_classes() -> tuple[type[Any], type[Any]]:
    global _transports
    if _transports is None:
        _transports = _make_transports()
    return _transports


def __getattr__(name: str) -> Any:
    # The transports subclass httpx's base classes, so they are built on first
    # use: httpx is a test/optional dependency, not a runtime one.
    if name == "InstrumentedTransport":
        return _transport_classes()[0]
    if name == "AsyncInstrumentedTransport":
        return _transport_classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # what the lazy names are, for type checkers
    InstrumentedTransport: type[httpx.BaseTransport]
    AsyncInstrumentedTransport: type[httpx.AsyncBaseTransport]


ClientT = TypeVar("ClientT", "httpx.Client", "httpx.AsyncClient")


def instrument_httpx(client: ClientT, service: str, *,
                     operation_from: str | OperationFrom | None = None,
                     registry: MetricsRegistry | None = None,
                     classify: Classifier | None = None) -> ClientT:
    """Record every request ``client`` sends as a call to ``service``; returns the client.

    Works for ``httpx.Client`` and ``httpx.AsyncClient`` by wrapping the
    client's transports (its default one and any ``mounts``), so timeouts and
    connection errors, which no event hook sees, are recorded too. The
    operation is ``operation_from`` when it is a string, ``operation_from(request)``
    when it is a callable, else ``"<METHOD> <templated path>"`` (see
    :func:`template_path`). Each request gets the current correlation ID in
    ``X-Correlation-ID`` (unless the caller set one) and W3C trace context
    (``traceparent``; a no-op without an OpenTelemetry SDK). Instrumenting a
    client twice does nothing the second time.

    To build a client instrumented from the start, pass
    ``transport=InstrumentedTransport(httpx.HTTPTransport(), "ocr")``.
    """
    import httpx

    sync_cls, async_cls = _transport_classes()
    if isinstance(client, httpx.AsyncClient):
        cls: type[Any] = async_cls
    elif isinstance(client, httpx.Client):
        cls = sync_cls
    else:
        raise TypeError(
            f"instrument_httpx takes an httpx.Client or httpx.AsyncClient, not "
            f"{type(client).__name__}")
    if not hasattr(client, "_transport") or not hasattr(client, "_mounts"):
        raise TypeError(
            "this httpx version keeps its transports elsewhere; build the client with "
            "transport=InstrumentedTransport(...) (or AsyncInstrumentedTransport) instead")

    def wrap(transport: Any) -> Any:
        if transport is None or isinstance(transport, cls):
            return transport
        return cls(transport, service, operation_from=operation_from, registry=registry,
                   classify=classify)

    client._transport = wrap(client._transport)
    client._mounts = {pattern: wrap(t) for pattern, t in client._mounts.items()}
    return client
