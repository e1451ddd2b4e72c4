"""promkit.instrument.tracing: the OpenTelemetry adapter, with and without an SDK.

The global tracer provider can be set only once per process, and other tests
expect none, so these tests pass a provider explicitly; the global case runs
in a subprocess.
"""

import asyncio
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    NoOpTracerProvider,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)

from promkit.instrument import tracing
from promkit.instrument._safety import FailureSink
from promkit.instrument.correlation import bind_correlation_id, new_correlation_id
from promkit.instrument.tracing import (
    CORRELATION_ATTRIBUTE,
    annotate_current_span,
    current_trace_ids,
    exemplar_labels,
    request_exemplar,
    start_span,
    tracing_active,
)

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
sdk_export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
sampling = pytest.importorskip("opentelemetry.sdk.trace.sampling")


class Boom(Exception):
    pass


class RecordingSink(FailureSink):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, BaseException]] = []

    def failure(self, operation: str, exc: BaseException, detail: str = "") -> None:
        self.seen.append((operation, exc))


@pytest.fixture
def exporter():
    return in_memory.InMemorySpanExporter()


@pytest.fixture
def provider(exporter):
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(sdk_export.SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def remote_span(trace_id: int, span_id: int, sampled: bool = True) -> NonRecordingSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags))


# ------------------------------------------------------------------ without an SDK


def test_without_a_provider_everything_is_a_no_op():
    # No test in this process sets the global provider (see the module docstring).
    assert tracing_active() is False, "a test set the global tracer provider"
    assert tracing_active(NoOpTracerProvider()) is False
    assert tracing_active(trace.ProxyTracerProvider()) is False
    scope = start_span("work")
    assert scope is start_span("other", kind=SpanKind.CLIENT)  # one shared no-op
    with bind_correlation_id() as cid, scope as span:
        assert span is INVALID_SPAN
        span.set_attribute("anything", 1)  # safe on the invalid span
        assert current_trace_ids() is None
        assert exemplar_labels(cid) == {"correlation_id": cid}
        assert request_exemplar(cid) == {"correlation_id": cid}
        assert annotate_current_span(cid) is False
    assert exemplar_labels(None) is None
    assert request_exemplar(None) is None


def test_no_op_span_lets_the_exception_through_unchanged():
    error = Boom("kept")
    with pytest.raises(Boom) as info, start_span("work"):
        raise error
    assert info.value is error


def test_explicit_no_op_provider_gives_no_spans():
    with start_span("work", tracer_provider=NoOpTracerProvider()) as span:
        assert not span.is_recording()


# --------------------------------------------------------------------- with an SDK


def test_span_carries_the_correlation_id_and_attributes(provider, exporter):
    assert tracing_active(provider) is True
    with bind_correlation_id() as cid, start_span(
        "ocr.extract", kind=SpanKind.CONSUMER, attributes={"ocr.pages": 3},
        tracer_provider=provider,
    ) as span:
        assert span.is_recording()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "ocr.extract"
    assert finished.kind is SpanKind.CONSUMER
    assert finished.attributes[CORRELATION_ATTRIBUTE] == cid
    assert finished.attributes["ocr.pages"] == 3
    assert finished.instrumentation_scope.name == "promkit"
    assert finished.status.status_code is StatusCode.UNSET


def test_span_without_a_correlation_id_has_no_attribute(provider, exporter):
    with start_span("work", tracer_provider=provider):
        pass
    (finished,) = exporter.get_finished_spans()
    assert CORRELATION_ATTRIBUTE not in finished.attributes


def test_correlation_id_is_read_when_the_block_is_entered(provider, exporter):
    scope = start_span("work", tracer_provider=provider)
    with bind_correlation_id() as cid, scope:
        pass
    assert exporter.get_finished_spans()[0].attributes[CORRELATION_ATTRIBUTE] == cid


def test_exception_is_recorded_and_reraised_unchanged(provider, exporter):
    error = Boom("disk full")
    with pytest.raises(Boom) as info, start_span("work", tracer_provider=provider):
        raise error
    assert info.value is error
    assert info.value.__traceback__ is not None
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "Boom: disk full"
    assert finished.attributes["error.type"] == f"{__name__}.Boom"
    (event,) = finished.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith("Boom")
    assert event.attributes["exception.message"] == "disk full"
    assert "raise error" in event.attributes["exception.stacktrace"]


