"""_compat: each private read of another library agrees with the public API, and
promkit behaves right with each public fallback forced.

Runs in the floors run too (oldest structlog, opentelemetry-api and
prometheus-client), so each read is checked on the oldest and newest versions.
"""

import logging
import subprocess
import sys
import textwrap
import types
from typing import Any

import prometheus_client
import pytest
import structlog
from _log_helpers import FIXED_TIME, active_span, configured  # tests/ is on sys.path
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    ProxyTracerProvider,
    SpanContext,
    TraceFlags,
)

from promkit.exporters import render_openmetrics, render_text
from promkit.instrument import (
    _access_line,
    _compat,
    _json_line,
    _log_state,
    _stage_line,
    logs,
    stages,
    tracing,
)
from promkit.instrument.correlation import bind_correlation_id

# ------------------------------------------------------------------ structlog config

CONFIG_KEYS = {"default_processors": "processors", "default_wrapper_class": "wrapper_class",
               "logger_factory": "logger_factory", "default_context_class": "context_class"}


@pytest.fixture
def saved_structlog():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_structlog_config_read_is_get_config(saved_structlog):
    public = _compat.PublicStructlogConfig()
    for attribute, key in CONFIG_KEYS.items():
        assert getattr(_compat.STRUCTLOG_CONFIG, attribute) is structlog.get_config()[key]
        assert getattr(public, attribute) is structlog.get_config()[key]
    processors = [structlog.processors.JSONRenderer()]
    structlog.configure(processors=processors)  # the private object is live
    assert _compat.STRUCTLOG_CONFIG.default_processors is processors
    assert public.default_processors is processors


def test_structlog_config_probe_falls_back_to_get_config():
    assert isinstance(_compat._choose_structlog_config(None), _compat.PublicStructlogConfig)
    assert isinstance(_compat._choose_structlog_config(types.SimpleNamespace(_CONFIG=object())),
                      _compat.PublicStructlogConfig)
    assert not isinstance(_compat.STRUCTLOG_CONFIG, _compat.PublicStructlogConfig)


@pytest.fixture
def public_structlog_config(monkeypatch):
    public = _compat.PublicStructlogConfig()
    monkeypatch.setattr(_log_state, "_STRUCTLOG_CONFIG", public)
    monkeypatch.setattr(stages.worker_log, "_conf", public)
    stages.worker_log.forget()
    yield
    stages.worker_log.forget()


def _capture(entries: list[dict[str, Any]]):
    def processor(logger: Any, method: str, event_dict: Any) -> Any:
        entries.append(dict(event_dict, log_level=method))
        raise structlog.DropEvent

    return processor


def test_stage_logs_follow_structlog_config_changes_with_the_fallback(
        saved_structlog, public_structlog_config, registry):
    entries: list[dict[str, Any]] = []
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, _capture(entries)],
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with stages.stage_timer("quiet", registry=registry):
        pass
    assert entries == []
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with (structlog.contextvars.bound_contextvars(job_id="job-9"),
          stages.stage_timer("loud", registry=registry)):
        pass
    assert [e["event"] for e in entries] == ["stage started", "stage completed"]
    assert entries[-1]["job_id"] == "job-9"


def test_access_fast_path_gate_with_the_config_fallback(public_structlog_config):
    with configured() as sink:
        _log_state.current.state.timestamper.clock = lambda: FIXED_TIME
        access = logs.access_logger()
        access.log_request("GET", "/a", 200, 0.001, None)
        fast = sink.lines[-1]
        assert access._gate.state is not None  # the gate passed: the fast path wrote it
        with configured(extra_processors=[lambda _l, _m, ed: dict(ed, mark="m")]) as other:
            _log_state.current.state.timestamper.clock = lambda: FIXED_TIME
            access.log_request("GET", "/a", 200, 0.001, None)
            # processors changed: the pipeline ran
            assert other.events()[-1]["extra"]["mark"] == "m"
    assert '"event":"http_request"' in fast


# ------------------------------------------------------------ structlog context vars

