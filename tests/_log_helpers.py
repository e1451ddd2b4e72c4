"""What the logging tests share: a list sink, a configured pipeline, a fixed clock, a span."""

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from promkit.instrument import MetricsRegistry
from promkit.instrument.logs import configure_logging, reset_logging

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIXED_TIME = 1795381387.123456  # 2026-11-22T21:03:07.123Z


class ListSink:
    """A sink that keeps the lines it is given."""

    name = "list"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


class BrokenStream(io.StringIO):
    """A stream on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


@contextmanager
def configured(**kwargs: Any) -> Iterator[ListSink]:
    """configure_logging into a ListSink with only our handler on the root logger."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    sink = kwargs.pop("stream", None) or ListSink()
    kwargs.setdefault("failures", MetricsRegistry(fresh_registry()).failures)
    configure_logging(kwargs.pop("service", "svc"), stream=sink, **kwargs)
    try:
        yield sink
    finally:
        reset_logging()
        structlog.contextvars.clear_contextvars()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def fresh_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@contextmanager
def active_span(trace_id: int = 0x1234, span_id: int = 0x42) -> Iterator[None]:
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    token = otel_context.attach(otel_trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def nothing() -> Iterator[None]:
    yield
