"""The exporter server's connection slots: admission, idle and busy, eviction.

Connections are slots (``ServerLimits.max_connections``). A connection whose
current request is not fully received — a new one that has sent nothing, a
keep-alive one between requests, one part-way through its headers or body —
is idle; one whose request is being answered is busy. A new connection at
capacity evicts the connection idle the longest (closed without a response),
so silent or slow clients cannot lock scrapes out; only when every slot is
busy is it refused (the server answers 503).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Connection", "ConnectionSlots", "drop"]


@dataclass(eq=False)
class Connection:
    """One accepted connection: its task and writer, and whether to abort it on the way out."""

    task: asyncio.Task[Any]
    writer: asyncio.StreamWriter
    abort: bool = field(default=False)


class ConnectionSlots:
    """The connections holding a slot, and those of them that are idle, the longest-idle first."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.evicted = 0
        """Connections evicted so far to make room for new ones."""
        self._open: set[Connection] = set()
        # Insertion order: a connection re-enters at the end when it becomes idle again.
        self._idle: OrderedDict[Connection, None] = OrderedDict()

    @property
    def open(self) -> int:
        """Connections holding a slot (idle or busy)."""
        return len(self._open)

    @property
    def idle(self) -> int:
        """Connections holding a slot whose current request is not fully received."""
        return len(self._idle)

    def admit(self, connection: Connection) -> bool:
        """Give ``connection`` a slot, evicting the longest-idle one at capacity."""
        if len(self._open) >= self.max_connections:
            if not self._idle:
                return False  # every slot is answering a request
            victim, _ = self._idle.popitem(last=False)
            self._open.discard(victim)
            drop(victim)
            self.evicted += 1
        self._open.add(connection)
        return True

    def release(self, connection: Connection) -> None:
        """Free ``connection``'s slot (it is closing)."""
        self._open.discard(connection)
        self._idle.pop(connection, None)

    def set_idle(self, connection: Connection) -> None:
        self._idle.pop(connection, None)
        self._idle[connection] = None

    def set_busy(self, connection: Connection) -> None:
        self._idle.pop(connection, None)


def drop(connection: Connection) -> None:
    """Close ``connection`` now, without a response, and end its task."""
    connection.abort = True
    # Aborting the transport first ends the task even when the cancellation is
    # lost: on Python < 3.12 asyncio.wait_for swallows a cancel that arrives as
    # the awaited operation completes, and the task would go on to its next read.
    connection.writer.transport.abort()
    connection.task.cancel()
