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

from promkit.instrument._access_line import (
    ACCESS_EVENT,
    ACCESS_LOGGER_NAME,
    AccessLogger,
    RequestLine,
    access_logger,
)
from promkit.instrument._json_line import round_ms
from promkit.instrument._log_config import (
    DEFAULT_QUIET_LOGGERS,
    configure_logging,
    get_logger,
    json_lines_handler,
    reset_logging,
)
from promkit.instrument._log_output import (
    OUTPUT_NONE,
    OUTPUT_STDLIB,
    OUTPUT_STRUCTLOG,
    LibraryLogger,
    library_logger,
    log_output,
    refresh_log_output,
)
from promkit.instrument._log_processors import (
    DEFAULT_NEVER_SAMPLE,
    SCHEMA_KEYS,
    SampleEvents,
    TimestampRFC3339,
    add_correlation_context,
    add_trace_context,
    order_schema_keys,
    processors,
    render_json_line,
    sample_events,
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
from promkit.instrument._logs_sinks import NullSink
from promkit.instrument._stage_line import STAGE_COMPLETED_EVENT, StageLineWriter

__all__ = [
    "ACCESS_EVENT",
    "ACCESS_LOGGER_NAME",
    "DEFAULT_HASH_KEYS",
    "DEFAULT_NEVER_SAMPLE",
    "DEFAULT_PII_KEYS",
    "DEFAULT_PII_KEY_SUFFIXES",
    "DEFAULT_QUIET_LOGGERS",
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
