"""The exporter server's connection slots: admission, eviction of the longest-idle, refusal."""

from __future__ import annotations

from typing import Any

from promkit.exporters._connections import Connection, ConnectionSlots


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class _Writer:
    def __init__(self) -> None:
        self.transport = _Transport()


class _Task:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def connection() -> Connection:
    task: Any = _Task()
    writer: Any = _Writer()
    return Connection(task, writer)


def dropped(c: Connection) -> bool:
    writer: Any = c.writer
    task: Any = c.task
    return c.abort and writer.transport.aborted and task.cancelled


def test_at_capacity_the_longest_idle_connection_is_evicted() -> None:
    slots = ConnectionSlots(2)
    a, b, c = connection(), connection(), connection()
    assert slots.admit(a) and slots.admit(b)
    slots.set_idle(a)
    slots.set_idle(b)
    slots.set_busy(a)
    slots.set_idle(a)  # idle again: now the most recent
    assert slots.admit(c)
    assert dropped(b) and not dropped(a)
    assert (slots.open, slots.idle, slots.evicted) == (2, 1, 1)


def test_when_every_slot_is_busy_a_new_connection_is_refused() -> None:
    slots = ConnectionSlots(1)
    a, b = connection(), connection()
    assert slots.admit(a)
    slots.set_busy(a)
    assert not slots.admit(b)
    assert not dropped(a) and slots.evicted == 0 and slots.open == 1


def test_release_frees_the_slot() -> None:
    slots = ConnectionSlots(1)
    a, b = connection(), connection()
    slots.admit(a)
    slots.set_idle(a)
    slots.release(a)
    assert (slots.open, slots.idle) == (0, 0)
    assert slots.admit(b) and slots.evicted == 0
