"""Tracing adapter on opentelemetry-api: real spans with an SDK, no-ops without.

promkit depends on ``opentelemetry-api`` only; whether spans are recorded and
where they go is the application's choice (it installs ``opentelemetry-sdk``
and calls ``trace.set_tracer_provider``). What promkit adds:

- the correlation ID as the span attribute :data:`CORRELATION_ATTRIBUTE`
  (:func:`start_span`, :func:`annotate_current_span`);
- the current trace and span IDs for log lines (:func:`current_trace_ids`);
- exemplar labels that link a histogram bucket to a trace, or to the
  correlation ID when there is no sampled trace (:func:`exemplar_labels`).

Nothing here raises into the application: a failure inside the adapter (a
broken span processor, an odd exception ``__str__``) is handed to a
:class:`~promkit.instrument._safety.FailureSink` and the application carries on. An
exception raised *by the application* inside :func:`start_span` is recorded
on the span and re-raised unchanged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from contextvars import Token
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from promkit._version import __version__
from promkit.instrument._compat import global_tracer_provider, span_ids
from promkit.instrument._exemplars import CORRELATION_EXEMPLAR_LABEL, EXEMPLAR_MAX_RUNES
from promkit.instrument._json_line import trace_ids
from promkit.instrument._safety import FailureSink
from promkit.instrument.correlation import get_correlation_id

__all__ = [
    "CORRELATION_ATTRIBUTE",
    "INSTRUMENTATION_NAME",
    "SpanKind",
    "annotate_current_span",
    "current_trace_ids",
    "exemplar_labels",
    "request_exemplar",
    "start_span",
    "tracing_active",
]

CORRELATION_ATTRIBUTE = "promkit.correlation_id"
"""Span attribute carrying the correlation ID.

OpenTelemetry's semantic conventions have no general correlation-ID attribute
(``messaging.message.conversation_id`` is for messages only, and
``http.request.header.*`` holds raw header values). The attribute-naming
specification asks names outside the conventions to be prefixed by the owning
application or library, hence ``promkit.``; ``correlation_id`` matches the
field name of promkit's log lines, so one search string finds both.
"""

INSTRUMENTATION_NAME = "promkit"
"""Instrumentation scope name of the spans promkit starts."""

# OpenMetrics caps the label set of one exemplar (names + values) at 128 characters.
_CORRELATION_KEY = CORRELATION_EXEMPLAR_LABEL
_MAX_CORRELATION_VALUE = EXEMPLAR_MAX_RUNES - len(_CORRELATION_KEY)

_fallback_sink = FailureSink()  # logs the first failure of each cause; counts nothing


def _report(failures: FailureSink | None, operation: str, exc: BaseException) -> None:
    # FailureSink.failure never raises.
    (failures if failures is not None else _fallback_sink).failure(operation, exc)


# --------------------------------------------------------------------------- provider

# The global provider comes from _compat.global_tracer_provider (a function call of
# ~30 ns around a private read where the API allows, else the public getter, ~0.8 us
# while none is set);
# the verdict is cached against the provider's identity, so a provider set later
# (once, as the API allows) is noticed on the next call.
_UNSET = object()

# Read without the lock (three loads are cheaper than one locked read); a reader
# racing the one-time switch may act on the previous verdict for one call.
_cache_lock = threading.Lock()
_cached_provider: object = _UNSET
_cached_active = False
_cached_tracer: Tracer | None = None


def _is_real(provider: object) -> bool:
    """True for a provider that records spans (anything but the API's no-op and proxy)."""
    if isinstance(provider, ProxyTracerProvider):
        # The proxy forwards to the global provider once one is set.
        provider = global_tracer_provider()
        if provider is None or isinstance(provider, ProxyTracerProvider):
            return False
    return provider is not None and not isinstance(provider, NoOpTracerProvider)


def _refresh(provider: object) -> bool:
    """Recompute the cached verdict for ``provider``; returns whether tracing is active."""
    global _cached_provider, _cached_active, _cached_tracer
    try:
        if provider is None and os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
            # A provider named by the environment is loaded by the public getter.
            trace.get_tracer_provider()
            provider = global_tracer_provider()
        active = _is_real(provider)
        tracer = None
        if active:
            tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__)
    except Exception as exc:
        _report(None, "tracing_provider", exc)
        active, tracer = False, None
    with _cache_lock:
        _cached_provider = provider
        _cached_active = active
        _cached_tracer = tracer
    return active


def tracing_active(tracer_provider: TracerProvider | None = None) -> bool:
    """True when spans are recorded: the application installed a real (SDK) tracer provider.

    Checks the global provider, or ``tracer_provider`` when given. Costs one
    identity comparison (~60 ns) once the verdict is cached; never raises.
    """
    if tracer_provider is not None:
        return _is_real(tracer_provider)
    provider = global_tracer_provider()
    if provider is _cached_provider:
        return _cached_active
    return _refresh(provider)


# The tracer of the last provider passed explicitly (tests, apps avoiding the global).
_explicit_tracer: tuple[object, Tracer | None] = (None, None)


