"""Stage timers: wall time, CPU time and failures of the stages of a job.

``@stage_timer("ocr")`` decorates a sync or async function;
``with stage_timer("ocr"):`` and ``async with stage_timer("ocr"):`` time a
block. Each run records

* ``job_stage_duration_seconds{stage}`` -- wall time (successes and failures);
* ``job_stage_cpu_seconds_total{stage}`` -- CPU time from the thread's CPU
  clock (:func:`time.thread_time`; a stage starting within 10 us of another's
  end takes that reading as its start, see :class:`_LastCpuReading`);
* ``job_stage_failures_total{stage, error_code}`` -- when an exception escapes,
  which is then re-raised unchanged (the same object, its traceback intact).

The error code comes from a mapping hook: the per-timer ``error_code=``
callable, else the global one set with :func:`set_error_code_mapper`, else the
exception's class name. A mapper that raises (or returns something that is not
a non-empty string) falls back to the class name, and the failure is counted
in ``promkit_instrumentation_errors_total``; returning ``None`` means "use the
default".

CPU time of async stages: the decorator reads the thread CPU clock only while
the stage's coroutine is actually running (around each step of it), so time
the event loop spends on other tasks while the stage awaits is not counted.
The ``async with`` form cannot see the steps of the block, so it reports the
thread's CPU time over the whole block -- including whatever else the event
loop ran meanwhile.

Logs go to the ``promkit.worker`` logger (through structlog when it is
configured, else stdlib records, else nowhere: see
``promkit.instrument.logs.log_output``): ``stage started``
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
import math
import os
import threading
import types
import weakref
from collections.abc import Callable, Generator
from time import perf_counter, thread_time
from types import CoroutineType as _CoroutineType
from types import TracebackType
from typing import Any, TypeVar

import structlog

from promkit.instrument._compat import STRUCTLOG_CONFIG, structlog_stdlib_logger
from promkit.instrument._compat import logger_level_cache as level_cache
from promkit.instrument._json_line import round_ms
from promkit.instrument._log_output import (
    OUTPUT_NONE,
    OUTPUT_STDLIB,
    OUTPUT_STRUCTLOG,
    log_output,
    on_log_output_change,
    stdlib_event,
)
from promkit.instrument._metrics import NULL_CHILD, paired_recorder
from promkit.instrument._safety import FailureSink
from promkit.instrument._stage_line import STAGE_COMPLETED_EVENT, StageLineWriter
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = [
    "ErrorCodeMapper",
    "StageTimer",
    "error_code_for",
    "get_error_code_mapper",
    "set_error_code_mapper",
    "stage_timer",
]

F = TypeVar("F", bound=Callable[..., Any])

ErrorCodeMapper = Callable[[BaseException], str | None]
"""Maps an exception to an error code (a bounded label value); None means "the default"."""

LOGGER_NAME = "promkit.worker"

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING
_ERROR = logging.ERROR


# ----------------------------------------------------------------------- error codes

_global_mapper: ErrorCodeMapper | None = None


def set_error_code_mapper(mapper: ErrorCodeMapper | None) -> ErrorCodeMapper | None:
    """Set the process-wide exception → error code mapping; returns the previous one.

    ``None`` restores the default (the exception's class name). Per-timer
    ``error_code=`` callables take precedence over this one.
    """
    global _global_mapper
    previous = _global_mapper
    _global_mapper = mapper
    return previous


def get_error_code_mapper() -> ErrorCodeMapper | None:
    """The process-wide error code mapping, or None for the default."""
    return _global_mapper


def error_code_for(exc: BaseException, mapper: ErrorCodeMapper | None = None,
                   sink: FailureSink | None = None) -> str:
    """The error code of ``exc``: ``mapper``, else the global mapper, else the class name.

    Never raises: a failing mapper (or one returning a non-string or empty
    value) falls back to the class name and, when ``sink`` is given, is
    counted there as an instrumentation failure.
    """
    fn = mapper if mapper is not None else _global_mapper
    if fn is not None:
        try:
            code = fn(exc)
            if type(code) is str and code:
                return code
            if code is not None:
                raise TypeError(
                    f"error code mapper returned {type(code).__name__} {code!r}; "
                    "expected a non-empty str (or None for the default)"
                )
        except Exception as failure:
            if sink is not None:
                sink.failure("error_code_mapper", failure)
    return type(exc).__name__


# --------------------------------------------------------------------------- logging


class _StdlibEvents:
    """``debug``/``info``/...(event, **fields) as stdlib records (no structlog configured)."""

    __slots__ = ("_stdlib",)

    def __init__(self, stdlib: logging.Logger) -> None:
        self._stdlib = stdlib

    def debug(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        stdlib_event(self._stdlib, logging.ERROR, event, fields)


_ALL_OFF: dict[int, bool] = {
    logging.DEBUG: False, logging.INFO: False, logging.WARNING: False, logging.ERROR: False,
    logging.CRITICAL: False,
}


class _WorkerLog:
    """A cached bound logger for the stage lines, rebuilt when logging's set-up changes.

    Where the lines go follows :func:`promkit.instrument.logs.log_output`:
    nowhere when the application configured no logging (``enabled`` returns
    None and ``levels`` says every level is off, so the timers skip the log
    work; re-checked at most once a second), stdlib records on
    ``promkit.worker`` when only stdlib logging is configured, else structlog.

    ``structlog.get_logger()`` returns a lazy proxy that assembles a bound
    logger on every call unless ``cache_logger_on_first_use`` is set (several
    microseconds -- more than the rest of a stage timer). We keep the
    assembled logger and rebuild it when the structlog configuration objects
    change identity (``structlog.configure`` replaces them), so a later
    configuration is still honoured. The level check runs before any event
    dict is built. ``levels`` is the stdlib logger's own level cache (which
    logging clears in place on every level change); the timers read it to
    skip the ``stage started`` call when DEBUG is known to be off.
    """

    __slots__ = ("_check", "_conf", "_context_class", "_factory", "_logger", "_mode", "_name",
                 "_processors", "_wrapper", "levels")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None
        self._check: Callable[[int], bool] | None = None
        self._mode = OUTPUT_NONE
        self.levels: dict[int, bool] = _ALL_OFF
        self._processors: Any = None
        self._wrapper: Any = None
        self._factory: Any = None
        self._context_class: Any = None
        # structlog's live configuration (a private read, or get_config(): see _compat).
        self._conf: Any = STRUCTLOG_CONFIG

    def enabled(self, level: int) -> Any:
        """The bound logger when ``level`` is enabled for it, else None."""
        mode = log_output()
        if mode != self._mode:
            self._switch(mode)
        if mode == OUTPUT_NONE:
            return None
        if mode == OUTPUT_STRUCTLOG:
            conf = self._conf
            if (
                self._processors is not conf.default_processors
                or self._wrapper is not conf.default_wrapper_class
                or self._factory is not conf.logger_factory
                or self._context_class is not conf.default_context_class
                or self._logger is None
            ):
                self._rebuild()
        # The stdlib logger's own level cache (cleared in place by logging on any
        # level change) answers most calls without the three-deep is_enabled_for.
        enabled = self.levels.get(level)
        if enabled is None:
            check = self._check
            enabled = check is None or check(level)
        return self._logger if enabled else None

    def forget(self) -> None:
        """Logging's set-up changed: ask again on the next stage (levels unknown)."""
        self._mode = -1
        self.levels = {}

    def _switch(self, mode: int) -> None:
        self._mode = mode
        self._processors = None
        if mode == OUTPUT_NONE:
            self._logger, self._check, self.levels = None, None, _ALL_OFF
        elif mode == OUTPUT_STDLIB:
            stdlib = logging.getLogger(self._name)
            self._logger = _StdlibEvents(stdlib)
            self._check = stdlib.isEnabledFor
            self.levels = level_cache(stdlib)
        else:
            self._logger, self._check, self.levels = None, None, {}

    def _rebuild(self) -> None:
        conf = self._conf
        self._processors = conf.default_processors
        self._wrapper = conf.default_wrapper_class
        self._factory = conf.logger_factory
        self._context_class = conf.default_context_class
        logger = structlog.get_logger(self._name).bind()
        check = getattr(logger, "is_enabled_for", None)
        self._check = check if callable(check) else None
        stdlib = structlog_stdlib_logger(logger)
        # (A logger disabled outright still drops the event itself, in logging.)
        self.levels = (level_cache(stdlib) if stdlib is not None
                       and self._check is not None else {})
        self._logger = logger


