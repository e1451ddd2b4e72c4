"""Job lifecycle: created → queued → running → succeeded/failed, across processes.

The producer and the worker are usually different processes (an API and a
queue worker), so everything the worker needs travels in the job payload.
:meth:`JobTracker.created` stamps it::

    payload = tracker.created({"text": "..."}, "tts", queue_depth=depth)
    # payload now has job_id, created_at (epoch seconds), correlation_id,
    # job_type and queue; enqueue it (JSON is fine)

and the worker wraps the run::

    with tracker.run(payload):          # or: async with tracker.run(payload):
        synthesize(payload)

On entry the run restores the correlation ID from the payload (contextvar,
hence every log line), binds ``job_id`` for structlog, observes the queue wait
(start − ``created_at``), increments ``jobs_in_flight`` and counts a cold
start on the first job of the process; on exit it records the run duration,
the total latency (queue wait + run, i.e. created → terminal), the outcome
(``success``/``failure`` with an error code) and the status transitions, and
lets the application's exception propagate unchanged.

Clocks: the queue wait compares the worker's wall clock with the producer's.
A negative wait (clock skew) is recorded as 0 and counted in
``promkit_instrumentation_errors_total{cause="job_clock_skew:ClockSkewError"}``.
A missing or unreadable ``created_at`` never raises: the wait and total are
not observed, the run is, and the bad payload is counted and logged once per
cause.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime, timezone
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar

import structlog

from promkit.instrument import correlation as _correlation
from promkit.instrument._error_codes import ErrorCodeMapper, error_code_for
from promkit.instrument._worker_log import worker_log
from promkit.instrument.registry import MetricsRegistry, default_registry

__all__ = [
    "CREATED_AT_FIELD",
    "JOB_ID_FIELD",
    "JOB_TYPE_FIELD",
    "NO_ERROR",
    "OUTCOME_FAILURE",
    "OUTCOME_SUCCESS",
    "QUEUE_FIELD",
    "STATUS_FAILED",
    "STATUS_QUEUED",
    "STATUS_RUNNING",
    "STATUS_SUCCEEDED",
    "ClockSkewError",
    "JobPayloadError",
    "JobRun",
    "JobTracker",
]

JOB_ID_FIELD = "job_id"
CREATED_AT_FIELD = "created_at"
JOB_TYPE_FIELD = "job_type"
QUEUE_FIELD = "queue"
_PAYLOAD_FIELDS = (CREATED_AT_FIELD, JOB_ID_FIELD, _correlation.CORRELATION_ID_FIELD,
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

F = TypeVar("F", bound=Callable[..., Any])

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


# ------------------------------------------------------------------------ helpers


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


def _job_id_of(payload: Mapping[str, Any]) -> str | None:
    value = payload.get(JOB_ID_FIELD)
    if value is None or value == "":
        return None
    text = value if type(value) is str else str(value)
    return text[:_MAX_JOB_ID_LENGTH]


def _label(value: object, default: str) -> str:
    if isinstance(value, str) and value:
        return value
    return default


# ------------------------------------------------------------------------- tracker


class JobTracker:
    """Record the life of jobs: the producer side and the worker side.

    ``registry`` defaults to the process-wide one (resolved on first use).
    ``queue`` labels the jobs this tracker creates (and runs whose payload
    does not name a queue). ``worker_type`` labels cold starts.
    ``error_code`` maps a failing job's exception to its error code; by
    default the global mapper of :func:`promkit.instrument.stages.set_error_code_mapper`,
    else the exception's class name.
    """

    def __init__(self, registry: MetricsRegistry | None = None, queue: str = "default", *,
                 worker_type: str = "worker", error_code: ErrorCodeMapper | None = None) -> None:
        self._registry = registry
        self.queue = queue
        self.worker_type = worker_type
        self.error_code = error_code

    @property
    def registry(self) -> MetricsRegistry:
        registry = self._registry
        if registry is None:
            registry = self._registry = default_registry()
        return registry

    # -- producer -------------------------------------------------------------------

    def created(self, payload: MutableMapping[str, Any], job_type: str,
                queue_depth: float | None = None) -> MutableMapping[str, Any]:
        """Stamp a new job's payload and count it; returns the same payload.

        Sets ``created_at`` (epoch seconds, float), ``job_type``, ``queue``,
        a ``job_id`` when missing (UUID4 hex) and the correlation ID (the one
        already in the payload if valid, else the current one, else a new one
        per job -- a batch producer outside any request gives every job its
        own). Counts ``jobs_created_total`` and observes the queue depth seen
        at enqueue in ``job_enqueue_queue_depth`` when given. Never raises.
        """
        registry = self.registry
        try:
            if not isinstance(payload, MutableMapping):
                raise JobPayloadError(
                    f"job payload is a {type(payload).__name__}, not a dict; nothing stamped"
                )
            payload[CREATED_AT_FIELD] = time.time()
            if payload.get(JOB_ID_FIELD) in (None, ""):
                payload[JOB_ID_FIELD] = uuid.uuid4().hex
            payload[JOB_TYPE_FIELD] = job_type
            payload[QUEUE_FIELD] = self.queue
            cid = (
                _correlation.extract(payload)
                or _correlation.get_correlation_id()
                or _correlation.new_correlation_id()
            )
            _correlation.inject(payload, correlation_id=cid)
        except Exception as exc:
            registry.failures.failure("job_created", exc)
            return payload
        registry.counter("jobs_created_total").labels(self.queue, job_type).inc()
        if queue_depth is not None:
            try:
                depth = float(queue_depth)
            except Exception as exc:
                registry.failures.failure("job_queue_depth", exc)
            else:
                registry.histogram("job_enqueue_queue_depth").labels(self.queue).observe(depth)
        log = worker_log.enabled(_INFO)
        if log is not None:
            token = _correlation.correlation_id_var.set(cid)
            try:
                fields: dict[str, Any] = {"job_id": _job_id_of(payload), "job_type": job_type,
                                          "queue": self.queue}
                if queue_depth is not None:
                    fields["queue_depth"] = queue_depth
                log.info("job created", **fields)
            except Exception as exc:
                registry.failures.failure("job_log", exc)
            finally:
                _correlation.correlation_id_var.reset(token)
        return payload

    # -- worker ---------------------------------------------------------------------

    def run(self, payload: Mapping[str, Any], *, job_type: str | None = None,
            worker_type: str | None = None) -> JobRun:
        """A (sync or async) context manager recording one run of the job in ``payload``.

        Nothing is recorded until the block is entered. ``job_type`` overrides
        the payload's; ``worker_type`` the tracker's.
        """
        return JobRun(self, payload, job_type=job_type, worker_type=worker_type)

    def job(self, job_type: str | None = None) -> Callable[[F], F]:
        """Decorate a task function of a queue library: every call is one job run.

        For workers whose library calls the function with the job's keyword
        arguments (RQ, Celery, arq): the producer passes the payload stamped
        by :meth:`created` as those keyword arguments --
        ``queue.enqueue(fn, kwargs=tracker.created({...}, "fn"))`` (RQ),
        ``task.apply_async(kwargs=tracker.created({...}, "fn"))`` (Celery),
        ``pool.enqueue_job("fn", **tracker.created({...}, "fn"))`` (arq). The
        decorated function takes promkit's fields (``created_at``,
        ``job_id``, ``correlation_id``, ``job_type``, ``queue``) out of them,
        except those the function names as parameters, and calls the
        function with the rest inside :meth:`run`. ``job_type`` overrides the
        payload's; without either, the function's name. Sync or async. The
        decorated function's signature lists the fields it takes out as
        keyword-only parameters (argument checks such as Celery's read it).
        """

        def decorate(func: F) -> F:
            if not callable(func):
                raise TypeError(f"tracker.job() decorates a function, not {func!r}")
            if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
                raise TypeError(f"tracker.job() cannot decorate generator function "
                                f"{func.__qualname__!r}: its body runs as it is iterated")
            try:
                signature: inspect.Signature | None = inspect.signature(func)
            except (TypeError, ValueError):  # a builtin without a signature
                signature = None
            own = set(signature.parameters) if signature is not None else set()
            taken = tuple(field for field in _PAYLOAD_FIELDS if field not in own)
            default_type = getattr(func, "__name__", None) or UNKNOWN_JOB_TYPE

            def split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
                payload = {field: kwargs[field] for field in _PAYLOAD_FIELDS if field in kwargs}
                for field in taken:
                    kwargs.pop(field, None)
                kind = job_type if job_type is not None else (
                    None if JOB_TYPE_FIELD in payload else default_type)
                return payload, kind

            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_job(*args: Any, **kwargs: Any) -> Any:
                    payload, kind = split(kwargs)
                    async with self.run(payload, job_type=kind):
                        return await func(*args, **kwargs)

                return _with_fields(async_job, signature, taken)  # type: ignore[return-value]

            @functools.wraps(func)
            def sync_job(*args: Any, **kwargs: Any) -> Any:
                payload, kind = split(kwargs)
                with self.run(payload, job_type=kind):
                    return func(*args, **kwargs)

            return _with_fields(sync_job, signature, taken)  # type: ignore[return-value]

        return decorate

    def started(self, payload: Mapping[str, Any], *, job_type: str | None = None,
                worker_type: str | None = None) -> JobRun:
        """Record that the job in ``payload`` starts now; finish it with the returned run.

        For workers that cannot wrap the job in a ``with`` block: call
        :meth:`JobRun.succeeded` or :meth:`JobRun.failed` (or use the run as a
        context manager) when it ends. The correlation ID and ``job_id`` stay
        bound in the current context until then.
        """
        return JobRun(self, payload, job_type=job_type, worker_type=worker_type).start()

    # -- other events -----------------------------------------------------------------

    def transition(self, payload_or_job_type: Mapping[str, Any] | str, from_status: str,
                   to_status: str) -> None:
        """Count one status transition (``job_status_transitions_total``).

        Runs count queued→running and running→succeeded/failed themselves; use
        this for the application's own statuses (e.g. running→retrying).
        """
        if isinstance(payload_or_job_type, str):
            job_type = payload_or_job_type
        else:
            job_type = _label(_get(payload_or_job_type, JOB_TYPE_FIELD), UNKNOWN_JOB_TYPE)
        self.registry.counter("job_status_transitions_total").labels(
            job_type, from_status, to_status).inc()

    def recovered(self, job_type: str, reason: str) -> None:
        """Count a job recovered or requeued (e.g. ``reason="worker_lost"``)."""
        self.registry.counter("jobs_recovered_total").labels(job_type, reason).inc()

    def skipped(self, job_type: str, reason: str) -> None:
        """Count a job skipped or evicted without running (e.g. ``reason="expired"``)."""
        self.registry.counter("jobs_skipped_total").labels(job_type, reason).inc()

    def persist_failed(self, store: str) -> None:
        """Count a failure to persist a job's state or result to ``store``."""
        self.registry.counter("job_persist_failures_total").labels(store).inc()

    def cache_hit(self, cache: str) -> None:
        """Count a hit in ``cache`` (``cache_requests_total{result="hit"}``)."""
        self.registry.counter("cache_requests_total").labels(cache, "hit").inc()

    def cache_miss(self, cache: str) -> None:
        """Count a miss in ``cache`` (``cache_requests_total{result="miss"}``)."""
        self.registry.counter("cache_requests_total").labels(cache, "miss").inc()

    def cache_lookup(self, cache: str, hit: bool) -> None:
        """Count a lookup in ``cache`` as a hit or a miss."""
        self.registry.counter("cache_requests_total").labels(
            cache, "hit" if hit else "miss").inc()


def _with_fields(wrapper: Callable[..., Any], signature: inspect.Signature | None,
                 fields: tuple[str, ...]) -> Callable[..., Any]:
    """``wrapper`` whose signature also lists ``fields`` (keyword-only, default None).

    So that a library checking call arguments against the signature (Celery
    does) accepts the payload's fields.
    """
    if signature is None:
        return wrapper
    params = list(signature.parameters.values())
    tail = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    head = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = [inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=None)
             for field in fields]
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*head, *added, *tail])
    return wrapper


