"""RedisQueueCollector: queue depth, age, stream pending and lag, read from Redis at scrape time.

Each scrape reads every queue in one pipelined round trip (a second one for
streams with consumer groups, to find their oldest waiting entry) on a
dedicated client whose socket timeouts are the scrape timeout and which never
retries. The read runs on a helper thread and the scrape waits for it at most
``timeout`` seconds, so a Redis that is down, slow or blocked (``DEBUG
SLEEP``) costs a scrape at most ``timeout``: the queues then report
``queue_up 0`` and no other series, the failure is counted in
``promkit_instrumentation_errors_total{cause="redis_queue_read:..."}`` and
logged once per cause. A read still running when the next scrape comes is
shared, never duplicated, so a stuck Redis cannot pile up threads or
connections.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from promkit.instrument.catalog import CatalogError
from promkit.instrument.queues import QueueSpec, QueueSpecError, parse_queue_spec
from promkit.instrument.registry import MetricsRegistry, default_registry

if TYPE_CHECKING:
    import redis

__all__ = ["QueueReading", "RedisQueueCollector", "dedicated_client"]

DEPTH = "queue_depth"
AGE = "queue_oldest_item_age_seconds"
PENDING = "queue_stream_pending"
LAG = "queue_stream_lag"
UP = "queue_up"
_FAMILIES = (DEPTH, AGE, PENDING, LAG, UP)

# Connection settings copied from a caller's client into the dedicated one.
_CONNECTION_KEYS = (
    "host", "port", "db", "username", "password", "credential_provider", "path",
    "client_name", "protocol", "encoding", "encoding_errors",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path",
    "ssl_ca_data", "ssl_check_hostname", "ssl_password", "ssl_min_version", "ssl_ciphers",
)


@dataclass
class QueueReading:
    """What one scrape read about one queue (``up`` False: nothing else is known)."""

    up: bool
    depth: float | None = None
    oldest_age: float | None = None
    pending: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)


def dedicated_client(client_or_url: Any, timeout: float) -> redis.Redis:
    """A sync ``redis.Redis`` for scrape-time reads: socket timeouts ``timeout``, no retries.

    From a URL, or from the connection settings (host, port, db, credentials,
    TLS) of an existing sync or asyncio client, whose own pool, timeouts and
    retry policy stay untouched.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    settings: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    # No CLIENT SETINFO round trips on connect: one more read that could stall.
    settings.update(_NO_SETINFO if _NO_SETINFO is not None else _no_setinfo())
    if isinstance(client_or_url, str):
        if "://" not in client_or_url:
            # The URL is not echoed: it may hold a password.
            raise ValueError("the Redis URL has no scheme; write redis://HOST:PORT/DB "
                             "(or rediss://, unix://)")
        pool: Any = redis.ConnectionPool.from_url(client_or_url, max_connections=4, **settings)
        return redis.Redis(connection_pool=pool)
    source_pool = getattr(client_or_url, "connection_pool", None)
    kwargs = getattr(source_pool, "connection_kwargs", None)
    if source_pool is None or not isinstance(kwargs, dict):
        raise TypeError(
            f"RedisQueueCollector needs a Redis URL or a redis.Redis / redis.asyncio.Redis "
            f"client, not {type(client_or_url).__name__} (cluster and sentinel clients: "
            "pass the URL of the node holding the queues)")
    # An asyncio client's connection classes have sync twins of the same name.
    import redis.connection as sync_connection

    cls_name = source_pool.connection_class.__name__
    connection_class = getattr(sync_connection, cls_name, None)
    if connection_class is None:
        raise TypeError(f"cannot make a scrape client from a pool of {cls_name} connections; "
                        "pass a Redis URL instead")
    copied = {key: kwargs[key] for key in _CONNECTION_KEYS if key in kwargs}
    pool = redis.ConnectionPool(connection_class=connection_class, max_connections=4,
                                **copied, **settings)
    return redis.Redis(connection_pool=pool)


_NO_SETINFO: dict[str, Any] | None = None


