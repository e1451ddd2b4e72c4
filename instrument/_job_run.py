"""One run of one job (:class:`JobRun`) and what a run reads from the payload.

A run binds the job's context with :class:`JobContext` -- the correlation ID
(promkit's contextvar, which is structlog's context too), ``job_id`` in
structlog's contextvars and the correlation attribute of the current span --
the same way whichever API started it (:meth:`JobTracker.run
<promkit.instrument.jobs.JobTracker.run>`, ``.job()``, ``.started()``, or a
queue :class:`~promkit.instrument.queues.Job`). It records the queue wait,
run time, total latency, outcome and status transitions. The public names
are imported from :mod:`promkit.instrument.jobs`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from promkit.instrument import correlation as _correlation
from promkit.instrument._error_codes import error_code_for
from promkit.instrument._worker_log import worker_log
from promkit.instrument.tracing import annotate_current_span

if TYPE_CHECKING:
    from promkit.instrument.jobs import JobTracker

__all__ = [
    "CREATED_AT_FIELD",
    "JOB_ID_FIELD",
    "JOB_TYPE_FIELD",
    "NO_ERROR",
    "OUTCOME_FAILURE",
    "OUTCOME_SUCCESS",
    "PAYLOAD_FIELDS",
    "QUEUE_FIELD",
    "STATUS_FAILED",
    "STATUS_QUEUED",
    "STATUS_RUNNING",
    "STATUS_SUCCEEDED",
    "UNKNOWN_JOB_TYPE",
    "ClockSkewError",
    "JobContext",
    "JobPayloadError",
    "JobRun",
    "job_id_of",
    "payload_get",
    "payload_label",
]

JOB_ID_FIELD = "job_id"
CREATED_AT_FIELD = "created_at"
JOB_TYPE_FIELD = "job_type"
QUEUE_FIELD = "queue"
PAYLOAD_FIELDS = (CREATED_AT_FIELD, JOB_ID_FIELD, _correlation.CORRELATION_ID_FIELD,
                   JOB_TYPE_FIELD, QUEUE_FIELD)

STATUS_QUEUED = "queued"
STATUS_RUNNING = "running"
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"

OUTCOME_SUCCESS = "success"
OUTCOME_FAILURE = "failure"
NO_ERROR = "none"
"""``error_code`` of jobs that succeeded."""

UNKNOWN_JOB_TYPE = "unknown"

_MAX_JOB_ID_LENGTH = 128

_INFO = 20
_WARNING = 30
_ERROR = 40


class JobPayloadError(ValueError):
    """A job payload lacks a usable field (counted, never raised to the app)."""


class ClockSkewError(ValueError):
    """The worker's clock is behind the producer's (counted, never raised)."""


# ------------------------------------------------------------------- process state


class _ProcessState:
    """Per-process facts: whether the first job (the cold start) has been seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cold_start_pending = True

    def take_cold_start(self) -> bool:
        if not self.cold_start_pending:
            return False
        with self.lock:
            pending = self.cold_start_pending
            self.cold_start_pending = False
        return pending


_process = _ProcessState()


def _after_fork() -> None:
    # A forked worker is a new process: its first job is a cold start again.
    global _process
    _process = _ProcessState()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# ------------------------------------------------------------------------ payload