worker_log = _WorkerLog(LOGGER_NAME)
on_log_output_change(worker_log.forget)
stage_lines = StageLineWriter(LOGGER_NAME)


# ------------------------------------------------------------------ resolved stages


class _NullFailures:
    def labels(self, *values: Any) -> Any:
        return NULL_CHILD


class _Stage:
    """The label children of one stage name in one registry, resolved once."""

    __slots__ = ("_registry", "duration", "failures", "name", "record", "sink")

    def __init__(self, registry: MetricsRegistry | None, name: str) -> None:
        self.name = name
        self._registry = registry
        if registry is None:  # resolution failed: record nothing, never raise
            self.sink = FailureSink()
            self.duration: Any = NULL_CHILD
            self.record: Callable[[float, float], None] | None = _record_nothing
            self.failures: Any = _NullFailures()
            return
        self.sink = registry.failures
        self.duration = registry.histogram("job_stage_duration_seconds").labels(name)
        self.failures = registry.counter("job_stage_failures_total")
        # Resolved on the first CPU reading, so stages timed with cpu=False get no series.
        self.record = None

    def recorder(self) -> Callable[[float, float], None]:
        """``record(wall, cpu)``: the duration and the CPU seconds of one run, in one call."""
        record = self.record
        if record is None:
            try:
                assert self._registry is not None
                cpu = self._registry.counter("job_stage_cpu_seconds_total").labels(self.name)
                record = paired_recorder(self.duration, cpu)
            except Exception as exc:
                self.sink.failure("stage_timer", exc, f"stage {self.name!r}")
                record = paired_recorder(self.duration, NULL_CHILD)
            self.record = record
        return record


