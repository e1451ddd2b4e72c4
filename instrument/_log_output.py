"""Where promkit's own log events go, and the loggers that send them there.

A library logs nothing unless the application configured logging:
:func:`log_output` says whether structlog is configured, only stdlib
``logging`` is, or nothing is; :class:`LibraryLogger` (promkit's own loggers:
``promkit.worker``, ``.external``, ``.resources``) sends each event there or
nowhere. The public names are re-exported by :mod:`promkit.instrument.logs`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from promkit.instrument._json_line import LEVEL_NAMES, dumps
from promkit.instrument._log_state import ROOT, current, has_real_handler
from promkit.instrument._logs_pii import RedactPII

__all__ = [
    "OUTPUT_NONE",
    "OUTPUT_STDLIB",
    "OUTPUT_STRUCTLOG",
    "LibraryLogger",
    "library_logger",
    "log_output",
    "on_log_output_change",
    "output_state",
    "refresh_log_output",
    "stdlib_event",
]

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
        if current.state is not None or structlog.is_configured():
            return OUTPUT_STRUCTLOG
        if has_real_handler(ROOT) or has_real_handler(_LIBRARY_ROOT):
            return OUTPUT_STDLIB
        # promkit's own loggers only (not every logger in the process: this
        # runs once a second, but under a profiler that is every few requests)
        manager = logging.Logger.manager.loggerDict
        for name in _OWN_LOGGERS:
            logger = manager.get(name)
            if isinstance(logger, logging.Logger) and has_real_handler(logger):
                return OUTPUT_STDLIB
    except Exception:  # never break the caller over this
        return OUTPUT_NONE
    return OUTPUT_NONE


_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_STDLIB_REDACTOR: RedactPII | None = None


def _logfmt_value(value: object) -> str:
    if isinstance(value, str) and value and not any(c in value for c in ' ="\\\n'):
        return value
    return dumps(value) if isinstance(value, str) else str(value)


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
    clean = redactor(None, LEVEL_NAMES.get(level, "info"), {"event": event, **fields})
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
        getattr(structlog.stdlib.get_logger(self.name), LEVEL_NAMES.get(level, "info"))(
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
