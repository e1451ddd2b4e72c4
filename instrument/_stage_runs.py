"""One run of a stage: its resolved label children, what it records and logs when it ends.

:class:`promkit.instrument.stages.StageTimer` opens a run (``stage started``
at DEBUG, the clocks read) and closes it with :func:`succeeded` or
:func:`failed`, which read the clocks again and record
``job_stage_duration_seconds``, ``job_stage_cpu_seconds_total`` (when the
run's CPU start ``c0`` is not None) and, on failure,
``job_stage_failures_total``, then log ``stage completed`` (INFO) or
``stage failed`` (ERROR; WARNING for cancellation and other non-``Exception``
exits). Nothing here raises: a metric or log failure is counted in
``promkit_instrumentation_errors_total``.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from promkit.instrument._children import NULL_CHILD
from promkit.instrument._cpu_clock import cpu_at
from promkit.instrument._error_codes import ErrorCodeMapper, error_code_for
from promkit.instrument._json_line import round_ms
from promkit.instrument._recorders import paired_recorder
from promkit.instrument._safety import FailureSink
from promkit.instrument._stage_line import STAGE_COMPLETED_EVENT, StageLineWriter
from promkit.instrument._worker_log import LOGGER_NAME, worker_log
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = ["Stage", "failed", "resolve", "stage_lines", "started", "succeeded"]

_INFO = logging.INFO
_WARNING = logging.WARNING
_ERROR = logging.ERROR

stage_lines = StageLineWriter(LOGGER_NAME)
"""The ``stage completed`` line written directly when promkit's own logging is all there is."""


class _NullFailures:
    def labels(self, *values: Any) -> Any:
        return NULL_CHILD


class Stage:
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


_default_stages: dict[str, Stage] = {}
_registry_stages: dict[int, tuple[weakref.ref[MetricsRegistry], dict[str, Stage]]] = {}
_resolve_lock = threading.Lock()


def _forget_registry(key: int, dead: weakref.ref[MetricsRegistry]) -> None:
    # Only drop the entry of the registry that died, not a newer one with the same id.
    entry = _registry_stages.get(key)
    if entry is not None and entry[0] is dead:
        del _registry_stages[key]


def resolve(registry: MetricsRegistry | None, name: str) -> Stage:
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
            stages: dict[str, Stage] = {}
            ref = weakref.ref(registry, functools.partial(_forget_registry, key))
            entry = _registry_stages[key] = (ref, stages)
    stage = entry[1].get(name)
    if stage is None:
        stage = entry[1][name] = _build(registry, name)
    return stage


def _build(registry: MetricsRegistry | None, name: str) -> Stage:
    target = registry
    try:
        if target is None:
            target = default_registry()
        return Stage(target, name)
    except Exception as exc:
        sink = target.failures if target is not None else FailureSink()
        sink.failure("stage_timer", exc, f"stage {name!r}")
        return Stage(None, name)


# ------------------------------------------------------------------------ recording


def started(stage: Stage, job_id: Any) -> None:
    """Log ``stage started`` at DEBUG (callers skip the call when DEBUG is known off)."""
    try:
        log = worker_log.enabled(logging.DEBUG)
        if log is not None:
            if job_id is None:
                log.debug("stage started", stage=stage.name)
            else:
                log.debug("stage started", stage=stage.name, job_id=job_id)
    except Exception as exc:
        stage.sink.failure("stage_log", exc)


def succeeded(stage: Stage, t0: float, c0: float | None, job_id: Any) -> None:
    """Close a run that returned: ``t0``/``c0`` its wall and CPU start (None: no CPU)."""
    t1 = perf_counter()
    wall = t1 - t0
    if c0 is None:
        cpu = None
        stage.duration.observe(wall)
    else:
        cpu = cpu_at(t1) - c0
        # A thread spends at most its wall time on CPU. The two clocks are read a
        # few tens of ns apart, which a sub-microsecond stage can show as more.
        if cpu > wall:
            cpu = wall
        elif cpu < 0.0:
            cpu = 0.0
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


def failed(stage: Stage, t0: float, c0: float | None, exc: BaseException,
           mapper: ErrorCodeMapper | None, job_id: Any) -> None:
    """Close a run that raised ``exc`` (which the caller re-raises): record, count, log."""
    t1 = perf_counter()
    wall = t1 - t0
    cpu = None if c0 is None else min(max(cpu_at(t1) - c0, 0.0), wall)
    try:
        if cpu is None:
            stage.duration.observe(wall)
        else:
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
