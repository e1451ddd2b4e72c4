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

On entry the run binds the job's correlation ID (the payload's, else the one
already bound, else a new one) and ``job_id`` -- in promkit's contextvar and
structlog's context alike, so a plain structlog set-up logs both -- and sets
the correlation attribute of the current span, whichever API runs the job
(:meth:`JobTracker.run`, :meth:`JobTracker.job`, :meth:`JobTracker.started`,
a queue :class:`~promkit.instrument.queues.Job`); it observes the queue wait
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

The run itself (:class:`JobRun`, the payload fields) lives in
:mod:`promkit.instrument._job_run`; this module is the tracker and the public face.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeVar

from promkit.instrument import correlation as _correlation
from promkit.instrument._error_codes import ErrorCodeMapper
from promkit.instrument._job_run import (
    CREATED_AT_FIELD,
    JOB_ID_FIELD,
    JOB_TYPE_FIELD,
    NO_ERROR,
    OUTCOME_FAILURE,
    OUTCOME_SUCCESS,
    PAYLOAD_FIELDS,
    QUEUE_FIELD,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_RUNNING,
    STATUS_SUCCEEDED,
    UNKNOWN_JOB_TYPE,
    ClockSkewError,
    JobPayloadError,
    JobRun,
    job_id_of,
    payload_get,
    payload_label,
)
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

F = TypeVar("F", bound=Callable[..., Any])

_INFO = 20


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
            cid = _correlation.resolve_correlation_id(payload)
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
            try:
                fields: dict[str, Any] = {"job_id": job_id_of(payload), "job_type": job_type,
                                          "queue": self.queue}
                if queue_depth is not None:
                    fields["queue_depth"] = queue_depth
                with _correlation.bind_correlation_id(cid):
                    log.info("job created", **fields)
            except Exception as exc:
                registry.failures.failure("job_log", exc)
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
            taken = tuple(field for field in PAYLOAD_FIELDS if field not in own)
            default_type = getattr(func, "__name__", None) or UNKNOWN_JOB_TYPE

            def split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
                payload = {field: kwargs[field] for field in PAYLOAD_FIELDS if field in kwargs}
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
            job_type = payload_label(payload_get(payload_or_job_type, JOB_TYPE_FIELD),
                                     UNKNOWN_JOB_TYPE)
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
