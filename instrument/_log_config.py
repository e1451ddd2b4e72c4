"""``configure_logging``: structlog and stdlib records out as JSON lines, one handler on the root.

Builds the pipeline from ``promkit.instrument._log_processors`` (timestamps,
context, PII redaction that always runs, rendering), puts one
:class:`JsonLinesHandler` on the root logger that writes each line to its
sinks, and records the set-up in ``promkit.instrument._log_state`` for the
fast lines. The public names are re-exported by :mod:`promkit.instrument.logs`.
"""

from __future__ import annotations

import logging
import os
import random as _random
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import structlog
from structlog.typing import Processor

from promkit.instrument._log_output import refresh_log_output
from promkit.instrument._log_processors import (
    DEFAULT_NEVER_SAMPLE,
    SCHEMA_KEYS,
    AddService,
    ForeignSampleFilter,
    SampleEvents,
    TimestampRFC3339,
    add_correlation_context,
    add_trace_context,
    render_json_line,
)
from promkit.instrument._log_state import LoggingState, current
from promkit.instrument._logs_pii import RedactPII
from promkit.instrument._logs_sinks import LineSink, NullSink, RotatingFileSink, StreamSink
from promkit.instrument._safety import FailureSink
from promkit.instrument.uvicorn_logging import restore_uvicorn_loggers, route_uvicorn_loggers

__all__ = [
    "DEFAULT_QUIET_LOGGERS",
    "JsonLinesHandler",
    "configure_logging",
    "get_logger",
    "json_lines_handler",
    "reset_logging",
]

_DEFAULT_FILE_MAX_BYTES = 50 * 1024 * 1024
_STDOUT: Any = object()  # "sys.stdout as it is when configure_logging runs"


class JsonLinesHandler(logging.Handler):
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
        AddService(service),
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
    handler = JsonLinesHandler(sinks, failures)
    handler.setFormatter(formatter)
    if sampler is not None:
        handler.addFilter(ForeignSampleFilter(sampler))
    structlog_processors: list[Processor] = [structlog.stdlib.filter_by_level]
    if sampler is not None:
        structlog_processors.append(sampler)
    structlog_processors.append(structlog.stdlib.ProcessorFormatter.wrap_for_formatter)
    access_keys = (*SCHEMA_KEYS, "extra")
    fast_capable = not extra_processors and all(
        redactor.redact_value(key, "x") == "x" and not redactor.renames(key) for key in access_keys
    )

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
        current.state = LoggingState(
            service=service, handler=handler, timestamper=timestamper, redactor=redactor,
            sampler=sampler, structlog_processors=structlog_processors,
            fast_capable=fast_capable, failures=failures,
        )
        refresh_log_output()


def _remove_our_handlers(root: logging.Logger) -> None:
    for old in list(root.handlers):
        if isinstance(old, JsonLinesHandler):
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
    state = current.state  # set by the call above, under its lock
    assert state is not None
    return state.handler


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handler, close its sinks, reset structlog,
    give uvicorn's loggers back what they had."""
    with _configure_lock:
        root = logging.getLogger()
        _remove_our_handlers(root)
        restore_uvicorn_loggers()
        structlog.reset_defaults()
        current.state = None
        refresh_log_output()


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """``structlog.stdlib.get_logger(name, **initial_values)``: a logger for this pipeline."""
    return structlog.stdlib.get_logger(name, **initial_values)
