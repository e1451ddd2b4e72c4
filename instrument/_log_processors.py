"""promkit's structlog processors: timestamps, context, sampling, schema order, rendering.

Each is a small callable usable on its own in any structlog chain; the public
names are re-exported by :mod:`promkit.instrument.logs`, and
:func:`processors` hands an application the ones it splices into a chain of
its own. ``promkit.instrument._log_config`` builds the whole pipeline from them.
"""

from __future__ import annotations

import logging
import math
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from promkit.instrument._json_line import MILLIS, dumps, trace_ids
from promkit.instrument._logs_pii import RedactPII
from promkit.instrument.correlation import correlation_id_var

__all__ = [
    "DEFAULT_NEVER_SAMPLE",
    "SAMPLED_KEY",
    "SCHEMA_KEYS",
    "AddService",
    "ForeignSampleFilter",
    "SampleEvents",
    "TimestampRFC3339",
    "add_correlation_context",
    "add_trace_context",
    "order_schema_keys",
    "processors",
    "render_json_line",
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

SAMPLED_KEY = "_promkit_sampled"
"""Set by the access line's fallback: sampling was decided already, do not sample again."""

_SCHEMA_SET = frozenset(SCHEMA_KEYS)
_META_KEYS = frozenset({"_record", "_from_structlog", SAMPLED_KEY})
_METHOD_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "exception": logging.ERROR, "critical": logging.CRITICAL, "fatal": logging.CRITICAL,
}


# ---------------------------------------------------------------------------- timestamps

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
        return self.prefix(second) + MILLIS[int((now - second) * 1000.0)]

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
        if type(cid) is str:  # not Ellipsis, set by structlog's clear_contextvars()
            event_dict["correlation_id"] = cid
    return structlog.contextvars.merge_contextvars(logger, method_name, event_dict)


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: add ``trace_id`` (32 hex) and ``span_id`` (16 hex) of the current span.

    Reads OpenTelemetry's current span through opentelemetry-api; only a valid
    span context counts. Without an SDK or outside any span it is a no-op
    costing one contextvar read. Values passed to the log call win.
    """
    ids = trace_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


class AddService:
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
        if event_dict.pop(SAMPLED_KEY, False):
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


class ForeignSampleFilter(logging.Filter):
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
        return dumps(_schema_ordered(event_dict))
    except Exception as exc:  # pragma: no cover - _dumps already sanitises
        return dumps({"level": "error", "event": "unrenderable_log_event",
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
        chain.append(AddService(service))
    chain += [add_correlation_context, add_trace_context, RedactPII(pii_keys, hash_keys)]
    if schema:
        chain.append(order_schema_keys)
    return chain
