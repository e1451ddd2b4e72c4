"""stage_timer: decorators and context managers, CPU time, failures, error codes, logs."""

import asyncio
import inspect
import logging
import math
import os
import threading
import time

import pytest
import structlog
from structlog.testing import LogCapture

from promkit.instrument import correlation
from promkit.instrument.stages import (
    error_code_for,
    get_error_code_mapper,
    set_error_code_mapper,
    stage_timer,
)

DURATION = "job_stage_duration_seconds"
CPU = "job_stage_cpu_seconds_total"
FAILURES = "job_stage_failures_total"


class Boom(Exception):
    pass


def sample(registry, name, **labels):
    return registry.collector_registry.get_sample_value(name, labels)


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


@pytest.fixture(autouse=True)
def _restore_mapper():
    previous = get_error_code_mapper()
    yield
    set_error_code_mapper(previous)


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


class FakeClocks:
    """Stand-ins for the wall clock and the thread CPU clock of the stage timers."""

    def __init__(self):
        self.wall, self.cpu, self.cpu_reads = 100.0, 5.0, 0

    def perf_counter(self):
        return self.wall

    def thread_time(self):
        self.cpu_reads += 1
        return self.cpu

    def run(self, seconds, on_cpu=True):
        self.wall += seconds
        if on_cpu:
            self.cpu += seconds


@pytest.fixture
def clocks(monkeypatch):
    from promkit.instrument import _cpu_clock, _stage_runs, _stage_steps, stages

    fake = FakeClocks()
    for module in (stages, _stage_runs, _stage_steps):  # every module that reads perf_counter
        monkeypatch.setattr(module, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(_cpu_clock, "thread_time", fake.thread_time)
    monkeypatch.setattr(_cpu_clock.cpu_reading, "last", (-math.inf, 0.0))
    return fake


def test_a_stage_right_after_another_starts_from_its_cpu_reading(registry, clocks):
    @stage_timer("ocr", registry=registry)
    def ocr(cpu_seconds, sleep_seconds=0.0):
        clocks.run(cpu_seconds)
        clocks.run(sleep_seconds, on_cpu=False)

    ocr(0.002, 0.001)
    assert clocks.cpu_reads == 2
    clocks.run(5e-6)  # the caller runs for 5 us, then the next stage starts: no reading
    ocr(0.003)
    assert clocks.cpu_reads == 3
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.005, abs=1e-12)
    clocks.run(20e-6)  # 20 us later: beyond the window, read again
    ocr(0.001)
    assert clocks.cpu_reads == 5
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006, abs=1e-12)
    # Preempted for the 8 us in between: that stage's CPU comes out short by them, never
    # over, never below zero.
    clocks.run(8e-6, on_cpu=False)
    ocr(0.000010)
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006002, abs=1e-12)
    clocks.run(8e-6, on_cpu=False)
    ocr(0.000001)
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006002, abs=1e-12)
    assert sample(registry, DURATION + "_count", stage="ocr") == 5

    @stage_timer("ocr", registry=registry)
    def failing():
        clocks.run(0.002)
        raise Boom()

    reads = clocks.cpu_reads
    with pytest.raises(Boom):
        failing()  # right after the last stage: a failure is timed the same way
    assert clocks.cpu_reads == reads + 1
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.008002, abs=1e-12)


async def test_async_stages_and_with_blocks_chain_their_readings_too(registry, clocks):
    @stage_timer("fetch", registry=registry)
    async def fetch():
        clocks.run(0.001)
        await asyncio.sleep(0)  # a second step
        clocks.run(0.002)

    await fetch()
    with stage_timer("parse", registry=registry):
        clocks.run(0.004)
    async with stage_timer("store", registry=registry):
        clocks.run(0.008)
    # fetch: two readings around its first step and one at the end of its second (which
    # starts from the reading before it, the loop's own time being not counted); parse
    # and store: one each.
    assert clocks.cpu_reads == 5
    assert sample(registry, CPU, stage="fetch") == pytest.approx(0.003, abs=1e-12)
    assert sample(registry, CPU, stage="parse") == pytest.approx(0.004, abs=1e-12)
    assert sample(registry, CPU, stage="store") == pytest.approx(0.008, abs=1e-12)


def test_cpu_readings_are_not_shared_between_threads(registry, clocks):
    @stage_timer("ocr", registry=registry)
    def ocr():
        clocks.run(0.001)

    ocr()
    assert clocks.cpu_reads == 2
    thread = threading.Thread(target=ocr)  # same instant, other thread: its own readings
    thread.start()
    thread.join()
    assert clocks.cpu_reads == 4


def test_a_forked_child_forgets_the_parents_cpu_reading():
    from promkit.instrument._cpu_clock import cpu_reading

    with stage_timer("parent"):
        pass
    assert cpu_reading.last[0] > 0
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether the reading was forgotten
        os._exit(0 if cpu_reading.last[0] == -math.inf else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_cpu_of_back_to_back_stages_stays_within_their_wall_time(registry):
    @stage_timer("tiny", registry=registry)
    def tiny():
        pass

    for _ in range(2000):
        tiny()
    cpu = sample(registry, CPU, stage="tiny")
    assert 0 <= cpu <= sample(registry, DURATION + "_sum", stage="tiny")


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


# ----------------------------------------------------------------------- error codes


def test_error_code_default_global_and_per_timer(registry):
    class RateLimited(Exception):
        pass

    def fail(exc, **options):
        @stage_timer("llm", registry=registry, **options)
        def call():
            raise exc

        with pytest.raises(type(exc)):
            call()

    fail(RateLimited())
    assert sample(registry, FAILURES, stage="llm", error_code="RateLimited") == 1

    set_error_code_mapper(lambda exc: "429" if isinstance(exc, RateLimited) else None)
    fail(RateLimited())
    fail(Boom())  # None from the mapper means the default
    assert sample(registry, FAILURES, stage="llm", error_code="429") == 1
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 1

    fail(RateLimited(), error_code=lambda exc: "rate_limited")  # per-timer beats global
    assert sample(registry, FAILURES, stage="llm", error_code="rate_limited") == 1


def test_failing_mapper_falls_back_to_class_name_and_is_counted(registry):
    def broken(exc):
        raise RuntimeError("mapper bug")

    with pytest.raises(Boom), stage_timer("llm", registry=registry, error_code=broken):
        raise Boom()
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 1
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="error_code_mapper:RuntimeError") == 1

    with pytest.raises(Boom), stage_timer("llm", registry=registry, error_code=lambda e: 42):
        raise Boom()
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 2
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="error_code_mapper:TypeError") == 1


def test_error_code_for_helper():
    assert error_code_for(KeyError("x")) == "KeyError"
    assert error_code_for(KeyError("x"), lambda e: "missing") == "missing"
    assert error_code_for(KeyError("x"), lambda e: "") == "KeyError"


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
