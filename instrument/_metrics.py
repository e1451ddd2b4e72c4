"""Counter, Gauge and Histogram: label children cached, recording never raises.

A metric holds one child per label set. ``metric.labels(*values)`` is a dict
lookup on the hot path; the first call with a new label set validates and
cleans the values, enforces the series limit and builds the child. Children
keep their values in plain Python fields under a lock (single process) or in
prometheus-client's per-process mmap files (multiprocess mode), so the
``/metrics`` exporters and prometheus-client's own tooling both read them.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from time import time as _now
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from promkit.instrument.catalog import MetricSpec

if TYPE_CHECKING:
    from promkit.instrument._safety import FailureSink

__all__ = ["OVERFLOW_VALUE", "Counter", "Gauge", "Histogram", "MetricBase"]

OVERFLOW_VALUE = "__overflow__"
"""Label value of the series that absorbs label sets past a metric's limit."""

# OpenMetrics caps an exemplar's label set at 128 UTF-8 characters.
_EXEMPLAR_MAX_RUNES = 128

F = TypeVar("F", bound=Callable[..., Any])


class InProgressTokens(Protocol):
    """What :meth:`GaugeChild.in_progress_tokens` returns: +1 on ``append``, -1 on ``pop``."""

    def append(self, token: None, /) -> None: ...

    def pop(self) -> Any: ...

# Set by the exporters while they render promkit metrics themselves, so that
# prometheus-client's generator, run for the *other* collectors, skips ours.
exposition_state = threading.local()


ExemplarLabels = dict[str, str] | str
"""An exemplar's label set, or a correlation ID standing for ``{"correlation_id": id}``."""
CORRELATION_EXEMPLAR_LABEL = "correlation_id"

# Exemplars are stored raw (labels, value, time) on the hot path and checked
# when read: an oversized label set is dropped then, and counted. A plain
# correlation ID becomes its label set only then, not once per observation.
RawExemplar = tuple[ExemplarLabels, float, float]


def _to_exemplar(raw: RawExemplar | None, sink: FailureSink) -> Exemplar | None:
    if raw is None:
        return None
    labels, value, timestamp = raw
    if isinstance(labels, str):
        labels = {CORRELATION_EXEMPLAR_LABEL: labels}
    try:
        size = 0
        for key, val in labels.items():
            size += len(key) + len(val)
            if not (key.isascii() and val.isascii()):
                (key + val).encode("utf-8")  # a lone surrogate would fail the whole scrape
        if size > _EXEMPLAR_MAX_RUNES:
            raise ValueError(
                f"exemplar labels have {size} characters; OpenMetrics allows {_EXEMPLAR_MAX_RUNES}"
            )
        return Exemplar(labels, value, timestamp)
    except Exception as exc:
        sink.failure("exemplar", exc)
        return None


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

    def time(self) -> _Timer:
        return _Timer(self)

    def track_inprogress(self) -> _InProgress:
        return _InProgress(self)

    def in_progress_tokens(self) -> InProgressTokens:
        return _GaugeTokens(self)


NULL_CHILD = _NullChild()


class CounterChild:
    """One counter series."""

    __slots__ = ("_exemplar", "_lock", "_sink", "_value", "created", "labelvalues", "render_cache")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        self.labelvalues = labelvalues
        self.created = time.time()
        self.render_cache: Any = None
        self._sink = sink
        self._value = 0.0
        self._exemplar: RawExemplar | None = None
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, exemplar: ExemplarLabels | None = None) -> None:
        """Add ``amount`` (>= 0). An exemplar (e.g. ``{"trace_id": ...}``) is kept with it.

        A string exemplar is a correlation ID: label ``correlation_id``.
        """
        try:
            if not amount >= 0:  # also rejects NaN
                raise ValueError(f"counters only go up; got increment {amount!r}")
            # acquire/release in try/finally: measurably cheaper than `with` here.
            lock = self._lock
            lock.acquire()
            try:
                self._value += amount
            finally:
                lock.release()
            if exemplar is not None:
                self._exemplar = (exemplar, amount, _now())
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Exemplar | None:
        return _to_exemplar(self._exemplar, self._sink)