def _no_setinfo() -> dict[str, Any]:
    global _NO_SETINFO
    import redis.connection

    base = getattr(redis.connection, "AbstractConnection", redis.connection.Connection)
    params = inspect.signature(base.__init__).parameters
    # redis-py 8 turns it off with driver_info=None (lib_name is deprecated there).
    _NO_SETINFO = ({"driver_info": None} if "driver_info" in params
                   else {"lib_name": None, "lib_version": None})
    return _NO_SETINFO


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _id_seconds(entry_id: Any) -> float | None:
    """Epoch seconds of a stream entry ID (``<ms>-<seq>``), None when it is not one."""
    if entry_id is None:
        return None
    ms, _, _ = _text(entry_id).partition("-")
    try:
        return int(ms) / 1000.0
    except ValueError:
        return None


def _timestamp(value: object) -> float | None:
    """Epoch seconds from a number, a numeric string or an ISO 8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


class _PayloadAgeError(ValueError):
    """A list item carries no usable enqueue time (counted, logged once)."""


class RedisQueueCollector(Collector):
    """Report Redis queue depth and age at scrape time (a prometheus-client collector).

    ``client_or_url`` is a Redis URL or a ``redis.Redis`` / ``redis.asyncio.Redis``
    client (only its connection settings are used: reads go through a
    dedicated client with socket timeouts of ``timeout`` seconds and no
    retries). ``queues`` are :class:`QueueSpec` objects or spec strings
    (``list:jobs``, ``stream:events:workers``, ``zset:delayed?age=score``).
    ``registry`` (default: the process-wide one) supplies the help texts and
    the failure counter, and the collector registers itself on its
    ``collector_registry`` unless ``register=False``.

    Series, by queue label: ``queue_depth`` (LLEN, XLEN, ZCARD),
    ``queue_oldest_item_age_seconds`` (lists: the ``created_at`` of the oldest
    JSON item; streams with groups: the oldest entry not yet acknowledged or
    not yet delivered in any reported group; streams without groups: the
    first entry; sorted sets: the lowest score, when it is a time),
    ``queue_stream_pending`` and ``queue_stream_lag`` per group, and
    ``queue_up`` (1 read, 0 failed or timed out). An empty queue has age 0.
    """

    def __init__(self, client_or_url: Any, queues: Sequence[QueueSpec | str], *,
                 timeout: float = 0.5, registry: MetricsRegistry | None = None,
                 register: bool = True, clock: Callable[[], float] = time.time) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
                0 < timeout <= 30):
            raise ValueError(f"timeout must be seconds in (0, 30], not {timeout!r}")
        if isinstance(queues, (str, QueueSpec)):
            raise QueueSpecError("queues must be a list of specs, e.g. ['list:jobs'], "
                                 f"not the single spec {str(queues)!r}")
        specs = [q if isinstance(q, QueueSpec) else parse_queue_spec(q) for q in queues]
        if not specs:
            raise QueueSpecError("RedisQueueCollector needs at least one queue spec")
        seen: dict[str, QueueSpec] = {}
        for spec in specs:
            if spec.name in seen:
                raise QueueSpecError(f"two queues would share the label queue={spec.name!r} "
                                     f"({seen[spec.name]} and {spec}); set name= on one")
            seen[spec.name] = spec
        self.specs: tuple[QueueSpec, ...] = tuple(specs)
        self.timeout = float(timeout)
        self.registry = registry if registry is not None else default_registry()
        self._clock = clock
        self._client = dedicated_client(client_or_url, self.timeout)
        self._lock = threading.Lock()
        self._inflight: Future[dict[str, QueueReading]] | None = None
        self._registered = False
        if register:
            self.register()

    # -- registration -------------------------------------------------------------------

    def register(self) -> None:
        """Register on the registry's collector registry (done by the constructor by default)."""
        if self._registered:
            return
        try:
            self.registry.collector_registry.register(self)
        except ValueError as exc:
            raise CatalogError(
                f"cannot register the Redis queue collector: {exc}. Another collector already "
                "exports the queue_* metrics on this registry; put every queue of one Redis in "
                "one RedisQueueCollector (or give each its own CollectorRegistry)") from None
        self._registered = True

    def close(self) -> None:
        """Unregister and close the dedicated client's connections."""
        if self._registered:
            self._registered = False
            with contextlib.suppress(KeyError):
                self.registry.collector_registry.unregister(self)
        try:
            self._client.close()
            self._client.connection_pool.disconnect()
        except Exception as exc:
            self.registry.failures.failure("redis_queue_close", exc)

    def __enter__(self) -> RedisQueueCollector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- prometheus-client collector protocol ---------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        try:
            readings = self.read()
            return self._render(readings)
        except Exception as exc:  # pragma: no cover - last line of defence
            self.registry.failures.failure("redis_queue_collect", exc)
            return []

    def _families(self) -> list[GaugeMetricFamily]:
        catalog = self.registry.catalog

        def family(name: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
            spec = catalog.get(name)
            help_text = spec.help if spec is not None else name
            return GaugeMetricFamily(name, help_text, labels=labels, unit=unit)

        return [family(DEPTH, ["queue"]), family(AGE, ["queue"], "seconds"),
                family(PENDING, ["queue", "group"]), family(LAG, ["queue", "group"]),
                family(UP, ["queue"])]

    def _render(self, readings: dict[str, QueueReading]) -> list[GaugeMetricFamily]:
        depth, age, pending, lag, up = families = self._families()
        for spec in self.specs:
            reading = readings.get(spec.name, QueueReading(False))
            name = spec.name
            up.add_metric([name], 1.0 if reading.up else 0.0)
            if not reading.up:
                continue
            if reading.depth is not None:
                depth.add_metric([name], reading.depth)
            if reading.oldest_age is not None:
                age.add_metric([name], reading.oldest_age)
            for group, value in reading.pending.items():
                pending.add_metric([name, group], value)
            for group, value in reading.lag.items():
                lag.add_metric([name, group], value)
        return families

    # -- reading --------------------------------------------------------------------------

    def read(self) -> dict[str, QueueReading]:
        """Read every queue now (at most ``timeout`` seconds); never raises.

        Returns a reading per queue label; on any connection error or timeout
        every queue reads as down.
        """
        deadline = time.monotonic() + self.timeout
        with self._lock:
            future = self._inflight
            if future is None or future.done():
                future = Future()
                self._inflight = future
                thread = threading.Thread(target=self._read_into, args=(future,),
                                          name="promkit-redis-queues", daemon=True)
                thread.start()
        try:
            return future.result(max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            self.registry.failures.failure(
                "redis_queue_read",
                TimeoutError(f"Redis did not answer within {self.timeout:g} s"),
                "queues reported with queue_up 0")
        except Exception as exc:
            self.registry.failures.failure("redis_queue_read", exc,
                                           "queues reported with queue_up 0")
        return {spec.name: QueueReading(False) for spec in self.specs}

    def _read_into(self, future: Future[dict[str, QueueReading]]) -> None:
        if not future.set_running_or_notify_cancel():  # pragma: no cover
            return
        try:
            future.set_result(self._read_all())
        except BaseException as exc:
            future.set_exception(exc)

    def _read_all(self) -> dict[str, QueueReading]:
        pipe = self._client.pipeline(transaction=False)
        slices: list[tuple[QueueSpec, int, int]] = []
        count = 0
        for spec in self.specs:
            start = count
            if spec.kind == "list":
                pipe.llen(spec.key)
                count += 1
                if spec.age_field is not None:
                    pipe.lindex(spec.key, -1 if spec.oldest_end == "right" else 0)
                    count += 1
            elif spec.kind == "zset":
                pipe.zcard(spec.key)
                count += 1
                if spec.score_age != "none":
                    pipe.zrange(spec.key, 0, 0, withscores=True)
                    count += 1
            else:
                pipe.xlen(spec.key)
                pipe.xinfo_groups(spec.key)
                pipe.xrange(spec.key, "-", "+", count=1)
                count += 3
            slices.append((spec, start, count))
        replies = pipe.execute(raise_on_error=False)
        now = self._clock()
        readings: dict[str, QueueReading] = {}
        followups: list[tuple[QueueSpec, QueueReading, list[tuple[str, str | None, bool]]]] = []
        for spec, start, end in slices:
            part = replies[start:end]
            try:
                reading, groups = self._parse(spec, part, now)
            except Exception as exc:
                self.registry.failures.failure("redis_queue_read", exc, f"queue {spec.name!r}")
                reading, groups = QueueReading(False), []
            readings[spec.name] = reading
            if groups:
                followups.append((spec, reading, groups))
        if followups:
            self._stream_ages(followups, now)
        return readings

    def _parse(self, spec: QueueSpec, part: list[Any], now: float
               ) -> tuple[QueueReading, list[tuple[str, str | None, bool]]]:
        if isinstance(part[0], Exception):
            raise part[0]
        reading = QueueReading(True, depth=float(part[0]))
        if spec.kind == "list":
            if spec.age_field is not None:
                reading.oldest_age = self._list_age(spec, part[1], now)
            return reading, []
        if spec.kind == "zset":
            if spec.score_age != "none":
                reply = part[1]
                if isinstance(reply, Exception):
                    raise reply
                if not reply:
                    reading.oldest_age = 0.0
                else:
                    score = float(reply[0][1])
                    seconds = score / 1000.0 if spec.score_age == "score_ms" else score
                    reading.oldest_age = max(0.0, now - seconds)
            return reading, []
        # stream: XLEN, XINFO GROUPS, XRANGE - + COUNT 1
        infos, first = part[1], part[2]
        if isinstance(infos, Exception):
            if "no such key" not in str(infos).lower():
                raise infos
            infos = []  # the stream does not exist (yet): empty
        if isinstance(first, Exception):
            raise first
        by_name = {_text(info.get("name")): info for info in infos}
        wanted = spec.groups or tuple(by_name)
        groups: list[tuple[str, str | None, bool]] = []
        for group in wanted:
            info = by_name.get(group)
            if info is None:
                continue  # a configured group not created yet: no series for it
            pending = float(info.get("pending") or 0)
            reading.pending[group] = pending
            lag = info.get("lag")
            if lag is not None:
                reading.lag[group] = float(lag)
            last = info.get("last-delivered-id")
            groups.append((group, _text(last) if last is not None else None, pending > 0))
        if not groups:
            stamp = _id_seconds(first[0][0]) if first else None
            reading.oldest_age = 0.0 if stamp is None else max(0.0, now - stamp)
        return reading, groups

    def _list_age(self, spec: QueueSpec, item: Any, now: float) -> float | None:
        if isinstance(item, Exception):
            raise item
        if item is None:
            return 0.0  # empty list
        try:
            data = json.loads(item)
            value = data.get(spec.age_field) if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError):
            value = None
        seconds = _timestamp(value)
        if seconds is None:
            self.registry.failures.failure(
                "redis_queue_age", _PayloadAgeError(
                    f"the oldest item of list {spec.name!r} is not a JSON object with a "
                    f"{spec.age_field!r} time; no age reported (use ?age=none to stop this)"))
            return None
        return max(0.0, now - seconds)

    def _stream_ages(self, followups: list[tuple[QueueSpec, QueueReading,
                                                 list[tuple[str, str | None, bool]]]],
                     now: float) -> None:
        """Second round trip: the oldest waiting entry of each stream across its groups."""
        pipe = self._client.pipeline(transaction=False)
        plan: list[tuple[QueueReading, int, int]] = []
        count = 0
        for spec, reading, groups in followups:
            start = count
            for group, last, has_pending in groups:
                if has_pending:
                    pipe.xpending(spec.key, group)
                    count += 1
                if last is not None:
                    pipe.xrange(spec.key, f"({last}", "+", count=1)
                    count += 1
            plan.append((reading, start, count))
        replies = pipe.execute(raise_on_error=False)
        for reading, start, end in plan:
            stamps: list[float] = []
            for reply in replies[start:end]:
                if isinstance(reply, Exception):
                    continue  # e.g. exclusive ranges before Redis 6.2: no age
                if isinstance(reply, dict):
                    stamp = _id_seconds(reply.get("min"))
                elif reply:
                    stamp = _id_seconds(reply[0][0])
                else:
                    stamp = None
                if stamp is not None:
                    stamps.append(stamp)
            reading.oldest_age = max(0.0, now - min(stamps)) if stamps else 0.0

    def __repr__(self) -> str:
        return f"<RedisQueueCollector {', '.join(str(s) for s in self.specs)}>"