def _record_nothing(wall: float, cpu: float) -> None:
    pass


_default_stages: dict[str, _Stage] = {}
_registry_stages: dict[int, tuple[weakref.ref[MetricsRegistry], dict[str, _Stage]]] = {}
_resolve_lock = threading.Lock()


def _forget_registry(key: int, dead: weakref.ref[MetricsRegistry]) -> None:
    # Only drop the entry of the registry that died, not a newer one with the same id.
    entry = _registry_stages.get(key)
    if entry is not None and entry[0] is dead:
        del _registry_stages[key]


def _resolve(registry: MetricsRegistry | None, name: str) -> _Stage:
    """The cached children of ``name`` in ``registry`` (the default one when None)."""
    if registry is None:
        stage = _default_stages.get(name)
        if stage is None:
            stage = _default_stages[name] = _build(None, name)
        return stage
    key = id(registry)
    entry = _registry_stages.get(key)
    if entry is None or entry[0]() is not registry:
        with _resolve_lock:
            stages: dict[str, _Stage] = {}
            ref = weakref.ref(registry, functools.partial(_forget_registry, key))
            entry = _registry_stages[key] = (ref, stages)
    stage = entry[1].get(name)
    if stage is None:
        stage = entry[1][name] = _build(registry, name)
    return stage


def _build(registry: MetricsRegistry | None, name: str) -> _Stage:
    target = registry
    try:
        if target is None:
            target = default_registry()
        return _Stage(target, name)
    except Exception as exc:
        sink = target.failures if target is not None else FailureSink()
        sink.failure("stage_timer", exc, f"stage {name!r}")
        return _Stage(None, name)


# ------------------------------------------------------------------ thread CPU clock

_CHAIN_WINDOW = 10e-6
"""A start this soon (wall seconds) after the thread's last CPU reading is derived from it."""