def test_builtin_exception_type_is_not_qualified(provider, exporter):
    with pytest.raises(KeyError), start_span("work", tracer_provider=provider):
        raise KeyError("k")
    assert exporter.get_finished_spans()[0].attributes["error.type"] == "KeyError"


def test_exception_with_a_broken_str_is_still_reraised(provider, exporter):
    class Odd(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    sink = RecordingSink()
    error = Odd()
    with pytest.raises(Odd) as info, start_span("work", tracer_provider=provider,
                                                  failures=sink):
        raise error
    assert info.value is error
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "Odd"


def test_cancellation_ends_the_span_without_an_error(provider, exporter):
    with pytest.raises(asyncio.CancelledError), start_span("work", tracer_provider=provider):
        raise asyncio.CancelledError
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.UNSET
    assert finished.end_time is not None


def test_nested_spans_are_parent_and_child(provider, exporter):
    with start_span("outer", tracer_provider=provider) as outer, \
            start_span("inner", tracer_provider=provider):
        pass
    inner, outer_done = exporter.get_finished_spans()
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert outer_done.parent is None
    assert trace.get_current_span() is INVALID_SPAN  # the context is restored


def test_entering_one_scope_twice_does_not_break_the_app(provider, exporter):
    sink = RecordingSink()
    scope = start_span("work", tracer_provider=provider, failures=sink)
    with scope as outer:
        with scope as inner:
            assert inner is INVALID_SPAN
        assert trace.get_current_span() is outer
    assert len(exporter.get_finished_spans()) == 1
    assert sink.seen[0][0] == "tracing_start_span"
    with scope:  # and it may be used again afterwards
        pass
    assert len(exporter.get_finished_spans()) == 2


async def test_async_with_and_await_inside_a_span(provider, exporter):
    with bind_correlation_id() as cid:
        async with start_span("job", tracer_provider=provider) as job:
            await asyncio.sleep(0)
            with start_span("stage", tracer_provider=provider):
                await asyncio.sleep(0)
                assert current_trace_ids()[0] == "%032x" % job.get_span_context().trace_id

        async def task():
            with start_span("in-task", tracer_provider=provider):
                await asyncio.sleep(0)

        await asyncio.gather(task(), task())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["stage"].parent.span_id == spans["job"].context.span_id
    assert all(s.attributes[CORRELATION_ATTRIBUTE] == cid for s in spans.values())


async def test_async_exception_is_reraised_unchanged(provider, exporter):
    error = Boom("async")
    with pytest.raises(Boom) as info:
        async with start_span("job", tracer_provider=provider):
            await asyncio.sleep(0)
            raise error
    assert info.value is error
    assert exporter.get_finished_spans()[0].status.status_code is StatusCode.ERROR


# --------------------------------------------------------------- failure isolation


class _Processor(sdk_trace.SpanProcessor):
    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on

    def on_start(self, span, parent_context=None):
        if self.fail_on == "start":
            raise RuntimeError("processor on_start")

    def on_end(self, span):
        if self.fail_on == "end":
            raise RuntimeError("processor on_end")


@pytest.mark.parametrize("fail_on", ["start", "end"])
def test_a_broken_span_processor_never_reaches_the_app(fail_on):
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(_Processor(fail_on))
    sink = RecordingSink()
    ran = False
    with start_span("work", tracer_provider=provider, failures=sink):
        ran = True
    assert ran
    assert sink.seen and isinstance(sink.seen[0][1], RuntimeError)
    assert trace.get_current_span() is INVALID_SPAN
    error = Boom("still the app's")
    with pytest.raises(Boom) as info, start_span("work", tracer_provider=provider,
                                                  failures=sink):
        raise error
    assert info.value is error


def test_a_broken_span_never_breaks_annotate_or_exemplars():
    class BrokenSpan(NonRecordingSpan):
        def is_recording(self):
            return True

        def set_attribute(self, key, value):
            raise RuntimeError("set_attribute")

        def get_span_context(self):
            raise RuntimeError("get_span_context")

    sink = RecordingSink()
    cid = new_correlation_id()
    with trace.use_span(BrokenSpan(SpanContext(1, 1, False))):
        assert annotate_current_span(cid, failures=sink) is False
        assert exemplar_labels(cid, failures=sink) == {"correlation_id": cid}
        assert current_trace_ids() is None
    assert [op for op, _ in sink.seen] == ["tracing_annotate", "tracing_exemplar"]


# ----------------------------------------------------------- trace IDs, exemplars


def test_current_trace_ids_formats_lowercase_zero_padded_hex():
    with trace.use_span(remote_span(0xABC, 0x1F)):
        assert current_trace_ids() == ("0" * 29 + "abc", "0" * 14 + "1f")
    with trace.use_span(remote_span(2**128 - 1, 2**64 - 1)):
        assert current_trace_ids() == ("f" * 32, "f" * 16)
    assert current_trace_ids() is None


def test_current_trace_ids_match_the_sdk_span(provider):
    with start_span("work", tracer_provider=provider) as span:
        ctx = span.get_span_context()
        assert current_trace_ids() == (trace.format_trace_id(ctx.trace_id),
                                       trace.format_span_id(ctx.span_id))
        with start_span("child", tracer_provider=provider) as child:
            assert current_trace_ids()[1] == trace.format_span_id(
                child.get_span_context().span_id)
        assert current_trace_ids()[1] == trace.format_span_id(ctx.span_id)


def test_current_trace_ids_ignore_an_invalid_span():
    with trace.use_span(NonRecordingSpan(SpanContext(0, 0, False))):
        assert current_trace_ids() is None


def test_exemplar_prefers_the_trace_of_a_sampled_span(provider):
    cid = new_correlation_id()
    with start_span("work", tracer_provider=provider) as span:
        ctx = span.get_span_context()
        labels = exemplar_labels(cid)
    assert labels == {"trace_id": "%032x" % ctx.trace_id, "span_id": "%016x" % ctx.span_id}
    assert exemplar_labels(cid) == {"correlation_id": cid}  # outside the span again


def test_exemplar_skips_a_trace_that_is_not_sampled():
    provider = sdk_trace.TracerProvider(sampler=sampling.ALWAYS_OFF)
    cid = new_correlation_id()
    with start_span("work", tracer_provider=provider):
        assert current_trace_ids() is not None  # still fine for log lines
        assert exemplar_labels(cid) == {"correlation_id": cid}
    with trace.use_span(remote_span(5, 6, sampled=False)):
        assert exemplar_labels(None) is None
    with trace.use_span(remote_span(5, 6, sampled=True)):
        assert exemplar_labels(None) == {"trace_id": "%032x" % 5, "span_id": "%016x" % 6}


def test_exemplar_labels_stay_within_the_openmetrics_limit():
    def runes(labels):
        return sum(len(k) + len(v) for k, v in labels.items())

    with trace.use_span(remote_span(2**128 - 1, 2**64 - 1)):
        assert runes(exemplar_labels("x" * 500)) == 63
    assert runes(exemplar_labels(new_correlation_id())) == 50
    assert runes(exemplar_labels("x" * 114)) == 128
    assert exemplar_labels("x" * 115) is None  # would not fit: dropped, never truncated
    assert exemplar_labels("") is None


def test_exemplar_dict_is_a_fresh_object_each_time(provider):
    with start_span("work", tracer_provider=provider):
        first, second = exemplar_labels(None), exemplar_labels(None)
    assert first == second and first is not second
    first["trace_id"] = "changed"
    with trace.use_span(remote_span(1, 2)):
        assert current_trace_ids() == ("%032x" % 1, "%016x" % 2)


def test_annotate_sets_the_attribute_on_an_outer_server_span(provider, exporter):
    outer_tracer = provider.get_tracer("opentelemetry.instrumentation.asgi")
    cid = new_correlation_id()
    with outer_tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER):
        assert annotate_current_span(cid) is True
        assert annotate_current_span(None) is False
    (server,) = exporter.get_finished_spans()
    assert server.attributes[CORRELATION_ATTRIBUTE] == cid
    assert annotate_current_span(cid) is False  # no span now


