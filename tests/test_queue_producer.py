"""The queue producer (promkit.instrument._queue_producer): stamping, pushing, the depth at
enqueue -- on a fake Redis (integration tests run a real one)."""

from __future__ import annotations

import json
import time

from fake_redis import AsyncFakeRedis, FakeRedis

from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import (
    bind_correlation_id,
    get_correlation_id,
    valid_correlation_id,
)
from promkit.instrument.queues import (
    enqueue,
    enqueue_async,
    parse_queue_spec,
)


def sample(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def test_enqueue_stamps_payload_and_records_depth(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    with bind_correlation_id() as cid:
        before = time.time()
        for n in range(3):
            payload = enqueue(client, "jobs", {"text": f"t{n}"}, job_type="tts",  # type: ignore[arg-type]
                              registry=registry)
    assert payload["correlation_id"] == cid
    assert before <= payload["created_at"] <= time.time()
    assert payload["job_type"] == "tts" and payload["queue"] == "jobs"
    assert payload["job_id"]
    stored = json.loads(client.lists["jobs"][0])
    assert stored == payload
    assert sample(registry, "jobs_created_total", queue="jobs", job_type="tts") == 3
    assert sample(registry, "job_enqueue_queue_depth_count", queue="jobs") == 3
    assert sample(registry, "job_enqueue_queue_depth_sum", queue="jobs") == 1 + 2 + 3


def test_enqueue_outside_a_request_gives_each_job_its_own_id(registry: MetricsRegistry) -> None:
    client = FakeRedis()
    first = enqueue(client, "jobs", {}, job_type="x", registry=registry)  # type: ignore[arg-type]
    second = enqueue(client, "jobs", {}, job_type="x", registry=registry)  # type: ignore[arg-type]
    assert valid_correlation_id(first["correlation_id"])
    assert first["correlation_id"] != second["correlation_id"]
    assert get_correlation_id() is None


async def test_enqueue_async_stamps_pushes_and_records_depth_like_enqueue(
        registry: MetricsRegistry) -> None:
    client = AsyncFakeRedis()
    stream = parse_queue_spec("stream:events:workers")
    with bind_correlation_id() as cid:
        listed = await enqueue_async(client, "jobs", {"n": 1}, job_type="t",  # type: ignore[arg-type]
                                     registry=registry)
        streamed = await enqueue_async(client, stream, {"n": 2}, job_type="t",  # type: ignore[arg-type]
                                       registry=registry)
    assert listed["correlation_id"] == streamed["correlation_id"] == cid
    assert json.loads(client.sync.lists["jobs"][0]) == listed
    assert sample(registry, "job_enqueue_queue_depth_sum", queue="jobs") == 1
    assert sample(registry, "job_enqueue_queue_depth_sum", queue="events") == 1
    assert sample(registry, "jobs_created_total", queue="events", job_type="t") == 1
