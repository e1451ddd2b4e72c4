"""Every read of another library's private internals, each with a public fallback.

promkit reads a few private attributes of its dependencies where the public
API is too slow for a hot path or has no getter at all. They all live here and
nowhere else: each is probed once, at import, and this module hands out the
accessor chosen then (the fast private one, or the public fallback), so the
rest of promkit never probes or branches per request and never names a private
attribute of another library. ``tests/test_compat.py`` checks on every
installed version (the floors run included) that each private read gives what
the public API gives, and that promkit behaves right with each fallback forced.

Checked on structlog 24.1 and 26.1, opentelemetry-api 1.20 and 1.45,
prometheus-client 0.20 and 0.26 (Python 3.10 and 3.11). Each read, what it is
for, and its fallback:

- ``structlog._config._CONFIG``: the live configuration object, read as
  attributes (the stage logger's and the access fast path's "did structlog's
  set-up change?" check). Fallback: :data:`STRUCTLOG_CONFIG` is a
  :class:`PublicStructlogConfig`, whose attributes call ``structlog.get_config()``
  (a new dict per read: correct, slower).
- ``structlog.contextvars._CONTEXT_VARS``: key -> ContextVar, ``Ellipsis`` when
  unbound; the access and stage fast paths ask "anything bound?" without a
  copy of the context. Fallback: :data:`STRUCTLOG_CONTEXT_VARS` is None (the
  fast paths then hand every line to the structlog pipeline) and
  :func:`structlog_context_bound` calls ``structlog.contextvars.get_contextvars()``.
- ``structlog`` ``BoundLogger._logger``: the wrapped stdlib logger, whose level
  cache answers ``is_enabled_for`` in one dict lookup. Fallback:
  :func:`structlog_stdlib_logger` returns None: no level cache, the bound
  logger's public ``is_enabled_for`` answers each call.
- stdlib ``logging.Logger._cache``: the ``isEnabledFor`` cache, cleared in place
  on level changes. Fallback: :func:`logger_level_cache` returns a fresh empty
  dict: every lookup misses and the caller asks ``isEnabledFor``.
- ``opentelemetry.context._RUNTIME_CONTEXT._current_context.get``: the current
  Context in one C call (log lines check it for a span); used only when the
  runtime context is the API's contextvars one (loaded first: older APIs load
  it lazily). Fallback:
  :data:`otel_current_context` is ``opentelemetry.context.get_current``.
- ``opentelemetry.trace._TRACER_PROVIDER``: the global provider or None, ~10 ns
  (a module attribute; one plain function call here, ~28 ns) where
  ``trace.get_tracer_provider()`` costs ~0.8 us while none is set (it reads
  ``os.environ``); read once per request. Fallback:
  :data:`global_tracer_provider` is ``trace.get_tracer_provider`` (the API's
  proxy while none is set).
- OpenTelemetry's SpanContext tuple layout ``(trace_id, span_id, is_remote,
  trace_flags, trace_state, is_valid)``: unpacking is ~4x cheaper than the
  properties; the layout is probed on a known SpanContext. Fallback:
  :data:`span_ids` reads the ``trace_id``, ``span_id``, ``trace_flags`` and
  ``is_valid`` properties.
- ``prometheus_client.metrics._use_created``: the switch set by
  ``disable_created_metrics()``/``enable_created_metrics()`` and the
  ``PROMETHEUS_DISABLE_CREATED_SERIES`` environment variable; there is no
  getter. Fallback: :func:`created_series_enabled` collects a throwaway
  counter and looks for its ``_created`` sample (per scrape, microseconds).
- ``prometheus_client.values.ValueClass._multiprocess``: whether the value
  class prometheus-client chose at import writes mmap files. Fallback (per
  call, when the flag is missing): anything but the public
  ``values.MutexValue`` is the multiprocess class.

Each ``_choose_*`` function takes the module (or object) it probes, so the
tests can hand it one without the private attribute and get the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import prometheus_client
import prometheus_client.metrics as _pc_metrics
import prometheus_client.values
import structlog
import structlog.contextvars as _structlog_contextvars
from opentelemetry import context as _otel_context
from opentelemetry import trace as _otel_trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, TraceFlags

__all__ = [
    "STRUCTLOG_CONFIG",
    "STRUCTLOG_CONTEXT_VARS",
    "created_series_enabled",
    "global_tracer_provider",
    "logger_level_cache",
    "otel_current_context",
    "span_ids",
    "structlog_context_bound",
    "structlog_stdlib_logger",
    "value_class_is_multiprocess",
]


# ------------------------------------------------------------------ structlog config

def _config_item(key: str) -> Any:
    """A read-only attribute that is ``structlog.get_config()[key]`` at each read."""
    return property(lambda self: structlog.get_config()[key])


class PublicStructlogConfig:
    """The attributes promkit reads of structlog's configuration, via ``get_config()``."""

    __slots__ = ()

    default_processors = _config_item("processors")
    default_wrapper_class = _config_item("wrapper_class")
    logger_factory = _config_item("logger_factory")
    default_context_class = _config_item("context_class")


