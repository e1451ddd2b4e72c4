"""ResourceSampler: figures, counter semantics, error handling, thread/task lifecycle,
and per-process series in multiprocess mode with real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from promkit.exporters import cleanup_dead_processes, multiprocess_exposition
from promkit.instrument.resources import ResourceSampler


def sample(registry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def burn_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_sample_once_records_every_figure(registry, tmp_path):
    sampler = ResourceSampler(registry, disk_paths=("/", str(tmp_path)))
    sampler.sample_once()
    me = psutil.Process()
    rss = sample(registry, "process_memory_usage_bytes")
    assert rss is not None and 0.5 * me.memory_info().rss < rss < 2 * me.memory_info().rss
    assert sample(registry, "process_threads") >= 1
    assert sample(registry, "process_open_file_descriptors") >= 3  # stdin/out/err at least
    cpu = sample(registry, "process_cpu_time_seconds_total")
    times = me.cpu_times()
    assert 0 < cpu <= times.user + times.system
    for path in ("/", str(tmp_path)):
        ratio = sample(registry, "system_filesystem_utilization_ratio", path=path)
        assert ratio is not None and 0.0 <= ratio <= 1.0
    du = psutil.disk_usage(str(tmp_path))
    assert sample(registry, "system_filesystem_utilization_ratio", path=str(tmp_path)) == (
        pytest.approx(du.used / (du.used + du.free), abs=0.01))


def test_cpu_counter_advances_by_the_delta_and_two_samplers_do_not_double_count(registry):
    first, second = ResourceSampler(registry), ResourceSampler(registry)
    first.sample_once()
    before = sample(registry, "process_cpu_time_seconds_total")
    burn_cpu(0.2)
    first.sample_once()
    second.sample_once()
    after = sample(registry, "process_cpu_time_seconds_total")
    times = psutil.Process().cpu_times()
    assert after - before >= 0.15
    assert after <= times.user + times.system  # never more than the process really used


def test_a_vanished_path_is_counted_and_its_series_dropped(registry, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sampler = ResourceSampler(registry, disk_paths=[str(scratch)])
    sampler.sample_once()
    assert sample(registry, "system_filesystem_utilization_ratio", path=str(scratch)) is not None
    shutil.rmtree(scratch)
    sampler.sample_once()  # does not raise
    assert sample(registry, "system_filesystem_utilization_ratio", path=str(scratch)) is None
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="resources_disk:FileNotFoundError") == 1
    assert sample(registry, "process_threads") >= 1  # the other figures still sampled


def test_psutil_failures_are_counted_per_figure_and_never_raised(registry, monkeypatch):
    sampler = ResourceSampler(registry, disk_paths=())

    class Flaky:
        """A psutil.Process whose memory and thread readings fail."""

        def __init__(self) -> None:
            self.real = psutil.Process()

        def oneshot(self):
            return self.real.oneshot()

        def memory_info(self):
            raise psutil.AccessDenied(os.getpid())

        def num_threads(self):
            raise psutil.NoSuchProcess(os.getpid())

        def cpu_times(self):
            return self.real.cpu_times()

        def num_fds(self):
            return self.real.num_fds()

    monkeypatch.setattr(sampler, "_process", Flaky)
    sampler.sample_once()
    sampler.sample_once()
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="resources_memory:AccessDenied") == 2
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="resources_threads:NoSuchProcess") == 2
    assert sample(registry, "process_open_file_descriptors") >= 3
    assert sample(registry, "process_cpu_time_seconds_total") > 0

    def gone():
        raise psutil.NoSuchProcess(12345)

    monkeypatch.setattr(sampler, "_process", gone)
    sampler.sample_once()
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="resources_process:NoSuchProcess") == 1


def test_bad_configuration_is_rejected(registry):
    for interval in (0, -1, float("nan"), float("inf"), "5"):
        with pytest.raises(ValueError, match="interval must be a positive number"):
            ResourceSampler(registry, interval=interval)
    with pytest.raises(ValueError, match="disk_paths"):
        ResourceSampler(registry, disk_paths=[""])
    assert ResourceSampler(registry, disk_paths="/data").disk_paths == ("/data",)


def test_thread_start_stop_is_idempotent_and_bounded(registry):
    sampler = ResourceSampler(registry, interval=60, disk_paths=())
    sampler.start()
    sampler.start()
    assert [t.name for t in threading.enumerate()].count("promkit-resource-sampler") == 1
    assert sampler.running
    deadline = time.monotonic() + 10
    while sample(registry, "process_threads") in (None, 0.0):  # samples at once on start
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    assert sampler.stop() is True  # wakes the 60 s wait at once
    assert time.monotonic() - started < 5
    assert not sampler.running
    assert sampler.stop() is True
    with sampler:  # and it starts again after a stop
        assert sampler.running
    assert not sampler.running


def test_thread_keeps_sampling_every_interval(registry, monkeypatch):
    sampler = ResourceSampler(registry, interval=0.02, disk_paths=())
    taken = []
    real = sampler.sample_once
    monkeypatch.setattr(sampler, "sample_once", lambda: (taken.append(1), real()))
    sampler.start()
    deadline = time.monotonic() + 10
    while len(taken) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sampler.stop()


async def test_async_task_samples_and_measures_event_loop_lag(registry):
    sampler = ResourceSampler(registry, interval=0.05, disk_paths=())
    await sampler.start_async()
    await sampler.start_async()  # no second task
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "promkit-resource-sampler"]
    assert len(tasks) == 1
    deadline = time.monotonic() + 10
    while not sample(registry, "python_event_loop_lag_seconds_count"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert sample(registry, "process_memory_usage_bytes") > 0
    # Block the loop for 0.4 s while the sampler's timer is pending: it wakes up at least
    # 0.35 s late. (The timer is not pending while a sample runs in its thread, so block
    # again until a late wake-up is seen.)
    def slow_wakeups() -> float:
        return sample(registry, "python_event_loop_lag_seconds_count") - sample(
            registry, "python_event_loop_lag_seconds_bucket", le="0.25")

    before = slow_wakeups()
    while slow_wakeups() == before:
        assert time.monotonic() < deadline
        time.sleep(0.4)
        await asyncio.sleep(0.1)
    assert sample(registry, "python_event_loop_lag_seconds_sum") >= 0.3
    await sampler.stop_async()
    assert not sampler.running
    await sampler.stop_async()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "promkit-resource-sampler"]


async def test_async_context_manager(registry):
    async with ResourceSampler(registry, interval=30, disk_paths=()) as sampler:
        assert sampler.running
        deadline = time.monotonic() + 10
        while sample(registry, "process_threads") in (None, 0.0):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    assert not sampler.running


# --------------------------------------------------------------- multiprocess mode

WORKER = textwrap.dedent("""
    import sys
    from prometheus_client import CollectorRegistry
    from promkit.instrument.registry import MetricsRegistry
    from promkit.instrument.resources import ResourceSampler

    registry = MetricsRegistry(CollectorRegistry())
    assert registry.multiprocess
    sampler = ResourceSampler(registry, disk_paths=[sys.argv[1]])
    sampler.sample_once()
    if len(sys.argv) > 2:  # pretend this process saw a fuller disk
        registry.gauge("system_filesystem_utilization_ratio").labels(sys.argv[1]).set(
            float(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()  # run until told to stop
""")


def scrape(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    families = text_string_to_metric_families(multiprocess_exposition(path=str(path)))
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in families:
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def test_multiprocess_each_process_reports_its_own_figures_and_dead_ones_go(tmp_path):
    mp_dir = tmp_path / "mp"
    mp_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}

    def worker(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), *args], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    first, second = worker("0.99"), worker()
    try:
        merged = scrape(mp_dir)
        for name in ("process_memory_usage_bytes", "process_open_file_descriptors",
                     "process_threads"):
            pids = {labels["pid"] for labels, value in merged[name] if value > 0}
            assert pids == {str(first.pid), str(second.pid)}, name
        cpu = merged["process_cpu_time_seconds_total"]
        assert len(cpu) == 1 and "pid" not in cpu[0][0] and cpu[0][1] > 0  # summed
        disk = merged["system_filesystem_utilization_ratio"]
        assert [labels for labels, _ in disk] == [{"path": str(tmp_path)}]
        assert disk[0][1] == 0.99  # the max over live processes

        first.communicate("", timeout=30)  # the first worker exits
        assert cleanup_dead_processes(str(mp_dir)) == [first.pid]
        merged = scrape(mp_dir)
        for name in ("process_memory_usage_bytes", "process_open_file_descriptors",
                     "process_threads"):
            assert {labels["pid"] for labels, _ in merged[name]} == {str(second.pid)}, name
        # Its CPU seconds still count in the total; its disk reading no longer does.
        assert merged["process_cpu_time_seconds_total"][0][1] >= cpu[0][1]
        real = psutil.disk_usage(str(tmp_path))
        assert merged["system_filesystem_utilization_ratio"][0][1] == pytest.approx(
            real.used / (real.used + real.free), abs=0.01)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.communicate("", timeout=30)
