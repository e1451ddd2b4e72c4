"""The HTTP middleware's request line: written directly, identical to the structlog pipeline's.

:func:`access_logger` returns an :class:`AccessLogger`; the middleware keeps a
:class:`RequestLine` per request shape and calls :meth:`AccessLogger.log_line`
once per request. The line is written by hand (pieces from
``promkit.instrument._json_line``) while ``promkit.instrument._log_state``'s
gate finds only ``configure_logging``'s own set-up in play, and through
structlog otherwise. The public names are re-exported by
:mod:`promkit.instrument.logs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from math import trunc
from typing import Any

from promkit.instrument._compat import (
    STRUCTLOG_CONTEXT_VARS,
    logger_level_cache,
    otel_current_context,
    structlog_context_bound,
)
from promkit.instrument._json_line import (
    EXACT_MICROS,
    FRACTIONS,
    LEVEL_NAMES,
    MILLIS,
    PIECE_CACHE_LIMIT,
    dumps,
    hex_without_card,
    ms_text,
    piece,
    plain_uuid,
    trace_json,
)
from promkit.instrument._log_output import OUTPUT_NONE, library_logger, log_output
from promkit.instrument._log_processors import SAMPLED_KEY
from promkit.instrument._log_state import FastPathGate, LoggingState, current
from promkit.instrument._safety import FailureSink
from promkit.instrument.correlation import get_correlation_id

__all__ = ["ACCESS_EVENT", "ACCESS_LOGGER_NAME", "AccessLogger", "RequestLine", "access_logger"]

ACCESS_EVENT = "http_request"
"""``event`` of the middleware's per-request line."""
ACCESS_LOGGER_NAME = "promkit.access"
"""stdlib logger name of the per-request line (set its level to silence it)."""

# Private reads of structlog and OpenTelemetry, each with a public fallback
# chosen at import (see _compat): None vars -> the pipeline.
_STRUCTLOG_VARS: dict[str, Any] | None = STRUCTLOG_CONTEXT_VARS
_otel_current: Callable[[], object] = otel_current_context
_structlog_context_bound = structlog_context_bound
_fallback_failures = FailureSink()
level_cache = logger_level_cache  # the isEnabledFor cache, or an empty dict (see _compat)


def _access_level(status: int) -> int:
    if status >= 500 or status < 100:
        return logging.ERROR
    return logging.WARNING if status >= 400 else logging.INFO


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
        self.state: LoggingState | None = None  # what head and tail were rendered for
        self.head = self.tail = ""


