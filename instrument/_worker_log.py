"""The ``promkit.worker`` logger, cached: where stage and job lines go, and at what levels.

Stage timers (:mod:`promkit.instrument.stages`) and job runs
(:mod:`promkit.instrument.jobs`) log on ``promkit.worker`` through
:data:`worker_log`, which follows :func:`promkit.instrument.logs.log_output`
(nowhere, stdlib records, or structlog) and keeps the assembled logger so a
line costs no logger assembly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import structlog

from promkit.instrument._compat import STRUCTLOG_CONFIG, structlog_stdlib_logger
from promkit.instrument._compat import logger_level_cache as level_cache
from promkit.instrument._log_output import (
    OUTPUT_NONE,
    OUTPUT_STDLIB,
    OUTPUT_STRUCTLOG,
    log_output,
    on_log_output_change,
    stdlib_event,
)

__all__ = ["LOGGER_NAME", "worker_log"]

LOGGER_NAME = "promkit.worker"


class _StdlibEvents:
    """``debug``/``info``/...(event, **fields) as stdlib records (no structlog configured)."""

    __slots__ = ("_stdlib",)

    def __init__(self, stdlib: logging.Logger) -> None:
        self._stdlib = stdlib

    def debug(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.ERROR, event, fields)


_ALL_OFF: dict[int, bool] = {
    logging.DEBUG: False, logging.INFO: False, logging.WARNING: False, logging.ERROR: False,
    logging.CRITICAL: False,
}


class _WorkerLog:
    """A cached bound logger for the stage lines, rebuilt when logging's set-up changes.

    Where the lines go follows :func:`promkit.instrument.logs.log_output`:
    nowhere when the application configured no logging (``enabled`` returns
    None and ``levels`` says every level is off, so the timers skip the log
    work; re-checked at most once a second), stdlib records on
    ``promkit.worker`` when only stdlib logging is configured, else structlog.

    ``structlog.get_logger()`` returns a lazy proxy that assembles a bound
    logger on every call unless ``cache_logger_on_first_use`` is set (several
    microseconds -- more than the rest of a stage timer). We keep the
    assembled logger and rebuild it when the structlog configuration objects
    change identity (``structlog.configure`` replaces them), so a later
    configuration is still honoured. The level check runs before any event
    dict is built. ``levels`` is the stdlib logger's own level cache (which
    logging clears in place on every level change); the timers read it to
    skip the ``stage started`` call when DEBUG is known to be off.
    """

    __slots__ = ("_check", "_conf", "_context_class", "_factory", "_logger", "_mode", "_name",
                 "_processors", "_wrapper", "levels")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None
        self._check: Callable[[int], bool] | None = None
        self._mode = OUTPUT_NONE
        self.levels: dict[int, bool] = _ALL_OFF
        self._processors: Any = None
        self._wrapper: Any = None
        self._factory: Any = None
        self._context_class: Any = None
        # structlog's live configuration (a private read, or get_config(): see _compat).
        self._conf: Any = STRUCTLOG_CONFIG

    def enabled(self, level: int) -> Any:
        """The bound logger when ``level`` is enabled for it, else None."""
        mode = log_output()
        if mode != self._mode:
            self._switch(mode)
        if mode == OUTPUT_NONE:
            return None
        if mode == OUTPUT_STRUCTLOG:
            conf = self._conf
            if (
                self._processors is not conf.default_processors
                or self._wrapper is not conf.default_wrapper_class
                or self._factory is not conf.logger_factory
                or self._context_class is not conf.default_context_class
                or self._logger is None
            ):
                self._rebuild()
        # The stdlib logger's own level cache (cleared in place by logging on any
        # level change) answers most calls without the three-deep is_enabled_for.
        enabled = self.levels.get(level)
        if enabled is None:
            check = self._check
            enabled = check is None or check(level)
        return self._logger if enabled else None

    def forget(self) -> None:
        """Logging's set-up changed: ask again on the next stage (levels unknown)."""
        self._mode = -1
        self.levels = {}

    def _switch(self, mode: int) -> None:
        self._mode = mode
        self._processors = None
        if mode == OUTPUT_NONE:
            self._logger, self._check, self.levels = None, None, _ALL_OFF
        elif mode == OUTPUT_STDLIB:
            stdlib = logging.getLogger(self._name)
            self._logger = _StdlibEvents(stdlib)
            self._check = stdlib.isEnabledFor
            self.levels = level_cache(stdlib)
        else:
            self._logger, self._check, self.levels = None, None, {}

    def _rebuild(self) -> None:
        conf = self._conf
        self._processors = conf.default_processors
        self._wrapper = conf.default_wrapper_class
        self._factory = conf.logger_factory
        self._context_class = conf.default_context_class
        logger = structlog.get_logger(self._name).bind()
        check = getattr(logger, "is_enabled_for", None)
        self._check = check if callable(check) else None
        stdlib = structlog_stdlib_logger(logger)
        # (A logger disabled outright still drops the event itself, in logging.)
        self.levels = (level_cache(stdlib) if stdlib is not None
                       and self._check is not None else {})
        self._logger = logger


worker_log = _WorkerLog(LOGGER_NAME)
"""The cached ``promkit.worker`` logger of stage timers and job runs."""
on_log_output_change(worker_log.forget)