class _LastCpuReading(threading.local):
    """This thread's latest CPU-clock reading at the end of a stage (or step).

    Reading the thread CPU clock is a system call (the vDSO does not serve
    it): 0.2-0.6 us, as much as the rest of a stage timer. Stages often follow
    one another closely (stages run back to back, the steps of async stages
    on one loop), so a stage that starts within ``_CHAIN_WINDOW`` of the
    thread's last reading takes as its start that reading plus the wall time
    since: exact while the thread ran in between. Had it been preempted or
    blocked there, the stage's CPU comes out short by that pause (10 us at
    most), never over its true value and never below zero.
    """

    def __init__(self) -> None:
        self.last = (-math.inf, 0.0)  # (perf_counter(), thread_time()), read in that order


_cpu_reading = _LastCpuReading()


def _forget_cpu_reading() -> None:
    # A forked child's thread has a CPU clock of its own, starting afresh.
    _cpu_reading.last = (-math.inf, 0.0)


os.register_at_fork(after_in_child=_forget_cpu_reading)


def _cpu_at(t0: float) -> float:
    """The thread CPU clock at ``t0`` (a ``perf_counter()`` value just read)."""
    t_last, c_last = _cpu_reading.last
    return c_last + (t0 - t_last) if t0 - t_last < _CHAIN_WINDOW else thread_time()


def _cpu_since(c0: float, t1: float) -> float:
    """CPU seconds since ``c0``, read now (``t1``: ``perf_counter()`` just before), >= 0.

    The reading is kept for a stage that starts next on this thread.
    """
    c1 = thread_time()
    _cpu_reading.last = (t1, c1)
    cpu = c1 - c0
    return cpu if cpu > 0.0 else 0.0


# ------------------------------------------------------------------------ recording


def _started(stage: _Stage, job_id: Any) -> None:
    try:
        log = worker_log.enabled(_DEBUG)
        if log is not None:
            if job_id is None:
                log.debug("stage started", stage=stage.name)
            else:
                log.debug("stage started", stage=stage.name, job_id=job_id)
    except Exception as exc:
        stage.sink.failure("stage_log", exc)


def _succeeded(stage: _Stage, wall: float, cpu: float | None, job_id: Any) -> None:
    if cpu is None:
        stage.duration.observe(wall)
    else:
        if cpu > wall:  # see _failed
            cpu = wall
        (stage.record or stage.recorder())(wall, cpu)
    # The line written directly when promkit's own logging set-up is all there
    # is (a few us); else, or when unsure, through structlog (~25 us).
    if stage_lines.completed(stage.name, wall, cpu, job_id):
        return
    try:
        log = worker_log.enabled(_INFO)
        if log is not None:
            fields: dict[str, Any] = {}
            if cpu is not None:
                fields["cpu_ms"] = round_ms(cpu)
            if job_id is not None:
                fields["job_id"] = job_id
            log.info(STAGE_COMPLETED_EVENT, stage=stage.name, latency_ms=round_ms(wall), **fields)
    except Exception as exc:
        stage.sink.failure("stage_log", exc)


def _failed(stage: _Stage, wall: float, cpu: float | None, exc: BaseException,
            mapper: ErrorCodeMapper | None, job_id: Any) -> None:
    try:
        if cpu is None:
            stage.duration.observe(wall)
        else:
            # A thread spends at most its wall time on CPU. The two clocks are read a
            # few tens of ns apart, which a sub-microsecond stage can show as more.
            if cpu > wall:
                cpu = wall
            (stage.record or stage.recorder())(wall, cpu)
        code = error_code_for(exc, mapper, stage.sink)
        stage.failures.labels(stage.name, code).inc()
        level = _ERROR if isinstance(exc, Exception) else _WARNING
        log = worker_log.enabled(level)
        if log is not None:
            fields: dict[str, Any] = {
                "stage": stage.name, "latency_ms": round_ms(wall), "error_code": code,
                "error_type": type(exc).__name__,
            }
            if cpu is not None:
                fields["cpu_ms"] = round_ms(cpu)
            if job_id is not None:
                fields["job_id"] = job_id
            if level == _ERROR:
                log.error("stage failed", **fields)
            else:
                log.warning("stage failed", **fields)
    except Exception as failure:
        stage.sink.failure("stage_failure", failure)