class GaugeChild:
    """One gauge series."""

    __slots__ = ("_lock", "_sink", "_tokens", "_value", "created", "labelvalues", "render_cache")

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink) -> None:
        self.labelvalues = labelvalues
        self.created = time.time()
        self.render_cache: Any = None
        self._sink = sink
        self._value = 0.0
        self._lock = threading.Lock()
        self._tokens: list[None] = []

    def set(self, value: float) -> None:
        try:
            self._value = float(value)
        except Exception as exc:
            self._sink.failure("gauge_set", exc)

    def inc(self, amount: float = 1.0) -> None:
        try:
            lock = self._lock
            lock.acquire()
            try:
                self._value += amount
            finally:
                lock.release()
        except Exception as exc:
            self._sink.failure("gauge_inc", exc)

    def dec(self, amount: float = 1.0) -> None:
        try:
            lock = self._lock
            lock.acquire()
            try:
                self._value -= amount
            finally:
                lock.release()
        except Exception as exc:
            self._sink.failure("gauge_dec", exc)

    def set_to_current_time(self) -> None:
        self.set(time.time())

    def track_inprogress(self) -> _InProgress:
        """Context manager/decorator: +1 while the block runs."""
        return _InProgress(self)

    def in_progress_tokens(self) -> InProgressTokens:
        """For hot paths: ``tokens.append(None)`` is +1, ``tokens.pop()`` is -1.

        The gauge reads ``len(tokens)`` on top of its own value. Both
        operations are single atomic list operations: no lock and no Python
        call, unlike :meth:`inc`/:meth:`dec`. Every caller shares one list
        per series, so several users of the series add up.
        """
        return self._tokens

    def get(self) -> float:
        return self._value + len(self._tokens)


class HistogramChild:
    """One histogram series: per-bucket counts (non-cumulative) and a sum."""

    __slots__ = (
        "_bounds", "_counts", "_exemplars", "_lock", "_sink", "_sum", "created", "labelvalues",
        "render_cache",
    )

    def __init__(self, labelvalues: tuple[str, ...], sink: FailureSink,
                 bounds: list[float]) -> None:
        self.labelvalues = labelvalues
        self.created = time.time()
        self.render_cache: Any = None
        self._sink = sink
        self._bounds = bounds  # finite upper bounds, shared with the metric
        self._counts = [0] * (len(bounds) + 1)  # last one is +Inf
        self._sum = 0.0
        self._exemplars: list[RawExemplar | None] | None = None
        self._lock = threading.Lock()

    def observe(self, value: float, exemplar: ExemplarLabels | None = None) -> None:
        """Record one observation; an exemplar is kept for its bucket.

        A string exemplar is a correlation ID: label ``correlation_id``.
        """
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            i = bisect_left(self._bounds, value)
            lock = self._lock
            lock.acquire()
            try:
                self._counts[i] += 1
                self._sum += value
            finally:
                lock.release()
            if exemplar is not None:
                self._set_exemplar(i, exemplar, value)
        except Exception as exc:
            self._sink.failure("histogram_observe", exc)

    def _set_exemplar(self, i: int, exemplar: ExemplarLabels, value: float) -> None:
        exemplars = self._exemplars
        if exemplars is None:
            exemplars = self._exemplars = [None] * len(self._counts)
        exemplars[i] = (exemplar, value, _now())

    def time(self) -> _Timer:
        """Context manager/decorator observing the block's wall time in seconds."""
        return _Timer(self)

    def snapshot(self) -> tuple[list[int], float]:
        """Non-cumulative bucket counts (last is +Inf) and the sum, read together."""
        with self._lock:
            return list(self._counts), self._sum

    def get_exemplars(self) -> list[Exemplar | None] | None:
        """The latest exemplar of each bucket (None where there is none yet)."""
        raw = self._exemplars
        if raw is None:
            return None
        return [_to_exemplar(e, self._sink) for e in raw]


def paired_recorder(histogram: Any, counter: Any) -> Callable[[float, float], None]:
    """``record(value, amount)``: ``histogram.observe(value)`` and ``counter.inc(amount)``.

    One call for two series recorded together, such as a stage's wall and CPU
    seconds. Two in-process series share one lock from then on (the counter
    takes the histogram's), so both updates happen under one acquisition;
    any other pair (multiprocess files, null children) gets the two calls.
    Never raises: a failure is counted (cause ``paired_record``, or the two
    calls' own causes).
    """
    if type(histogram) is not HistogramChild or type(counter) is not CounterChild:
        observe, inc = histogram.observe, counter.inc

        def record_each(value: float, amount: float) -> None:
            observe(value)
            inc(amount)

        return record_each

    lock = counter._lock = histogram._lock
    bounds, counts, sink = histogram._bounds, histogram._counts, histogram._sink

    def record(value: float, amount: float) -> None:
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            i = bisect_left(bounds, value)
            lock.acquire()
            try:
                counts[i] += 1
                histogram._sum += value
                counter._value += amount
            finally:
                lock.release()
        except Exception as exc:
            sink.failure("paired_record", exc)

    return record


