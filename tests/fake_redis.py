"""A fake Redis client for the queue producer and worker tests: lists and streams, no server."""

from __future__ import annotations

import time
from typing import Any


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


class AsyncFakeRedis:
    """:class:`FakeRedis` in ``redis.asyncio``'s shape: commands and a pipeline's execute
    are awaited; ``sync`` is the FakeRedis holding the data."""

    def __init__(self, sync: FakeRedis | None = None) -> None:
        self.sync = sync if sync is not None else FakeRedis()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)

        async def command(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return command

    def pipeline(self, transaction: bool = False) -> Any:
        pipe = self.sync.pipeline(transaction)

        class Pipe:
            def xadd(self, key: str, fields: dict[str, str]) -> None:
                pipe.xadd(key, fields)

            def xlen(self, key: str) -> None:
                pipe.xlen(key)

            async def execute(self) -> list[Any]:
                result: list[Any] = pipe.execute()
                return result

        return Pipe()