def _tracer(tracer_provider: TracerProvider | None) -> Tracer | None:
    """The tracer to start spans on, or None when spans would not be recorded."""
    global _explicit_tracer
    if tracer_provider is not None:
        cached = _explicit_tracer
        if cached[0] is tracer_provider:
            return cached[1]
        tracer = None
        if _is_real(tracer_provider):
            tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        _explicit_tracer = (tracer_provider, tracer)
        return tracer
    if not tracing_active():
        return None
    return _cached_tracer


# ------------------------------------------------------------------------ trace IDs


# Hex IDs of a SpanContext if valid (and sampled when asked), else None; the
# fast reader of the tuple layout where the API allows (see _compat).
_ids = span_ids


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current valid span as lowercase hex, else None.

    The trace ID has 32 hex digits, the span ID 16 (W3C Trace Context form),
    ready for log lines. Any valid span counts, including a non-recording one
    propagated from upstream. Never raises.
    """
    try:
        return trace_ids()  # the log lines' own reading, guarded
    except Exception as exc:
        _report(None, "tracing_trace_ids", exc)
        return None


def exemplar_labels(
    correlation_id: str | None, failures: FailureSink | None = None
) -> dict[str, str] | None:
    """Exemplar labels for a measurement made now.

    ``{"trace_id": ..., "span_id": ...}`` when the current span is valid and
    *sampled* (its trace is exported, so the link leads somewhere), else
    ``{"correlation_id": correlation_id}`` when there is one, else None. The
    result always fits OpenMetrics' 128-character exemplar limit (the trace
    labels take 63); a correlation ID too long to fit is dropped. Returns a new
    dict each call. Never raises.
    """
    try:
        ctx = otel_context.get_current()
        if ctx:
            ids = _ids(trace.get_current_span(ctx).get_span_context(), True)
            if ids is not None:
                return {"trace_id": ids[0], "span_id": ids[1]}
    except Exception as exc:
        _report(failures, "tracing_exemplar", exc)
    return _correlation_labels(correlation_id)


def annotate_current_span(correlation_id: str | None, failures: FailureSink | None = None) -> bool:
    """Set :data:`CORRELATION_ATTRIBUTE` on the current span if it is recording.

    For a span promkit did not start, e.g. the server span of an outer
    OpenTelemetry ASGI instrumentation. Returns whether the attribute was set;
    never raises.
    """
    if not correlation_id:
        return False
    try:
        ctx = otel_context.get_current()
        if ctx:
            span = trace.get_current_span(ctx)
            if span.is_recording():
                span.set_attribute(CORRELATION_ATTRIBUTE, correlation_id)
                return True
    except Exception as exc:
        _report(failures, "tracing_annotate", exc)
    return False


def _correlation_labels(correlation_id: str | None) -> dict[str, str] | None:
    """``{"correlation_id": ...}``, or None when there is none or it is too long to fit."""
    if correlation_id and len(correlation_id) <= _MAX_CORRELATION_VALUE:
        return {_CORRELATION_KEY: correlation_id}
    return None


def request_exemplar(
    correlation_id: str | None, failures: FailureSink | None = None
) -> dict[str, str] | None:
    """Once per request: annotate the current span, return exemplar labels.

    When tracing is active, what :func:`annotate_current_span` then
    :func:`exemplar_labels` do, from one read of the current span. Without a
    real global provider it skips the OpenTelemetry context altogether and
    returns ``{"correlation_id": ...}`` (or None). Never raises.
    """
    if not tracing_active():
        return _correlation_labels(correlation_id)
    try:
        ctx = otel_context.get_current()
    except Exception as exc:
        _report(failures, "tracing_exemplar", exc)
        ctx = None
    if not ctx:
        return _correlation_labels(correlation_id)
    return traced_request(ctx, correlation_id, failures)[0]


def traced_request(
    ctx: Context, correlation_id: str | None, failures: FailureSink | None = None
) -> tuple[dict[str, str] | None, tuple[str, str] | None]:
    """For the HTTP middleware, once per request in a non-empty OpenTelemetry context ``ctx``.

    One lookup of the current span serves three steps: when tracing is active,
    the span gets :data:`CORRELATION_ATTRIBUTE` (as :func:`annotate_current_span`);
    the exemplar labels (as :func:`exemplar_labels` when tracing is active, else
    ``{"correlation_id": ...}``); and the span's hex ``(trace_id, span_id)`` for
    the request's log line (any valid span, as :func:`current_trace_ids`), or
    None. Returns ``(labels, ids)``; never raises. The middleware's, not in ``__all__``.
    """
    try:
        span = trace.get_current_span(ctx)
        span_context = span.get_span_context()
    except Exception as exc:
        _report(failures, "tracing_exemplar", exc)
        return _correlation_labels(correlation_id), None
    labels = None
    if tracing_active():
        if correlation_id:
            try:
                if span.is_recording():
                    span.set_attribute(CORRELATION_ATTRIBUTE, correlation_id)
            except Exception as exc:
                _report(failures, "tracing_annotate", exc)
        try:
            ids = _ids(span_context, True)
            if ids is not None:
                labels = {"trace_id": ids[0], "span_id": ids[1]}
        except Exception as exc:
            _report(failures, "tracing_exemplar", exc)
    try:
        # The sampled IDs above were formatted by the same call: a cache hit (see _compat).
        line_ids = _ids(span_context, False)
    except Exception as exc:
        _report(None, "tracing_trace_ids", exc)
        line_ids = None
    return (labels if labels is not None else _correlation_labels(correlation_id)), line_ids


# ---------------------------------------------------------------------------- spans


class _NoSpan:
    """What :func:`start_span` returns when spans are not recorded: does nothing.

    Stateless, so one shared instance serves every (nested, concurrent) use.
    """

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> Span:
        return INVALID_SPAN

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class _SpanScope:
    """A span that is current for a ``with`` (or ``async with``) block."""

    __slots__ = (
        "_attributes",
        "_failures",
        "_kind",
        "_name",
        "_nested",
        "_span",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        failures: FailureSink | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._failures = failures
        self._span: Span | None = None
        self._token: Token[Context] | None = None
        self._nested = 0

    def __enter__(self) -> Span:
        if self._span is not None:
            # The same object entered again inside its own block: a caller's
            # mistake, but not worth breaking the app for. The inner block runs
            # without a span of its own.
            self._nested += 1
            _report(self._failures, "tracing_start_span", RuntimeError("entered twice"))
            return INVALID_SPAN
        try:
            attrs: dict[str, AttributeValue] = dict(self._attributes) if self._attributes else {}
            cid = get_correlation_id()
            if cid:
                attrs.setdefault(CORRELATION_ATTRIBUTE, cid)
            # Exceptions are recorded in __exit__, where they can be told apart
            # from failures of the tracing pipeline itself. The correlation ID
            # is set at creation, so samplers see it.
            span = self._tracer.start_span(
                self._name,
                kind=self._kind,
                attributes=attrs,
                record_exception=False,
                set_status_on_exception=False,
            )
        except Exception as exc:
            _report(self._failures, "tracing_start_span", exc)
            return INVALID_SPAN
        self._span = span
        try:
            self._token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as exc:
            _report(self._failures, "tracing_start_span", exc)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._nested:
            self._nested -= 1
            return None
        span, token = self._span, self._token
        if span is None:
            return None
        self._span = self._token = None  # the object may be entered again afterwards
        # Only Exception subclasses are errors; CancelledError, KeyboardInterrupt
        # and GeneratorExit end the span without marking it failed, as
        # OpenTelemetry's own context managers do.
        if isinstance(exc, Exception):
            _record_error(span, exc, self._failures)
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception as failure:
                _report(self._failures, "tracing_end_span", failure)
        try:
            span.end()
        except Exception as failure:
            _report(self._failures, "tracing_end_span", failure)
        return None  # never swallow the application's exception

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _record_error(span: Span, exc: Exception, failures: FailureSink | None) -> None:
    """Mark ``span`` failed by ``exc`` (semantic conventions' "recording errors")."""
    try:
        if not span.is_recording():
            return
        cls = type(exc)
        module = cls.__module__
        error_type = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        span.set_attribute("error.type", error_type)
        try:
            text = str(exc)
        except Exception:
            text = ""
        span.set_status(
            Status(StatusCode.ERROR, f"{cls.__name__}: {text}" if text else cls.__name__)
        )
        span.record_exception(exc)  # the "exception" event, with the stack trace
    except Exception as failure:
        _report(failures, "tracing_record_exception", failure)


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer_provider: TracerProvider | None = None,
    failures: FailureSink | None = None,
) -> _SpanScope | _NoSpan:
    """A context manager running its block in a new current span ``name``.

    Use ``with start_span("ocr.extract") as span:`` (``async with`` works too;
    a plain ``with`` is fine inside coroutines, the span follows the
    contextvars). The span gets :data:`CORRELATION_ATTRIBUTE` from the
    correlation ID bound when the block is entered, set at creation so samplers
    can see it. An exception (``Exception`` subclass) leaving the block marks
    the span failed (status ERROR, ``error.type``, an ``exception`` event) and
    propagates unchanged.

    Spans go to ``tracer_provider`` when given, else to the global provider
    (``trace.get_tracer("promkit")``). Without a real provider this returns a
    shared no-op whose ``__enter__`` yields OpenTelemetry's invalid span, so
    ``span.set_attribute(...)`` in the block is always safe. Failures of the
    tracing pipeline go to ``failures`` (or are logged once) and never reach
    the block.
    """
    try:
        if tracer_provider is None:  # tracing_active() inlined: the no-SDK path stays ~0.1 us
            provider = global_tracer_provider()
            if not (_cached_active if provider is _cached_provider else _refresh(provider)):
                return _NO_SPAN
        tracer = _tracer(tracer_provider)
        if tracer is None:
            return _NO_SPAN
        return _SpanScope(tracer, name, kind, attributes, failures)
    except Exception as exc:
        _report(failures, "tracing_start_span", exc)
        return _NO_SPAN
