"""Metric children in one process: a series' value in plain fields under a lock.

A child is one label set's series. Recording (``inc``, ``dec``, ``set``,
``observe``) never raises: a failure is handed to the metric's
:class:`~promkit.instrument._safety.FailureSink`, counted and logged once per
cause. :data:`NULL_CHILD` stands in when ``labels()`` fails. The multiprocess
children (:mod:`promkit.instrument._mp_children`) subclass these and keep their
values in prometheus-client's mmap files instead.

Each record call is ``try``, the update under ``lock.acquire()``/
``lock.release()``, ``except`` to the sink. The hot ones
(``CounterChild.inc``, ``HistogramChild.observe``) write the update out in
place: a helper method costs a Python call, +375 instructions on a 2,434
instruction ``inc()`` (``python -m benchmarks.children_instructions``).
The gauge's ``inc``/``dec`` share ``_ScalarSeries._add``, which the
multiprocess gauge overrides.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client.samples import Exemplar

from promkit.instrument._exemplars import ExemplarLabels, RawExemplar, to_exemplar

if TYPE_CHECKING:
    from promkit.instrument._safety import FailureSink

__all__ = [
    "NULL_CHILD",
    "CounterChild",
    "GaugeChild",
    "GaugeTokens",
    "HistogramChild",
    "InProgress",
    "InProgressTokens",
    "Timer",
]

F = TypeVar("F", bound=Callable[..., Any])


class InProgressTokens(Protocol):
    """What :meth:`GaugeChild.in_progress_tokens` returns: +1 on ``append``, -1 on ``pop``."""

    def append(self, token: None, /) -> None: ...

    def pop(self) -> Any: ...


# --------------------------------------------------------------------------- children


class _NullChild:
    """Returned when ``labels()`` fails: every record call is a no-op."""

    labelvalues: tuple[str, ...] = ()

    def inc(self, amount: float = 1.0, exemplar: ExemplarLabels | None = None) -> None:
        pass

    def dec(self, amount: float = 1.0) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float, exemplar: ExemplarLabels | None = None) -> None:
        pass

    def set_to_current_time(self) -> None:
        pass

    def time(self) -> Timer:
        return Timer(self)

    def track_inprogress(self) -> InProgress:
        return InProgress(self)

    def in_progress_tokens(self) -> InProgressTokens:
        return GaugeTokens(self)


NULL_CHILD = _NullChild()


class _Series:
    """What every child has: its label values, creation time, sink, lock and render cache."""

    __slots__ = ("_lock", "_sink", "created", "labelvalues", "render_cache")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        self.labelvalues = labelvalues
        self.created = time.time()
        self.render_cache: Any = None  # the exporters' label strings for this series
        self._sink = sink
        self._lock = threading.Lock()


class _ScalarSeries(_Series):
    """A counter's or gauge's one value, and the locked update of the non-hot record calls."""

    __slots__ = ("_value",)

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        super().__init__(labelvalues, sink)
        self._value = 0.0

    def _add(self, amount: float) -> None:
        """Add ``amount`` under the lock; the multiprocess gauge writes its file instead."""
        # acquire/release: `with` costs +1,076 instr./call (benchmarks.children_instructions)
        # One read: recorders swap a child's lock; release the one acquired.
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()


class CounterChild(_ScalarSeries):
    """One counter series."""

    __slots__ = ("_exemplar",)

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        super().__init__(labelvalues, sink)
        self._exemplar: RawExemplar | None = None

    def inc(self, amount: float = 1.0, exemplar: ExemplarLabels | None = None) -> None:
        """Add ``amount`` (>= 0). An exemplar (e.g. ``{"trace_id": ...}``) is kept with it.

        A string exemplar is a correlation ID: label ``correlation_id``.
        """
        try:
            if not amount >= 0:  # also rejects NaN
                raise ValueError(f"counters only go up; got increment {amount!r}")
            # Inline, not self._add(amount): +375 instr./call (benchmarks.children_instructions)
            # One read: recorders swap a child's lock; release the one acquired.
            lock = self._lock
            lock.acquire()
            try:
                self._value += amount
            finally:
                lock.release()
            if exemplar is not None:
                self._exemplar = (exemplar, amount, time.time())
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Exemplar | None:
        return to_exemplar(self._exemplar, self._sink)


class GaugeChild(_ScalarSeries):
    """One gauge series."""

    __slots__ = ("_tokens",)

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        super().__init__(labelvalues, sink)
        self._tokens: list[None] = []

    def set(self, value: float) -> None:
        try:
            self._value = float(value)
        except Exception as exc:
            self._sink.failure("gauge_set", exc)

    def inc(self, amount: float = 1.0) -> None:
        try:
            self._add(amount)
        except Exception as exc:
            self._sink.failure("gauge_inc", exc)

    def dec(self, amount: float = 1.0) -> None:
        try:
            self._add(-amount)
        except Exception as exc:
            self._sink.failure("gauge_dec", exc)

    def set_to_current_time(self) -> None:
        self.set(time.time())

    def track_inprogress(self) -> InProgress:
        """Context manager/decorator: +1 while the block runs."""
        return InProgress(self)

    def in_progress_tokens(self) -> InProgressTokens:
        """For hot paths: ``tokens.append(None)`` is +1, ``tokens.pop()`` is -1.

        The gauge reads ``len(tokens)`` on top of its own value. Both
        operations are single atomic list operations: no lock and no Python
        call, unlike :meth:`inc`/:meth:`dec`. Every caller shares one list
        per series, so several users of the series add up.
        """
        # +1 and -1: 1,682 instr. against 4,079 by inc()/dec() (children_instructions --tricks)
        return self._tokens

    def get(self) -> float:
        return self._value + len(self._tokens)


class HistogramChild(_Series):
    """One histogram series: per-bucket counts (non-cumulative) and a sum."""

    __slots__ = ("_bounds", "_counts", "_exemplars", "_sum")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink,
                 bounds: list[float]) -> None:
        super().__init__(labelvalues, sink)
        self._bounds = bounds  # finite upper bounds, shared with the metric
        self._counts = [0] * (len(bounds) + 1)  # last one is +Inf
        self._sum = 0.0
        self._exemplars: list[RawExemplar | None] | None = None

    def observe(self, value: float, exemplar: ExemplarLabels | None = None) -> None:
        """Record one observation; an exemplar is kept for its bucket.

        A string exemplar is a correlation ID: label ``correlation_id``.
        """
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            i = bisect_left(self._bounds, value)
            # Inline, as in CounterChild.inc: a method call costs +375 instr./call.
            # One read: recorders swap a child's lock; release the one acquired.
            lock = self._lock
            lock.acquire()
            try:
                self._counts[i] += 1
                self._sum += value
            finally:
                lock.release()
            # _set_exemplar inline: -471 instr. per observe with an exemplar (4,670 -> 4,199,
            # callgrind, 10k observes; the middleware records one per request).
            if exemplar is not None:
                exemplars = self._exemplars
                if exemplars is None:
                    exemplars = self._exemplars = [None] * len(self._counts)
                exemplars[i] = (exemplar, value, time.time())
        except Exception as exc:
            self._sink.failure("histogram_observe", exc)

    def _set_exemplar(self, i: int, exemplar: ExemplarLabels, value: float) -> None:
        exemplars = self._exemplars
        if exemplars is None:
            exemplars = self._exemplars = [None] * len(self._counts)
        exemplars[i] = (exemplar, value, time.time())

    def time(self) -> Timer:
        """Context manager/decorator observing the block's wall time in seconds."""
        return Timer(self)

    def snapshot(self) -> tuple[list[int], float]:
        """Non-cumulative bucket counts (last is +Inf) and the sum, read together."""
        with self._lock:
            return list(self._counts), self._sum

    def get_exemplars(self) -> list[Exemplar | None] | None:
        """The latest exemplar of each bucket (None where there is none yet)."""
        raw = self._exemplars
        if raw is None:
            return None
        return [to_exemplar(e, self._sink) for e in raw]


class _Block:
    """A context manager around a block of code that is also a decorator (each call a block)."""

    def __init__(self, child: Any) -> None:
        self._child = child

    def __call__(self, func: F) -> F:
        import functools

        block = type(self)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with block(self._child):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __enter__(self) -> Any:
        raise NotImplementedError

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise NotImplementedError


class Timer(_Block):
    """Observes the block's wall time in seconds."""

    _start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._child.observe(time.perf_counter() - self._start)


class InProgress(_Block):
    """+1 while the block runs."""

    def __enter__(self) -> None:
        self._child.inc()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._child.dec()


class GaugeTokens:
    """``append``/``pop`` as ``inc``/``dec`` of a gauge child (multiprocess mode)."""

    __slots__ = ("_child",)

    def __init__(self, child: Any) -> None:
        self._child = child

    def append(self, _token: None) -> None:
        self._child.inc()

    def pop(self) -> None:
        self._child.dec()