def http_request_recorder(duration: Any, request_size: Any = None,
                          response_size: Any = None) -> Callable[[float, Any, int, int], None]:
    """``record(seconds, exemplar, request_bytes, response_bytes)`` for one request.

    Observes ``seconds`` (with ``exemplar``, when not None) in ``duration``
    and, when the size series are given, the two sizes in theirs
    (``request_bytes < 0``: unknown, not recorded). The HTTP middleware calls
    this once per request. Three in-process series are updated inline under
    the request-size series' lock (the one series shared by every status of
    a route), which the other two take from then on: one acquisition for the
    three updates. Otherwise (no sizes, multiprocess files) each series gets
    its own call. Never raises.
    """
    if request_size is None or response_size is None:
        observe = duration.observe

        def record_duration(seconds: float, exemplar: Any, request_bytes: int,
                            response_bytes: int) -> None:
            observe(seconds, exemplar)

        return record_duration
    if not (type(duration) is type(request_size) is type(response_size) is HistogramChild):
        observe_duration, observe_request = duration.observe, request_size.observe
        observe_response = response_size.observe

        def record_each(seconds: float, exemplar: Any, request_bytes: int,
                        response_bytes: int) -> None:
            observe_duration(seconds, exemplar)
            if request_bytes >= 0:
                observe_request(request_bytes)
            observe_response(response_bytes)

        return record_each

    d_bounds, d_counts, sink = duration._bounds, duration._counts, duration._sink
    lock = duration._lock = response_size._lock = request_size._lock
    q_bounds, q_counts = request_size._bounds, request_size._counts
    r_bounds, r_counts = response_size._bounds, response_size._counts

    def record(seconds: float, exemplar: Any, request_bytes: int, response_bytes: int) -> None:
        try:
            if seconds != seconds:
                raise ValueError("cannot observe NaN")
            i = bisect_left(d_bounds, seconds)
            k = bisect_left(r_bounds, response_bytes)
            lock.acquire()
            try:
                d_counts[i] += 1
                duration._sum += seconds
                if request_bytes >= 0:
                    q_counts[bisect_left(q_bounds, request_bytes)] += 1
                    request_size._sum += request_bytes
                r_counts[k] += 1
                response_size._sum += response_bytes
            finally:
                lock.release()
            if exemplar is not None:  # HistogramChild._set_exemplar, inlined
                exemplars = duration._exemplars
                if exemplars is None:
                    exemplars = duration._exemplars = [None] * len(d_counts)
                exemplars[i] = (exemplar, seconds, _now())
        except Exception as exc:
            sink.failure("http_record", exc)

    return record


class _Timer:
    def __init__(self, child: Any) -> None:
        self._child = child
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._child.observe(time.perf_counter() - self._start)

    def __call__(self, func: F) -> F:
        import functools

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Timer(self._child):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _InProgress:
    def __init__(self, child: Any) -> None:
        self._child = child

    def __enter__(self) -> None:
        self._child.inc()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._child.dec()

    def __call__(self, func: F) -> F:
        import functools

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _InProgress(self._child):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


# --------------------------------------------------------- multiprocess children


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
                self._exemplar = (exemplar, amount, _now())
                store = self._xstore
                if store is None:
                    store = self._xstore = self._track_exemplars()
                if not store.dirty:
                    store.mark_dirty()  # its thread writes the file within a second
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

    def _track_exemplars(self) -> Any:
        from promkit.instrument._mp_exemplars import process_store

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
                self._mv.set(float(value), timestamp=_now())
            else:
                self._mv.set(float(value))
        except Exception as exc:
            self._sink.failure("gauge_set", exc)

    def inc(self, amount: float = 1.0) -> None:
        try:
            self._mv.inc(float(amount))
        except Exception as exc:
            self._sink.failure("gauge_inc", exc)

    def dec(self, amount: float = 1.0) -> None:
        try:
            self._mv.inc(-float(amount))
        except Exception as exc:
            self._sink.failure("gauge_dec", exc)

    def in_progress_tokens(self) -> InProgressTokens:
        # The value lives in the mmap file, so each token goes through inc/dec.
        return _GaugeTokens(self)

    def get(self) -> float:
        return float(self._mv.get())


