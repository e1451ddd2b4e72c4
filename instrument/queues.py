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

This module is the public face of the three parts, each in its own module:
the producer (:mod:`promkit.instrument._queue_producer`), the worker
(:mod:`promkit.instrument._queue_worker`) and webhooks
(:mod:`promkit.instrument._webhooks`); what producer and worker share is in
:mod:`promkit.instrument._queue_common`.
"""

from __future__ import annotations

from promkit.instrument._queue_common import STREAM_PAYLOAD_FIELD
from promkit.instrument._queue_producer import enqueue, enqueue_async
from promkit.instrument._queue_worker import (
    Job,
    dequeue,
    dequeue_async,
    ensure_stream_group,
    ensure_stream_group_async,
    work,
)
from promkit.instrument._redis_specs import QueueKind, QueueSpec, QueueSpecError, parse_queue_spec
from promkit.instrument._webhooks import DEFAULT_WEBHOOK_TIMEOUT as DEFAULT_WEBHOOK_TIMEOUT
from promkit.instrument._webhooks import send_webhook, send_webhook_async

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
