"""Redis queues against a real redis-server: depth, age, stream groups, outages, the
correlation ID through enqueue -> dequeue, and `promkit serve --redis-queue` scraped by a
real Prometheus."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from promkit.exporters import RedisQueueCollector, start_metrics_server
from promkit.instrument import MetricsRegistry
from promkit.instrument.correlation import bind_correlation_id, get_correlation_id
from promkit.instrument.queues import (
    dequeue,
    dequeue_async,
    enqueue,
    enqueue_async,
    ensure_stream_group,
    parse_queue_spec,
)

from ._servers import (
    REPO_ROOT,
    ManagedProcess,
    PrometheusServer,
    RedisServer,
    free_port,
    wait_http_ready,
    wait_until,
)

pytest.importorskip("redis")


@pytest.fixture
def registry() -> MetricsRegistry:
    return MetricsRegistry(CollectorRegistry())


def value(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)




def test_depth_of_list_stream_and_zset_while_jobs_wait(redis_server: RedisServer,
                                                       registry: MetricsRegistry) -> None:
    client = redis_server.client()
    stream = parse_queue_spec("stream:events:workers")
    ensure_stream_group(client, "events", "workers")
    now = time.time()
    client.zadd("delayed", {"a": now - 30, "b": now - 10, "c": now})
    collector = RedisQueueCollector(redis_server.url, [
        "list:jobs", stream, "zset:delayed?age=score", "list:empty"], registry=registry)
    for n in range(5):
        enqueue(client, "jobs", {"n": n}, job_type="t", registry=registry)
    for n in range(4):
        enqueue(client, stream, {"n": n}, job_type="t", registry=registry)

    assert value(registry, "queue_depth", queue="jobs") == 5
    assert value(registry, "queue_depth", queue="events") == 4
    assert value(registry, "queue_depth", queue="delayed") == 3
    assert value(registry, "queue_depth", queue="empty") == 0
    assert value(registry, "queue_oldest_item_age_seconds", queue="empty") == 0
    assert value(registry, "queue_stream_pending", queue="events", group="workers") == 0
    assert value(registry, "queue_stream_lag", queue="events", group="workers") == 4
    assert 30 <= value(registry, "queue_oldest_item_age_seconds", queue="delayed") < 40
    for name in ("jobs", "events", "delayed", "empty"):
        assert value(registry, "queue_up", queue=name) == 1

    assert dequeue(client, "jobs", registry=registry) is not None
    assert value(registry, "queue_depth", queue="jobs") == 4

    # delivered but not acknowledged: pending 1, lag 3; XLEN is still 4
    job = dequeue(client, stream, consumer="c1", registry=registry)
    assert job is not None and job.payload["n"] == 0
    assert value(registry, "queue_stream_pending", queue="events", group="workers") == 1
    assert value(registry, "queue_stream_lag", queue="events", group="workers") == 3
    job.ack(client)
    assert value(registry, "queue_stream_pending", queue="events", group="workers") == 0
    assert value(registry, "queue_depth", queue="events") == 4
    assert value(registry, "job_enqueue_queue_depth_sum", queue="jobs") == 1 + 2 + 3 + 4 + 5
    collector.close()


def test_streams_report_every_group_when_none_is_named(redis_server: RedisServer,
                                                       registry: MetricsRegistry) -> None:
    client = redis_server.client()
    for _ in range(3):
        client.xadd("s", {"payload": "{}"})
    client.xgroup_create("s", "fast", id="0")
    client.xgroup_create("s", "slow", id="$")
    client.xreadgroup("fast", "c", {"s": ">"}, count=2)
    RedisQueueCollector(redis_server.url, ["stream:s"], registry=registry)
    assert value(registry, "queue_stream_pending", queue="s", group="fast") == 2
    assert value(registry, "queue_stream_lag", queue="s", group="fast") == 1
    assert value(registry, "queue_stream_pending", queue="s", group="slow") == 0
    assert value(registry, "queue_stream_lag", queue="s", group="slow") == 0


def test_oldest_age_grows_while_a_job_waits(redis_server: RedisServer,
                                            registry: MetricsRegistry) -> None:
    client = redis_server.client()
    spec = parse_queue_spec("stream:ev:g")
    ensure_stream_group(client, "ev", "g")
    enqueue(client, "jobs", {}, job_type="t", registry=registry)
    enqueue(client, spec, {}, job_type="t", registry=registry)
    RedisQueueCollector(redis_server.url, ["list:jobs", spec], registry=registry)
    first = {q: value(registry, "queue_oldest_item_age_seconds", queue=q) for q in ("jobs", "ev")}
    time.sleep(1.2)
    for queue in ("jobs", "ev"):
        later = value(registry, "queue_oldest_item_age_seconds", queue=queue)
        assert later is not None and first[queue] is not None
        assert later >= first[queue] + 1.0, queue
    # once the only entry is delivered and acknowledged, nothing waits: age 0
    job = dequeue(client, spec, registry=registry)
    assert job is not None
    assert value(registry, "queue_oldest_item_age_seconds", queue="ev") >= 1.0  # pending
    job.ack(client)
    assert value(registry, "queue_oldest_item_age_seconds", queue="ev") == 0


def test_stopped_redis_scrape_answers_fast_with_up_0(redis_server: RedisServer,
                                                     registry: MetricsRegistry) -> None:
    client = redis_server.client()
    enqueue(client, "jobs", {}, job_type="t", registry=registry)
    RedisQueueCollector(redis_server.url, ["list:jobs", "stream:ev:g"], registry=registry)
    assert value(registry, "queue_up", queue="jobs") == 1
    redis_server.stop()
    for _ in range(3):
        started = time.perf_counter()
        text = generate_latest(registry.collector_registry).decode()
        assert time.perf_counter() - started < 1.0
        assert 'queue_up{queue="jobs"} 0.0' in text
        assert 'queue_up{queue="ev"} 0.0' in text
        assert "queue_depth{" not in text
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="redis_queue_read:ConnectionError") >= 3


def test_debug_sleep_scrape_answers_fast_over_http(debug_redis: RedisServer,
                                                   registry: MetricsRegistry) -> None:
    import redis

    client = debug_redis.client()
    enqueue(client, "jobs", {}, job_type="t", registry=registry)
    RedisQueueCollector(debug_redis.url, ["list:jobs"], registry=registry, timeout=0.5)
    probe = redis.Redis.from_url(debug_redis.url, socket_timeout=0.05)

    def redis_is_asleep() -> bool:
        try:
            probe.ping()
        except redis.TimeoutError:
            return True
        return False

    with start_metrics_server(0, registry=registry) as server:
        assert 'queue_up{queue="jobs"} 1.0' in httpx.get(server.url).text
        sleeper = threading.Thread(
            target=lambda: debug_redis.client().execute_command("DEBUG", "SLEEP", "5"))
        sleeper.start()
        try:
            wait_until(redis_is_asleep, timeout=5, interval=0.01, what="Redis in DEBUG SLEEP")
            for _ in range(3):
                started = time.perf_counter()
                response = httpx.get(server.url, timeout=5)
                elapsed = time.perf_counter() - started
                assert sleeper.is_alive(), "Redis woke before the scrapes were done"
                assert response.status_code == 200
                assert 'queue_up{queue="jobs"} 0.0' in response.text
                assert elapsed < 1.0, elapsed
        finally:
            sleeper.join()
            probe.close()
        # Redis is back: the next scrape reads again
        assert 'queue_up{queue="jobs"} 1.0' in httpx.get(server.url).text


def test_correlation_id_round_trips_enqueue_to_dequeue(redis_server: RedisServer,
                                                       registry: MetricsRegistry) -> None:
    client = redis_server.client()
    with bind_correlation_id() as cid:
        sent = enqueue(client, "jobs", {"text": "hi"}, job_type="ocr", registry=registry)
    assert get_correlation_id() is None
    job = dequeue(client, "jobs", timeout=1, registry=registry)
    assert job is not None and job.payload == sent
    with job.run(registry=registry) as running:
        assert get_correlation_id() == cid == running.correlation_id
    assert get_correlation_id() is None
    assert value(registry, "job_queue_wait_seconds_count", queue="jobs", job_type="ocr") == 1


async def test_async_helpers_round_trip(redis_server: RedisServer,
                                        registry: MetricsRegistry) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis(host=redis_server.host, port=redis_server.port)
    spec = parse_queue_spec("stream:aev:workers")
    try:
        with bind_correlation_id() as cid:
            await enqueue_async(client, "ajobs", {"n": 1}, job_type="t", registry=registry)
            await enqueue_async(client, spec, {"n": 2}, job_type="t", registry=registry)
        listed = await dequeue_async(client, "ajobs", registry=registry)
        streamed = await dequeue_async(client, spec, registry=registry)  # creates the group
        assert listed is not None and listed.correlation_id == cid
        assert streamed is not None and streamed.correlation_id == cid
        await streamed.ack_async(client)
        assert await dequeue_async(client, "ajobs", timeout=0.1, registry=registry) is None
    finally:
        await client.aclose()


def test_promkit_serve_redis_queue_scraped_by_prometheus(
        redis_server: RedisServer, prometheus: Callable[..., PrometheusServer],
        tmp_path: Path) -> None:
    client = redis_server.client()
    for n in range(3):
        enqueue(client, "jobs", {"n": n}, job_type="t", registry=MetricsRegistry(
            CollectorRegistry()))
    port = free_port()
    argv = [sys.executable, "-m", "promkit", "serve", "--port", str(port),
            "--redis-url", redis_server.url, "--redis-queue", "list:jobs",
            "--redis-queue", "stream:events:workers"]
    env: dict[str, Any] = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    process = ManagedProcess.start("promkit-serve", argv, tmp_path / "serve.log", env=env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http_ready(process, url, 15.0)
        assert 'queue_depth{queue="jobs"} 3.0' in httpx.get(url).text
        server = prometheus(targets=[f"127.0.0.1:{port}"])
        server.client.wait_for_targets_up(timeout=20)
        assert server.wait_for_value('queue_depth{queue="jobs"}', lambda v: v == 3) == 3
        assert server.wait_for_value('queue_up{queue="events"}', lambda v: v == 1) == 1
        client.rpop("jobs")
        server.wait_for_value('queue_depth{queue="jobs"}', lambda v: v == 2)
        redis_server.stop()
        server.wait_for_value('queue_up{queue="jobs"}', lambda v: v == 0)
        # the exporter itself stays up while Redis is gone
        assert server.wait_for_value('up{job="app"}', lambda v: v == 1) == 1
    finally:
        process.stop()