def _parse_created_at(value: object) -> float:
    """Epoch seconds from a payload's ``created_at``; raises JobPayloadError when unusable.

    Accepts numbers (epoch seconds), numeric strings and ISO 8601 strings
    (naive ones are taken as UTC).
    """
    if isinstance(value, bool):
        raise JobPayloadError(f"created_at is a bool ({value!r}), not a timestamp")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise JobPayloadError(
                    "created_at is neither epoch seconds nor an ISO 8601 time"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            result = parsed.timestamp()
    else:
        raise JobPayloadError(f"created_at is a {type(value).__name__}, not a timestamp")
    if not math.isfinite(result) or result <= 0:
        raise JobPayloadError(f"created_at {result!r} is not a valid epoch time")
    return result


def job_id_of(payload: Mapping[str, Any]) -> str | None:
    value = payload.get(JOB_ID_FIELD)
    if value is None or value == "":
        return None
    text = value if type(value) is str else str(value)
    return text[:_MAX_JOB_ID_LENGTH]


def payload_label(value: object, default: str) -> str:
    if isinstance(value, str) and value:
        return value
    return default


def payload_get(payload: object, key: str) -> Any:
    try:
        return payload.get(key) if isinstance(payload, Mapping) else None
    except Exception:
        return None


# ------------------------------------------------------------------------- context


class JobContext:
    """Bind a job's context for a block; ``with JobContext(payload) as cid``.

    The correlation ID by :func:`~promkit.instrument.correlation.resolve_correlation_id`'s
    rule (the payload's first valid ID, else the one bound, else a new one),
    bound with :class:`~promkit.instrument.correlation.bind_correlation_id`
    (contextvar and structlog context at once); ``job_id`` bound in structlog's
    contextvars; the correlation attribute set on the current span when one is
    recording. Restored on exit; left alone when the exit happens in another
    context (a run finished from another task or thread).
    """

    __slots__ = ("_binding", "_job_tokens", "correlation_id", "job_id", "payload")

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self.job_id = job_id_of(payload)
        self.correlation_id: str | None = None
        self._binding: _correlation.bind_correlation_id | None = None
        self._job_tokens: Mapping[str, contextvars.Token[Any]] | None = None

    def __enter__(self) -> str:
        binding = self._binding = _correlation.bind_correlation_id(
            _correlation.extract(self.payload))
        cid = self.correlation_id = binding.__enter__()
        if self.job_id is not None:
            self._job_tokens = structlog.contextvars.bind_contextvars(job_id=self.job_id)
        annotate_current_span(cid)
        return cid

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        tokens, self._job_tokens = self._job_tokens, None
        if tokens is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                structlog.contextvars.reset_contextvars(**tokens)
        binding, self._binding = self._binding, None
        if binding is not None:
            binding.__exit__(None, None, None)


# ----------------------------------------------------------------------------- run


class JobRun:
    """One run of one job; a sync and async context manager.

    Attributes after start: ``job_id``, ``job_type``, ``queue``,
    ``correlation_id``, ``queue_wait_seconds`` (None when ``created_at`` was
    unusable); after the end: ``outcome``, ``error_code``,
    ``run_seconds``, ``total_seconds``.
    """

    def __init__(self, tracker: JobTracker, payload: Mapping[str, Any], *,
                 job_type: str | None = None, worker_type: str | None = None) -> None:
        self.tracker = tracker
        self.payload = payload
        self.job_type = payload_label(job_type if job_type is not None
                                      else payload_get(payload, JOB_TYPE_FIELD), UNKNOWN_JOB_TYPE)
        self.queue = payload_label(payload_get(payload, QUEUE_FIELD), tracker.queue)
        self.worker_type = worker_type if worker_type is not None else tracker.worker_type
        self.job_id: str | None = None
        self.correlation_id: str | None = None
        self.queue_wait_seconds: float | None = None
        self.run_seconds: float | None = None
        self.total_seconds: float | None = None
        self.outcome: str | None = None
        self.error_code: str | None = None
        self._failure_code: str | None = None
        self._t0 = 0.0
        self._started = False
        self._finished = False
        self._context: JobContext | None = None

    # -- start ----------------------------------------------------------------------

    def start(self) -> JobRun:
        """Record the start (idempotent). Never raises."""
        if self._started:
            return self
        self._started = True
        now = time.time()
        self._t0 = perf_counter()
        registry = self.tracker.registry
        sink = registry.failures
        payload = self.payload
        if not isinstance(payload, Mapping):
            sink.failure("job_payload", JobPayloadError(
                f"job payload is a {type(payload).__name__}, not a mapping"))
            payload = {}
        context = JobContext(payload)
        self.job_id = context.job_id
        try:
            self.correlation_id = context.__enter__()
            self._context = context
        except Exception as exc:
            sink.failure("job_context", exc)

        created = payload_get(payload, CREATED_AT_FIELD)
        if created is None:
            sink.failure("job_payload_created_at", JobPayloadError(
                "job payload has no created_at; queue wait and total latency are not recorded "
                "(stamp payloads with JobTracker.created)"))
        else:
            try:
                wait = now - _parse_created_at(created)
            except JobPayloadError as exc:
                sink.failure("job_payload_created_at", exc)
            else:
                if wait < 0:
                    sink.failure("job_clock_skew", ClockSkewError(
                        f"job created {-wait:.3f} s in this worker's future; queue wait "
                        "recorded as 0 (are the producer's and worker's clocks in sync?)"))
                    wait = 0.0
                self.queue_wait_seconds = wait
                registry.histogram("job_queue_wait_seconds").labels(
                    self.queue, self.job_type).observe(wait)

        registry.gauge("jobs_in_flight").labels(self.job_type).inc()
        if _process.take_cold_start():
            registry.counter("worker_cold_starts_total").labels(self.worker_type).inc()
        registry.counter("job_status_transitions_total").labels(
            self.job_type, STATUS_QUEUED, STATUS_RUNNING).inc()
        try:
            log = worker_log.enabled(_INFO)
            if log is not None:
                fields: dict[str, Any] = {"job_type": self.job_type, "queue": self.queue}
                if self.queue_wait_seconds is not None:
                    fields["queue_wait_ms"] = round(self.queue_wait_seconds * 1000.0, 3)
                log.info("job started", **fields)
        except Exception as exc:
            sink.failure("job_log", exc)
        return self

    # -- end ------------------------------------------------------------------------

    def fail(self, error_code: str) -> None:
        """Mark the job failed with ``error_code`` even though no exception escapes."""
        self._failure_code = error_code if isinstance(error_code, str) and error_code else "error"

    def succeeded(self) -> None:
        """Record the end of a successful run (when not used as a context manager)."""
        self.finish(None)

    def failed(self, exc_or_code: BaseException | str) -> None:
        """Record the end of a failed run, from its exception or an error code."""
        if isinstance(exc_or_code, BaseException):
            self.finish(exc_or_code)
        else:
            self.fail(exc_or_code)
            self.finish(None)

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the end of the run (idempotent; starts it first if needed). Never raises."""
        if self._finished:
            return
        if not self._started:
            self.start()
        self._finished = True
        run = perf_counter() - self._t0
        registry = self.tracker.registry
        sink = registry.failures
        try:
            if exc is not None:
                outcome = OUTCOME_FAILURE
                code = error_code_for(exc, self.tracker.error_code, sink)
            elif self._failure_code is not None:
                outcome, code = OUTCOME_FAILURE, self._failure_code
            else:
                outcome, code = OUTCOME_SUCCESS, NO_ERROR
            self.outcome, self.error_code, self.run_seconds = outcome, code, run
            queue, job_type = self.queue, self.job_type
            registry.histogram("job_run_duration_seconds").labels(
                queue, job_type, outcome).observe(run)
            if self.queue_wait_seconds is not None:
                self.total_seconds = self.queue_wait_seconds + run
                registry.histogram("job_duration_seconds").labels(
                    queue, job_type, outcome).observe(self.total_seconds)
            registry.counter("jobs_finished_total").labels(queue, job_type, outcome, code).inc()
            registry.counter("job_status_transitions_total").labels(
                job_type, STATUS_RUNNING,
                STATUS_SUCCEEDED if outcome == OUTCOME_SUCCESS else STATUS_FAILED).inc()
            registry.gauge("jobs_in_flight").labels(job_type).dec()
            self._log_end(outcome, code, exc)
        except Exception as failure:
            sink.failure("job_finish", failure)
        finally:
            self._unbind()

    def _log_end(self, outcome: str, code: str, exc: BaseException | None) -> None:
        failed = outcome == OUTCOME_FAILURE
        level = _INFO if not failed else (
            _WARNING if exc is not None and not isinstance(exc, Exception) else _ERROR)
        log = worker_log.enabled(level)
        if log is None:
            return
        fields: dict[str, Any] = {
            "job_type": self.job_type, "queue": self.queue, "outcome": outcome,
            "latency_ms": round((self.run_seconds or 0.0) * 1000.0, 3),
        }
        if self.total_seconds is not None:
            fields["total_ms"] = round(self.total_seconds * 1000.0, 3)
        if failed:
            fields["error_code"] = code
            if exc is not None:
                fields["error_type"] = type(exc).__name__
            if level == _ERROR:
                log.error("job failed", **fields)
            else:
                log.warning("job failed", **fields)
        else:
            log.info("job succeeded", **fields)

    def _unbind(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)

    # -- context manager protocol -------------------------------------------------------

    def __enter__(self) -> JobRun:
        return self.start()

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish(exc)

    async def __aenter__(self) -> JobRun:
        return self.start()

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.finish(exc)

    def __repr__(self) -> str:
        return (f"<JobRun job_id={self.job_id!r} job_type={self.job_type!r} "
                f"queue={self.queue!r} outcome={self.outcome!r}>")
