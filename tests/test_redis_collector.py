"""The Redis queue collector's failure paths and arguments, and ``promkit serve``'s Redis
options -- no Redis server needed (integration tests run a real one)."""

from __future__ import annotations

import socket
import time

import pytest

from promkit.exporters import RedisQueueCollector
from promkit.instrument import MetricsRegistry
from promkit.instrument.catalog import CatalogError
from promkit.instrument.queues import (
    QueueSpecError,
)

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