def test_context_vars_read_agrees_with_get_contextvars():
    assert _compat.STRUCTLOG_CONTEXT_VARS is not None
    for bound in (_compat.structlog_context_bound, _compat.public_structlog_context_bound):
        structlog.contextvars.clear_contextvars()
        assert bound() is False
        with structlog.contextvars.bound_contextvars(job_id="j-1"):
            assert bound() is True
            keys = {key for key, var in _compat.STRUCTLOG_CONTEXT_VARS.items()
                    if var.get() is not Ellipsis}
            assert len(keys) == 1 and next(iter(keys)).endswith("job_id")
            assert structlog.contextvars.get_contextvars() == {"job_id": "j-1"}
        assert bound() is False


def test_context_vars_probe_falls_back_to_get_contextvars():
    assert _compat._choose_context_vars(types.SimpleNamespace()) is None
    assert _compat._choose_context_vars(types.SimpleNamespace(_CONTEXT_VARS=[])) is None
    assert _compat._choose_context_bound(None) is _compat.public_structlog_context_bound


@pytest.fixture
def public_context_vars(monkeypatch):
    monkeypatch.setattr(_access_line, "_STRUCTLOG_VARS", None)
    monkeypatch.setattr(_access_line, "_structlog_context_bound",
                        _compat.public_structlog_context_bound)
    monkeypatch.setattr(_stage_line, "_STRUCTLOG_VARS", None)


@pytest.mark.parametrize("context", [{}, {"job_id": "j-7"}, {"tenant": "acme"}])
def test_access_and_stage_lines_carry_bound_context_with_the_fallback(
        public_context_vars, context):
    cid = "0c4f7c2e-8a4b-4a51-9c3e-1234567890ab"
    with (configured(service="worker") as sink, bind_correlation_id(cid),
          structlog.contextvars.bound_contextvars(**context)):
        logs.access_logger().log_request("GET", "/a", 200, 0.001, cid)
        writer = logs.StageLineWriter("promkit.worker")
        if not writer.completed("ocr", 0.01, 0.005, None):
            structlog.get_logger("promkit.worker").info(
                logs.STAGE_COMPLETED_EVENT, stage="ocr", latency_ms=10.0, cpu_ms=5.0)
    access, stage = sink.events()
    for event in (access, stage):
        assert event["correlation_id"] == cid
        for key, value in context.items():  # non-schema keys go under "extra"
            assert event.get(key, event.get("extra", {}).get(key)) == value


# ------------------------------------------------------------------- logging cache

def test_level_cache_read_agrees_with_is_enabled_for():
    logger = logging.getLogger("promkit.test_compat.levels")
    logger.setLevel(logging.WARNING)
    try:
        cache = _compat.logger_level_cache(logger)
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
            answer = logger.isEnabledFor(level)
            assert cache[level] is answer
        logger.setLevel(logging.DEBUG)  # cleared in place
        assert cache == {} and _compat.logger_level_cache(logger) is cache
    finally:
        logger.setLevel(logging.NOTSET)
    assert _compat.logger_level_cache(types.SimpleNamespace()) == {}  # type: ignore[arg-type]


def test_structlog_stdlib_logger_read(saved_structlog):
    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger)
    bound = structlog.get_logger("promkit.test_compat").bind()
    assert _compat.structlog_stdlib_logger(bound) is logging.getLogger("promkit.test_compat")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory())
    assert _compat.structlog_stdlib_logger(structlog.get_logger("x").bind()) is None
    assert _compat.structlog_stdlib_logger(object()) is None


def test_stage_levels_are_honoured_without_the_level_caches(
        monkeypatch, saved_structlog, registry):
    from promkit.instrument import _worker_log

    monkeypatch.setattr(_worker_log, "level_cache", lambda logger: {})
    monkeypatch.setattr(_worker_log, "structlog_stdlib_logger", lambda bound: None)
    monkeypatch.setattr(_access_line, "level_cache", lambda logger: {})
    monkeypatch.setattr(_stage_line, "level_cache", lambda logger: {})
    stages.worker_log.forget()
    entries: list[dict[str, Any]] = []
    # filter_by_level: structlog 24.1's stdlib BoundLogger has no is_enabled_for.
    structlog.configure(processors=[structlog.stdlib.filter_by_level, _capture(entries)],
                        logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger)
    worker = logging.getLogger(stages.LOGGER_NAME)
    worker.setLevel(logging.ERROR)
    try:
        with stages.stage_timer("quiet", registry=registry):
            pass
        assert entries == []
        assert stages.worker_log.levels == {}
        worker.setLevel(logging.DEBUG)
        with stages.stage_timer("loud", registry=registry):
            pass
        assert [e["event"] for e in entries] == ["stage started", "stage completed"]
        with configured() as sink:
            logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.WARNING)
            try:
                access = logs.access_logger()
                access.log_request("GET", "/a", 200, 0.001, None)
                access.log_request("GET", "/a", 500, 0.001, None)
            finally:
                logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.NOTSET)
            assert [e["http_status"] for e in sink.events()] == [500]
    finally:
        worker.setLevel(logging.NOTSET)
        stages.worker_log.forget()


