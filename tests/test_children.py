"""The metric children: one series each, updated under a lock that recorders may swap."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from promkit.instrument._children import CounterChild, GaugeChild, HistogramChild
from promkit.instrument._safety import FailureSink


class _RecordingSink(FailureSink):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, BaseException]] = []

    def failure(self, operation: str, exc: BaseException, detail: str = "") -> None:
        self.seen.append((operation, exc))


class _SwappedWhileHeld:
    """A lock whose acquisition swaps the child's lock, as a recorder may meanwhile."""

    def __init__(self, child: Any) -> None:
        self.child = child
        self.real = threading.Lock()

    def acquire(self) -> bool:
        self.child._lock = threading.Lock()
        return self.real.acquire()

    def release(self) -> None:
        self.real.release()


@pytest.mark.parametrize("make, update", [
    (lambda sink: CounterChild(("a",), sink), lambda child: child.inc(2)),
    (lambda sink: GaugeChild(("a",), sink), lambda child: child.inc(2)),
    (lambda sink: HistogramChild(("a",), sink, [1.0]), lambda child: child.observe(0.5)),
])
def test_an_update_releases_the_lock_it_acquired_when_the_lock_is_swapped(make, update):
    sink = _RecordingSink()
    child = make(sink)
    held = child._lock = _SwappedWhileHeld(child)
    update(child)
    assert sink.seen == []
    assert not held.real.locked()
