"""stage_timer: decorators and context managers, CPU time, failures, logs."""

import asyncio
import inspect
import logging
import time

import pytest
import structlog
from _stage_helpers import CPU, DURATION, FAILURES, Boom, sample  # tests/ is on sys.path
from structlog.testing import LogCapture

from promkit.instrument import correlation
from promkit.instrument.stages import stage_timer


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU (not wall) time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def add_correlation_id(logger, method_name, event_dict):
    # Stands in for the logging configuration's correlation processor.
    cid = correlation.get_correlation_id()
    if cid is not None:
        event_dict.setdefault("correlation_id", cid)
    return event_dict


@pytest.fixture
def logs():
    """Capture structlog events at DEBUG and up; restore the configuration afterwards."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, add_correlation_id, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


# ------------------------------------------------------------------ sync decorator


def test_sync_decorator_records_duration_and_cpu(registry):
    @stage_timer("ocr", registry=registry)
    def ocr(pages: int, *, dpi: int = 300) -> str:
        """Extract text."""
        burn_cpu(0.02)
        time.sleep(0.03)
        return f"{pages}@{dpi}"

    assert ocr(2, dpi=150) == "2@150"
    assert ocr(1) == "1@300"
    assert sample(registry, DURATION + "_count", stage="ocr") == 2
    assert sample(registry, DURATION + "_sum", stage="ocr") >= 0.1
    cpu = sample(registry, CPU, stage="ocr")
    assert 0.04 <= cpu < 0.1 + 0.04  # the CPU burnt, not the sleep
    assert sample(registry, FAILURES, stage="ocr", error_code="Boom") is None


def test_decorator_preserves_name_doc_and_signature(registry):
    def ocr(pages: int, *, dpi: int = 300) -> str:
        """Extract text."""
        return ""

    async def aocr(pages: int) -> str:
        """Async."""
        return ""

    wrapped = stage_timer("ocr", registry=registry)(ocr)
    assert wrapped.__name__ == "ocr" and wrapped.__doc__ == "Extract text."
    assert wrapped.__wrapped__ is ocr
    assert inspect.signature(wrapped) == inspect.signature(ocr)
    awrapped = stage_timer("ocr", registry=registry)(aocr)
    assert inspect.iscoroutinefunction(awrapped)
    assert inspect.signature(awrapped) == inspect.signature(aocr)
    assert not inspect.iscoroutinefunction(wrapped)


def test_sync_failure_is_counted_and_the_same_exception_propagates(registry):
    error = Boom("bad page")

    @stage_timer("ocr", registry=registry)
    def ocr():
        raise error

    with pytest.raises(Boom) as info:
        ocr()
    assert info.value is error
    # The traceback still reaches the frame that raised.
    tb = info.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "ocr" and tb.tb_frame.f_code is not None
    assert sample(registry, FAILURES, stage="ocr", error_code="Boom") == 1
    assert sample(registry, DURATION + "_count", stage="ocr") == 1  # failures are timed too


def test_generator_functions_are_refused(registry):
    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        stage_timer("x", registry=registry)(gen)
    with pytest.raises(TypeError, match="generator function"):
        stage_timer("x", registry=registry)(agen)


def test_cpu_false_records_wall_time_only(registry):
    @stage_timer("upload", registry=registry, cpu=False)
    def upload():
        burn_cpu(0.01)

    upload()
    with stage_timer("upload", registry=registry, cpu=False):
        pass
    assert sample(registry, DURATION + "_count", stage="upload") == 2
    assert sample(registry, CPU, stage="upload") is None


# --------------------------------------------------------------------- with blocks


def test_with_block_records_success_and_failure(registry):
    with stage_timer("render", registry=registry):
        burn_cpu(0.01)
    error = Boom()
    with pytest.raises(Boom) as info, stage_timer("render", registry=registry):
        raise error
    assert info.value is error
    assert sample(registry, DURATION + "_count", stage="render") == 2
    assert sample(registry, CPU, stage="render") >= 0.01
    assert sample(registry, FAILURES, stage="render", error_code="Boom") == 1


def test_one_timer_object_nested_keeps_both_runs(registry):
    timer = stage_timer("nested", registry=registry)
    with timer:
        time.sleep(0.02)
        with timer:
            pass
    assert sample(registry, DURATION + "_count", stage="nested") == 2
    assert sample(registry, DURATION + "_sum", stage="nested") >= 0.02


def test_default_registry_is_used_when_none_given():
    from promkit.instrument.registry import default_registry

    @stage_timer("promkit_test_default_stage")
    def work():
        return 1

    before = default_registry().collector_registry.get_sample_value(
        DURATION + "_count", {"stage": "promkit_test_default_stage"}) or 0
    work()
    with stage_timer("promkit_test_default_stage"):
        pass
    after = default_registry().collector_registry.get_sample_value(
        DURATION + "_count", {"stage": "promkit_test_default_stage"})
    assert after == before + 2


# ---------------------------------------------------------------------------- async


async def test_async_decorator_records_and_propagates(registry):
    @stage_timer("tts", registry=registry)
    async def tts(text: str) -> str:
        await asyncio.sleep(0.02)
        return text.upper()

    assert await tts("hi") == "HI"
    error = Boom()

    @stage_timer("tts", registry=registry)
    async def broken():
        await asyncio.sleep(0)
        raise error

    with pytest.raises(Boom) as info:
        await broken()
    assert info.value is error
    assert sample(registry, DURATION + "_count", stage="tts") == 2
    assert sample(registry, DURATION + "_sum", stage="tts") >= 0.02
    assert sample(registry, FAILURES, stage="tts", error_code="Boom") == 1


async def test_async_decorator_counts_cpu_only_while_the_stage_runs(registry):
    @stage_timer("waiting", registry=registry)
    async def waiting():
        burn_cpu(0.01)
        await asyncio.sleep(0.15)
        burn_cpu(0.01)

    async def busy_neighbour():
        await asyncio.sleep(0.01)
        burn_cpu(0.1)  # runs on the loop while `waiting` sleeps

    await asyncio.gather(waiting(), busy_neighbour())
    cpu = sample(registry, CPU, stage="waiting")
    assert 0.02 <= cpu < 0.08, cpu

    # The `async with` form cannot see the steps: it includes the neighbour (documented).
    async def block():
        async with stage_timer("block", registry=registry):
            await asyncio.sleep(0.15)

    await asyncio.gather(block(), busy_neighbour())
    assert sample(registry, CPU, stage="block") >= 0.09


async def test_async_cpu_false_records_wall_time_only(registry):
    @stage_timer("upload", registry=registry, cpu=False)
    async def upload(fail: bool) -> str:
        await asyncio.sleep(0.01)
        if fail:
            raise Boom()
        return "ok"

    assert await upload(False) == "ok"
    with pytest.raises(Boom):
        await upload(True)
    assert sample(registry, DURATION + "_count", stage="upload") == 2
    assert sample(registry, DURATION + "_sum", stage="upload") >= 0.02
    assert sample(registry, FAILURES, stage="upload", error_code="Boom") == 1
    assert sample(registry, CPU, stage="upload") is None


async def test_async_with_records_success_and_failure(registry):
    async with stage_timer("fetch", registry=registry):
        await asyncio.sleep(0.01)
    error = Boom()
    with pytest.raises(Boom) as info:
        async with stage_timer("fetch", registry=registry):
            raise error
    assert info.value is error
    assert sample(registry, DURATION + "_count", stage="fetch") == 2
    assert sample(registry, FAILURES, stage="fetch", error_code="Boom") == 1


async def test_cancellation_propagates_and_is_counted(registry):
    started = asyncio.Event()

    @stage_timer("slow", registry=registry)
    async def slow():
        started.set()
        await asyncio.sleep(10)

    task = asyncio.ensure_future(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sample(registry, FAILURES, stage="slow", error_code="CancelledError") == 1


async def test_async_decorator_passes_results_and_thrown_values_through(registry):
    @stage_timer("inner", registry=registry)
    async def inner():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "handled"  # a stage may swallow a cancellation it was sent
        return "slept"

    task = asyncio.ensure_future(inner())
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task == "handled"
    assert sample(registry, DURATION + "_count", stage="inner") == 1
    assert sample(registry, FAILURES, stage="inner", error_code="CancelledError") is None


# ----------------------------------------------------------------------------- logs


def test_logs_start_completion_and_failure(registry, logs):
    with correlation.bind_correlation_id() as cid:
        with stage_timer("ocr", registry=registry, job_id="job-1"):
            pass
        with pytest.raises(Boom), stage_timer("ocr", registry=registry):
            raise Boom("secret text")
    started, completed, _, failed = logs
    assert started["event"] == "stage started" and started["log_level"] == "debug"
    assert completed["event"] == "stage completed" and completed["log_level"] == "info"
    assert completed["stage"] == "ocr" and completed["job_id"] == "job-1"
    assert completed["correlation_id"] == cid
    assert isinstance(completed["latency_ms"], float) and completed["latency_ms"] >= 0
    assert "cpu_ms" in completed
    assert failed["event"] == "stage failed" and failed["log_level"] == "error"
    assert failed["error_code"] == "Boom" and "job_id" not in failed
    assert "secret text" not in repr(failed)  # exception messages are never logged


def test_job_id_comes_from_structlog_contextvars(registry, logs):
    with structlog.contextvars.bound_contextvars(job_id="job-9"), stage_timer(
        "ocr", registry=registry
    ):
        pass
    assert logs[-1]["job_id"] == "job-9"


def test_log_level_changes_are_honoured(registry, logs):
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with stage_timer("quiet", registry=registry):
        pass
    assert logs == []
    structlog.configure(**saved)
    with stage_timer("quiet", registry=registry):
        pass
    assert [e["event"] for e in logs] == ["stage started", "stage completed"]


def test_a_broken_logger_never_breaks_the_stage(registry):
    saved = structlog.get_config()

    def explode(logger, method_name, event_dict):
        raise RuntimeError("log sink down")

    structlog.configure(processors=[explode])
    try:
        with stage_timer("ocr", registry=registry):
            pass
    finally:
        structlog.configure(**saved)
    assert sample(registry, DURATION + "_count", stage="ocr") == 1
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="stage_log:RuntimeError") >= 1
