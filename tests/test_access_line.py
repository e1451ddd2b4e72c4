"""The request line: the fast path writes exactly the pipeline's line, or falls back."""

import json
import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from _log_helpers import (  # tests/ is on sys.path
    FIXED_TIME,
    ListSink,
    active_span,
    configured,
    nothing,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promkit.instrument import MetricsRegistry, logs
from promkit.instrument._json_line import trace_piece
from promkit.instrument._log_state import current
from promkit.instrument.correlation import (
    bind_correlation_id,
    correlation_id_var,
    valid_correlation_id,
)


@pytest.fixture
def sink() -> Iterator[ListSink]:
    with configured() as list_sink:
        yield list_sink


# ------------------------------------------------------------------------ access logger

def _pipeline_line(access: logs.AccessLogger, sink: ListSink, *args: Any) -> str:
    """The line the structlog pipeline writes for the same request."""
    method, template, status, latency, cid = args
    level = logging.ERROR if status >= 500 or status < 100 else (
        logging.WARNING if status >= 400 else logging.INFO)
    before = len(sink.lines)
    access._log_slow(level, method, template, status, latency, cid or correlation_id_var.get())
    assert len(sink.lines) == before + 1
    return sink.lines.pop()


@contextmanager
def fast_path_only(monkeypatch: Any) -> Iterator[Any]:
    original = logs.AccessLogger._log_slow

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fell back to the pipeline")

    monkeypatch.setattr(logs.AccessLogger, "_log_slow", refuse)
    try:
        yield original
    finally:
        monkeypatch.setattr(logs.AccessLogger, "_log_slow", original)


REQUEST = st.tuples(
    st.one_of(st.sampled_from(["GET", "POST", "_OTHER"]), st.text(max_size=12)),
    st.one_of(st.sampled_from(["/items/{item_id}", "__unmatched__", "/a?b=c", "/u/bob@x.io"]),
              st.text(max_size=30)),
    st.integers(100, 599),
    st.floats(0, 1e4, allow_nan=False),
    st.one_of(st.none(), st.uuids().map(str), st.text(max_size=40),
              # hex-and-dash IDs the fast path writes itself, unless they hold a card number
              st.sampled_from(["4111111111111111", "4111-1111-1111-1111", "-5555555555554444",
                               "4111111111111112", "abcd-4111111111111111"])),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=REQUEST, traced=st.booleans())
def test_access_fast_path_writes_exactly_the_pipeline_line(request, traced, monkeypatch):
    with configured(service="api\u00e9 \"q\"") as own:
        current.state.timestamper.clock = lambda: FIXED_TIME
        access = logs.access_logger()
        span = active_span(0x5EED, 0xB0B) if traced else nothing()
        with span:
            # A validated UUID, as the middleware passes it, takes the one-string branch.
            is_uuid = isinstance(request[4], str) and valid_correlation_id(request[4]) == request[4]
            with fast_path_only(monkeypatch) as original:
                access.log_request(*request, correlation_id_is_uuid=is_uuid)
            monkeypatch.setattr(logs.AccessLogger, "_log_slow", original)
            (fast,) = own.lines
            own.lines.clear()
            slow = _pipeline_line(access, own, *request)
    assert fast == slow
    event = json.loads(fast)
    assert event["event"] == "http_request" and event["http_status"] == request[2]


def test_access_level_follows_status_and_disabled_levels_write_nothing(sink):
    access = logs.access_logger()
    with bind_correlation_id() as cid:
        access.log_request("GET", "/a", 200, 0.0125)
        access.log_request("GET", "/a", 404, 0.001, None)
        access.log_request("POST", "/a", 503, 0.2, cid)
    levels = [(e["level"], e["http_status"], e["correlation_id"]) for e in sink.events()]
    assert levels == [("info", 200, cid), ("warning", 404, cid), ("error", 503, cid)]
    assert sink.events()[0]["latency_ms"] == 12.5
    sink.lines.clear()
    logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.WARNING)
    try:
        access.log_request("GET", "/a", 200, 0.001, cid)
        access.log_request("GET", "/a", 500, 0.001, cid)
    finally:
        logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.NOTSET)
    assert [e["http_status"] for e in sink.events()] == [500]