_CONFIG_ATTRIBUTES = ("default_processors", "default_wrapper_class", "logger_factory",
                      "default_context_class")


def _choose_structlog_config(config_module: Any) -> Any:
    conf = getattr(config_module, "_CONFIG", None)
    if conf is None or not all(hasattr(conf, name) for name in _CONFIG_ATTRIBUTES):
        return PublicStructlogConfig()
    return conf


try:
    from structlog import _config as _structlog_config_module
except ImportError:
    _structlog_config_module = None  # type: ignore[assignment]

STRUCTLOG_CONFIG: Any = _choose_structlog_config(_structlog_config_module)
"""structlog's live configuration: ``default_processors``, ``default_wrapper_class``,
``logger_factory``, ``default_context_class`` (same objects as ``get_config()``'s)."""


# ------------------------------------------------------------ structlog context vars

def _choose_context_vars(contextvars_module: Any) -> dict[str, ContextVar[Any]] | None:
    variables = getattr(contextvars_module, "_CONTEXT_VARS", None)
    return variables if isinstance(variables, dict) else None


STRUCTLOG_CONTEXT_VARS: dict[str, ContextVar[Any]] | None = _choose_context_vars(
    _structlog_contextvars)
"""structlog's context variables (key -> ContextVar, ``Ellipsis`` when unbound), kept
by structlog in place; None when unavailable: callers then use the pipeline."""


def public_structlog_context_bound() -> bool:
    """Whether anything is bound with ``bind_contextvars`` (public API)."""
    return bool(_structlog_contextvars.get_contextvars())


def _choose_context_bound(
    variables: dict[str, ContextVar[Any]] | None,
) -> Callable[[], bool]:
    if variables is None:
        return public_structlog_context_bound

    def structlog_context_bound() -> bool:
        if not variables:
            return False
        return any(var.get() is not Ellipsis for var in list(variables.values()))

    return structlog_context_bound


structlog_context_bound: Callable[[], bool] = _choose_context_bound(STRUCTLOG_CONTEXT_VARS)
"""Whether anything is bound in structlog's contextvars."""


# ------------------------------------------------------------------- logging cache

def logger_level_cache(logger: logging.Logger) -> dict[int, bool]:
    """``logger``'s own ``isEnabledFor`` cache, or a fresh empty dict if logging has none.

    logging clears it in place on every level change (``setLevel``,
    ``logging.disable``), so a hot path may read it directly: a hit is the
    answer ``isEnabledFor`` would give for a logger not ``disabled``; a miss
    means "ask ``isEnabledFor``", which fills it (the fallback always misses).
    """
    levels = getattr(logger, "_cache", None)
    return levels if isinstance(levels, dict) else {}


def structlog_stdlib_logger(bound: Any) -> logging.Logger | None:
    """The stdlib logger a structlog bound logger wraps, or None (unknown, or not stdlib)."""
    wrapped = getattr(bound, "_logger", None)
    return wrapped if isinstance(wrapped, logging.Logger) else None


# --------------------------------------------------------------- OpenTelemetry context