@types.coroutine
def _later_steps(step: Any, yielded: Any, cpu: list[float]) -> Generator[Any, Any, Any]:
    """Drive an async stage on from its first suspension, adding each step's CPU to ``cpu[0]``.

    ``step`` (a coroutine or an ``__await__`` iterator) has just yielded
    ``yielded``. What it yields (futures, trio traps...) passes through to the
    event loop untouched, and what the loop sends or throws goes back in, so
    results and cancellation behave exactly as with a plain ``await``; only
    the time the stage's own code runs is CPU-counted. Returns its result.
    """
    send = step.send
    while True:
        thrown: BaseException | None = None
        try:
            value = yield yielded
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:
            thrown, value = exc, None
        c0 = _cpu_at(perf_counter())
        try:
            yielded = send(value) if thrown is None else step.throw(thrown)
        except StopIteration as stop:
            cpu[0] += _cpu_since(c0, perf_counter())
            return stop.value
        except BaseException:
            cpu[0] += _cpu_since(c0, perf_counter())
            raise
        cpu[0] += _cpu_since(c0, perf_counter())


# --------------------------------------------------------------------------- timer


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

    __slots__ = ("_c0", "_cpu", "_error_code", "_outer", "_registry", "_stage", "_t0", "job_id",
                 "stage")

    def __init__(self, stage: str, *, registry: MetricsRegistry | None = None,
                 error_code: ErrorCodeMapper | None = None, job_id: Any = None,
                 cpu: bool = True) -> None:
        self.stage = stage if type(stage) is str else str(stage)
        self._registry = registry
        self._error_code = error_code
        self.job_id = job_id
        self._cpu = cpu
        self._stage: _Stage | None = None  # set while a with-block runs
        self._t0 = 0.0
        self._c0 = 0.0
        self._outer: list[tuple[_Stage, float, float]] | None = None

    # -- decorator ----------------------------------------------------------------

    def __call__(self, func: F) -> F:
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError(
                f"stage_timer cannot time generator function {func.__qualname__!r}: the body "
                "runs as it is iterated, not when called; time a block inside it with "
                "`with stage_timer(...)` instead"
            )
        registry, name = self._registry, self.stage
        mapper, job_id, measure_cpu = self._error_code, self.job_id, self._cpu
        resolved: list[_Stage] = []

        if inspect.iscoroutinefunction(func) and not measure_cpu:

            @functools.wraps(func)
            async def async_wall_stage(*args: Any, **kwargs: Any) -> Any:
                stage = resolved[0] if resolved else _first(resolved, registry, name)
                if worker_log.levels.get(_DEBUG) is not False:  # DEBUG known off: no call
                    _started(stage, job_id)
                t0 = perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    _failed(stage, perf_counter() - t0, None, exc, mapper, job_id)
                    raise
                _succeeded(stage, perf_counter() - t0, None, job_id)
                return result

            return async_wall_stage  # type: ignore[return-value]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_stage(*args: Any, **kwargs: Any) -> Any:
                # The first step runs here, between two CPU-clock readings; a stage
                # that suspends is driven on by _later_steps, a reading pair per step.
                stage = resolved[0] if resolved else _first(resolved, registry, name)
                if worker_log.levels.get(_DEBUG) is not False:  # DEBUG known off: no call
                    _started(stage, job_id)
                t0 = perf_counter()
                t_last, c_last = _cpu_reading.last  # _cpu_at(t0), inlined: hot path
                c0 = c_last + (t0 - t_last) if t0 - t_last < _CHAIN_WINDOW else thread_time()
                try:
                    awaitable = func(*args, **kwargs)
                    step = (awaitable if type(awaitable) is _CoroutineType
                            else awaitable.__await__())
                    yielded = step.send(None)
                except StopIteration as stop:
                    result = stop.value
                except BaseException as exc:
                    t1 = perf_counter()
                    _failed(stage, t1 - t0, _cpu_since(c0, t1), exc, mapper, job_id)
                    raise
                else:
                    later = [_cpu_since(c0, perf_counter())]
                    try:
                        result = await _later_steps(step, yielded, later)
                    except BaseException as exc:
                        _failed(stage, perf_counter() - t0, later[0], exc, mapper, job_id)
                        raise
                    _succeeded(stage, perf_counter() - t0, later[0], job_id)
                    return result
                t1 = perf_counter()
                c1 = thread_time()  # _cpu_since(c0, t1), inlined
                _cpu_reading.last = (t1, c1)
                cpu = c1 - c0
                _succeeded(stage, t1 - t0, cpu if cpu > 0.0 else 0.0, job_id)
                return result

            return async_stage  # type: ignore[return-value]

        if not measure_cpu:

            @functools.wraps(func)
            def wall_stage(*args: Any, **kwargs: Any) -> Any:
                stage = resolved[0] if resolved else _first(resolved, registry, name)
                if worker_log.levels.get(_DEBUG) is not False:  # DEBUG known off: no call
                    _started(stage, job_id)
                t0 = perf_counter()
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    _failed(stage, perf_counter() - t0, None, exc, mapper, job_id)
                    raise
                _succeeded(stage, perf_counter() - t0, None, job_id)
                return result

            return wall_stage  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_stage(*args: Any, **kwargs: Any) -> Any:
            stage = resolved[0] if resolved else _first(resolved, registry, name)
            if worker_log.levels.get(_DEBUG) is not False:  # DEBUG known off: no call
                _started(stage, job_id)
            t0 = perf_counter()
            t_last, c_last = _cpu_reading.last  # _cpu_at(t0), inlined: hot path
            c0 = c_last + (t0 - t_last) if t0 - t_last < _CHAIN_WINDOW else thread_time()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                t1 = perf_counter()
                _failed(stage, t1 - t0, _cpu_since(c0, t1), exc, mapper, job_id)
                raise
            t1 = perf_counter()
            c1 = thread_time()  # _cpu_since(c0, t1), inlined
            _cpu_reading.last = (t1, c1)
            cpu = c1 - c0
            _succeeded(stage, t1 - t0, cpu if cpu > 0.0 else 0.0, job_id)
            return result

        return sync_stage  # type: ignore[return-value]

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> StageTimer:
        stage = _resolve(self._registry, self.stage)
        if worker_log.levels.get(_DEBUG) is not False:  # DEBUG known off: no call
            _started(stage, self.job_id)
        if self._stage is not None:  # the same object re-entered (nested): keep the outer run
            if self._outer is None:
                self._outer = []
            self._outer.append((self._stage, self._t0, self._c0))
        self._stage = stage
        self._t0 = t0 = perf_counter()
        self._c0 = _cpu_at(t0) if self._cpu else 0.0
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        t1 = perf_counter()
        cpu = _cpu_since(self._c0, t1) if self._cpu else None
        stage = self._stage
        if stage is None:  # __exit__ without __enter__: nothing to record
            return
        wall = t1 - self._t0
        if self._outer:
            self._stage, self._t0, self._c0 = self._outer.pop()
        else:
            self._stage = None
        if exc is None:
            _succeeded(stage, wall, cpu, self.job_id)
        else:
            _failed(stage, wall, cpu, exc, self._error_code, self.job_id)

    async def __aenter__(self) -> StageTimer:
        return self.__enter__()

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(typ, exc, tb)

    def __repr__(self) -> str:
        return f"<StageTimer {self.stage!r}>"


def _first(resolved: list[_Stage], registry: MetricsRegistry | None, name: str) -> _Stage:
    stage = _resolve(registry, name)
    if not resolved:
        resolved.append(stage)
    return resolved[0]


stage_timer = StageTimer
"""``stage_timer(stage, *, registry=None, error_code=None, job_id=None, cpu=True)``.

See :class:`StageTimer`."""
