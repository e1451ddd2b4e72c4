"""The queue producer: :func:`enqueue` / :func:`enqueue_async` stamp a job and push it.

The producer stamps ``job_id``, ``created_at`` (epoch seconds), ``job_type``,
``queue`` and ``correlation_id`` with
:meth:`promkit.instrument.jobs.JobTracker.created`, pushes the JSON payload
onto a Redis list or stream and records the queue depth at enqueue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from promkit.instrument._queue_common import STREAM_PAYLOAD_FIELD, queue_spec, queue_tracker
from promkit.instrument._redis_specs import QueueSpec
from promkit.instrument.jobs import JobTracker
from promkit.instrument.registry import MetricsRegistry

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["enqueue", "enqueue_async"]


def _dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def _stamped(queue: QueueSpec | str, payload: MutableMapping[str, Any], job_type: str,
             tracker: JobTracker | None, registry: MetricsRegistry | None,
             where: str) -> tuple[QueueSpec, JobTracker, str]:
    """The queue, its tracker and the JSON body of ``payload`` once stamped as created."""
    spec = queue_spec(queue, where)
    jobs = queue_tracker(spec, tracker, registry)
    jobs.created(payload, job_type)
    return spec, jobs, _dumps(payload)


def _push(client: Any, spec: QueueSpec, body: str) -> Any:
    """Push ``body``: the reply (an awaitable on an asyncio client), see :func:`_observe_depth`.

    A list's push answers the depth; a stream's ``XADD`` and ``XLEN`` go in one
    round trip, answering ``[entry_id, depth]``.
    """
    if spec.kind == "list":
        push = client.lpush if spec.push_left else client.rpush
        return push(spec.key, body)
    pipe = client.pipeline(transaction=False)
    pipe.xadd(spec.key, {STREAM_PAYLOAD_FIELD: body})
    pipe.xlen(spec.key)
    return pipe.execute()


def _observe_depth(tracker: JobTracker, spec: QueueSpec, reply: Any) -> None:
    registry = tracker.registry
    try:
        depth = float(reply if spec.kind == "list" else reply[1])
        registry.histogram("job_enqueue_queue_depth").labels(tracker.queue).observe(depth)
    except Exception as exc:
        registry.failures.failure("queue_enqueue_depth", exc)


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
    spec, jobs, body = _stamped(queue, payload, job_type, tracker, registry, "enqueue")
    _observe_depth(jobs, spec, _push(client, spec, body))
    return payload


async def enqueue_async(client: redis.asyncio.Redis, queue: QueueSpec | str,
                        payload: MutableMapping[str, Any], *, job_type: str,
                        tracker: JobTracker | None = None,
                        registry: MetricsRegistry | None = None) -> MutableMapping[str, Any]:
    """:func:`enqueue` for a ``redis.asyncio`` client."""
    spec, jobs, body = _stamped(queue, payload, job_type, tracker, registry, "enqueue_async")
    _observe_depth(jobs, spec, await _push(client, spec, body))
    return payload