# --------------------------------------------------------------- OpenTelemetry context

def test_current_context_read_is_get_current():
    assert _compat.otel_current_context() is otel_context.get_current()
    with active_span(0x5EED, 0xB0B):
        current = _compat.otel_current_context()
        assert current is otel_context.get_current() and current
    assert _compat.otel_current_context() is otel_context.get_current()


def test_current_context_probe_falls_back_to_get_current():
    public = types.SimpleNamespace(get_current=otel_context.get_current)
    assert _compat._choose_current_context(public) is otel_context.get_current
    broken = types.SimpleNamespace(get_current=otel_context.get_current,
                                   _RUNTIME_CONTEXT=types.SimpleNamespace(_current_context=1))
    assert _compat._choose_current_context(broken) is otel_context.get_current


def test_log_lines_carry_trace_ids_with_the_context_fallback(monkeypatch):
    monkeypatch.setattr(_access_line, "_otel_current", otel_context.get_current)
    monkeypatch.setattr(_stage_line, "_otel_current", otel_context.get_current)
    monkeypatch.setattr(_json_line, "_current_context", otel_context.get_current)
    with configured() as sink:
        with active_span(0x5EED, 0xB0B):
            logs.access_logger().log_request("GET", "/a", 200, 0.001, None)
            assert logs.StageLineWriter("promkit.worker").completed("ocr", 0.01, 0.0, None)
        logs.access_logger().log_request("GET", "/a", 200, 0.001, None)
    first, stage, outside = sink.events()
    for event in (first, stage):
        assert event["trace_id"] == "%032x" % 0x5EED and event["span_id"] == "%016x" % 0xB0B
    assert "trace_id" not in outside


# ------------------------------------------------------------ OpenTelemetry provider

def test_tracer_provider_read_agrees_with_get_tracer_provider():
    private = _compat.global_tracer_provider()
    public = otel_trace.get_tracer_provider()
    if private is None:  # none set: the public getter hands out its proxy
        assert isinstance(public, ProxyTracerProvider)
    else:
        assert private is public


def test_tracer_provider_probe_falls_back_to_get_tracer_provider():
    public = types.SimpleNamespace(get_tracer_provider=otel_trace.get_tracer_provider)
    assert _compat._choose_tracer_provider(public) is otel_trace.get_tracer_provider


GLOBAL_SCRIPT = textwrap.dedent("""
    import sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from promkit.instrument import tracing
    from promkit.instrument.correlation import bind_correlation_id

    if sys.argv[1] == "public":
        tracing.global_tracer_provider = trace.get_tracer_provider

    assert tracing.tracing_active() is False
    assert tracing.tracing_active(trace.ProxyTracerProvider()) is False
    with tracing.start_span("before") as span:
        assert not span.is_recording()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert tracing.tracing_active() is True
    assert tracing.tracing_active(trace.ProxyTracerProvider()) is True  # forwards to it
    with bind_correlation_id() as cid:
        with tracing.start_span("after") as span:
            ctx = span.get_span_context()
            assert tracing.request_exemplar(cid) == {
                "trace_id": "%032x" % ctx.trace_id, "span_id": "%016x" % ctx.span_id}
    (after,) = exporter.get_finished_spans()
    assert after.attributes["promkit.correlation_id"] == cid
    print("ok")
""")


