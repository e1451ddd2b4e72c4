"""Metric children in multiprocess mode: values in prometheus-client's per-process mmap files.

Each child subclasses its single-process counterpart and writes through the
shared multiprocess value class (chosen by the registry), so prometheus-client's
own multiprocess collector reads the same files. Exemplars stay in memory as in
one process; a child's first exemplar registers it with this process's
:class:`~promkit.instrument._mp_exemplars.ExemplarStore`, which writes them
beside the mmap files.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString

from promkit.instrument._children import (
    CounterChild,
    GaugeChild,
    GaugeTokens,
    HistogramChild,
    InProgressTokens,
)
from promkit.instrument._exemplars import ExemplarLabels
from promkit.instrument._mp_exemplars import process_store
from promkit.instrument.catalog import MetricSpec

if TYPE_CHECKING:
    from promkit.instrument._safety import FailureSink

__all__ = ["MultiprocessCounterChild", "MultiprocessGaugeChild", "MultiprocessHistogramChild"]


class MultiprocessCounterChild(CounterChild):
    """Counter series stored in prometheus-client's per-process mmap file."""

    __slots__ = ("_mv", "_xspec", "_xstore")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink, spec: MetricSpec,
                 value_class: Any) -> None:
        super().__init__(labelvalues, sink)
        family = spec.family_name
        self._mv = value_class("counter", family, family + "_total", spec.labels, labelvalues,
                               spec.help)
        self._xspec = spec
        self._xstore: Any = None  # this process's exemplar store, from the first exemplar on

    def inc(self, amount: float = 1.0, exemplar: ExemplarLabels | None = None) -> None:
        try:
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            self._mv.inc(amount)
            if exemplar is not None:
                self._exemplar = (exemplar, amount, time.time())
                store = self._xstore
                if store is None:
                    store = self._xstore = self._track_exemplars()
                if not store.dirty:
                    store.mark_dirty()  # its thread writes the file within a second
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

    def _track_exemplars(self) -> Any:
        store = process_store(self._sink)
        pairs = tuple(sorted(zip(self._xspec.labels, self.labelvalues)))
        store.track([(self._xspec.family_name + "_total", pairs)], lambda: (self._exemplar,),
                    self._forget_exemplar)
        return store

    def _forget_exemplar(self) -> None:
        self._exemplar = None

    def get(self) -> float:
        return float(self._mv.get())


class MultiprocessGaugeChild(GaugeChild):
    """Gauge series stored in prometheus-client's per-process mmap file."""

    __slots__ = ("_mv", "_stamped")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink, spec: MetricSpec,
                 value_class: Any) -> None:
        super().__init__(labelvalues, sink)
        self._mv = value_class("gauge", spec.name, spec.name, spec.labels, labelvalues, spec.help,
                               multiprocess_mode=spec.multiprocess_mode)
        # The merge picks a (live)mostrecent gauge's value by the time it was set, and
        # ignores values without one, as prometheus-client's Gauge.set writes them.
        self._stamped = spec.multiprocess_mode in ("mostrecent", "livemostrecent")

    def set(self, value: float) -> None:
        try:
            if self._stamped:
                self._mv.set(float(value), timestamp=time.time())
            else:
                self._mv.set(float(value))
        except Exception as exc:
            self._sink.failure("gauge_set", exc)

    def _add(self, amount: float) -> None:
        self._mv.inc(float(amount))

    def in_progress_tokens(self) -> InProgressTokens:
        # The value lives in the mmap file, so each token goes through inc/dec.
        return GaugeTokens(self)

    def get(self) -> float:
        return float(self._mv.get())


class MultiprocessHistogramChild(HistogramChild):
    """Histogram series stored in prometheus-client's per-process mmap file."""

    __slots__ = ("_mv_buckets", "_mv_sum", "_xspec", "_xstore")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink, bounds: list[float],
                 spec: MetricSpec, value_class: Any) -> None:
        super().__init__(labelvalues, sink, bounds)
        self._xspec = spec
        self._xstore: Any = None  # this process's exemplar store, from the first exemplar on
        name, labels = spec.name, spec.labels
        self._mv_sum = value_class("histogram", name, name + "_sum", labels, labelvalues,
                                   spec.help)
        bucket_labels = (*labels, "le")
        self._mv_buckets = [
            value_class("histogram", name, name + "_bucket", bucket_labels,
                        (*labelvalues, floatToGoString(bound)), spec.help)
            for bound in (*bounds, math.inf)
        ]

    def observe(self, value: float, exemplar: ExemplarLabels | None = None) -> None:
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            i = bisect_left(self._bounds, value)
            self._mv_buckets[i].inc(1)
            self._mv_sum.inc(value)
            if exemplar is not None:
                self._set_exemplar(i, exemplar, value)
        except Exception as exc:
            self._sink.failure("histogram_observe", exc)

    def _set_exemplar(self, i: int, exemplar: ExemplarLabels, value: float) -> None:
        # Kept in memory as in one process; the store's thread writes them to
        # exemplars_<pid>.json at most once a second (see instrument/_mp_exemplars.py).
        if self._exemplars is None:
            self._xstore = self._track_exemplars()
        super()._set_exemplar(i, exemplar, value)
        store = self._xstore
        if not store.dirty:
            store.mark_dirty()

    def _track_exemplars(self) -> Any:
        store = process_store(self._sink)
        spec = self._xspec
        base = tuple(zip(spec.labels, self.labelvalues))
        keys = [(spec.name + "_bucket", tuple(sorted((*base, ("le", floatToGoString(bound))))))
                for bound in (*self._bounds, math.inf)]
        store.track(keys, lambda: self._exemplars or (), self._forget_exemplars)
        return store

    def _forget_exemplars(self) -> None:
        exemplars = self._exemplars
        if exemplars is not None:
            exemplars[:] = [None] * len(exemplars)

    def snapshot(self) -> tuple[list[int], float]:
        return [int(mv.get()) for mv in self._mv_buckets], float(self._mv_sum.get())