def _choose_current_context(context_module: Any) -> Callable[[], Context]:
    # opentelemetry-api before ~1.23 loads its runtime context on first use.
    context_module.get_current()
    runtime = getattr(context_module, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if isinstance(variable, ContextVar):
        private: Callable[[], Context] = variable.get
        return private
    public: Callable[[], Context] = context_module.get_current
    return public


otel_current_context: Callable[[], Context] = _choose_current_context(_otel_context)
"""The current OpenTelemetry Context (empty outside any span)."""


# ------------------------------------------------------------ OpenTelemetry provider

def _choose_tracer_provider(trace_module: Any) -> Callable[[], object]:
    if "_TRACER_PROVIDER" in vars(trace_module):
        # A plain function: cheaper than functools.partial(getattr, ...) (~28 vs ~39 ns).
        def private_tracer_provider() -> object:
            return trace_module._TRACER_PROVIDER

        return private_tracer_provider
    public: Callable[[], object] = trace_module.get_tracer_provider
    return public


global_tracer_provider: Callable[[], object] = _choose_tracer_provider(_otel_trace)
"""The global tracer provider: the one set, else None (private read) or the API's
proxy (public fallback); either way a stable identity until one is set."""


# ---------------------------------------------------------------- SpanContext layout

def _layout_is_tuple() -> bool:
    try:
        probe = SpanContext(0xA1, 0xB2, False, TraceFlags(TraceFlags.SAMPLED))
        fields = tuple(probe)
        return (
            len(fields) == 6
            and fields[0] == 0xA1
            and fields[1] == 0xB2
            and fields[3] == TraceFlags.SAMPLED
            and fields[5] is True
        )
    except Exception:
        return False


def _make_span_ids(tuple_layout: bool) -> Callable[[SpanContext, bool], tuple[str, str] | None]:
    # Log lines and the exemplar of one request ask for the same span's IDs several
    # times: the last formatting is kept, keyed by the SpanContext object itself
    # (an SDK span returns the same one on every call). One tuple, replaced whole,
    # so concurrent readers see either the old entry or the new one.
    last_ids: tuple[object, tuple[str, str]] = (None, ("", ""))

    if tuple_layout:
        def span_ids(ctx: SpanContext, sampled_only: bool) -> tuple[str, str] | None:
            nonlocal last_ids
            trace_id, span_id, _, flags, _, valid = ctx
            if not valid or (sampled_only and not flags & 0x01):
                return None
            last = last_ids
            if last[0] is ctx:
                return last[1]
            ids = trace_id.to_bytes(16, "big").hex(), span_id.to_bytes(8, "big").hex()
            last_ids = (ctx, ids)
            return ids
        return span_ids

    def public_span_ids(ctx: SpanContext, sampled_only: bool) -> tuple[str, str] | None:
        nonlocal last_ids
        if not ctx.is_valid or (sampled_only and not ctx.trace_flags & 0x01):
            return None
        last = last_ids
        if last[0] is ctx:
            return last[1]
        ids = ctx.trace_id.to_bytes(16, "big").hex(), ctx.span_id.to_bytes(8, "big").hex()
        last_ids = (ctx, ids)
        return ids
    return public_span_ids


span_ids: Callable[[SpanContext, bool], tuple[str, str] | None] = _make_span_ids(
    _layout_is_tuple())
"""Hex ``(trace_id, span_id)`` of a SpanContext if valid (and sampled when asked), else None."""


# ------------------------------------------------------- prometheus-client created

def public_created_series_enabled() -> bool:
    """Whether prometheus-client exports ``_created`` series, asked of a throwaway counter."""
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    counter = prometheus_client.Counter("promkit_probe", "", registry=registry)
    return any(sample.name.endswith("_created")
               for family in counter.collect() for sample in family.samples)


def _choose_created(metrics_module: Any) -> Callable[[], bool]:
    if not isinstance(getattr(metrics_module, "_use_created", None), bool):
        return public_created_series_enabled

    def created_series_enabled() -> bool:
        return bool(getattr(metrics_module, "_use_created", True))

    return created_series_enabled


created_series_enabled: Callable[[], bool] = _choose_created(_pc_metrics)
"""Whether ``_created`` series are exported; follows prometheus-client's switch."""


# ------------------------------------------------------- prometheus-client values

def value_class_is_multiprocess(value_class: Any) -> bool:
    """Whether prometheus-client's value class (``values.ValueClass``) writes mmap files."""
    flag = getattr(value_class, "_multiprocess", None)
    if isinstance(flag, bool):
        return flag
    return public_value_class_is_multiprocess(value_class)


def public_value_class_is_multiprocess(value_class: Any) -> bool:
    """The same from public names: anything but the single-process ``MutexValue``."""
    return value_class is not prometheus_client.values.MutexValue
