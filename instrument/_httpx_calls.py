"""httpx instrumentation: each request a client sends is one external call.

:func:`instrument_httpx` wraps an ``httpx.Client``'s or ``httpx.AsyncClient``'s
transports (or build one with :class:`InstrumentedTransport` /
:class:`AsyncInstrumentedTransport`); each request is recorded as an
:class:`~promkit.instrument.external.ExternalCall` when its body is closed, so
a timeout while reading the body counts. Requests carry the current
correlation ID and W3C trace context; labels and logs carry the method and a
templated path only (:func:`template_path`). The public names are imported
from :mod:`promkit.instrument.external`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from promkit.instrument._external_call import Classifier, ExternalCall
from promkit.instrument.correlation import CORRELATION_HEADER, get_correlation_id, inject
from promkit.instrument.registry import MetricsRegistry, default_registry

if TYPE_CHECKING:
    import httpx

__all__ = ["instrument_httpx", "template_path", "transport_classes"]

OperationFrom = Callable[["httpx.Request"], str]

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
        cid = get_correlation_id()
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

    def sending(self, request: httpx.Request) -> _Sending:
        """``with recorder.sending(request) as call:`` around the transport's send."""
        registry = self.registry if self.registry is not None else default_registry()
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
        return _Sending(call)


class _Sending:
    """An exception from the send ends the call (and propagates unchanged); a
    response leaves it open: :func:`_respond` ends it when the body is closed."""

    __slots__ = ("call",)

    def __init__(self, call: ExternalCall) -> None:
        self.call = call

    def __enter__(self) -> ExternalCall:
        return self.call

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.call._end(exc)


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


def _respond(call: ExternalCall, response: httpx.Response,
             stream_class: type[_RecordingStream]) -> httpx.Response:
    """``response`` with its body wrapped so that closing it ends ``call``."""
    import httpx

    call.status = response.status_code
    return httpx.Response(status_code=response.status_code, headers=response.headers,
                          stream=cast(Any, stream_class(response.stream, call)),
                          extensions=response.extensions)


class _Wrapping:
    """The constructor both transports share: the wrapped transport and a recorder."""

    def __init__(self, transport: Any, service: str, *,
                 operation_from: str | OperationFrom | None = None,
                 registry: MetricsRegistry | None = None,
                 classify: Classifier | None = None) -> None:
        self.transport = transport
        self.recorder = _HttpxRecorder(service, operation_from=operation_from,
                                       registry=registry, classify=classify)


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

    class InstrumentedTransport(_Wrapping, httpx.BaseTransport):
        """An httpx transport that records each request as an external call."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with self.recorder.sending(request) as call:
                response = self.transport.handle_request(request)
            return _respond(call, response, _SyncRecordingStream)

        def close(self) -> None:
            self.transport.close()

    class AsyncInstrumentedTransport(_Wrapping, httpx.AsyncBaseTransport):
        """An httpx async transport that records each request as an external call."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with self.recorder.sending(request) as call:
                response = await self.transport.handle_async_request(request)
            return _respond(call, response, _AsyncRecordingStream)

        async def aclose(self) -> None:
            await self.transport.aclose()

    for cls in (InstrumentedTransport, AsyncInstrumentedTransport):
        cls.__module__ = "promkit.instrument.external"  # where users import them from
        cls.__qualname__ = cls.__name__
    return InstrumentedTransport, AsyncInstrumentedTransport


_transports: tuple[type[Any], type[Any]] | None = None


def transport_classes() -> tuple[type[Any], type[Any]]:
    """``(InstrumentedTransport, AsyncInstrumentedTransport)``, built on first use:
    they subclass httpx's base classes and httpx is an optional dependency."""
    global _transports
    if _transports is None:
        _transports = _make_transports()
    return _transports


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

    sync_cls, async_cls = transport_classes()
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
