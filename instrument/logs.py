"""Structured JSON-lines logging on structlog: one schema, PII redaction that always runs.

:func:`configure_logging` sets up structlog *and* the stdlib ``logging`` root
logger so that both ``structlog.get_logger().info("job_created", job_id=...)``
and a library's ``logging.getLogger(__name__).warning(...)`` come out as one
JSON object per line, keys in a fixed order::

    {"timestamp":"2026-11-22T21:03:07.123Z","level":"info","service":"api",
     "event":"job_created","correlation_id":"...","job_id":"j-1","extra":{"queue":"ocr"}}

The processors are small callables usable on their own in any structlog
configuration: :func:`add_correlation_context`, :func:`add_trace_context`,
:data:`redact_pii` (a :class:`RedactPII`), :func:`sample_events`,
:class:`TimestampRFC3339` and :func:`render_json_line`.

:func:`access_logger` returns the HTTP middleware's per-request logger: a fast
path that writes the same line the structlog pipeline would, falling back to
the pipeline whenever it cannot be sure of that. See ``docs/logging.md``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random as _random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import structlog
from opentelemetry import context as _otel_context
from opentelemetry import trace as _otel_trace
from structlog.typing import EventDict, Processor, WrappedLogger

from promkit.instrument._compat import (
    STRUCTLOG_CONFIG,
    STRUCTLOG_CONTEXT_VARS,
    logger_level_cache,
    otel_current_context,
    structlog_context_bound,
)
from promkit.instrument._logs_pii import (
    DEFAULT_HASH_KEYS,
    DEFAULT_PII_KEY_SUFFIXES,
    DEFAULT_PII_KEYS,
    REDACTED,
    RedactPII,
    hash_identifier,
    redact_pii,
    redact_text,
)
from promkit.instrument._logs_sinks import LineSink, NullSink, RotatingFileSink, StreamSink
from promkit.instrument._safety import FailureSink
from promkit.instrument._secrets import redact_card_numbers
from promkit.instrument.correlation import correlation_id_var
from promkit.instrument.uvicorn_logging import restore_uvicorn_loggers, route_uvicorn_loggers

__all__ = [
    "ACCESS_EVENT",
    "ACCESS_LOGGER_NAME",
    "DEFAULT_HASH_KEYS",
    "DEFAULT_NEVER_SAMPLE",
    "DEFAULT_PII_KEYS",
    "DEFAULT_PII_KEY_SUFFIXES",
    "OUTPUT_NONE",
    "OUTPUT_STDLIB",
    "OUTPUT_STRUCTLOG",
    "REDACTED",
    "SCHEMA_KEYS",
    "STAGE_COMPLETED_EVENT",
    "AccessLogger",
    "LibraryLogger",
    "NullSink",
    "RedactPII",
    "RequestLine",
    "SampleEvents",
    "StageLineWriter",
    "TimestampRFC3339",
    "access_logger",
    "add_correlation_context",
    "add_trace_context",
    "configure_logging",
    "get_logger",
    "hash_identifier",
    "json_lines_handler",
    "library_logger",
    "log_output",
    "order_schema_keys",
    "processors",
    "redact_pii",
    "redact_text",
    "refresh_log_output",
    "render_json_line",
    "reset_logging",
    "round_ms",
    "sample_events",
]

SCHEMA_KEYS: tuple[str, ...] = (
    "timestamp", "level", "service", "event", "correlation_id", "job_id", "user_id_hash",
    "stage", "latency_ms", "error_code", "http_method", "http_path", "http_status",
    "trace_id", "span_id",
)
"""Top-level keys of a line, in order; every other key goes into ``extra``."""

DEFAULT_NEVER_SAMPLE: frozenset[str] = frozenset({
    "job_created", "job_completed", "job_failed", "auth_failed", "auth_failure", "login_failed",
})
"""Event names :func:`sample_events` never drops (besides warnings, 5xx and auth failures)."""

ACCESS_EVENT = "http_request"
"""``event`` of the middleware's per-request line."""
ACCESS_LOGGER_NAME = "promkit.access"
"""stdlib logger name of the per-request line (set its level to silence it)."""

_SCHEMA_SET = frozenset(SCHEMA_KEYS)
_META_KEYS = frozenset({"_record", "_from_structlog", "_promkit_sampled"})
_METHOD_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "exception": logging.ERROR, "critical": logging.CRITICAL, "fatal": logging.CRITICAL,
}
_DEFAULT_FILE_MAX_BYTES = 50 * 1024 * 1024
_STDOUT: Any = object()  # "sys.stdout as it is when configure_logging runs"
_SAMPLED_KEY = "_promkit_sampled"  # set by the access logger: sampling was decided already


# ---------------------------------------------------------------------------- timestamps

