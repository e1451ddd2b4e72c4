"""The queue worker (promkit.instrument._queue_worker): taking jobs, restoring their context,
the work loop -- on a fake Redis (integration tests run a real one). Webhooks are in
tests/test_webhooks.py."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from fake_redis import AsyncFakeRedis, FakeRedis

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import (
    bind_correlation_id,
    get_correlation_id,
    valid_correlation_id,
)
from promkit.instrument.queues import (
    Job,
    QueueSpec,
    QueueSpecError,
    dequeue,
    dequeue_async,
    enqueue,
    enqueue_async,
    parse_queue_spec,
    work,
)


def sample(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def test_correlation_id_round_trips_through_list(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    with bind_correlation_id() as cid:
        sent = enqueue(client, "jobs", {"n": 1}, job_type="ocr",  # type: ignore[arg-type]
                       registry=registry)
    assert get_correlation_id() is None
    job = dequeue(client, "jobs", registry=registry)  # type: ignore[arg-type]
    assert job is not None and job.payload == sent and job.correlation_id == cid
    with structlog.testing.capture_logs() as logs, job.run(registry=registry):
        assert get_correlation_id() == cid
        ctx = structlog.contextvars.get_contextvars()
        assert ctx["correlation_id"] == cid and ctx["job_id"] == sent["job_id"]
        structlog.get_logger("test").info("inside")
    assert get_correlation_id() is None
    assert "correlation_id" not in structlog.contextvars.get_contextvars()
    assert sample(registry, "job_queue_wait_seconds_count", queue="jobs", job_type="ocr") == 1
    assert any(entry.get("event") == "inside" for entry in logs)


def test_fifo_order_and_left_end(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    for spec in (QueueSpec("list", "r"), QueueSpec("list", "l", oldest_end="left")):
        for n in range(3):
            enqueue(client, spec, {"n": n}, job_type="t", registry=registry)  # type: ignore[arg-type]
        got = [dequeue(client, spec, registry=registry) for _ in range(3)]  # type: ignore[arg-type]
        assert [job.payload["n"] for job in got if job] == [0, 1, 2]


def test_stream_round_trip_and_ack(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    spec = parse_queue_spec("stream:events:workers")
    with bind_correlation_id() as cid:
        enqueue(client, spec, {"n": 1}, job_type="t", registry=registry)  # type: ignore[arg-type]
    assert sample(registry, "job_enqueue_queue_depth_sum", queue="events") == 1
    job = dequeue(client, spec, consumer="c1", registry=registry)  # type: ignore[arg-type]
    assert job is not None and job.correlation_id == cid and job.group == "workers"
    job.ack(client)  # type: ignore[arg-type]
    assert client.acked == [("events", "workers", job.entry_id)]
    with pytest.raises(QueueSpecError, match="name the consumer group"):
        dequeue(client, parse_queue_spec("stream:x"), registry=registry)  # type: ignore[arg-type]
    with pytest.raises(QueueSpecError, match="sorted set"):
        enqueue(client, parse_queue_spec("zset:d"), {}, job_type="t")  # type: ignore[arg-type]


def test_bad_payload_is_counted_not_raised(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    client.lists["jobs"] = [b"not json"]
    job = dequeue(client, "jobs", registry=registry)  # type: ignore[arg-type]
    assert job is not None and job.payload == {"_raw": "not json"}
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="queue_payload:JSONDecodeError") == 1
    with job.bound() as cid:  # a new ID, not an error
        assert valid_correlation_id(cid)
    assert get_correlation_id() is None


def test_work_loop_runs_handlers_and_survives_failures(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    for n in range(3):
        enqueue(client, "jobs", {"n": n}, job_type="t", registry=registry)  # type: ignore[arg-type]
    seen: list[Any] = []

    def handler(job: Job) -> None:
        seen.append((job.payload["n"], get_correlation_id() == job.correlation_id))
        if job.payload["n"] == 1:
            raise RuntimeError("boom")

    ran = work(client, "jobs", handler, max_jobs=3, registry=registry)  # type: ignore[arg-type]
    assert ran == 3 and seen == [(0, True), (1, True), (2, True)]
    assert sample(registry, "jobs_finished_total", queue="jobs", job_type="t",
                  outcome="failure", error_code="RuntimeError") == 1
    assert sample(registry, "jobs_finished_total", queue="jobs", job_type="t",
                  outcome="success", error_code="none") == 2


async def test_dequeue_async_takes_list_and_stream_jobs(registry: MetricsRegistry) -> None:
    client = AsyncFakeRedis()
    stream = parse_queue_spec("stream:events:workers")
    listed = await enqueue_async(client, "jobs", {"n": 1}, job_type="t",  # type: ignore[arg-type]
                                 registry=registry)
    await enqueue_async(client, stream, {"n": 2}, job_type="t",  # type: ignore[arg-type]
                        registry=registry)
    job = await dequeue_async(client, "jobs", registry=registry)  # type: ignore[arg-type]
    assert job is not None and job.payload == listed and job.entry_id is None
    assert await dequeue_async(client, "jobs", registry=registry) is None  # type: ignore[arg-type]
    job = await dequeue_async(client, stream, consumer="c1", registry=registry)  # type: ignore[arg-type]
    assert job is not None and job.payload["n"] == 2 and job.group == "workers"
    await job.ack_async(client)  # type: ignore[arg-type]
    assert client.sync.acked == [("events", "workers", job.entry_id)]