# ------------------------------------------------- the middleware's one span read


def _hex(ctx):
    return "%032x" % ctx.trace_id, "%016x" % ctx.span_id


def test_traced_request_does_annotate_exemplar_and_line_ids_from_one_read(provider, exporter,
                                                                          monkeypatch):
    monkeypatch.setattr(tracing, "tracing_active", lambda: True)  # as with a global SDK
    cid = new_correlation_id()
    with provider.get_tracer("asgi").start_as_current_span("server") as span:
        ids = _hex(span.get_span_context())
        labels, line_ids = tracing.traced_request(otel_context.get_current(), cid)
        # what the three separate steps give
        assert labels == {"trace_id": ids[0], "span_id": ids[1]} == exemplar_labels(cid)
        assert line_ids == ids == current_trace_ids()
    (server,) = exporter.get_finished_spans()
    assert server.attributes[CORRELATION_ATTRIBUTE] == cid
    with trace.use_span(remote_span(5, 6, sampled=False)):  # a trace not exported
        labels, line_ids = tracing.traced_request(otel_context.get_current(), cid)
    assert labels == {"correlation_id": cid} and line_ids == ("%032x" % 5, "%016x" % 6)
    with trace.use_span(NonRecordingSpan(SpanContext(0, 0, False))):  # an invalid span
        assert tracing.traced_request(otel_context.get_current(), cid) == (
            {"correlation_id": cid}, None)
        assert tracing.traced_request(otel_context.get_current(), None) == (None, None)


