"""Queue specs, payload stamping and restoring (producer and worker), and the collector's
failure path -- no Redis server needed (integration tests run a real one). The webhook
helper is tested in tests/test_webhooks.py."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import structlog

from promkit.exporters import RedisQueueCollector
from promkit.instrument import MetricsRegistry
from promkit.instrument.catalog import CatalogError
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
    enqueue,
    parse_queue_spec,
    work,
)

# ------------------------------------------------------------------------ specs


@pytest.mark.parametrize(("text", "expected"), [
    ("list:jobs", QueueSpec("list", "jobs")),
    ("list:app:jobs", QueueSpec("list", "app:jobs")),
    ("list:jobs?end=left&age=enqueued_at&name=j",
     QueueSpec("list", "jobs", "j", oldest_end="left", age_field="enqueued_at")),
    ("list:rq:queue:default?age=none&name=default",
     QueueSpec("list", "rq:queue:default", "default", age_field=None)),
    ("stream:events", QueueSpec("stream", "events")),
    ("stream:events:workers", QueueSpec("stream", "events", groups=("workers",))),
    ("stream:app:events:workers", QueueSpec("stream", "app:events", groups=("workers",))),
    ("stream:app:events?group=a&group=b", QueueSpec("stream", "app:events", groups=("a", "b"))),
    ("stream:app:events?group=*", QueueSpec("stream", "app:events")),
    ("zset:delayed", QueueSpec("zset", "delayed")),
    ("zset:delayed?age=score_ms", QueueSpec("zset", "delayed", score_age="score_ms")),
])
def test_parse_valid_specs(text: str, expected: QueueSpec) -> None:
    spec = parse_queue_spec(text)
    assert spec == expected
    assert QueueSpec.parse(text) == spec
    assert spec.name == (expected.name or expected.key)


@pytest.mark.parametrize(("text", "message"), [
    ("jobs", "no type"),
    ("lst:jobs", "unknown type 'lst'"),
    ("list:", "the key is empty"),
    ("list:?name=x", "the key is empty"),
    ("stream:events:", "empty consumer group"),
    ("list:jobs?", "nothing after '?'"),
    ("list:jobs?end", "has no '='"),
    ("list:jobs?end=middle", "end must be 'left' or 'right'"),
    ("list:jobs?group=w", "unknown option 'group' for a list"),
    ("zset:d?age=minutes", "age must be 'none', 'score'"),
    ("zset:d?end=left", "unknown option 'end' for a zset"),
    ("stream:s?age=x", "unknown option 'age' for a stream"),
    ("list:jobs?name=", "empty value"),
    ("list:jobs?name=a&name=b", "'name' given 2 times"),
    ("stream:s?group=a&group=a", "named twice"),
    ("stream:s?group=*&group=a", "cannot be combined"),
    ("list:jobs?age=bad field", "not a plain field name"),
])
def test_parse_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(QueueSpecError) as info:
        parse_queue_spec(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_spec_objects_are_validated() -> None:
    with pytest.raises(QueueSpecError, match="consumer groups apply to streams"):
        QueueSpec("list", "jobs", groups=("g",))
    with pytest.raises(QueueSpecError, match="kind must be one of"):
        QueueSpec("hash", "jobs")  # type: ignore[arg-type]
    with pytest.raises(QueueSpecError, match="key is empty"):
        QueueSpec("list", "")
    assert QueueSpec("list", "jobs").push_left
    assert not QueueSpec("list", "jobs", oldest_end="left").push_left


# -------------------------------------------------------------------- collector


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_collector_rejects_bad_arguments(registry: MetricsRegistry) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(QueueSpecError, match="share the label queue='jobs'"):
        RedisQueueCollector(url, ["list:jobs", "stream:jobs"], registry=registry)
    with pytest.raises(QueueSpecError, match="must be a list of specs"):
        RedisQueueCollector(url, "list:jobs", registry=registry)
    with pytest.raises(QueueSpecError, match="at least one"):
        RedisQueueCollector(url, [], registry=registry)
    with pytest.raises(ValueError, match="timeout"):
        RedisQueueCollector(url, ["list:jobs"], timeout=0, registry=registry)
    with pytest.raises(ValueError, match="no scheme") as info:
        RedisQueueCollector("user:secret@localhost", ["list:jobs"], registry=registry)
    assert "secret" not in str(info.value)
    with pytest.raises(TypeError, match="needs a Redis URL"):
        RedisQueueCollector(object(), ["list:jobs"], registry=registry)


def test_redis_down_scrape_answers_fast_with_up_0(registry: MetricsRegistry,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    collector = RedisQueueCollector(f"redis://127.0.0.1:{closed_port()}/0",
                                    ["list:jobs", "stream:events:workers"], registry=registry)
    cr = registry.collector_registry
    for _ in range(3):
        started = time.perf_counter()
        assert cr.get_sample_value("queue_up", {"queue": "jobs"}) == 0.0
        assert time.perf_counter() - started < 1.0
    assert cr.get_sample_value("queue_up", {"queue": "events"}) == 0.0
    assert cr.get_sample_value("queue_depth", {"queue": "jobs"}) is None
    assert cr.get_sample_value("promkit_instrumentation_errors_total",
                               {"cause": "redis_queue_read:ConnectionError"}) >= 3
    logged = [r for r in caplog.records if "redis_queue_read:ConnectionError" in r.getMessage()]
    assert len(logged) == 1
    collector.close()
    assert cr.get_sample_value("queue_up", {"queue": "jobs"}) is None


def test_one_collector_per_registry_and_clear_collision_error(registry: MetricsRegistry) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    with RedisQueueCollector(url, ["list:a"], registry=registry), \
            pytest.raises(CatalogError, match="one RedisQueueCollector"):
        RedisQueueCollector(url, ["list:b"], registry=registry)
    # closed: the names are free again
    RedisQueueCollector(url, ["list:b"], registry=registry).close()


def test_collector_from_a_client_copies_only_connection_settings() -> None:
    import redis
    import redis.asyncio

    from promkit.exporters._redis_collector import dedicated_client

    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise redis.exceptions.ConnectionError("down")

    for source in (redis.Redis(host="127.0.0.1", port=1234, db=3, password="pw"),
                   redis.asyncio.Redis(host="127.0.0.1", port=1234, db=3, password="pw")):
        client = dedicated_client(source, 0.25)
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
            "127.0.0.1", 1234, 3, "pw")
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
        assert client.connection_pool.connection_class is redis.connection.Connection
        calls.clear()
        with pytest.raises(redis.exceptions.ConnectionError):  # tried once: no retries
            kwargs["retry"].call_with_retry(down, lambda error: None)
        assert len(calls) == 1


# ------------------------------------------------------------ producer / worker


class FakeRedis:
    """Just enough of redis.Redis for lists and streams, no server."""

    def __init__(self) -> None:
        self.lists: dict[str, list[bytes]] = {}
        self.streams: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}
        self.acked: list[tuple[str, str, str]] = []

    def lpush(self, key: str, value: str) -> int:
        items = self.lists.setdefault(key, [])
        items.insert(0, value.encode())
        return len(items)

    def rpush(self, key: str, value: str) -> int:
        items = self.lists.setdefault(key, [])
        items.append(value.encode())
        return len(items)

    def brpop(self, keys: list[str], timeout: float) -> tuple[bytes, bytes] | None:
        items = self.lists.get(keys[0])
        return (keys[0].encode(), items.pop()) if items else None

    def blpop(self, keys: list[str], timeout: float) -> tuple[bytes, bytes] | None:
        items = self.lists.get(keys[0])
        return (keys[0].encode(), items.pop(0)) if items else None

    def pipeline(self, transaction: bool = False) -> Any:
        fake = self
        calls: list[Any] = []

        class Pipe:
            def xadd(self, key: str, fields: dict[str, str]) -> None:
                calls.append(lambda: fake._xadd(key, fields))

            def xlen(self, key: str) -> None:
                calls.append(lambda: len(fake.streams.get(key, [])))

            def execute(self) -> list[Any]:
                return [call() for call in calls]

        return Pipe()

    def _xadd(self, key: str, fields: dict[str, str]) -> bytes:
        entries = self.streams.setdefault(key, [])
        entry_id = f"{int(time.time() * 1000)}-{len(entries)}".encode()
        entries.append((entry_id, {k.encode(): v.encode() for k, v in fields.items()}))
        return entry_id

    def xreadgroup(self, group: str, consumer: str, streams: dict[str, str], count: int,
                   block: int | None) -> Any:
        key = next(iter(streams))
        entries = self.streams.get(key, [])
        if not entries:
            return []
        return [[key.encode(), [entries.pop(0)]]]

    def xack(self, key: str, group: str, entry_id: str) -> int:
        self.acked.append((key, group, entry_id))
        return 1


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


# ---------------------------------------------------------------------- promkit serve


@pytest.mark.parametrize(("argv", "message"), [
    (["--redis-queue", "list:jobs"], "--redis-queue needs --redis-url"),
    (["--redis-url", "redis://127.0.0.1:1/0"], "without any --redis-queue"),
    (["--redis-url", "redis://127.0.0.1:1/0", "--redis-queue", "lst:jobs"],
     "unknown type 'lst'"),
    (["--redis-url", "redis://127.0.0.1:1/0", "--redis-queue", "list:jobs",
      "--redis-timeout", "0"], "--redis-timeout must be"),
])
def test_serve_rejects_bad_redis_options(argv: list[str], message: str,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from promkit.tools.cli import main

    monkeypatch.delenv("PROMKIT_REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "0", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
