"""configure_logging: stdlib records and structlog events as one schema, set-up, sinks, DuckDB."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from _log_helpers import (  # tests/ is on sys.path
    BrokenStream,
    ListSink,
    configured,
)

from promkit.instrument import MetricsRegistry, logs
from promkit.instrument._log_config import JsonLinesHandler
from promkit.instrument.correlation import (
    bind_correlation_id,
)


@pytest.fixture
def sink() -> Iterator[ListSink]:
    with configured() as list_sink:
        yield list_sink


# ------------------------------------------------------------------------ stdlib records

def test_stdlib_records_come_out_in_the_same_schema(sink):
    with bind_correlation_id() as cid:
        logging.getLogger("some.library").warning("disk at %d%% on %s", 91, "10.1.2.3")
        try:
            raise ValueError("bad value for bob@example.com")
        except ValueError:
            logging.getLogger("some.library").exception("failed")
    warning, error = sink.events()
    assert list(warning) == ["timestamp", "level", "service", "event", "correlation_id", "extra"]
    assert warning["level"] == "warning" and warning["correlation_id"] == cid
    assert warning["event"] == "disk at 91% on [redacted:ip]"
    assert warning["extra"] == {"logger": "some.library"}
    assert error["level"] == "error"
    assert "ValueError" in error["extra"]["exception"]
    assert "bob@example.com" not in sink.lines[1]


# ------------------------------------------------------------------------ set-up, sinks

def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, JsonLinesHandler)]


def test_configure_twice_does_not_duplicate_handlers_or_lines():
    with configured():
        first = ListSink()
        logs.configure_logging("svc", stream=first)
        second = ListSink()
        logs.configure_logging("svc", stream=second)
        assert len(_our_handlers()) == 1
        logs.get_logger().info("once")
        logging.getLogger("lib").info("once too")
        assert first.lines == [] and len(second.lines) == 2
    assert _our_handlers() == []


def test_level_filters_structlog_and_stdlib_alike():
    with configured(level="WARNING") as own:
        logs.get_logger().info("hidden")
        logging.getLogger("x").info("hidden")
        logs.get_logger().error("shown")
    assert [e["event"] for e in own.events()] == ["shown"]


def test_null_sink_and_stream_none_writenothing():
    with configured(stream=logs.NullSink()):
        logs.get_logger().info("x")
    logs.configure_logging("svc", stream=None)
    try:
        logs.get_logger().info("x")
        logs.access_logger().log_request("GET", "/", 200, 0.001, None)
    finally:
        logs.reset_logging()


def test_file_sink_rotates_at_the_size_limit(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    with configured(file=path, file_max_bytes=2000, file_backups=2):
        log = logs.get_logger()
        for index in range(100):
            log.info("job_completed", job_id=f"j-{index:03d}")
    files = sorted(tmp_path.joinpath("logs").iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for file in files:
        assert 0 < file.stat().st_size <= 2000
        for line in file.read_text("utf-8").splitlines():
            json.loads(line)
    last = path.read_text("utf-8").splitlines()[-1]
    assert json.loads(last)["job_id"] == "j-099"


def test_file_sink_keeps_history_across_restarts(tmp_path):
    path = tmp_path / "events.jsonl"
    with configured(file=path):
        logs.get_logger().info("before_restart")
    with configured(file=path):
        logs.get_logger().info("after_restart")
    events = [json.loads(line)["event"] for line in path.read_text("utf-8").splitlines()]
    assert events == ["before_restart", "after_restart"]


def test_a_failing_sink_is_swallowed_counted_and_reported_once(tmp_path, collector_registry):
    registry = MetricsRegistry(collector_registry)
    path = tmp_path / "events.jsonl"
    with configured(stream=BrokenStream(), file=path, failures=registry.failures):
        log = logs.get_logger()
        for _ in range(3):
            log.info("job_created")  # must not raise
        logs.access_logger(registry.failures).log_request("GET", "/", 200, 0.001, None)
    count = collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "log_sink_stream:OSError"})
    assert count == 4
    lines = path.read_text("utf-8").splitlines()
    reports = [line for line in lines if "instrumentation failure" in line]
    assert len(reports) == 1 and "log_sink_stream:OSError" in reports[0]
    assert sum('"job_created"' in line for line in lines) == 3


def test_file_write_failure_is_counted(tmp_path, collector_registry):
    registry = MetricsRegistry(collector_registry)
    path = tmp_path / "e.jsonl"
    with configured(file=path, failures=registry.failures) as own:
        logs.get_logger().info("first")
        path.rename(tmp_path / "moved.jsonl")
        path.mkdir()  # the sink follows the path, and a directory cannot be written
        logs.get_logger().info("second")
    assert collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "log_sink_file:IsADirectoryError"}) == 1
    assert [e["event"] for e in own.events()][:2] == ["first", "second"]


# ------------------------------------------------------------------------ DuckDB over the file

def test_duckdb_answers_p95_per_route_and_lines_of_a_correlation_id(tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (pip install duckdb)")
    path = tmp_path / "events.jsonl"
    with configured(file=path):
        access = logs.access_logger()
        with bind_correlation_id() as wanted:
            logs.get_logger().info("job_created", job_id="j-1")
            access.log_request("POST", "/jobs", 201, 0.050)
        for index in range(100):
            access.log_request("GET", "/items/{item_id}", 200, (index + 1) / 1000)
    con = duckdb.connect()
    rows = con.execute(
        """
        SELECT http_path, quantile_cont(latency_ms, 0.95) AS p95_ms, count(*) AS requests
        FROM read_json_auto(?)
        WHERE event = 'http_request'
          AND CAST(timestamp AS TIMESTAMP) >= now()::TIMESTAMP - INTERVAL 7 DAY
        GROUP BY http_path ORDER BY http_path
        """,
        [str(path)],
    ).fetchall()
    assert rows[0][0] == "/items/{item_id}" and rows[0][2] == 100
    assert rows[0][1] == pytest.approx(95.05)
    events = con.execute(
        "SELECT event FROM read_json_auto(?) WHERE correlation_id = ? ORDER BY timestamp",
        [str(path), wanted],
    ).fetchall()
    assert [e[0] for e in events] == ["job_created", "http_request"]


def test_httpx_request_lines_with_webhook_urls_are_not_logged_by_default():
    import logging as _logging

    from promkit.instrument.logs import configure_logging, reset_logging

    out = io.StringIO()
    configure_logging("svc", stream=out)
    try:
        _logging.getLogger("httpx").info(
            'HTTP Request: POST https://hooks.slack.com/services/T0/B0/XyZsecret "HTTP/1.1 200 OK"')
        _logging.getLogger("app").info("kept")
    finally:
        reset_logging()
    assert "XyZsecret" not in out.getvalue() and "kept" in out.getvalue()