_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class TimestampRFC3339:
    """Processor: ``timestamp`` in RFC 3339 UTC with milliseconds: ``2026-11-22T21:03:07.123Z``.

    The ``YYYY-MM-DDTHH:MM:SS`` prefix is formatted once per second and
    cached, so a call costs a clock read and a concatenation. ``clock``
    (seconds since the epoch) can be replaced, e.g. by tests.
    """

    def __init__(self, key: str = "timestamp", clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.clock = clock
        self._cached: tuple[int, str] = (-1, "")

    def now(self) -> str:
        """The current time, formatted."""
        now = self.clock()
        second = int(now) if now >= 0.0 else math.floor(now)
        return self.prefix(second) + _MILLIS[int((now - second) * 1000.0)]

    def prefix(self, second: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS`` of ``second`` (UTC), the part cached per second."""
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached  # one tuple: readers never see a torn pair
        return cached[1]

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict[self.key] = self.now()
        return event_dict


# ---------------------------------------------------------------------------- context

def add_correlation_context(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Processor: add the current correlation ID and the structlog contextvars.

    ``correlation_id`` comes from :data:`promkit.instrument.correlation.correlation_id_var`
    (set by the middleware, ``bind_correlation_id`` or a worker that restored
    it); values bound with ``structlog.contextvars.bind_contextvars`` (``job_id``,
    ``stage``...) are merged in too. Values passed to the log call win over
    both; the promkit correlation ID wins over a structlog-bound one.
    """
    if event_dict.get("correlation_id") is None:
        cid = correlation_id_var.get()
        if cid is not None:
            event_dict["correlation_id"] = cid
    return structlog.contextvars.merge_contextvars(logger, method_name, event_dict)


def _trace_ids() -> tuple[str, str] | None:
    # Without an SDK (or outside any span) the OpenTelemetry context is empty:
    # one contextvar read, no span objects touched.
    if not _otel_context.get_current():
        return None
    span_context = _otel_trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: add ``trace_id`` (32 hex) and ``span_id`` (16 hex) of the current span.

    Reads OpenTelemetry's current span through opentelemetry-api; only a valid
    span context counts. Without an SDK or outside any span it is a no-op
    costing one contextvar read. Values passed to the log call win.
    """
    ids = _trace_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


class _AddService:
    """Processor: add ``service`` (the name given to ``configure_logging``)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["service"] = self.service
        return event_dict


# ---------------------------------------------------------------------------- sampling

def _is_auth_failure(event: str) -> bool:
    lowered = event.lower()
    return ("auth" in lowered or "login" in lowered) and any(
        word in lowered for word in ("fail", "denied", "invalid", "reject")
    )


class SampleEvents:
    """Processor: keep only a fraction of noisy events, by event name.

    ``rates`` maps an event name to the fraction kept (``{"cache_hit": 0.01}``);
    ``"*"`` sets a rate for every other event. An event is *never* dropped when
    its level is warning or above, its ``http_status`` is 5xx (or 401/403), its
    name is in ``never_sample`` (default :data:`DEFAULT_NEVER_SAMPLE`), or its
    name says it is an auth failure (contains ``auth``/``login`` and
    ``fail``/``denied``/``invalid``/``reject``). Dropping raises
    :class:`structlog.DropEvent`. ``random`` returns a float in [0, 1): pass a
    deterministic one in tests.
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        never_sample: Iterable[str] = DEFAULT_NEVER_SAMPLE,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        for name, rate in rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"sample rate of {name!r} must be within [0, 1], got {rate!r}")
        self.rates = {name: float(rate) for name, rate in rates.items() if name != "*"}
        self.default_rate: float | None = float(rates["*"]) if "*" in rates else None
        self.never_sample = frozenset(never_sample)
        self.random = random

    def keep(self, event: object, level: int, http_status: object = None) -> bool:
        """Whether an event with this name, numeric level and status is kept."""
        rate = self.rates.get(event) if isinstance(event, str) else None
        if rate is None:
            rate = self.default_rate
            if rate is None:
                return True
        if rate >= 1.0 or level >= logging.WARNING:
            return True
        if type(http_status) is int and (http_status >= 500 or http_status in (401, 403)):
            return True
        if isinstance(event, str) and (event in self.never_sample or _is_auth_failure(event)):
            return True
        return rate > 0.0 and self.random() < rate

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if event_dict.pop(_SAMPLED_KEY, False):
            return event_dict  # the access logger's fast path has decided already
        level = _METHOD_LEVELS.get(method_name, logging.INFO)
        if not self.keep(event_dict.get("event"), level, event_dict.get("http_status")):
            raise structlog.DropEvent
        return event_dict


def sample_events(
    rates: Mapping[str, float],
    never_sample: Iterable[str] = DEFAULT_NEVER_SAMPLE,
    *,
    random: Callable[[], float] = _random.random,
) -> SampleEvents:
    """A :class:`SampleEvents` processor (see there for the rules)."""
    return SampleEvents(rates, never_sample, random=random)


class _ForeignSampleFilter(logging.Filter):
    """Applies a :class:`SampleEvents` to stdlib records (structlog's were sampled already)."""

    def __init__(self, sampler: SampleEvents) -> None:
        super().__init__()
        self.sampler = sampler

    def filter(self, record: logging.LogRecord) -> bool:
        if "_logger" in record.__dict__:  # came through structlog's chain
            return True
        event = record.msg if isinstance(record.msg, str) else None
        return self.sampler.keep(event, record.levelno)


# ---------------------------------------------------------------------------- rendering

def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_safe_repr
)


def _sanitise(value: Any, depth: int) -> Any:
    # Turns anything into plain JSON types: str keys, lists, finite floats, repr() for the rest.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, (str, int)):
        return value
    if depth > 32:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {
            (key if isinstance(key, str) else _safe_repr(key)): _sanitise(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_sanitise(item, depth + 1) for item in value]
    return _safe_repr(value)


def _dumps(value: Any) -> str:
    try:
        text = _ENCODER.encode(value)
    except Exception:
        text = _ENCODER.encode(_sanitise(value, 0))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: write them as JSON \\uXXXX escapes
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def render_json_line(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> str:
    """Processor (the renderer): the event as one compact JSON object.

    Keys of :data:`SCHEMA_KEYS` come first, in that order and only when not
    ``None``; every other key goes into a nested ``extra`` object.
    ``ensure_ascii=False``, no spaces. Never raises: values JSON cannot
    encode become their ``repr()``, NaN/infinity become strings, and lone
    surrogates become ``\\uXXXX`` escapes.
    """
    try:
        return _dumps(_schema_ordered(event_dict))
    except Exception as exc:  # pragma: no cover - _dumps already sanitises
        return _dumps({"level": "error", "event": "unrenderable_log_event",
                       "extra": {"error": type(exc).__name__}})


def order_schema_keys(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Processor: promkit's line schema for a renderer of your own.

    Returns a new event dict with the keys of :data:`SCHEMA_KEYS` first, in
    that order and only when not ``None``, and every other key nested in an
    ``extra`` dict (what :func:`render_json_line` writes, left to your
    renderer). Put it last before the renderer.
    """
    return _schema_ordered(event_dict)


def _schema_ordered(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`SCHEMA_KEYS` that are set, in order, then ``extra`` with every other key."""
    get = event_dict.get
    out: dict[str, Any] = {}
    for key in SCHEMA_KEYS:
        value = get(key)
        if value is not None:
            out[key] = value
    extra = {key: value for key, value in event_dict.items()
             if key not in _SCHEMA_SET and key not in _META_KEYS}
    if extra:
        out["extra"] = extra
    return out


def processors(
    service: str | None = None,
    *,
    pii_keys: Iterable[str] = (),
    hash_keys: Iterable[str] = (),
    schema: bool = False,
) -> list[Processor]:
    """promkit's processors, for an application that keeps its own structlog chain.

    In order: ``service`` (when given, as :func:`configure_logging` adds it),
    :func:`add_correlation_context` (the correlation ID and structlog's
    contextvars), :func:`add_trace_context` (OpenTelemetry trace and span
    IDs), :class:`RedactPII` (the PII blocklist and user-ID hashing, with
    ``pii_keys``/``hash_keys`` added to the defaults) and, with
    ``schema=True``, :func:`order_schema_keys`. Splice the list into your
    chain after your own processors that add values and before your renderer::

        structlog.configure(processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            *promkit.instrument.logs.processors(),
            structlog.dev.ConsoleRenderer(),
        ])

    Redaction only sees what is in the event dict when it runs, so nothing
    that adds values may come after it. Apps without a chain of their own use
    :func:`configure_logging`, which builds the whole pipeline (these
    processors, timestamps, JSON lines, stdlib records).
    """
    chain: list[Processor] = []
    if service is not None:
        chain.append(_AddService(service))
    chain += [add_correlation_context, add_trace_context, RedactPII(pii_keys, hash_keys)]
    if schema:
        chain.append(order_schema_keys)
    return chain


# ---------------------------------------------------------------------------- handler

_fallback_failures = FailureSink()


class _JsonLinesHandler(logging.Handler):
    """Root handler: formats each record once (ProcessorFormatter) and writes it to every sink."""

    def __init__(self, sinks: Sequence[LineSink], failures: FailureSink) -> None:
        super().__init__()
        self.sinks = tuple(sinks)
        self.failures = failures

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:
            self.failures.failure("log_format", exc)
            return
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """Write a rendered line to every sink; a failing sink is counted, never raised."""
        for sink in self.sinks:
            try:
                sink.write_line(line)
            except Exception as exc:
                self.failures.failure(f"log_sink_{sink.name}", exc)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.failures.failure("log_handler", exc)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.failures.failure(f"log_sink_{sink.name}", exc)
        super().close()


class _LoggingState:
    """Everything one ``configure_logging`` call set up (read by the access logger)."""

    def __init__(self, **kw: Any) -> None:
        self.service: str = kw["service"]
        self.handler: _JsonLinesHandler = kw["handler"]
        self.timestamper: TimestampRFC3339 = kw["timestamper"]
        self.redactor: RedactPII = kw["redactor"]
        self.sampler: SampleEvents | None = kw["sampler"]
        self.structlog_processors: list[Processor] = kw["structlog_processors"]
        self.fast_capable: bool = kw["fast_capable"]
        self.handler_filters: int = len(self.handler.filters)
        self.failures: FailureSink = kw["failures"]
        # The fast paths write a finished line here: straight to the only sink
        # (one call less per line), else through the handler's loop over sinks.
        sinks = self.handler.sinks
        self.write_line: Callable[[str], None] = (
            sinks[0].write_line if len(sinks) == 1 else self.handler.write_line)
        self.write_cause = f"log_sink_{sinks[0].name}" if len(sinks) == 1 else "log_handler"


_STATE: _LoggingState | None = None
_configure_lock = threading.Lock()


def _make_sinks(
    stream: Any, file: str | os.PathLike[str] | None, max_bytes: int, backups: int
) -> list[LineSink]:
    sinks: list[LineSink] = []
    if stream is _STDOUT:
        stream = sys.stdout
    if stream is None:
        sinks.append(NullSink())
    elif hasattr(stream, "write_line"):
        sinks.append(stream)
    else:
        sinks.append(StreamSink(stream))
    if file is not None:
        sinks.append(RotatingFileSink(file, max_bytes, backups))
    return sinks


DEFAULT_QUIET_LOGGERS = ("httpx", "httpcore")
"""Libraries whose INFO lines would log full URLs (tokens in webhook paths)."""


def configure_logging(
    service: str,
    *,
    level: int | str = "INFO",
    stream: IO[str] | LineSink | None = _STDOUT,
    file: str | os.PathLike[str] | None = None,
    file_max_bytes: int = _DEFAULT_FILE_MAX_BYTES,
    file_backups: int = 5,
    sample: Mapping[str, float] | None = None,
    never_sample: Iterable[str] = DEFAULT_NEVER_SAMPLE,
    extra_processors: Sequence[Processor] = (),
    pii_keys: Iterable[str] = (),
    hash_keys: Iterable[str] = (),
    failures: FailureSink | None = None,
    sample_random: Callable[[], float] | None = None,
    quiet_loggers: Iterable[str] = DEFAULT_QUIET_LOGGERS,
    uvicorn_loggers: bool = True,
    uvicorn_access_log: bool = False,
) -> None:
    """Send structlog events and stdlib ``logging`` records out as JSON lines.

    ``stream`` (default ``sys.stdout``; ``None`` or a :class:`NullSink` for
    nowhere) and, when ``file`` is given, a JSON-lines file rotated at
    ``file_max_bytes`` keeping ``file_backups`` old files. ``level`` is set on
    the root logger. ``sample`` maps event names to kept fractions (see
    :class:`SampleEvents`). ``extra_processors`` run after the context
    processors and *before* PII redaction, which always runs last before
    rendering; ``pii_keys`` and ``hash_keys`` add to the default blocklist and
    raw-ID keys (they cannot remove defaults). Write failures (a full disk)
    are counted in ``failures`` (default: the default registry's) and logged
    once, never raised. ``quiet_loggers`` (default httpx and httpcore, whose
    INFO lines carry full request URLs) are set to WARNING. ``uvicorn_loggers``:
    uvicorn's own lines come out as these JSON lines too, and its access log is
    off unless ``uvicorn_access_log`` (the middleware's request line replaces it;
    see :mod:`promkit.instrument.uvicorn_logging`). ``file_backups=0`` or
    ``file_max_bytes=0``: the file is never rotated (nor truncated). Calling it
    again replaces the previous setup.
    """
    if failures is None:
        from promkit.instrument.registry import default_registry

        failures = default_registry().failures
    sinks = _make_sinks(stream, file, file_max_bytes, file_backups)
    timestamper = TimestampRFC3339()
    redactor = RedactPII(pii_keys, hash_keys)
    sampler = None
    if sample:
        sampler = SampleEvents(sample, never_sample,
                               random=sample_random if sample_random is not None
                               else _random.random)
    shared: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.stdlib.add_log_level,
        timestamper,
        _AddService(service),
        add_correlation_context,
        add_trace_context,
        structlog.processors.format_exc_info,
        *extra_processors,
        redactor,  # always, and after everything that can add values
        render_json_line,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=shared, foreign_pre_chain=[structlog.stdlib.add_logger_name]
    )
    handler = _JsonLinesHandler(sinks, failures)
    handler.setFormatter(formatter)
    if sampler is not None:
        handler.addFilter(_ForeignSampleFilter(sampler))
    structlog_processors: list[Processor] = [structlog.stdlib.filter_by_level]
    if sampler is not None:
        structlog_processors.append(sampler)
    structlog_processors.append(structlog.stdlib.ProcessorFormatter.wrap_for_formatter)
    access_keys = (*SCHEMA_KEYS, "extra")
    fast_capable = not extra_processors and all(
        redactor.redact_value(key, "x") == "x" and not redactor.renames(key) for key in access_keys
    )

    global _STATE
    with _configure_lock:
        root = logging.getLogger()
        _remove_our_handlers(root)
        root.addHandler(handler)
        root.setLevel(level.upper() if isinstance(level, str) else level)
        for name in quiet_loggers:
            # httpx logs every request's full URL at INFO; webhook URLs (Slack,
            # Discord) carry their token in the path, which redaction can't know.
            logging.getLogger(name).setLevel(logging.WARNING)
        if uvicorn_loggers:
            route_uvicorn_loggers(access_log=uvicorn_access_log)
        structlog.configure(
            processors=structlog_processors,
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        _STATE = _LoggingState(
            service=service, handler=handler, timestamper=timestamper, redactor=redactor,
            sampler=sampler, structlog_processors=structlog_processors,
            fast_capable=fast_capable, failures=failures,
        )
        refresh_log_output()


def _remove_our_handlers(root: logging.Logger) -> None:
    for old in list(root.handlers):
        if isinstance(old, _JsonLinesHandler):
            root.removeHandler(old)
            old.close()


def json_lines_handler(service: str, **options: Any) -> logging.Handler:
    """A ``dictConfig`` handler factory: ``configure_logging(service, **options)``, then its
    handler (which ``dictConfig`` puts on the root logger, where it already is).

    ``options`` are :func:`configure_logging`'s keywords as JSON can give them
    (``file``, ``file_max_bytes``, ``pii_keys``...; ``"stream": "ext://sys.stderr"``
    for stderr). The app may call ``configure_logging`` again later: that replaces
    this set-up, as any second call does.
    """
    configure_logging(service, **options)
    state = _STATE  # set by the call above, under its lock
    assert state is not None
    return state.handler


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handler, close its sinks, reset structlog,
    give uvicorn's loggers back what they had."""
    global _STATE
    with _configure_lock:
        root = logging.getLogger()
        _remove_our_handlers(root)
        restore_uvicorn_loggers()
        structlog.reset_defaults()
        _STATE = None
        refresh_log_output()


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """``structlog.stdlib.get_logger(name, **initial_values)``: a logger for this pipeline."""
    return structlog.stdlib.get_logger(name, **initial_values)


# ------------------------------------------------------- where promkit's own lines go

OUTPUT_NONE = 0
""":func:`log_output`: the application configured no logging; promkit logs nothing."""
OUTPUT_STRUCTLOG = 1
""":func:`log_output`: structlog is configured (by :func:`configure_logging` or the app)."""
OUTPUT_STDLIB = 2
""":func:`log_output`: only stdlib ``logging`` is configured; events go to ``promkit.*`` loggers."""

# A library's convention: a NullHandler on its top logger, so that without any
# configuration its records reach no handler (not logging's last-resort stderr
# handler) and, with one, propagate to whatever the application set up.
_LIBRARY_ROOT = logging.getLogger("promkit")
if not any(isinstance(h, logging.NullHandler) for h in _LIBRARY_ROOT.handlers):
    _LIBRARY_ROOT.addHandler(logging.NullHandler())

_OWN_LOGGERS = ("promkit.access", "promkit.worker", "promkit.external", "promkit.resources")
_RECHECK_SECONDS = 1.0
_monotonic = time.perf_counter  # the clock hot paths already read (see output_state)


class _Output:
    """The verdict of :func:`log_output`: ``mode``, valid while ``perf_counter() < until``."""

    __slots__ = ("mode", "until")

    def __init__(self) -> None:
        self.mode = OUTPUT_NONE
        self.until = -math.inf


_output = _Output()
output_state = _output
"""The cached :func:`log_output` verdict, for hot paths that already read
``time.perf_counter()``: ``output_state.mode == OUTPUT_NONE and now <
output_state.until`` means "nothing configured, skip" without a call (the HTTP
middleware reads it once per request)."""


def log_output() -> int:
    """Where promkit's own log events go: ``OUTPUT_NONE``, ``_STRUCTLOG`` or ``_STDLIB``.

    ``OUTPUT_STRUCTLOG`` when :func:`configure_logging` ran or the application
    called ``structlog.configure`` (``structlog.is_configured()``; structlog's
    built-in default, which prints to stdout, does not count);
    ``OUTPUT_STDLIB`` when only stdlib ``logging`` has a handler (other than a
    ``NullHandler``) on the root logger, ``promkit`` or one of promkit's own
    loggers (``promkit.access``, ``.worker``, ``.external``, ``.resources``), e.g. after
    ``logging.basicConfig()``; else ``OUTPUT_NONE`` and promkit skips its
    per-request and per-stage log work. The answer is worked out at most once a
    second (and at once after :func:`configure_logging`/:func:`reset_logging`
    or :func:`refresh_log_output`), so logging configured later is picked up
    within a second.
    """
    out = _output
    now = _monotonic()
    if now < out.until:
        return out.mode
    mode = _detect_output()
    out.mode, out.until = mode, now + _RECHECK_SECONDS
    return mode


_refresh_hooks: list[Callable[[], None]] = []


def on_log_output_change(hook: Callable[[], None]) -> None:
    """Call ``hook()`` whenever :func:`refresh_log_output` runs (a cache of the verdict)."""
    _refresh_hooks.append(hook)


def refresh_log_output() -> None:
    """Make the next :func:`log_output` look again (after configuring logging by hand)."""
    _output.until = -math.inf
    for hook in list(_refresh_hooks):
        hook()


def _detect_output() -> int:
    try:
        if _STATE is not None or structlog.is_configured():
            return OUTPUT_STRUCTLOG
        if _has_real_handler(_ROOT) or _has_real_handler(_LIBRARY_ROOT):
            return OUTPUT_STDLIB
        # promkit's own loggers only (not every logger in the process: this
        # runs once a second, but under a profiler that is every few requests)
        manager = logging.Logger.manager.loggerDict
        for name in _OWN_LOGGERS:
            logger = manager.get(name)
            if isinstance(logger, logging.Logger) and _has_real_handler(logger):
                return OUTPUT_STDLIB
    except Exception:  # never break the caller over this
        return OUTPUT_NONE
    return OUTPUT_NONE


def _has_real_handler(logger: logging.Logger) -> bool:
    return any(not isinstance(h, logging.NullHandler) for h in logger.handlers)


_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_STDLIB_REDACTOR: RedactPII | None = None


def _logfmt_value(value: object) -> str:
    if isinstance(value, str) and value and not any(c in value for c in ' ="\\\n'):
        return value
    return _dumps(value) if isinstance(value, str) else str(value)


def stdlib_event(logger: logging.Logger, level: int, event: str, fields: Mapping[str, Any]) -> None:
    """Log one promkit event on stdlib ``logger`` (no structlog configured).

    The message is ``event key=value ...`` (PII redacted as by
    :func:`configure_logging`'s default redactor); the fields also go in
    ``extra``, for a formatter that renders record attributes.
    """
    if not logger.isEnabledFor(level):
        return
    global _STDLIB_REDACTOR
    redactor = _STDLIB_REDACTOR
    if redactor is None:
        redactor = _STDLIB_REDACTOR = RedactPII()
    clean = redactor(None, _LEVEL_NAMES.get(level, "info"), {"event": event, **fields})
    event_text = str(clean.pop("event", event))
    message = " ".join([event_text, *(f"{k}={_logfmt_value(v)}" for k, v in clean.items())])
    extra = {k: v for k, v in clean.items() if k not in _RECORD_ATTRS}
    logger.log(level, "%s", message, extra=extra)


class LibraryLogger:
    """One of promkit's own loggers: events go where the application's logging is.

    ``debug``/``info``/``warning``/``error(event, **fields)``: through structlog
    when it is configured, else as a stdlib record on the logger ``name``
    (:func:`stdlib_event`) when stdlib logging is, else nowhere (see
    :func:`log_output`). Never prints structlog's default console output.
    """

    __slots__ = ("_stdlib", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._stdlib = logging.getLogger(name)

    def log(self, level: int, event: str, **fields: Any) -> None:
        mode = log_output()
        if mode == OUTPUT_NONE:
            return
        if mode == OUTPUT_STDLIB:
            stdlib_event(self._stdlib, level, event, fields)
            return
        getattr(structlog.stdlib.get_logger(self.name), _LEVEL_NAMES.get(level, "info"))(
            event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)


def library_logger(name: str) -> LibraryLogger:
    """A :class:`LibraryLogger` for ``name`` (a ``promkit.*`` logger name)."""
    return LibraryLogger(name)


# ---------------------------------------------------------------------------- access log

_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                logging.ERROR: "error", logging.CRITICAL: "critical"}
_ROOT = logging.getLogger()
# Private reads of structlog and OpenTelemetry for the fast paths, each with a
# public fallback chosen at import (see _compat): None vars -> the pipeline.
_STRUCTLOG_CONFIG: Any = STRUCTLOG_CONFIG
_STRUCTLOG_VARS: dict[str, Any] | None = STRUCTLOG_CONTEXT_VARS
_otel_current: Callable[[], object] = otel_current_context
_structlog_context_bound = structlog_context_bound
# IDs a fast path writes without the redactor: hex digits and dashes it leaves alone.
# Of its rules only a card number can match such text; a canonical UUID or 12
# characters cannot hold one, so the usual ID costs one regex call.
_plain_uuid = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f-]{1,12}").fullmatch
_hex_id = re.compile(r"[0-9a-f-]{1,64}").fullmatch


def _hex_without_card(value: str) -> bool:
    """Whether ``value``, not a :data:`_plain_uuid`, is still written as is: hex digits and
    dashes holding no card number. Callers try :data:`_plain_uuid` first (the usual ID)."""
    return _hex_id(value) is not None and redact_card_numbers(value) == value

_PIECE_CACHE_LIMIT = 4096
# repr(q / 1000.0) for 0 <= q < _EXACT_MICROS is the integer part and these
# fraction digits (trailing zeros dropped, ".0" for none): a double holds the
# three-decimal value exactly enough that the shortest repr is that decimal.
_FRACTIONS = tuple(("." + f"{r:03d}".rstrip("0")) if r else ".0" for r in range(1000))
_EXACT_MICROS = 10**15


def _access_level(status: int) -> int:
    if status >= 500 or status < 100:
        return logging.ERROR
    return logging.WARNING if status >= 400 else logging.INFO


def _trace_json() -> str:
    """``,"trace_id":...,"span_id":...`` of the current span for a fast-path line, or ""."""
    ids = _trace_ids()
    return "" if ids is None else f',"trace_id":"{ids[0]}","span_id":"{ids[1]}"'


level_cache = logger_level_cache
"""``logger``'s own ``isEnabledFor`` cache, or an empty dict (see _compat)."""


class _FastPathGate:
    """Whether a fast path may write its line itself, as the pipeline would.

    True when nothing but ``configure_logging``'s own set-up is in play for
    ``stdlib`` (a ``promkit.*`` logger): promkit's handler alone on the root
    logger, no other handlers or filters on the way, the handler's level
    and filters as configured, structlog's processors as configured. The
    verdict holds for the second it was made in, for that state and for
    levels at or above the handler's; callers re-check when any of these
    differ or the root logger's handler count changes. ``prefix`` is that
    second's timestamp prefix; ``levels`` is ``stdlib``'s level cache.
    """

    __slots__ = ("levels", "min_level", "prefix", "second", "state", "stdlib")

    def __init__(self, stdlib: logging.Logger) -> None:
        self.stdlib = stdlib
        self.levels = level_cache(stdlib)
        self.state: _LoggingState | None = None
        self.second = -1
        self.min_level = logging.CRITICAL + 1
        self.prefix = ""

    def check(self, state: _LoggingState, level: int, second: int) -> bool:
        """Check everything now; remember a positive verdict for ``second``."""
        stdlib = self.stdlib
        handler = state.handler
        handlers = _ROOT.handlers
        parent = stdlib.parent
        ok = (
            state.fast_capable
            and second > 0  # a clock before 1970 (tests): the timestamper floors, not truncates
            and len(handlers) == 1 and handlers[0] is handler and not _ROOT.filters
            and not stdlib.handlers and not stdlib.filters and stdlib.propagate
            and not stdlib.disabled
            and (parent is _ROOT or (
                parent is not None and parent.parent is _ROOT
                and not _has_real_handler(parent)
                and not parent.filters and parent.propagate))
            and handler.level <= level and len(handler.filters) == state.handler_filters
            and _STRUCTLOG_CONFIG.default_processors is state.structlog_processors
        )
        if ok:
            self.prefix = state.timestamper.prefix(second)
            self.state, self.second, self.min_level = state, second, handler.level
        else:
            self.state = None
        return bool(ok)


class RequestLine:
    """What :meth:`AccessLogger.line` returns: one request shape's line, ready to fill in.

    Holds the method, route template and status, the level they log at and
    the fixed JSON around the per-request values, rendered for the logging
    set-up in force (and re-rendered when it changes). Callers keep one per
    request shape, as the middleware keeps its label children.
    """

    __slots__ = ("head", "level", "method", "path_template", "state", "status", "tail")

    def __init__(self, method: str, path_template: str, status: int) -> None:
        self.method = method
        self.path_template = path_template
        self.status = status
        self.level = _access_level(status)
        self.state: _LoggingState | None = None  # what head and tail were rendered for
        self.head = self.tail = ""


class AccessLogger:
    """The middleware's one line per request: fast, identical to the structlog pipeline's.

    Use :func:`access_logger` to get one. ``log_request`` writes the event
    ``http_request`` with ``http_method``, ``http_path`` (the route template),
    ``http_status``, ``latency_ms`` and ``correlation_id`` at INFO (2xx/3xx),
    WARNING (4xx) or ERROR (5xx and anything outside 100-599).
    """

    __slots__ = ("_event", "_failures", "_gate", "_levels", "_lines", "_stdlib")

    def __init__(self, failures: FailureSink | None = None, *, event: str = ACCESS_EVENT,
                 logger_name: str = ACCESS_LOGGER_NAME) -> None:
        self._failures = failures
        self._event = event
        self._stdlib = logging.getLogger(logger_name)
        self._gate = _FastPathGate(self._stdlib)
        self._levels = self._gate.levels
        self._lines: dict[tuple[str, str, int], RequestLine] = {}

    def log_request(self, method: str, path_template: str, status: int,
                    latency_seconds: float, correlation_id: str | None = None, *,
                    correlation_id_is_uuid: bool = False) -> None:
        """Log one finished request; never raises.

        Returns at once when the level for ``status`` is disabled on the
        ``promkit.access`` logger or the event is sampled out. Writes the line
        itself when only ``configure_logging``'s own set-up is in play;
        otherwise (structlog contextvars bound, extra processors, other root
        handlers or filters, structlog reconfigured, logging not configured by
        promkit) it logs through structlog, with the same result. The full
        check of that set-up runs at most once a second: a filter or handler
        added elsewhere applies from the next second, a new root handler at
        once. ``correlation_id_is_uuid=True`` says the caller already
        validated the ID as a UUID (the middleware does), which skips
        re-checking it.
        """
        cid = correlation_id or correlation_id_var.get()
        try:
            line = self._lines.get((method, path_template, status))
            if line is None:
                line = self.line(method, path_template, status)
        except Exception as exc:  # an unhashable argument
            (self._failures or _fallback_failures).failure("access_log", exc)
            return
        self.log_line(line, latency_seconds, cid, correlation_id_is_uuid and cid is correlation_id)

    def line(self, method: str, path_template: str, status: int) -> RequestLine:
        """The :class:`RequestLine` of one request shape, for :meth:`log_line`."""
        line = RequestLine(method, path_template, status)
        if len(self._lines) < _PIECE_CACHE_LIMIT:
            self._lines[(method, path_template, status)] = line
        return line

    def log_line(self, line: RequestLine, latency_seconds: float, cid: str | None,
                 cid_is_plain: bool) -> None:
        """:meth:`log_request` for a request shape from :meth:`line` (the hot path).

        ``cid`` is logged as given (no contextvar lookup); ``cid_is_plain``
        says it is a validated UUID, whose JSON needs no escaping. The
        middleware calls this once per request. Never raises.
        """
        try:
            state = _STATE
            if state is None:  # not configured by promkit: the app's logging, or nothing
                if log_output() == OUTPUT_NONE:
                    return
                self._log_slow(line.level, line.method, line.path_template, line.status,
                               latency_seconds, cid)
                return
            if line.state is not state:
                self._render(line, state)
            level = line.level
            enabled = self._levels.get(level)
            if enabled is None:
                enabled = self._stdlib.isEnabledFor(level)
            if not enabled:
                return
            sampler = state.sampler
            if sampler is not None:
                if not sampler.keep(self._event, level, line.status):
                    return
                sampled = True  # the pipeline must not sample this event again
            else:
                sampled = False
            # The fast path writes what the pipeline would only when nothing but
            # configure_logging's own set-up is in play: fully checked once a second
            # (the checks cost more than the line), a new root handler at once.
            gate = self._gate
            now = state.timestamper.clock()
            second = int(now)
            if (
                (second != gate.second or state is not gate.state or level < gate.min_level
                 or len(_ROOT.handlers) != 1) and not gate.check(state, level, second)
            ) or (_STRUCTLOG_VARS is None or (_STRUCTLOG_VARS and _structlog_context_bound())):
                self._log_slow(level, line.method, line.path_template, line.status,
                               latency_seconds, cid, sampled)
                return
            try:
                micros = int(latency_seconds * 1e6 + 0.5)
            except (ValueError, OverflowError):  # NaN or infinity: let the pipeline render it
                self._log_slow(level, line.method, line.path_template, line.status,
                               latency_seconds, cid, sampled)
                return
            trace_part = _trace_json() if _otel_current() else ""  # no call without a context
            millis = _MILLIS[int((now - second) * 1000.0)]
            # The latency is what json.dumps(micros / 1000.0) gives, without a float
            # repr (see _FRACTIONS). The usual line is built as one string.
            if cid_is_plain and cid is not None and 0 <= micros < _EXACT_MICROS:
                text = (f'{{"timestamp":"{gate.prefix}{millis}{line.head},"correlation_id":'
                        f'"{cid}","latency_ms":{micros // 1000}{_FRACTIONS[micros % 1000]}'
                        f'{line.tail}{trace_part}}}')
            else:
                if 0 <= micros < _EXACT_MICROS:
                    latency = f"{micros // 1000}{_FRACTIONS[micros % 1000]}"
                else:
                    latency = repr(micros / 1000.0)
                if cid is None:
                    cid_part = ""
                elif cid_is_plain or _plain_uuid(cid) or _hex_without_card(cid):
                    cid_part = f',"correlation_id":"{cid}"'
                else:
                    cid_part = ',"correlation_id":' + _dumps(
                        state.redactor.redact_value("correlation_id", cid))
                text = (f'{{"timestamp":"{gate.prefix}{millis}{line.head}{cid_part}'
                        f',"latency_ms":{latency}{line.tail}{trace_part}}}')
            try:
                state.write_line(text)
            except Exception as exc:  # the only sink failed (several: the handler counts)
                state.failures.failure(state.write_cause, exc)
        except Exception as exc:
            (self._failures or _fallback_failures).failure("access_log", exc)

    def _render(self, line: RequestLine, state: _LoggingState) -> None:
        """The fixed text before and after the per-request values, for ``state``."""
        redact = state.redactor.redact_value
        head = '","level":"' + _LEVEL_NAMES[line.level] + '"'
        head += _piece("service", redact("service", state.service))
        head += _piece("event", redact("event", self._event))
        tail = _piece("http_method", redact("http_method", line.method))
        tail += _piece("http_path", redact("http_path", line.path_template))
        tail += _piece("http_status", redact("http_status", line.status))
        line.head, line.tail, line.state = head, tail, state

    def _log_slow(self, level: int, method: str, path_template: str, status: int,
                  latency_seconds: float, cid: str | None, sampled: bool = False) -> None:
        try:
            latency_ms = int(latency_seconds * 1e6 + 0.5) / 1000.0
        except (ValueError, OverflowError):
            latency_ms = latency_seconds * 1000.0
        fields: dict[str, Any] = {
            "http_method": method, "http_path": path_template, "http_status": status,
            "latency_ms": latency_ms,
        }
        if cid is not None:
            fields["correlation_id"] = cid
        if sampled:
            fields[_SAMPLED_KEY] = True
        if _STATE is None:
            mode = log_output()
            if mode == OUTPUT_NONE:
                return
            if mode == OUTPUT_STDLIB:
                stdlib_event(self._stdlib, level, self._event, fields)
                return
        logger = structlog.stdlib.get_logger(self._stdlib.name)
        getattr(logger, _LEVEL_NAMES[level])(self._event, **fields)


class StageLineWriter:
    """The ``stage completed`` line of :mod:`promkit.instrument.stages`, written directly.

    :meth:`completed` writes what the structlog pipeline would for
    ``log.info("stage completed", stage=..., latency_ms=..., cpu_ms=...,
    job_id=...)`` on the ``promkit.worker`` logger and returns True, or
    returns False and writes nothing when it cannot be sure of that (logging
    not configured by promkit, sampling or extra processors, other handlers
    or filters, structlog contextvars other than ``job_id`` and
    ``correlation_id`` bound, values the redactor would change): the caller
    then logs through structlog with ``latency_ms``/``cpu_ms`` rounded by
    :func:`round_ms`, as this does. Never raises.
    """

    __slots__ = ("_gate", "_levels", "_stages", "_stdlib", "_values", "_values_state")

    def __init__(self, logger_name: str) -> None:
        self._stdlib = logging.getLogger(logger_name)
        self._gate = _FastPathGate(self._stdlib)
        self._levels = self._gate.levels
        # (state, stage name) -> the fixed text around the IDs, or None: no fast path
        self._stages: dict[tuple[_LoggingState, str], tuple[str, str] | None] = {}
        self._values: dict[str, str] = {}  # job ID -> its JSON piece, for _values_state
        self._values_state: _LoggingState | None = None

    def completed(self, stage: str, wall_seconds: float, cpu_seconds: float | None,
                  job_id: Any = None) -> bool:
        """Write the line of one finished stage; False: not written, use the pipeline."""
        try:
            state = _STATE
            if state is None or state.sampler is not None:
                return False
            enabled = self._levels.get(logging.INFO)
            if enabled is None:
                enabled = self._stdlib.isEnabledFor(logging.INFO)
            if not enabled:
                return True  # filtered, as the pipeline would
            gate = self._gate
            now = state.timestamper.clock()
            second = int(now)
            if (second != gate.second or state is not gate.state or gate.min_level > logging.INFO
                    or len(_ROOT.handlers) != 1) and not gate.check(state, logging.INFO, second):
                return False
            if _STRUCTLOG_VARS is None:
                return False
            cid = correlation_id_var.get()
            if _STRUCTLOG_VARS:
                # One pass over structlog's context variables (not a copy of the
                # whole context): job_id and correlation_id may be bound, as a
                # job run binds them; anything else goes through the pipeline.
                for var_name, var in list(_STRUCTLOG_VARS.items()):
                    value = var.get()
                    if value is Ellipsis:
                        continue
                    if var_name == _BOUND_JOB_ID:
                        if job_id is None:
                            job_id = value
                    elif var_name == _BOUND_CORRELATION_ID:
                        if cid is None:
                            cid = value
                    else:
                        return False
            head = self._stages.get((state, stage), _MISSING)
            if head is _MISSING:
                head = self._head(state, stage)
            if head is None:
                return False
            if cid is None:
                cid_part = ""
            elif type(cid) is str and (_plain_uuid(cid) or _hex_without_card(cid)):
                cid_part = f',"correlation_id":"{cid}"'
            else:
                return False
            job_part: str | None = ""
            if job_id is not None:
                if self._values_state is not state:
                    self._values.clear()
                    self._values_state = state
                job_part = self._values.get(job_id) if type(job_id) is str else None
                if job_part is None:
                    job_part = self._job_part(state, job_id)
            trace_part = _trace_json() if _otel_current() else ""  # no call without a context
            # round_ms(x)'s repr from integer microseconds, as the access line does
            # (see _FRACTIONS): the same text without two float reprs.
            micros = int(wall_seconds * 1e6 + 0.5)
            cpu_micros = -1 if cpu_seconds is None else int(cpu_seconds * 1e6 + 0.5)
            if 0 <= micros < _EXACT_MICROS and 0 <= cpu_micros < _EXACT_MICROS:
                # The usual line (CPU seconds, both in range) as one string: no
                # intermediate pieces (-1.7k instructions per stage at INFO,
                # python -m benchmarks.instructions --driver stages).
                text = (f'{{"timestamp":"{gate.prefix}{_MILLIS[int((now - second) * 1000.0)]}'
                        f'{head[0]}{cid_part}{job_part}{head[1]},"latency_ms":{micros // 1000}'
                        f'{_FRACTIONS[micros % 1000]}{trace_part},"extra":{{"cpu_ms":'
                        f'{cpu_micros // 1000}{_FRACTIONS[cpu_micros % 1000]}}}}}')
            else:
                latency = (f"{micros // 1000}{_FRACTIONS[micros % 1000]}"
                           if 0 <= micros < _EXACT_MICROS else repr(micros / 1000.0))
                if cpu_seconds is None:
                    extra = ""
                else:
                    extra = (',"extra":{"cpu_ms":' + (
                        f"{cpu_micros // 1000}{_FRACTIONS[cpu_micros % 1000]}"
                        if 0 <= cpu_micros < _EXACT_MICROS else repr(cpu_micros / 1000.0))
                        + "}")
                text = (f'{{"timestamp":"{gate.prefix}{_MILLIS[int((now - second) * 1000.0)]}'
                        f'{head[0]}{cid_part}{job_part}{head[1]},"latency_ms":{latency}'
                        f'{trace_part}{extra}}}')
            try:
                state.write_line(text)
            except Exception as exc:
                state.failures.failure(state.write_cause, exc)
            return True
        except Exception:
            return False  # the pipeline will say what is wrong, and count it

    def _head(self, state: _LoggingState, stage: str) -> tuple[str, str] | None:
        redactor = state.redactor
        redact = redactor.redact_value
        parts: tuple[str, str] | None = None
        if type(stage) is str and redact("cpu_ms", 1.0) == 1.0 and not redactor.renames("cpu_ms"):
            head = ('","level":"info"' + _piece("service", redact("service", state.service))
                    + _piece("event", redact("event", STAGE_COMPLETED_EVENT)))
            parts = (head, _piece("stage", redact("stage", stage)))
        if len(self._stages) < _PIECE_CACHE_LIMIT:
            self._stages[(state, stage)] = parts
        return parts

    def _job_part(self, state: _LoggingState, job_id: Any) -> str:
        part = _piece("job_id", state.redactor.redact_value("job_id", job_id))
        if type(job_id) is str:
            if len(self._values) >= _PIECE_CACHE_LIMIT:
                self._values.clear()  # job ids do not repeat for long: start over
            self._values[job_id] = part
        return part


STAGE_COMPLETED_EVENT = "stage completed"
_MISSING: Any = object()
_BOUND_JOB_ID = f"{structlog.contextvars.STRUCTLOG_KEY_PREFIX}job_id"
_BOUND_CORRELATION_ID = f"{structlog.contextvars.STRUCTLOG_KEY_PREFIX}correlation_id"


def round_ms(seconds: float) -> float:
    """``seconds`` in milliseconds, to the microsecond (half up): the log lines' rounding."""
    return int(seconds * 1e6 + 0.5) / 1000.0


def _piece(key: str, value: object) -> str:
    return "" if value is None else ',"' + key + '":' + _dumps(value)


def access_logger(failures: FailureSink | None = None, *, event: str = ACCESS_EVENT,
                  logger_name: str = ACCESS_LOGGER_NAME) -> AccessLogger:
    """An :class:`AccessLogger`; failures go to ``failures`` (else swallowed, logged once)."""
    return AccessLogger(failures, event=event, logger_name=logger_name)
