"""Redis queues: producer and worker helpers, webhooks, one correlation ID through them.

- :func:`enqueue` / :func:`dequeue` / :func:`work` (and the ``*_async``
  variants for ``redis.asyncio``) move JSON job payloads through a Redis list
  or stream. The producer stamps ``job_id``, ``created_at`` (epoch seconds),
  ``job_type``, ``queue`` and ``correlation_id`` with
  :meth:`promkit.instrument.jobs.JobTracker.created` and records the queue depth at
  enqueue; the worker restores the correlation ID (contextvar, structlog
  contextvars, current span attribute) and runs the job under
  :meth:`~promkit.instrument.jobs.JobTracker.run` (queue wait, run time, outcome).
- :func:`send_webhook` posts a JSON body with the correlation ID in the
  ``X-Correlation-ID`` header and a ``correlation_id`` field, recorded as an
  external call; the body is never logged.

The queues' depth and age at scrape time come from
:class:`promkit.exporters.RedisQueueCollector`, which reads the same
:class:`QueueSpec`.

Queues are named by a :class:`QueueSpec` or a plain key (a list whose oldest
item is at the right: ``LPUSH`` to enqueue, ``BRPOP`` to dequeue). Stream
jobs are entries with one field, ``payload``, holding the JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from promkit.instrument._redis_specs import QueueKind, QueueSpec, QueueSpecError, parse_queue_spec
from promkit.instrument.correlation import (
    CORRELATION_HEADER,
    CORRELATION_ID_FIELD,
    REQUEST_ID_HEADER,
    correlation_id_var,
    extract,
    new_correlation_id,
    valid_correlation_id,
)
from promkit.instrument.jobs import JobTracker
from promkit.instrument.registry import MetricsRegistry, default_registry
from promkit.instrument.tracing import annotate_current_span

if TYPE_CHECKING:
    import httpx
    import redis
    import redis.asyncio

__all__ = [
    "STREAM_PAYLOAD_FIELD",
    "Job",
    "QueueKind",
    "QueueSpec",
    "QueueSpecError",
    "dequeue",
    "dequeue_async",
    "enqueue",
    "enqueue_async",
    "ensure_stream_group",
    "ensure_stream_group_async",
    "parse_queue_spec",
    "send_webhook",
    "send_webhook_async",
    "work",
]

STREAM_PAYLOAD_FIELD = "payload"
"""The stream entry field holding a job's JSON payload."""

DEFAULT_WEBHOOK_TIMEOUT = 10.0


def _spec(queue: QueueSpec | str, where: str) -> QueueSpec:
    """A QueueSpec from a spec or a plain list key."""
    if isinstance(queue, QueueSpec):
        spec = queue
    elif isinstance(queue, str) and queue:
        spec = QueueSpec("list", queue)
    else:
        raise QueueSpecError(f"{where}: queue must be a QueueSpec or a list key, not {queue!r}")
    if spec.kind == "zset":
        raise QueueSpecError(f"{where}: {spec} is a sorted set; enqueue/dequeue handle lists and "
                             "streams (a delayed-job zset is the scheduler's to move)")
    return spec


def _tracker(spec: QueueSpec, tracker: JobTracker | None,
             registry: MetricsRegistry | None) -> JobTracker:
    return tracker if tracker is not None else JobTracker(registry, queue=spec.name)


def _dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def _observe_depth(tracker: JobTracker, depth: object) -> None:
    registry = tracker.registry
    try:
        value = float(depth)  # type: ignore[arg-type]
        registry.histogram("job_enqueue_queue_depth").labels(tracker.queue).observe(value)
    except Exception as exc:
        registry.failures.failure("queue_enqueue_depth", exc)


# ---------------------------------------------------------------------- producer


def enqueue(client: redis.Redis, queue: QueueSpec | str, payload: MutableMapping[str, Any], *,
            job_type: str, tracker: JobTracker | None = None,
            registry: MetricsRegistry | None = None) -> MutableMapping[str, Any]:
    """Stamp ``payload`` and push it onto a Redis list or stream; returns the stamped payload.

    The stamps come from ``tracker.created(payload, job_type)`` (a
    :class:`~promkit.instrument.jobs.JobTracker` for this queue when not given):
    ``job_id`` (kept if set), ``created_at``, ``job_type``, ``queue`` and the
    ``correlation_id`` (the payload's if valid, else the current one, else a
    new one), and ``jobs_created_total{queue, job_type}`` is counted. The
    payload goes out as JSON: ``LPUSH`` (``RPUSH`` for ``oldest_end="left"``)
    on a list, ``XADD key * payload <json>`` on a stream. The queue depth
    after the push (the push's reply for a list, ``XLEN`` in the same round
    trip for a stream) is observed in ``job_enqueue_queue_depth{queue}``.
    Redis errors propagate; the job then counts as created but not enqueued.
    """
    spec = _spec(queue, "enqueue")
    jobs = _tracker(spec, tracker, registry)
    jobs.created(payload, job_type)
    body = _dumps(payload)
    if spec.kind == "list":
        push = client.lpush if spec.push_left else client.rpush
        depth: object = push(spec.key, body)
    else:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(spec.key, {STREAM_PAYLOAD_FIELD: body})
        pipe.xlen(spec.key)
        _entry_id, depth = pipe.execute()
    _observe_depth(jobs, depth)
    return payload