def test_access_line_writes_the_trace_ids_its_caller_read(monkeypatch):
    # The middleware reads the span once for the exemplar and hands its IDs to the line.
    ids = ("%032x" % 0x5EED, "%016x" % 0xB0B)
    with configured() as sink, fast_path_only(monkeypatch):
        current.state.timestamper.clock = lambda: FIXED_TIME
        access = logs.access_logger()
        line = access.line("GET", "/a", 200)
        cid = str(uuid.uuid4())
        with active_span(0x5EED, 0xB0B):
            access.log_line(line, 0.001, cid, True)  # None: the line reads the context
        access.log_line(line, 0.001, cid, True, trace_piece(ids))
        access.log_line(line, 0.001, cid, True, trace_piece(None))
    read, given, none = sink.lines
    assert read == given and (json.loads(given)["trace_id"], json.loads(given)["span_id"]) == ids
    assert "trace_id" not in json.loads(none)
    assert trace_piece(None) == ""


def test_access_falls_back_to_the_pipeline_when_it_cannot_be_sure(monkeypatch):
    with configured() as sink:
        _check_fallbacks(sink, monkeypatch)


def _check_fallbacks(sink: ListSink, monkeypatch: Any) -> None:
    # pytest's own log-capture handler sits on the root logger while a test runs
    # (the fast path then falls back): configured() removes it for the block.
    access = logs.access_logger()
    calls: list[tuple[Any, ...]] = []
    original = logs.AccessLogger._log_slow

    def spy(self: Any, *args: Any) -> None:
        calls.append(args)
        original(self, *args)

    monkeypatch.setattr(logs.AccessLogger, "_log_slow", spy)
    access.log_request("GET", "/a", 200, 0.001)
    assert calls == []
    structlog.contextvars.bind_contextvars(job_id="j-7")
    access.log_request("GET", "/a", 200, 0.001)
    structlog.contextvars.clear_contextvars()
    assert len(calls) == 1 and sink.events()[-1]["job_id"] == "j-7"
    extra_handler = logging.NullHandler()
    logging.getLogger().addHandler(extra_handler)
    try:
        access.log_request("GET", "/a", 200, 0.001)
    finally:
        logging.getLogger().removeHandler(extra_handler)
    assert len(calls) == 2
    access.log_request("GET", "/a", 200, math.nan)
    assert len(calls) == 3 and sink.events()[-1]["latency_ms"] == "nan"
    with configured(extra_processors=[lambda _l, _m, ed: ed]):
        access.log_request("GET", "/a", 200, 0.001)
    assert len(calls) == 4


def test_access_fast_path_rechecks_the_logging_setup_within_a_second(monkeypatch):
    # The full check of handlers, filters and structlog's set-up runs once a
    # second; a filter added on the access logger applies from the next second.
    with configured() as sink:
        clock = [FIXED_TIME]
        current.state.timestamper.clock = lambda: clock[0]
        access = logs.access_logger()
        slow_calls: list[int] = []
        original = logs.AccessLogger._log_slow

        def spy(self: Any, *args: Any) -> None:
            slow_calls.append(args[3])  # (level, method, path, status, ...)
            original(self, *args)

        monkeypatch.setattr(logs.AccessLogger, "_log_slow", spy)
        access.log_request("GET", "/a", 200, 0.001)
        rejecting = logging.Filter("no-such-logger")  # drops every promkit.access record
        logging.getLogger(logs.ACCESS_LOGGER_NAME).addFilter(rejecting)
        try:
            access.log_request("GET", "/a", 201, 0.001)  # same second: verdict kept
            clock[0] += 1.0
            access.log_request("GET", "/a", 202, 0.001)  # re-checked: the pipeline filters it
        finally:
            logging.getLogger(logs.ACCESS_LOGGER_NAME).removeFilter(rejecting)
        clock[0] += 1.0
        access.log_request("GET", "/a", 203, 0.001)  # filter gone: the fast path again
    assert [e["http_status"] for e in sink.events()] == [200, 201, 203]
    assert slow_calls == [202]


def test_access_sampling_and_never_raising(collector_registry):
    registry = MetricsRegistry(collector_registry)
    with configured(sample={"http_request": 0.0}) as own:
        access = logs.access_logger(registry.failures)
        access.log_request("GET", "/a", 200, 0.001)
        access.log_request("GET", "/a", 404, 0.001)
        access.log_request("GET", "/a", 500, 0.001)
        access.log_request("GET", "/a", "oops", 0.001)  # type: ignore[arg-type]
    assert [e["http_status"] for e in own.events() if e["event"] == "http_request"] == [404, 500]
    assert collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "access_log:TypeError"}) == 1


def test_access_logger_without_configure_logging_goes_through_structlog(capsys):
    logs.reset_logging()
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    try:
        logs.access_logger().log_request("GET", "/a", 200, 0.001, None)
    finally:
        structlog.reset_defaults()
    assert json.loads(capsys.readouterr().out)["http_path"] == "/a"
