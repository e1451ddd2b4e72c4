"""A background sampler of the process's resources and the event loop's lag.

:class:`ResourceSampler` updates, every ``interval`` seconds,

- ``process_memory_usage_bytes`` (resident set size),
- ``process_cpu_time_seconds_total`` (user + system CPU of the process; a
  counter, advanced by what the process used since it was last advanced),
- ``process_open_file_descriptors`` and ``process_threads``,
- ``system_filesystem_utilization_ratio{path}`` for each configured path
  (used / (used + available to unprivileged users), as ``df`` shows it),

from a daemon thread (:meth:`~ResourceSampler.start`/:meth:`~ResourceSampler.stop`)
or from an asyncio task (:meth:`~ResourceSampler.start_async`/
:meth:`~ResourceSampler.stop_async`). The task also measures event-loop lag:
it sleeps ``interval`` seconds and observes how late it woke up in
``python_event_loop_lag_seconds``. Sampling runs in a worker thread even in the
task, so a slow filesystem never blocks the loop.

Sampling errors (psutil raising, a configured path that vanished) are counted
in ``promkit_instrumentation_errors_total{cause="resources_<what>:<Error>"}``
and never raised; each figure is sampled on its own, so one failing figure
does not stop the others.

In multiprocess mode every process runs its own sampler. The process gauges
use ``multiprocess_mode="liveall"``: the merged scrape shows one series per
live process, labelled ``pid``, and a dead process's series disappear when its
live-gauge files are removed (``promkit.exporters.cleanup_dead_processes``, which every
multiprocess scrape runs, or ``promkit.exporters.mark_process_dead``). The CPU counter
and the lag histogram are summed over all processes, dead ones included.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Iterable
from types import TracebackType

import psutil

from promkit.instrument._log_output import library_logger
from promkit.instrument.metrics import Counter, Gauge, Histogram
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = ["ResourceSampler"]

logger = library_logger("promkit.resources")  # the app's logging, or nothing

_RSS = "process_memory_usage_bytes"
_CPU = "process_cpu_time_seconds_total"
_FDS = "process_open_file_descriptors"
_THREADS = "process_threads"
_DISK = "system_filesystem_utilization_ratio"
_LAG = "python_event_loop_lag_seconds"

# Two samplers on one registry must not both add the same CPU seconds: the
# counter itself is the baseline, read and advanced under this lock.
_cpu_lock = threading.Lock()


class ResourceSampler:
    """Samples process resources every ``interval`` seconds into ``registry``.

    Use :meth:`start`/:meth:`stop` (a daemon thread) or
    :meth:`start_async`/:meth:`stop_async` (an asyncio task that also measures
    event-loop lag), or call :meth:`sample_once` yourself. Starting a running
    sampler or stopping a stopped one does nothing. It is also a context
    manager (``with`` → thread, ``async with`` → task).
    """

    def __init__(self, registry: MetricsRegistry | None = None, interval: float = 5.0,
                 disk_paths: Iterable[str] | str = ("/",), *, stop_timeout: float = 5.0) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
                math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        if not (math.isfinite(stop_timeout) and stop_timeout > 0):
            raise ValueError(f"stop_timeout must be a positive number of seconds, not "
                             f"{stop_timeout!r}")
        paths = (disk_paths,) if isinstance(disk_paths, str) else tuple(disk_paths)
        for path in paths:
            if not isinstance(path, str) or not path:
                raise ValueError(f"disk_paths must be non-empty path strings, not {path!r}")
        self.registry = registry if registry is not None else default_registry()
        self.interval = float(interval)
        self.disk_paths = paths
        self.stop_timeout = float(stop_timeout)
        self._rss: Gauge = self.registry.gauge(_RSS)
        self._cpu: Counter = self.registry.counter(_CPU)
        self._fds: Gauge = self.registry.gauge(_FDS)
        self._threads: Gauge = self.registry.gauge(_THREADS)
        self._disk: Gauge = self.registry.gauge(_DISK)
        self._lag: Histogram = self.registry.histogram(_LAG)
        self._proc: psutil.Process | None = None
        self._proc_pid = -1
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._task: asyncio.Task[None] | None = None

    # -- sampling -------------------------------------------------------------------

    def _process(self) -> psutil.Process:
        # psutil.Process() is bound to a pid: after a fork the child needs its own.
        pid = os.getpid()
        if self._proc is None or self._proc_pid != pid:
            self._proc = psutil.Process(pid)
            self._proc_pid = pid
        return self._proc

    def _fail(self, what: str, exc: BaseException) -> None:
        self.registry.failures.failure(f"resources_{what}", exc)

    def sample_once(self) -> None:
        """Take one sample of every figure now; never raises."""
        try:
            proc = self._process()
        except Exception as exc:
            self._fail("process", exc)
        else:
            try:
                with proc.oneshot():
                    self._sample_process(proc)
            except Exception as exc:  # oneshot itself failed
                self._fail("process", exc)
        for path in self.disk_paths:
            self._sample_disk(path)

    def _sample_process(self, proc: psutil.Process) -> None:
        try:
            self._rss.set(proc.memory_info().rss)
        except Exception as exc:
            self._fail("memory", exc)
        try:
            times = proc.cpu_times()
            self._advance_cpu(times.user + times.system)
        except Exception as exc:
            self._fail("cpu", exc)
        try:
            num_fds = getattr(proc, "num_fds", None) or getattr(proc, "num_handles", None)
            if num_fds is None:
                raise NotImplementedError("psutil reports no descriptor count on this platform")
            self._fds.set(num_fds())
        except Exception as exc:
            self._fail("fds", exc)
        try:
            self._threads.set(proc.num_threads())
        except Exception as exc:
            self._fail("threads", exc)

    def _advance_cpu(self, cpu_seconds: float) -> None:
        # The counter holds this process's CPU seconds; add what it lacks. It
        # never goes down: a smaller reading (a forked child inheriting its
        # parent's in-memory value) waits until the process catches up.
        with _cpu_lock:
            child = self._cpu.labels()
            delta = cpu_seconds - child.get()
            if delta > 0:
                child.inc(delta)

    def _sample_disk(self, path: str) -> None:
        try:
            usage = psutil.disk_usage(path)
            capacity = usage.used + usage.free
            self._disk.labels(path).set(usage.used / capacity if capacity > 0 else 0.0)
        except Exception as exc:
            self._fail("disk", exc)
            # Don't leave the last value of a path we can no longer read: an
            # alert on it would go on firing (or stay quiet) on stale data.
            self._disk.remove(path)

    def observe_lag(self, seconds: float) -> None:
        """Record one event-loop lag measurement (negative values count as 0)."""
        self._lag.observe(max(0.0, seconds))

    # -- thread ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the thread or the task is running."""
        thread_alive = self._thread is not None and self._thread.is_alive()
        return thread_alive or (self._task is not None and not self._task.done())

    def start(self) -> None:
        """Sample now and then every ``interval`` seconds in a daemon thread."""
        with self._lock:
            if (self._thread is not None and self._thread.is_alive()
                    and not self._stop_event.is_set()):
                return  # already running (a thread still finishing after stop() is replaced)
            self._stop_event = threading.Event()
            self._thread = threading.Thread(target=self._run_thread, args=(self._stop_event,),
                                            name="promkit-resource-sampler", daemon=True)
            self._thread.start()

    def _run_thread(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # pragma: no cover - sample_once catches everything
                self._fail("thread", exc)
            stop.wait(self.interval)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the thread and wait for it, at most ``timeout`` (default ``stop_timeout``)
        seconds; returns False if it is still busy in a sample (it is a daemon thread, so
        it never blocks interpreter exit)."""
        with self._lock:
            thread = self._thread
            self._stop_event.set()
            if thread is None:
                return True
            thread.join(self.stop_timeout if timeout is None else timeout)
            if thread.is_alive():
                try:
                    logger.warning("resource sampler thread did not stop in time",
                                   timeout_seconds=self.stop_timeout if timeout is None
                                   else timeout)
                except Exception as exc:
                    self._fail("log", exc)
                return False
            self._thread = None
            return True

    def __enter__(self) -> ResourceSampler:
        self.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- asyncio ----------------------------------------------------------------------

    async def start_async(self) -> None:
        """Start the sampling task on the running loop (it also measures loop lag)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run_async(), name="promkit-resource-sampler")

    async def _run_async(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.to_thread(self.sample_once)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the default executor is shut down
                self._fail("task", exc)
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.observe_lag(loop.time() - started - self.interval)

    async def stop_async(self) -> None:
        """Cancel the task and wait for it to end (at most ``stop_timeout`` seconds)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
        if not done:
            try:
                logger.warning("resource sampler task did not stop in time",
                               timeout_seconds=self.stop_timeout)
            except Exception as exc:
                self._fail("log", exc)

    async def __aenter__(self) -> ResourceSampler:
        await self.start_async()
        return self

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop_async()