async def enqueue_async(client: redis.asyncio.Redis, queue: QueueSpec | str,
                        payload: MutableMapping[str, Any], *, job_type: str,
                        tracker: JobTracker | None = None,
                        registry: MetricsRegistry | None = None) -> MutableMapping[str, Any]:
    """:func:`enqueue` for a ``redis.asyncio`` client."""
    spec = _spec(queue, "enqueue_async")
    jobs = _tracker(spec, tracker, registry)
    jobs.created(payload, job_type)
    body = _dumps(payload)
    if spec.kind == "list":
        push = client.lpush if spec.push_left else client.rpush
        depth: object = await push(spec.key, body)
    else:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(spec.key, {STREAM_PAYLOAD_FIELD: body})
        pipe.xlen(spec.key)
        _entry_id, depth = await pipe.execute()
    _observe_depth(jobs, depth)
    return payload


# ------------------------------------------------------------------------ worker


@dataclass
class Job:
    """A job taken from a queue: its payload and where it came from.

    ``payload`` is the decoded JSON object; ``entry_id`` and ``group`` are set
    for stream jobs (acknowledge with :meth:`ack` / :meth:`ack_async`).
    Use :meth:`bound` (or :meth:`run`, which also records the job's life with
    a :class:`~promkit.instrument.jobs.JobTracker`) to restore the producer's
    correlation ID while handling it.
    """

    queue: QueueSpec
    payload: dict[str, Any]
    entry_id: str | None = None
    group: str | None = None

    @property
    def job_id(self) -> str | None:
        value = self.payload.get("job_id")
        return None if value is None else str(value)

    @property
    def correlation_id(self) -> str | None:
        """The payload's correlation ID when it is a valid UUID, else None."""
        return extract(self.payload, (CORRELATION_ID_FIELD,))

    @property
    def job_type(self) -> str | None:
        value = self.payload.get("job_type")
        return value if isinstance(value, str) else None

    @contextlib.contextmanager
    def bound(self) -> Iterator[str]:
        """Bind the job's correlation ID for the block; yields it.

        Sets :data:`~promkit.instrument.correlation.correlation_id_var` (a new ID when
        the payload has no valid one), binds ``correlation_id`` and ``job_id``
        in structlog's contextvars (so plain structlog setups log them too)
        and sets the correlation attribute on the current span if one is
        recording. Everything is restored when the block ends.
        """
        cid = self.correlation_id or correlation_id_var.get() or new_correlation_id()
        token = correlation_id_var.set(cid)
        fields: dict[str, Any] = {"correlation_id": cid}
        if self.job_id is not None:
            fields["job_id"] = self.job_id
        log_tokens = structlog.contextvars.bind_contextvars(**fields)
        annotate_current_span(cid)
        try:
            yield cid
        finally:
            with contextlib.suppress(ValueError, RuntimeError):
                structlog.contextvars.reset_contextvars(**log_tokens)
            with contextlib.suppress(ValueError, RuntimeError):
                correlation_id_var.reset(token)

    @contextlib.contextmanager
    def run(self, tracker: JobTracker | None = None, *,
            registry: MetricsRegistry | None = None) -> Iterator[Job]:
        """:meth:`bound` plus ``tracker.run(payload)``: queue wait, run time, outcome.

        The job's exception propagates unchanged after being recorded.
        """
        jobs = _tracker(self.queue, tracker, registry)
        # The run binds the payload's ID (or a new one); bound() then reuses it.
        with jobs.run(self.payload), self.bound():
            yield self

    def ack(self, client: redis.Redis) -> None:
        """``XACK`` a stream job (nothing to do for a list job)."""
        if self.entry_id is not None and self.group is not None:
            client.xack(self.queue.key, self.group, self.entry_id)

    async def ack_async(self, client: redis.asyncio.Redis) -> None:
        """``XACK`` a stream job on a ``redis.asyncio`` client."""
        if self.entry_id is not None and self.group is not None:
            await client.xack(self.queue.key, self.group, self.entry_id)


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _stream_group(spec: QueueSpec, group: str | None) -> str:
    if group is not None:
        return group
    if len(spec.groups) == 1:
        return spec.groups[0]
    raise QueueSpecError(f"dequeue from stream {spec.key!r}: name the consumer group "
                         "(group=..., or a spec like stream:KEY:GROUP)")