def _get(payload: object, key: str) -> Any:
    try:
        return payload.get(key) if isinstance(payload, Mapping) else None
    except Exception:
        return None


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
        self.job_type = _label(job_type if job_type is not None
                               else _get(payload, JOB_TYPE_FIELD), UNKNOWN_JOB_TYPE)
        self.queue = _label(_get(payload, QUEUE_FIELD), tracker.queue)
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
        self._cid_token: contextvars.Token[str | None] | None = None
        self._log_tokens: Mapping[str, contextvars.Token[Any]] | None = None

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
        try:
            self.job_id = _job_id_of(payload)
            cid = _correlation.extract(payload) or _correlation.new_correlation_id()
            self.correlation_id = cid
            self._cid_token = _correlation.correlation_id_var.set(cid)
            if self.job_id is not None:
                self._log_tokens = structlog.contextvars.bind_contextvars(job_id=self.job_id)
        except Exception as exc:
            sink.failure("job_context", exc)

        created = _get(payload, CREATED_AT_FIELD)
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
        # Tokens only reset in the context that set them; a run finished from
        # another task or thread leaves that context alone.
        tokens, self._log_tokens = self._log_tokens, None
        if tokens is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                structlog.contextvars.reset_contextvars(**tokens)
        token, self._cid_token = self._cid_token, None
        if token is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                _correlation.correlation_id_var.reset(token)

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