class AccessLogger:
    """The middleware's one line per request: fast, identical to the structlog pipeline's.

    Use :func:`access_logger` to get one. ``log_request`` writes the event
    ``http_request`` with ``http_method``, ``http_path`` (the route template),
    ``http_status``, ``latency_ms`` and ``correlation_id`` at INFO (2xx/3xx),
    WARNING (4xx) or ERROR (5xx and anything outside 100-599).
    """

    __slots__ = ("_event", "_failures", "_gate", "_levels", "_library", "_lines", "_stdlib")

    def __init__(self, failures: FailureSink | None = None, *, event: str = ACCESS_EVENT,
                 logger_name: str = ACCESS_LOGGER_NAME) -> None:
        self._failures = failures
        self._event = event
        self._stdlib = logging.getLogger(logger_name)
        self._library = library_logger(logger_name)  # the slow path: the app's logging
        self._gate = FastPathGate(self._stdlib)
        self._levels = level_cache(self._stdlib)
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
        cid = correlation_id or get_correlation_id()
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
        if len(self._lines) < PIECE_CACHE_LIMIT:
            self._lines[(method, path_template, status)] = line
        return line

    def log_line(self, line: RequestLine, latency_seconds: float, cid: str | None,
                 cid_is_plain: bool, trace_part: str | None = None) -> None:
        """:meth:`log_request` for a request shape from :meth:`line` (the hot path).

        ``cid`` is logged as given (no contextvar lookup); ``cid_is_plain``
        says it is a validated UUID, whose JSON needs no escaping.
        ``trace_part`` is the current span's IDs as ``_json_line.trace_piece``
        gives them, when the caller already read them; None: the line reads
        them. The middleware calls this once per request. Never raises.
        """
        try:
            state = current.state
            if state is None:  # not configured by promkit: the app's logging, or nothing
                if log_output() == OUTPUT_NONE:
                    return
                self._log_slow(line.level, line.method, line.path_template, line.status,
                               latency_seconds, cid)
                return
            if line.state is not state:
                self._render(line, state)
            level = line.level
            # The logger's own level cache read inline: -0.1k instructions per request
            # (promkit_all), -0.3k per stage line (python -m benchmarks.instructions).
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
            # configure_logging's own set-up is in play (see FastPathGate).
            gate = self._gate
            now = state.timestamper.clock()
            # math.trunc, not int(), for each float -> int here, as in the stage line: int()
            # of a float is a slow type call before 3.13 (-1.4k instructions and ~-90 ns per
            # line on 3.11; promkit_all 41.7k -> 40.6k, python -m benchmarks.instructions).
            second = trunc(now)
            if not gate.open(state, level, second) or (
                    _STRUCTLOG_VARS is None or (_STRUCTLOG_VARS and _structlog_context_bound())):
                self._log_slow(level, line.method, line.path_template, line.status,
                               latency_seconds, cid, sampled)
                return
            try:
                micros = trunc(latency_seconds * 1e6 + 0.5)
            except (ValueError, OverflowError):  # NaN or infinity: let the pipeline render it
                self._log_slow(level, line.method, line.path_template, line.status,
                               latency_seconds, cid, sampled)
                return
            # No call without a context: -1.6k instructions per request (promkit_all,
            # python -m benchmarks.instructions).
            if trace_part is None:
                trace_part = trace_json() if _otel_current() else ""
            millis = MILLIS[trunc((now - second) * 1000.0)]
            # The latency is what json.dumps(micros / 1000.0) gives, without a float
            # repr (see FRACTIONS): -1.6k instructions per request; the usual line as
            # one string: -0.8k (promkit_all, python -m benchmarks.instructions).
            if cid_is_plain and cid is not None and 0 <= micros < EXACT_MICROS:
                text = (f'{{"timestamp":"{gate.prefix}{millis}{line.head},"correlation_id":'
                        f'"{cid}","latency_ms":{micros // 1000}{FRACTIONS[micros % 1000]}'
                        f'{line.tail}{trace_part}}}')
            else:
                if cid is None:
                    cid_part = ""
                elif cid_is_plain or plain_uuid(cid) or hex_without_card(cid):
                    cid_part = f',"correlation_id":"{cid}"'
                else:
                    cid_part = ',"correlation_id":' + dumps(
                        state.redactor.redact_value("correlation_id", cid))
                text = (f'{{"timestamp":"{gate.prefix}{millis}{line.head}{cid_part}'
                        f',"latency_ms":{ms_text(micros)}{line.tail}{trace_part}}}')
            try:
                state.write_line(text)
            except Exception as exc:  # the only sink failed (several: the handler counts)
                state.failures.failure(state.write_cause, exc)
        except Exception as exc:
            (self._failures or _fallback_failures).failure("access_log", exc)

    def _render(self, line: RequestLine, state: LoggingState) -> None:
        """The fixed text before and after the per-request values, for ``state``."""
        redact = state.redactor.redact_value
        head = '","level":"' + LEVEL_NAMES[line.level] + '"'
        head += piece("service", redact("service", state.service))
        head += piece("event", redact("event", self._event))
        tail = piece("http_method", redact("http_method", line.method))
        tail += piece("http_path", redact("http_path", line.path_template))
        tail += piece("http_status", redact("http_status", line.status))
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
            fields[SAMPLED_KEY] = True
        self._library.log(level, self._event, **fields)


def access_logger(failures: FailureSink | None = None, *, event: str = ACCESS_EVENT,
                  logger_name: str = ACCESS_LOGGER_NAME) -> AccessLogger:
    """An :class:`AccessLogger`; failures go to ``failures`` (else swallowed, logged once)."""
    return AccessLogger(failures, event=event, logger_name=logger_name)