def _decode(spec: QueueSpec, raw: Any, registry: MetricsRegistry | None) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
        raise ValueError(f"a job on {spec.name!r} is JSON but not an object")
    except ValueError as exc:
        (registry or default_registry()).failures.failure("queue_payload", exc)
        return {"_raw": raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)}


def _stream_job(spec: QueueSpec, group: str, reply: Any,
                registry: MetricsRegistry | None) -> Job | None:
    # [[key, [(entry_id, {field: value})]]] (RESP2) or {key: [[...]]} (RESP3)
    streams = list(reply.values()) if isinstance(reply, dict) else [s[1] for s in reply or ()]
    for entries in streams:
        for entry_id, fields in entries:
            raw = fields.get(STREAM_PAYLOAD_FIELD.encode(), fields.get(STREAM_PAYLOAD_FIELD))
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            return Job(spec, _decode(spec, raw if raw is not None else b"{}", registry), eid,
                       group)
    return None


def _is_nogroup(exc: Exception) -> bool:
    return str(exc).startswith("NOGROUP")


def ensure_stream_group(client: redis.Redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create ``group`` on ``stream`` (and the stream) if missing; returns whether it was created.

    ``start_id="0"`` delivers entries already in the stream; ``"$"`` only new ones.
    """
    import redis as redis_module

    try:
        client.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except redis_module.ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise


async def ensure_stream_group_async(client: redis.asyncio.Redis, stream: str, group: str,
                                    start_id: str = "0") -> bool:
    """:func:`ensure_stream_group` for a ``redis.asyncio`` client."""
    import redis as redis_module

    try:
        await client.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except redis_module.ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise


def dequeue(client: redis.Redis, queue: QueueSpec | str, timeout: float = 1.0, *,
            group: str | None = None, consumer: str | None = None,
            registry: MetricsRegistry | None = None) -> Job | None:
    """Take the oldest job from a list or stream, waiting up to ``timeout`` seconds; None if none.

    Lists: ``BRPOP`` (``BLPOP`` for ``oldest_end="left"``). Streams:
    ``XREADGROUP`` of one new entry for ``group`` (from the spec when it
    names exactly one) as ``consumer`` (default ``<host>-<pid>``), creating
    the group at ``0`` when it does not exist; acknowledge with
    :meth:`Job.ack`. ``timeout=0`` waits forever. A payload that is not a
    JSON object comes back as ``{"_raw": text}`` and is counted.
    The correlation ID is restored by :meth:`Job.bound` / :meth:`Job.run`.
    """
    import redis as redis_module

    spec = _spec(queue, "dequeue")
    if spec.kind == "list":
        pop = client.brpop if spec.push_left else client.blpop
        reply: Any = pop([spec.key], timeout=timeout)
        return None if reply is None else Job(spec, _decode(spec, reply[1], registry))
    name = _stream_group(spec, group)
    who = consumer or _default_consumer()
    block = None if timeout is None else int(timeout * 1000)
    for attempt in (1, 2):
        try:
            reply = client.xreadgroup(name, who, {spec.key: ">"}, count=1, block=block)
            break
        except redis_module.ResponseError as exc:
            if attempt == 2 or not _is_nogroup(exc):
                raise
            ensure_stream_group(client, spec.key, name)
    return _stream_job(spec, name, reply, registry)


async def dequeue_async(client: redis.asyncio.Redis, queue: QueueSpec | str,
                        timeout: float = 1.0, *, group: str | None = None,
                        consumer: str | None = None,
                        registry: MetricsRegistry | None = None) -> Job | None:
    """:func:`dequeue` for a ``redis.asyncio`` client."""
    import redis as redis_module

    spec = _spec(queue, "dequeue_async")
    if spec.kind == "list":
        pop = client.brpop if spec.push_left else client.blpop
        reply: Any = await pop([spec.key], timeout=timeout)
        return None if reply is None else Job(spec, _decode(spec, reply[1], registry))
    name = _stream_group(spec, group)
    who = consumer or _default_consumer()
    block = None if timeout is None else int(timeout * 1000)
    for attempt in (1, 2):
        try:
            reply = await client.xreadgroup(name, who, {spec.key: ">"}, count=1, block=block)
            break
        except redis_module.ResponseError as exc:
            if attempt == 2 or not _is_nogroup(exc):
                raise
            await ensure_stream_group_async(client, spec.key, name)
    return _stream_job(spec, name, reply, registry)


def work(client: redis.Redis, queue: QueueSpec | str, handler: Callable[[Job], object], *,
         tracker: JobTracker | None = None, group: str | None = None,
         consumer: str | None = None, poll_timeout: float = 1.0,
         stop: threading.Event | None = None, max_jobs: int | None = None,
         registry: MetricsRegistry | None = None) -> int:
    """Run ``handler(job)`` per job until ``stop`` is set or ``max_jobs`` ran; returns the count.

    Each job runs inside :meth:`Job.run` (correlation ID restored, queue
    wait / run time / outcome recorded). A handler exception is recorded as
    a failed job and the loop goes on (a failed stream job is not
    acknowledged: it stays pending for ``XAUTOCLAIM``); a successful stream
    job is acknowledged. Redis errors end the loop (they propagate).
    """
    spec = _spec(queue, "work")
    jobs = _tracker(spec, tracker, registry)
    done = 0
    while (stop is None or not stop.is_set()) and (max_jobs is None or done < max_jobs):
        job = dequeue(client, spec, poll_timeout, group=group, consumer=consumer,
                      registry=jobs.registry)
        if job is None:
            continue
        done += 1
        try:
            with job.run(jobs):
                handler(job)
        except Exception:  # recorded (and logged) by the job run; keep working
            continue
        job.ack(client)
    return done


# ------------------------------------------------------------------------ webhook


_CORRELATION_HEADERS = frozenset({CORRELATION_HEADER.lower(), REQUEST_ID_HEADER.lower()})


def _webhook_request(body: Mapping[str, Any], headers: Mapping[str, str] | None
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    # Never binds: a webhook sent outside a request leaves the caller's context alone.
    sent: dict[str, str] = {}
    header_name = CORRELATION_HEADER
    given: str | None = None
    named = False
    for name, value in (headers or {}).items():
        if name.lower() in _CORRELATION_HEADERS:
            # The caller's own correlation header is validated like an incoming one and
            # sent once, under the caller's name: two would leave the receiver to guess.
            if given is None:
                given = valid_correlation_id(value)
                if given is not None or not named:
                    header_name, named = name, True
            continue
        sent[name] = value
    cid = (given or extract(body, (CORRELATION_ID_FIELD,)) or correlation_id_var.get()
           or new_correlation_id())
    data = dict(body)
    data[CORRELATION_ID_FIELD] = cid
    sent[header_name] = cid
    return data, sent


def _external_call(service: str, operation: str, registry: MetricsRegistry | None) -> Any:
    try:
        from promkit.instrument.external import external_call
    except ImportError:  # pragma: no cover - external calls not available
        return contextlib.nullcontext(None)
    return external_call(service, operation, registry=registry)


def send_webhook(url: str, body: Mapping[str, Any], *, client: httpx.Client | None = None,
                 timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
                 headers: Mapping[str, str] | None = None, service: str = "webhook",
                 operation: str = "deliver", registry: MetricsRegistry | None = None
                 ) -> httpx.Response:
    """POST ``body`` as JSON to ``url`` with the correlation ID; returns the response.

    The current correlation ID (or the body's own valid ``correlation_id``;
    a new one when there is neither) goes in the ``X-Correlation-ID`` header
    and the body's ``correlation_id`` field. A correlation header in
    ``headers`` (``X-Correlation-ID`` or ``X-Request-ID``, any case) is
    validated like an incoming one: a valid ID is used for both, an invalid
    one is replaced; either way exactly one correlation header is sent, under
    the caller's name. The call is recorded by
    :func:`promkit.instrument.external.external_call` as ``service``/``operation``
    (outcome from the status: 429 and 5xx are errors, timeouts are
    timeouts). Transport errors and timeouts raise (after being counted);
    an HTTP error status is returned for the caller to judge. Neither the
    body nor the URL is logged (webhook URLs often hold secrets). ``client``
    is an ``httpx.Client`` to reuse (don't pass one instrumented with
    ``instrument_httpx`` too, or the call counts twice).
    """
    import httpx

    data, sent = _webhook_request(body, headers)
    with _external_call(service, operation, registry) as call:
        if client is None:
            response = httpx.post(url, json=data, headers=sent, timeout=timeout)
        else:
            response = client.post(url, json=data, headers=sent, timeout=timeout)
        if call is not None:
            call.status = response.status_code
    return response


async def send_webhook_async(url: str, body: Mapping[str, Any], *,
                             client: httpx.AsyncClient | None = None,
                             timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
                             headers: Mapping[str, str] | None = None,
                             service: str = "webhook", operation: str = "deliver",
                             registry: MetricsRegistry | None = None) -> httpx.Response:
    """:func:`send_webhook` with an ``httpx.AsyncClient`` (a short-lived one when not given)."""
    import httpx

    data, sent = _webhook_request(body, headers)
    async with _external_call(service, operation, registry) as call:
        if client is None:
            async with httpx.AsyncClient() as own:
                response = await own.post(url, json=data, headers=sent, timeout=timeout)
        else:
            response = await client.post(url, json=data, headers=sent, timeout=timeout)
        if call is not None:
            call.status = response.status_code
    return response

