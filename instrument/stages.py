"""Stage timers: wall time, CPU time and failures of the stages of a job.

``@stage_timer("ocr")`` decorates a sync or async function;
``with stage_timer("ocr"):`` and ``async with stage_timer("ocr"):`` time a
block. Each run records

* ``job_stage_duration_seconds{stage}`` -- wall time (successes and failures);
* ``job_stage_cpu_seconds_total{stage}`` -- CPU time from the thread's CPU
  clock (:func:`time.thread_time`, read at most once per 10 us of a thread's
  wall time, a boundary near a reading derived from it: within 10 us of the
  true value, see :mod:`promkit.instrument._cpu_clock`);
* ``job_stage_failures_total{stage, error_code}`` -- when an exception escapes,
  which is then re-raised unchanged (the same object, its traceback intact).

The error code comes from a mapping hook: the per-timer ``error_code=``
callable, else the global one set with :func:`set_error_code_mapper`, else the
exception's class name (see :mod:`promkit.instrument._error_codes`).

CPU time of async stages: the decorator reads the thread CPU clock only while
the stage's coroutine is actually running (around each step of it, see
:mod:`promkit.instrument._stage_steps`), so time
the event loop spends on other tasks while the stage awaits is not counted.
The ``async with`` form cannot see the steps of the block, so it reports the
thread's CPU time over the whole block -- including whatever else the event
loop ran meanwhile.

Logs go to the ``promkit.worker`` logger (through structlog when it is
configured, else stdlib records, else nowhere: see
:mod:`promkit.instrument._worker_log`): ``stage started``
at DEBUG, ``stage completed`` at INFO (``stage``, ``latency_ms``, ``cpu_ms``,
``job_id`` when known; ``correlation_id`` is added from the contextvar by the
logging configuration), ``stage failed`` at ERROR (WARNING for cancellation
and other non-``Exception`` exits) with ``error_code``. Exception messages are
never logged: they may carry user data.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from types import CoroutineType as _CoroutineType
from types import TracebackType
from typing import Any, TypeVar

from promkit.instrument._cpu_clock import cpu_at
from promkit.instrument._error_codes import (
    ErrorCodeMapper,
    error_code_for,
    get_error_code_mapper,
    set_error_code_mapper,
)
from promkit.instrument._stage_runs import Stage, failed, resolve, started, succeeded
from promkit.instrument._stage_steps import later_steps, stage_steps
from promkit.instrument._worker_log import LOGGER_NAME as LOGGER_NAME
from promkit.instrument._worker_log import worker_log as worker_log
from promkit.instrument.registry import MetricsRegistry

__all__ = [
    "ErrorCodeMapper",
    "StageTimer",
    "error_code_for",
    "get_error_code_mapper",
    "set_error_code_mapper",
    "stage_timer",
]

F = TypeVar("F", bound=Callable[..., Any])

_DEBUG = logging.DEBUG


class StageTimer:
    """Time a stage: decorator (sync or async), ``with`` or ``async with``.

    ``stage`` is a bounded name (it becomes the ``stage`` label). ``registry``
    defaults to the process-wide one. ``error_code`` maps an escaping
    exception to its error code (see :func:`set_error_code_mapper`).
    ``job_id`` is added to the log lines; inside
    :meth:`promkit.instrument.jobs.JobTracker.run` it is already bound for logs.
    ``cpu=False`` skips the thread CPU clock (a system call per read, 0.1-1 us
    depending on kernel and virtualisation) and ``job_stage_cpu_seconds_total``.

    A decorated function resolves its label children on the first call and
    reuses them. A timer *object* used with ``with`` times one block at a
    time; write ``with stage_timer("x"):`` at the point of use (or decorate a
    function) rather than sharing one object between threads or tasks.
    """

    __slots__ = ("_cpu", "_error_code", "_outer", "_registry", "_resolved", "_run", "job_id",
                 "stage")

    def __init__(self, stage: str, *, registry: MetricsRegistry | None = None,
                 error_code: ErrorCodeMapper | None = None, job_id: Any = None,
                 cpu: bool = True) -> None:
        self.stage = stage if type(stage) is str else str(stage)
        self._registry = registry
        self._error_code = error_code
        self.job_id = job_id
        self._cpu = cpu
        self._resolved: Stage | None = None  # the label children, once resolved
        self._run: tuple[Stage, float, float | None] | None = None  # a with-block's run
        self._outer: list[tuple[Stage, float, float | None]] | None = None

    def _open(self) -> tuple[Stage, float, float | None]:
        """Start a run: ``(stage, wall start, CPU start or None)``.

        Resolves the label children (once per timer object), logs ``stage
        started`` unless DEBUG is known to be off, and reads the clocks. The
        prologue of the ``with`` forms; the decorators inline the same steps.
        """
        stage = self._resolved or self._resolve()
        # DEBUG known off: no call (-3.6k instructions per sync stage at INFO, -2.2k nothing
        # configured, vs calling started() always: benchmarks.instructions --driver stages).
        if worker_log.levels.get(_DEBUG) is not False:
            started(stage, self.job_id)
        t0 = perf_counter()
        return stage, t0, cpu_at(t0) if self._cpu else None

    def _resolve(self) -> Stage:
        """Resolve the label children of this timer object (its first run)."""
        stage = self._resolved = resolve(self._registry, self.stage)
        return stage

    # -- decorator ----------------------------------------------------------------

    def __call__(self, func: F) -> F:
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError(
                f"stage_timer cannot time generator function {func.__qualname__!r}: the body "
                "runs as it is iterated, not when called; time a block inside it with "
                "`with stage_timer(...)` instead"
            )
        mapper, job_id, cpu = self._error_code, self.job_id, self._cpu
        # The decorated function's own timer: this one's settings now, its children cached.
        timer = StageTimer(self.stage, registry=self._registry, error_code=mapper,
                           job_id=job_id, cpu=cpu)

        if not inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            def sync_stage(*args: Any, **kwargs: Any) -> Any:
                # _open inlined: -0.7k instructions per empty sync stage, at INFO and with
                # nothing configured (benchmarks.instructions --driver stages).
                stage = timer._resolved or timer._resolve()
                if worker_log.levels.get(_DEBUG) is not False:
                    started(stage, job_id)
                t0 = perf_counter()
                c0 = cpu_at(t0) if cpu else None
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    failed(stage, t0, c0, exc, mapper, job_id)
                    raise
                succeeded(stage, t0, c0, job_id)
                return result

            return sync_stage  # type: ignore[return-value]

        @functools.wraps(func)
        async def async_stage(*args: Any, **kwargs: Any) -> Any:
            # The first step runs here, between the clock readings below and in
            # succeeded/failed; a stage that suspends is driven on by later_steps,
            # which counts only its own steps' CPU. _open inlined: -0.7k instructions
            # per empty async stage (-0.85k at INFO: benchmarks.instructions --driver
            # stages), -120 ns at INFO (timed A/B in one process).
            stage = timer._resolved or timer._resolve()
            if worker_log.levels.get(_DEBUG) is not False:
                started(stage, job_id)
            t0 = perf_counter()
            c0 = cpu_at(t0) if cpu else None
            result: list[Any] = []  # the stage's result, once it returns
            try:
                awaitable = func(*args, **kwargs)
                steps = stage_steps(awaitable if type(awaitable) is _CoroutineType
                                    else awaitable.__await__(), result)
                yielded = next(steps, None)  # the first step
            except BaseException as exc:
                failed(stage, t0, c0, exc, mapper, job_id)
                raise
            if not result:  # suspended
                cpu_start = [c0]
                try:
                    await later_steps(steps, yielded, cpu_start)
                except BaseException as exc:
                    failed(stage, t0, cpu_start[0], exc, mapper, job_id)
                    raise
                c0 = cpu_start[0]
            succeeded(stage, t0, c0, job_id)
            return result[0]

        return async_stage  # type: ignore[return-value]

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> StageTimer:
        run = self._open()
        if self._run is not None:  # the same object re-entered (nested): keep the outer run
            if self._outer is None:
                self._outer = []
            self._outer.append(self._run)
        self._run = run
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        run = self._run
        if run is None:  # __exit__ without __enter__: nothing to record
            return
        self._run = self._outer.pop() if self._outer else None
        stage, t0, c0 = run
        if exc is None:
            succeeded(stage, t0, c0, self.job_id)
        else:
            failed(stage, t0, c0, exc, self._error_code, self.job_id)

    async def __aenter__(self) -> StageTimer:
        return self.__enter__()

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(typ, exc, tb)

    def __repr__(self) -> str:
        return f"<StageTimer {self.stage!r}>"


stage_timer = StageTimer
"""``stage_timer(stage, *, registry=None, error_code=None, job_id=None, cpu=True)``.

See :class:`StageTimer`."""