@pytest.mark.parametrize("mode", ["private", "public"])
def test_global_provider_with_and_without_the_private_read(tmp_path, mode):
    result = subprocess.run([sys.executable, "-c", GLOBAL_SCRIPT, mode], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------- SpanContext layout

CONTEXTS = [
    SpanContext(0x5EED, 0xB0B, False, TraceFlags(TraceFlags.SAMPLED)),
    SpanContext(0x5EED, 0xB0B, True, TraceFlags(TraceFlags.DEFAULT)),
    SpanContext(2**128 - 1, 2**64 - 1, True, TraceFlags(TraceFlags.SAMPLED)),
    INVALID_SPAN_CONTEXT,
]


def _expected(ctx: SpanContext, sampled_only: bool) -> tuple[str, str] | None:
    if not ctx.is_valid or (sampled_only and not ctx.trace_flags.sampled):
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("sampled_only", [False, True])
def test_span_ids_tuple_read_agrees_with_the_properties(ctx, sampled_only):
    assert _compat._layout_is_tuple() == isinstance(ctx, tuple)
    public = _compat._make_span_ids(False)
    assert public(ctx, sampled_only) == _expected(ctx, sampled_only)
    assert public(ctx, sampled_only) == _expected(ctx, sampled_only)  # the kept formatting
    assert _compat.span_ids(ctx, sampled_only) == _expected(ctx, sampled_only)
    if _compat._layout_is_tuple():
        assert _compat._make_span_ids(True)(ctx, sampled_only) == _expected(ctx, sampled_only)


def test_trace_ids_and_exemplars_with_the_properties_fallback(monkeypatch):
    monkeypatch.setattr(tracing, "_ids", _compat._make_span_ids(False))
    monkeypatch.setattr(_json_line, "_span_ids", _compat._make_span_ids(False))
    for ctx in CONTEXTS:
        span = NonRecordingSpan(ctx)
        with otel_trace.use_span(span):
            assert tracing.current_trace_ids() == _expected(ctx, False)
            assert _json_line.trace_ids() == _expected(ctx, False)
            ids = _expected(ctx, True)
            labels = tracing.exemplar_labels("cid-1")
            if ids is None:
                assert labels == {"correlation_id": "cid-1"}
            else:
                assert labels == {"trace_id": ids[0], "span_id": ids[1]}


# ------------------------------------------------------- prometheus-client created

@pytest.fixture
def created_switch():
    before = _compat.created_series_enabled()
    yield
    if before:
        prometheus_client.enable_created_metrics()
    else:
        prometheus_client.disable_created_metrics()


def test_created_read_agrees_with_prometheus_clients_output(created_switch):
    for switch, expected in ((prometheus_client.disable_created_metrics, False),
                             (prometheus_client.enable_created_metrics, True)):
        switch()
        assert _compat.created_series_enabled() is expected
        assert _compat.public_created_series_enabled() is expected


def test_created_probe_falls_back_to_prometheus_clients_output():
    assert _compat._choose_created(types.SimpleNamespace()) is (
        _compat.public_created_series_enabled)
    assert _compat._choose_created(types.SimpleNamespace(_use_created="yes")) is (
        _compat.public_created_series_enabled)


@pytest.mark.parametrize("enabled", [True, False])
def test_created_series_follow_the_switch_with_the_fallback(
        monkeypatch, created_switch, registry, enabled):
    from promkit.exporters import _exposition

    monkeypatch.setattr(_exposition, "created_series_enabled",
                        _compat.public_created_series_enabled)
    (prometheus_client.enable_created_metrics if enabled
     else prometheus_client.disable_created_metrics)()
    registry.counter("orders_total", "Orders placed.", ["channel"]).labels("web").inc()
    text = "".join(render_text(registry))
    openmetrics = "".join(render_openmetrics(registry))
    assert ("orders_created{" in text) is enabled
    assert ("orders_created{" in openmetrics) is enabled


# ------------------------------------------------------- prometheus-client values

def test_value_class_read_agrees_with_the_public_names():
    from prometheus_client import values

    for value_class, expected in ((values.MutexValue, False), (values.MultiProcessValue(), True)):
        assert _compat.value_class_is_multiprocess(value_class) is expected
        assert _compat.public_value_class_is_multiprocess(value_class) is expected
    assert _compat.value_class_is_multiprocess(values.ValueClass) is (
        _compat.public_value_class_is_multiprocess(values.ValueClass))
