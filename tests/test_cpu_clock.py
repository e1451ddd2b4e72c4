"""The chained thread CPU clock (instrument/_cpu_clock.py), seen through stage timers."""

import asyncio
import math
import os
import threading

import pytest
from _stage_helpers import CPU, DURATION, Boom, sample  # tests/ is on sys.path

from promkit.instrument import _cpu_clock
from promkit.instrument.stages import stage_timer


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


def test_stage_boundaries_near_a_cpu_reading_are_derived_from_it(registry, clocks):
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
    # Preempted for the 8 us before a stage: that stage's CPU comes out short by them.
    clocks.run(8e-6, on_cpu=False)
    ocr(0.000010)
    assert clocks.cpu_reads == 6  # its end, 18 us after the last reading, is read
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006002, abs=1e-12)
    # A stage that starts and ends within 10 us of the last reading reads no clock:
    # its CPU is its wall time (here exact; had the thread paused in it, over by that).
    clocks.run(3e-6)
    ocr(0.000004)
    assert clocks.cpu_reads == 6
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006006, abs=1e-12)
    # Preempted for 7 us just before a 1 us stage: both its ends derive from the same
    # reading, so the pause outside the stage is not counted (1 us each).
    clocks.run(20e-6)
    ocr(0.000001)
    clocks.run(7e-6, on_cpu=False)
    ocr(0.000001)
    assert clocks.cpu_reads == 7
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006008, abs=1e-12)
    # Preempted inside a stage that ends within the window: counted as CPU, at most
    # its wall time (3 us here: 1 us on CPU, 2 us preempted).
    clocks.run(20e-6)
    ocr(0.000001)
    reads = clocks.cpu_reads

    @stage_timer("ocr", registry=registry)
    def paused():
        clocks.run(1e-6)
        clocks.run(2e-6, on_cpu=False)

    paused()
    assert clocks.cpu_reads == reads
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.006012, abs=1e-12)
    assert sample(registry, DURATION + "_count", stage="ocr") == 9

    @stage_timer("ocr", registry=registry)
    def failing():
        clocks.run(0.002)
        raise Boom()

    reads = clocks.cpu_reads
    with pytest.raises(Boom):
        failing()  # right after the last stage: a failure is timed the same way
    assert clocks.cpu_reads == reads + 1
    # Its start derives from the reading 4 us before, across the 2 us paused: short by them.
    assert sample(registry, CPU, stage="ocr") == pytest.approx(0.008010, abs=1e-12)


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


def test_cpu_at_reads_the_clock_at_most_once_per_window(clocks):
    assert _cpu_clock.cpu_at(clocks.wall) == 5.0 and clocks.cpu_reads == 1
    clocks.run(4e-6)
    assert _cpu_clock.cpu_at(clocks.wall) == pytest.approx(5.000004, abs=1e-12)
    clocks.run(7e-6)  # 11 us after the reading: read again
    assert _cpu_clock.cpu_at(clocks.wall) == pytest.approx(5.000011, abs=1e-12)
    assert clocks.cpu_reads == 2
