"""The structlog processors: schema order and rendering, timestamps, context, sampling."""

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from _log_helpers import (  # tests/ is on sys.path
    FIXED_TIME,
    TIMESTAMP,
    ListSink,
    active_span,
    configured,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan

from promkit.instrument import logs
from promkit.instrument.correlation import (
    bind_correlation_id,
)


@pytest.fixture
def sink() -> Iterator[ListSink]:
    with configured() as list_sink:
        yield list_sink


# ------------------------------------------------------------------------ schema and render

def test_line_has_schema_keys_in_order_and_the_rest_in_extra(sink):
    with bind_correlation_id() as cid:
        logs.get_logger("t").info(
            "job_completed", http_status=200, stage="ocr", job_id="j-1", latency_ms=12.5,
            error_code="E1", http_method="GET", http_path="/items/{id}", queue="ocr", pages=3,
        )
    (line,) = sink.lines
    event = json.loads(line)
    assert list(event) == ["timestamp", "level", "service", "event", "correlation_id", "job_id",
                           "stage", "latency_ms", "error_code", "http_method", "http_path",
                           "http_status", "extra"]
    assert event["correlation_id"] == cid and event["service"] == "svc"
    assert event["level"] == "info" and TIMESTAMP.match(event["timestamp"])
    assert event["extra"] == {"queue": "ocr", "pages": 3}
    assert ", " not in line and '": ' not in line  # compact separators


def test_none_values_are_left_out_and_no_extra_when_empty(sink):
    logs.get_logger().info("tick", job_id=None)
    assert json.loads(sink.lines[0]).keys() == {"timestamp", "level", "service", "event"}


def test_render_never_raises_and_uses_repr_for_the_unserialisable():
    class Odd:
        def __repr__(self) -> str:
            return "<Odd>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    circular: list[Any] = []
    circular.append(circular)
    line = logs.render_json_line(None, "info", {
        "event": "x", "obj": Odd(), "broken": Broken(), "nan": math.nan, "inf": math.inf,
        "circular": circular, (1, 2): "tuple key", "text": "caf\u00e9 \ud800",
    })
    event = json.loads(line)
    assert event["extra"]["obj"] == "<Odd>"
    assert event["extra"]["broken"] == "<unrepresentable Broken>"
    assert event["extra"]["nan"] == "nan" and event["extra"]["inf"] == "inf"
    assert event["extra"]["(1, 2)"] == "tuple key"
    assert "café" in line  # ensure_ascii=False
    line.encode("utf-8")  # the lone surrogate became an escape


def test_timestamp_is_rfc3339_utc_millis_and_caches_the_second():
    now = [FIXED_TIME]
    stamper = logs.TimestampRFC3339(clock=lambda: now[0])
    assert stamper(None, "info", {})["timestamp"] == "2026-11-22T21:03:07.123Z"
    now[0] = FIXED_TIME + 0.8
    assert stamper.now() == "2026-11-22T21:03:07.923Z"
    now[0] = FIXED_TIME + 1.0
    assert stamper.now() == "2026-11-22T21:03:08.123Z"
    now[0] = 0.0
    assert stamper.now() == "1970-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------ context processors

def test_add_correlation_context_reads_the_contextvar_and_structlog_contextvars():
    assert logs.add_correlation_context(None, "info", {"event": "x"}) == {"event": "x"}
    with bind_correlation_id() as cid:
        structlog.contextvars.bind_contextvars(job_id="j-9", stage="ocr")
        try:
            event = logs.add_correlation_context(None, "info", {"event": "x", "stage": "mine"})
        finally:
            structlog.contextvars.clear_contextvars()
    assert event == {"event": "x", "correlation_id": cid, "job_id": "j-9", "stage": "mine"}
    explicit = logs.add_correlation_context(None, "info", {"correlation_id": "given"})
    assert explicit["correlation_id"] == "given"


def test_correlation_id_and_bound_job_id_appear_in_logged_lines(sink):
    log = logs.get_logger("worker")
    with bind_correlation_id() as cid:
        structlog.contextvars.bind_contextvars(job_id="j-1")
        log.info("job_created")
        logging.getLogger("library").info("from the stdlib")
    log.info("outside")
    first, second, third = sink.events()
    assert first["correlation_id"] == cid and first["job_id"] == "j-1"
    assert second["correlation_id"] == cid and second["job_id"] == "j-1"
    assert "correlation_id" not in third


def test_add_trace_context_is_a_no_op_without_a_span_and_adds_ids_with_one():
    assert logs.add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    with active_span(0xABC, 0xDEF):
        event = logs.add_trace_context(None, "info", {"event": "x"})
    assert event["trace_id"] == f"{0xABC:032x}" and event["span_id"] == f"{0xDEF:016x}"
    invalid = NonRecordingSpan(otel_trace.INVALID_SPAN_CONTEXT)
    token = otel_context.attach(otel_trace.set_span_in_context(invalid))
    try:
        assert logs.add_trace_context(None, "info", {}) == {}
    finally:
        otel_context.detach(token)


# ------------------------------------------------------------------------ sampling

def test_sampling_drops_by_event_name_deterministically():
    draws = iter([0.05, 0.5, 0.05])
    sampler = logs.sample_events({"cache_hit": 0.1}, random=lambda: next(draws))
    assert sampler(None, "info", {"event": "cache_hit"}) == {"event": "cache_hit"}
    with pytest.raises(structlog.DropEvent):
        sampler(None, "info", {"event": "cache_hit"})
    assert sampler(None, "info", {"event": "other"}) == {"event": "other"}  # no rate: kept
    assert sampler(None, "debug", {"event": "cache_hit"})  # 0.05 < 0.1
    everything = logs.sample_events({"*": 0.0})
    with pytest.raises(structlog.DropEvent):
        everything(None, "info", {"event": "anything"})
    with pytest.raises(ValueError, match="within"):
        logs.sample_events({"x": 2})


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.0, 0.999),
    draw=st.floats(0.0, 0.999999),
    case=st.one_of(
        st.tuples(st.sampled_from(["warning", "error", "critical", "exception"]),
                  st.just("noisy"), st.none()),
        st.tuples(st.just("info"), st.just("noisy"), st.integers(500, 599)),
        st.tuples(st.just("info"), st.sampled_from(sorted(logs.DEFAULT_NEVER_SAMPLE)),
                  st.none()),
        st.tuples(st.just("info"), st.sampled_from(["auth_attempt_failed", "LoginDenied",
                                                    "oauth_token_invalid"]), st.none()),
        st.tuples(st.just("info"), st.just("noisy"), st.sampled_from([401, 403])),
    ),
)
def test_sampling_never_drops_the_never_sample_events(rate, draw, case):
    method, event, status = case
    rates = {event: rate, "*": rate}
    sampler = logs.sample_events(rates, random=lambda: draw)
    event_dict = {"event": event, "http_status": status}
    assert sampler(None, method, dict(event_dict)) == event_dict


def test_sampling_applies_to_stdlib_records_and_structlog_events():
    with configured(sample={"noisy": 0.0, "chatty %s": 0.0}) as own:
        log = logs.get_logger()
        for _ in range(5):
            log.info("noisy")
            logging.getLogger("lib").info("chatty %s", 1)
        log.info("job_failed")
        log.warning("noisy")
    assert [event["event"] for event in own.events()] == ["job_failed", "noisy"]
