"""What the queue producer and worker share: the queue argument and its job tracker.

A queue is named by a :class:`~promkit.instrument._redis_specs.QueueSpec` or a
plain key (a list whose oldest item is at the right). Stream jobs are entries
with one field, :data:`STREAM_PAYLOAD_FIELD`, holding the JSON payload.
"""

from __future__ import annotations

from promkit.instrument._redis_specs import QueueSpec, QueueSpecError
from promkit.instrument.jobs import JobTracker
from promkit.instrument.registry import MetricsRegistry

__all__ = ["STREAM_PAYLOAD_FIELD", "queue_spec", "queue_tracker"]

STREAM_PAYLOAD_FIELD = "payload"
"""The stream entry field holding a job's JSON payload."""


def queue_spec(queue: QueueSpec | str, where: str) -> QueueSpec:
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


def queue_tracker(spec: QueueSpec, tracker: JobTracker | None,
                  registry: MetricsRegistry | None) -> JobTracker:
    """``tracker``, or a :class:`~promkit.instrument.jobs.JobTracker` for the queue."""
    return tracker if tracker is not None else JobTracker(registry, queue=spec.name)