def test_traced_request_without_tracing_active_only_reads_the_line_ids(provider, exporter):
    # No global provider: no annotation, the exemplar is the correlation ID, as
    # request_exemplar; the log line still gets the IDs of any valid span.
    cid = new_correlation_id()
    with provider.get_tracer("asgi").start_as_current_span("server") as span:
        labels, line_ids = tracing.traced_request(otel_context.get_current(), cid)
        assert labels == {"correlation_id": cid} == request_exemplar(cid)
        assert line_ids == _hex(span.get_span_context()) == current_trace_ids()
    (server,) = exporter.get_finished_spans()
    assert CORRELATION_ATTRIBUTE not in server.attributes


def test_a_broken_span_never_breaks_the_traced_request(monkeypatch):
    monkeypatch.setattr(tracing, "tracing_active", lambda: True)

    class NoAttributes(NonRecordingSpan):
        def is_recording(self):
            return True

        def set_attribute(self, key, value):
            raise RuntimeError("set_attribute")

    class NoContext(NonRecordingSpan):
        def get_span_context(self):
            raise RuntimeError("get_span_context")

    sink = RecordingSink()
    cid = new_correlation_id()
    context = SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NoAttributes(context)):
        labels, line_ids = tracing.traced_request(otel_context.get_current(), cid, sink)
    # the annotation failed; the exemplar and the line still link the trace
    assert labels == {"trace_id": "%032x" % 1, "span_id": "%016x" % 2}
    assert line_ids == ("%032x" % 1, "%016x" % 2)
    with trace.use_span(NoContext(context)):
        assert tracing.traced_request(otel_context.get_current(), cid, sink) == (
            {"correlation_id": cid}, None)
    assert [op for op, _ in sink.seen] == ["tracing_annotate", "tracing_exemplar"]


# --------------------------------------------------------- the global provider case

GLOBAL_SCRIPT = textwrap.dedent("""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from promkit.instrument import tracing
    from promkit.instrument.correlation import bind_correlation_id

    assert tracing.tracing_active() is False
    assert tracing.tracing_active() is False  # cached verdict
    with tracing.start_span("before") as span:
        assert not span.is_recording()

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert tracing.tracing_active() is True  # a provider set later is noticed

    with bind_correlation_id() as cid:
        with tracing.start_span("after"):
            pass
        server = trace.get_tracer("asgi").start_as_current_span("server")
        with server as span:
            labels = tracing.request_exemplar(cid)
            ctx = span.get_span_context()
            assert labels == {"trace_id": "%032x" % ctx.trace_id,
                              "span_id": "%016x" % ctx.span_id}, labels
        assert tracing.request_exemplar(cid) == {"correlation_id": cid}
    after, server_span = exporter.get_finished_spans()
    assert after.name == "after" and after.attributes["promkit.correlation_id"] == cid
    assert after.instrumentation_scope.name == "promkit"
    assert server_span.attributes["promkit.correlation_id"] == cid
    print("ok")
""")


def test_global_provider_is_noticed_when_set_later(tmp_path):
    result = subprocess.run([sys.executable, "-c", GLOBAL_SCRIPT], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_provider_named_by_the_environment_is_found(tmp_path):
    script = textwrap.dedent("""
        import os
        os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
        from promkit.instrument import tracing
        assert tracing.tracing_active() is True
        with tracing.start_span("x") as span:
            assert span.is_recording()
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