class _GaugeTokens:
    """``append``/``pop`` as ``inc``/``dec`` of a gauge child (multiprocess mode)."""

    __slots__ = ("_child",)

    def __init__(self, child: Any) -> None:
        self._child = child

    def append(self, _token: None) -> None:
        self._child.inc()

    def pop(self) -> None:
        self._child.dec()


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
        exemplars = self._exemplars
        if exemplars is None:
            self._xstore = self._track_exemplars()
            exemplars = self._exemplars = [None] * len(self._mv_buckets)
        exemplars[i] = (exemplar, value, _now())
        store = self._xstore
        if not store.dirty:
            store.mark_dirty()

    def _track_exemplars(self) -> Any:
        from promkit.instrument._mp_exemplars import process_store

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


# --------------------------------------------------------------------------- metrics

LabelCleaner = Callable[[object], str]


class MetricBase:
    """A metric family: its spec and its label children.

    Also a prometheus-client collector, so ``generate_latest(REGISTRY)``,
    the pushgateway helpers and other prometheus-client tooling see it.
    """

    kind: str = ""

    def __init__(self, spec: MetricSpec, sink: FailureSink, clean: LabelCleaner,
                 value_class: Any = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.labelnames = spec.labels
        self._nlabels = len(spec.labels)
        self._limit = spec.series_limit
        self._sink = sink
        self._clean = clean
        self._value_class = value_class  # set in multiprocess mode
        self._lock = threading.Lock()
        # raw label tuple as the caller passed it -> child (the hot-path cache)
        self._cache: dict[tuple[Any, ...], Any] = {}
        # cleaned label values -> child (what is exported)
        self._series: dict[tuple[str, ...], Any] = {}
        self._overflow: Any = None
        self._default: Any = None
        if not spec.labels:
            self._default = self._new_child(())
            self._series[()] = self._default

    # -- label handling ------------------------------------------------------------

    def labels(self, *values: Any, **named: Any) -> Any:
        """The child for one label set, values in declaration order or by name."""
        try:
            if named:
                values = self._values_from_names(values, named)
            child = self._cache.get(values)
            if child is None:
                child = self._resolve(values)
            return child
        except Exception as exc:
            self._sink.failure("labels", exc, f"metric {self.name!r}")
            return NULL_CHILD

    def _values_from_names(self, values: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, ...]:
        if values:
            raise ValueError(
                f"metric {self.name!r}: pass label values by position or by name, not both"
            )
        if set(named) != set(self.labelnames):
            raise ValueError(
                f"metric {self.name!r} has labels {list(self.labelnames)}, got {sorted(named)}"
            )
        return tuple(named[name] for name in self.labelnames)

    def _resolve(self, values: tuple[Any, ...]) -> Any:
        if len(values) != self._nlabels:
            raise ValueError(
                f"metric {self.name!r} has labels {list(self.labelnames)}; got {len(values)} values"
            )
        cleaned = tuple(self._clean(v) for v in values)
        with self._lock:
            child = self._series.get(cleaned)
            if child is None:
                if len(self._series) >= self._limit:
                    child = self._overflow_child()
                    self._sink.overflow(self.name)
                    return child  # not cached: each fold is counted
                child = self._new_child(cleaned)
                self._series[cleaned] = child
            # Raw values that clean to the same series share the child; cap the
            # alias cache so odd callers can't grow it without bound.
            if len(self._cache) < 4 * self._limit:
                self._cache[values] = child
            return child

    def _overflow_child(self) -> Any:
        if self._overflow is None:
            self._overflow = self._new_child((OVERFLOW_VALUE,) * self._nlabels)
        return self._overflow

    def remove(self, *values: Any) -> None:
        """Drop one label set's series (e.g. a finished worker's)."""
        cleaned = tuple(self._clean(v) for v in values)
        with self._lock:
            self._series.pop(cleaned, None)
            for key in [k for k, c in self._cache.items() if c.labelvalues == cleaned]:
                del self._cache[key]

    def clear(self) -> None:
        """Drop every labelled series."""
        with self._lock:
            if self.labelnames:
                self._series.clear()
                self._cache.clear()
                self._overflow = None

    def children(self) -> list[Any]:
        """A snapshot of the exported children, overflow series last."""
        with self._lock:
            children = list(self._series.values())
            if self._overflow is not None:
                children.append(self._overflow)
        return children

    def series_count(self) -> int:
        return len(self._series) + (1 if self._overflow is not None else 0)

    def _new_child(self, labelvalues: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def _no_labels(self) -> Any:
        if self._default is None:
            self._sink.failure(
                "labels", ValueError(f"metric {self.name!r} needs labels {list(self.labelnames)}")
            )
            return NULL_CHILD
        return self._default

    # -- prometheus-client collector protocol ---------------------------------------

    def describe(self) -> Iterable[Metric]:
        return [Metric(self.spec.family_name, self.spec.help, self.kind, self.spec.unit)]

    def collect(self) -> Iterable[Metric]:
        if getattr(exposition_state, "skip_promkit", False):
            return []
        family = Metric(self.spec.family_name, self.spec.help, self.kind, self.spec.unit)
        for child in self.children():
            self._add_samples(family, child)
        return [family]

    def _add_samples(self, family: Metric, child: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.describe()}>"


class Counter(MetricBase):
    """A monotonically increasing count (name ends in ``_total``)."""

    kind = "counter"

    def _new_child(self, labelvalues: tuple[str, ...]) -> Any:
        if self._value_class is not None:
            return MultiprocessCounterChild(labelvalues, self._sink, self.spec, self._value_class)
        return CounterChild(labelvalues, self._sink)

    def inc(self, amount: float = 1.0, exemplar: ExemplarLabels | None = None) -> None:
        """Increment a counter with no labels."""
        self._no_labels().inc(amount, exemplar)

    def _add_samples(self, family: Metric, child: Any) -> None:
        labels = dict(zip(self.labelnames, child.labelvalues))
        family.add_sample(self.name, labels, child.get(), None, child.get_exemplar())
        family.add_sample(self.spec.family_name + "_created", labels, child.created)


class Gauge(MetricBase):
    """A value that goes up and down."""

    kind = "gauge"

    def _new_child(self, labelvalues: tuple[str, ...]) -> Any:
        if self._value_class is not None:
            return MultiprocessGaugeChild(labelvalues, self._sink, self.spec, self._value_class)
        return GaugeChild(labelvalues, self._sink)

    def set(self, value: float) -> None:
        self._no_labels().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._no_labels().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._no_labels().dec(amount)

    def set_to_current_time(self) -> None:
        self._no_labels().set_to_current_time()

    def track_inprogress(self) -> _InProgress:
        return _InProgress(self._no_labels())

    def _add_samples(self, family: Metric, child: Any) -> None:
        family.add_sample(self.name, dict(zip(self.labelnames, child.labelvalues)), child.get())


class Histogram(MetricBase):
    """Observations counted in buckets, with their sum."""

    kind = "histogram"

    def __init__(self, spec: MetricSpec, sink: FailureSink, clean: LabelCleaner,
                 value_class: Any = None) -> None:
        assert spec.buckets is not None
        self.bounds: list[float] = list(spec.buckets)
        self.bucket_strings: list[str] = [floatToGoString(b) for b in (*self.bounds, math.inf)]
        super().__init__(spec, sink, clean, value_class)

    def _new_child(self, labelvalues: tuple[str, ...]) -> Any:
        if self._value_class is not None:
            return MultiprocessHistogramChild(labelvalues, self._sink, self.bounds, self.spec,
                                              self._value_class)
        return HistogramChild(labelvalues, self._sink, self.bounds)

    def observe(self, value: float, exemplar: ExemplarLabels | None = None) -> None:
        self._no_labels().observe(value, exemplar)

    def time(self) -> _Timer:
        return _Timer(self._no_labels())

    def _add_samples(self, family: Metric, child: Any) -> None:
        labels = dict(zip(self.labelnames, child.labelvalues))
        counts, total = child.snapshot()
        exemplars = child.get_exemplars() or [None] * len(counts)
        acc = 0
        for le, count, exemplar in zip(self.bucket_strings, counts, exemplars):
            acc += count
            family.add_sample(self.name + "_bucket", {**labels, "le": le}, acc, None, exemplar)
        family.add_sample(self.name + "_count", labels, acc)
        family.add_sample(self.name + "_sum", labels, total)
        family.add_sample(self.name + "_created", labels, child.created)

