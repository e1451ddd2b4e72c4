"""The queue worker: :func:`dequeue` / :func:`work` take jobs and run them as a :class:`Job`.

The worker restores the producer's correlation ID (contextvar, structlog
contextvars, current span attribute) and runs the job under
:meth:`~promkit.instrument.jobs.JobTracker.run` (queue wait, run time,
outcome). Lists are popped with ``BRPOP``/``BLPOP``, streams read with
``XREADGROUP`` (the group created when missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promkit.instrument._job_run import JobContext
from promkit.instrument._queue_common import STREAM_PAYLOAD_FIELD, queue_spec, queue_tracker
from promkit.instrument._redis_specs import QueueSpec, QueueSpecError
from promkit.instrument.correlation import extract
from promkit.instrument.jobs import JobTracker
from promkit.instrument.registry import MetricsRegistry, default_registry

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "Job",
    "dequeue",
    "dequeue_async",
    "ensure_stream_group",
    "ensure_stream_group_async",
    "work",
]


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
        return extract(self.payload)

    @property
    def job_type(self) -> str | None:
        value = self.payload.get("job_type")
        return value if isinstance(value, str) else None

    def bound(self) -> JobContext:
        """Bind the job's context for the block (``with job.bound() as cid``), no metrics.

        The correlation ID (the payload's when valid, else the one already
        bound, else a new one) in
        :data:`~promkit.instrument.correlation.correlation_id_var`, which is
        structlog's context too, ``job_id`` in structlog's contextvars (so plain
        structlog set-ups log both), and the correlation attribute of the
        current span if one is recording: what :meth:`run` and every job run
        bind. Everything is restored when the block ends.
        """
        return JobContext(self.payload)

    @contextlib.contextmanager
    def run(self, tracker: JobTracker | None = None, *,
            registry: MetricsRegistry | None = None) -> Iterator[Job]:
        """Run the job under ``tracker.run(payload)``: its context bound as by :meth:`bound`,
        queue wait, run time and outcome recorded.

        The job's exception propagates unchanged after being recorded.
        """
        with queue_tracker(self.queue, tracker, registry).run(self.payload):
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


def _pop(client: Any, spec: QueueSpec, timeout: float) -> Any:
    """Pop the oldest item of a list job queue: the reply (an awaitable on an asyncio client)."""
    pop = client.brpop if spec.push_left else client.blpop
    return pop([spec.key], timeout=timeout)


def _list_job(spec: QueueSpec, reply: Any, registry: MetricsRegistry | None) -> Job | None:
    return None if reply is None else Job(spec, _decode(spec, reply[1], registry))


def _stream_read(spec: QueueSpec, group: str | None, consumer: str | None,
                 timeout: float | None) -> tuple[str, str, int | None]:
    """``XREADGROUP``'s group, consumer and block (ms) for one new entry of ``spec``."""
    block = None if timeout is None else int(timeout * 1000)
    return _stream_group(spec, group), consumer or _default_consumer(), block


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

    spec = queue_spec(queue, "dequeue")
    if spec.kind == "list":
        return _list_job(spec, _pop(client, spec, timeout), registry)
    name, who, block = _stream_read(spec, group, consumer, timeout)
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

    spec = queue_spec(queue, "dequeue_async")
    if spec.kind == "list":
        return _list_job(spec, await _pop(client, spec, timeout), registry)
    name, who, block = _stream_read(spec, group, consumer, timeout)
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
    spec = queue_spec(queue, "work")
    jobs = queue_tracker(spec, tracker, registry)
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
