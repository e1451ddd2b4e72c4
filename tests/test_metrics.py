"""The metric classes themselves (promkit.instrument.metrics and its children), in both
storage modes: plain fields under a lock (one process) and prometheus-client's mmap files
(multiprocess mode).

prometheus-client's multiprocess value class keeps its file per process and kind for the
life of the process, so the multiprocess tests give every metric a name of its own and read
values back through the children (which read their mmap values), not through the files.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry
from promkit.instrument._children import NULL_CHILD, CounterChild, GaugeChild, HistogramChild
from promkit.instrument._mp_children import (
    MultiprocessCounterChild,
    MultiprocessGaugeChild,
    MultiprocessHistogramChild,
)
from promkit.instrument.metrics import OVERFLOW_VALUE, Counter, Gauge, Histogram

_names = itertools.count()


@pytest.fixture(params=["single", "multi"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def reg(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MetricsRegistry:
    """A MetricsRegistry in the storage mode of the test's parameter."""
    if mode == "multi":
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        return MetricsRegistry(CollectorRegistry(), multiprocess=True)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    return MetricsRegistry(CollectorRegistry(), multiprocess=False)


def unique(stem: str) -> str:
    """A metric name no other test uses (the mmap files outlive a test)."""
    kind, _, unit = stem.partition("_")
    return f"t{next(_names)}_{time.monotonic_ns()}_{kind}" + (f"_{unit}" if unit else "")


class Failures:
    """Failures of one cause counted since this was made (in multiprocess mode the
    self-metric's mmap value outlives the test's registry)."""

    def __init__(self, reg: MetricsRegistry, cause: str) -> None:
        assert reg.failures.errors is not None
        self._child = reg.failures.errors.labels(cause)
        self._start = float(self._child.get())

    def count(self) -> float:
        return float(self._child.get()) - self._start


@pytest.fixture
def promkit_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="promkit"):
        yield caplog


def warnings_about(caplog: pytest.LogCaptureFixture, cause: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if cause in r.getMessage()]


# -- storage modes -----------------------------------------------------------------------------


def test_each_mode_builds_its_own_children(reg: MetricsRegistry, mode: str) -> None:
    counter = reg.counter(unique("jobs_total"), "C.", ["k"])
    gauge = reg.gauge(unique("depth"), "G.", ["k"])
    histogram = reg.histogram(unique("work_seconds"), "H.", ["k"], buckets=[1.0])
    kinds = {type(m.labels("a")) for m in (counter, gauge, histogram)}
    if mode == "multi":
        assert kinds == {MultiprocessCounterChild, MultiprocessGaugeChild,
                         MultiprocessHistogramChild}
    else:
        assert kinds == {CounterChild, GaugeChild, HistogramChild}
    assert isinstance(counter, Counter) and isinstance(gauge, Gauge)
    assert isinstance(histogram, Histogram)


# -- Counter -----------------------------------------------------------------------------------


def test_counter_inc_adds_the_amount(reg: MetricsRegistry) -> None:
    counter = reg.counter(unique("jobs_total"), "C.", ["k"])
    child = counter.labels("a")
    child.inc()
    child.inc(2.5)
    assert child.get() == 3.5
    assert counter.labels("b").get() == 0.0


def test_counter_without_labels_records_on_the_metric(reg: MetricsRegistry) -> None:
    counter = reg.counter(unique("jobs_total"), "C.")
    counter.inc(3)
    assert counter.labels().get() == 3.0


@pytest.mark.parametrize("amount", [-1.0, math.nan, -math.inf])
def test_a_counter_never_goes_backwards(reg: MetricsRegistry, amount: float,
                                        promkit_log: pytest.LogCaptureFixture) -> None:
    errors_counter_inc = Failures(reg, "counter_inc:ValueError")
    child = reg.counter(unique("jobs_total"), "C.", ["k"]).labels("a")
    child.inc(2)
    child.inc(amount)  # refused, not raised
    child.inc(amount)
    assert child.get() == 2.0
    assert errors_counter_inc.count() == 2
    logged = warnings_about(promkit_log, "counter_inc:ValueError")
    assert len(logged) == 1  # counted each time, logged once per cause
    assert f"counters only go up; got increment {amount!r}" in logged[0]


def test_counter_exemplar_is_kept_and_a_string_is_a_correlation_id(reg: MetricsRegistry) -> None:
    child = reg.counter(unique("jobs_total"), "C.", ["k"]).labels("a")
    assert child.get_exemplar() is None
    child.inc(2, exemplar="abc-123")
    exemplar = child.get_exemplar()
    assert exemplar is not None
    assert exemplar.labels == {"correlation_id": "abc-123"} and exemplar.value == 2
    child.inc(1, exemplar={"trace_id": "t1"})
    exemplar = child.get_exemplar()
    assert exemplar is not None and exemplar.labels == {"trace_id": "t1"}


def test_an_oversized_exemplar_is_dropped_and_counted(reg: MetricsRegistry,
                                                      promkit_log: pytest.LogCaptureFixture
                                                      ) -> None:
    errors_exemplar = Failures(reg, "exemplar:ValueError")
    child = reg.counter(unique("jobs_total"), "C.", ["k"]).labels("a")
    child.inc(1, exemplar={"trace_id": "x" * 200})
    assert child.get() == 1.0  # the increment stands
    assert child.get_exemplar() is None
    assert errors_exemplar.count() == 1
    (logged,) = warnings_about(promkit_log, "exemplar:ValueError")
    assert "exemplar labels have 208 characters; OpenMetrics allows 128" in logged


# -- Gauge -------------------------------------------------------------------------------------


def test_gauge_inc_dec_set(reg: MetricsRegistry) -> None:
    child = reg.gauge(unique("depth"), "G.", ["k"]).labels("a")
    child.inc()
    child.inc(4)
    child.dec(2)
    assert child.get() == 3.0
    child.set(-7.5)
    assert child.get() == -7.5
    child.dec()
    assert child.get() == -8.5


def test_gauge_set_to_current_time(reg: MetricsRegistry) -> None:
    gauge = reg.gauge(unique("depth"), "G.")
    before = time.time()
    gauge.set_to_current_time()
    assert before <= gauge.labels().get() <= time.time()


def test_gauge_track_inprogress_as_block_and_decorator(reg: MetricsRegistry) -> None:
    gauge = reg.gauge(unique("depth"), "G.")
    child = gauge.labels()

    @gauge.track_inprogress()
    def work() -> float:
        return float(child.get())

    with gauge.track_inprogress():
        assert child.get() == 1.0
        assert work() == 2.0
    assert child.get() == 0.0


def test_gauge_in_progress_tokens(reg: MetricsRegistry) -> None:
    child = reg.gauge(unique("depth"), "G.", ["k"]).labels("a")
    tokens = child.in_progress_tokens()
    tokens.append(None)
    tokens.append(None)
    assert child.get() == 2.0
    tokens.pop()
    assert child.get() == 1.0


def test_gauge_set_of_a_non_number_is_counted_not_raised(reg: MetricsRegistry,
                                                          promkit_log: pytest.LogCaptureFixture
                                                          ) -> None:
    errors_gauge_set = Failures(reg, "gauge_set:ValueError")
    child = reg.gauge(unique("depth"), "G.", ["k"]).labels("a")
    child.set(4)
    bad: Any = "many"
    child.set(bad)
    child.set(bad)
    assert child.get() == 4.0
    assert errors_gauge_set.count() == 2
    assert len(warnings_about(promkit_log, "gauge_set:ValueError")) == 1


def test_gauge_inc_and_dec_failures_are_counted_by_operation(reg: MetricsRegistry) -> None:
    errors_gauge_inc = Failures(reg, "gauge_inc:TypeError")
    errors_gauge_dec = Failures(reg, "gauge_dec:TypeError")
    child = reg.gauge(unique("depth"), "G.", ["k"]).labels("a")
    bad: Any = object()
    child.inc(bad)
    child.dec(bad)
    assert child.get() == 0.0
    assert errors_gauge_inc.count() == 1
    assert errors_gauge_dec.count() == 1


# -- Histogram ---------------------------------------------------------------------------------


def test_histogram_observe_counts_buckets_and_sum(reg: MetricsRegistry) -> None:
    child = reg.histogram(unique("work_seconds"), "H.", ["k"], buckets=[0.1, 1.0]).labels("a")
    for value in (0.05, 0.1, 0.5, 1.0, 3.0):
        child.observe(value)
    counts, total = child.snapshot()
    assert counts == [2, 2, 1]  # non-cumulative: <=0.1, <=1.0, +Inf
    assert total == pytest.approx(4.65)


def test_histogram_exemplar_goes_to_its_bucket(reg: MetricsRegistry) -> None:
    child = reg.histogram(unique("work_seconds"), "H.", ["k"], buckets=[0.1, 1.0]).labels("a")
    assert child.get_exemplars() is None
    child.observe(0.5, exemplar="cid")
    exemplars = child.get_exemplars()
    assert exemplars is not None and exemplars[0] is None and exemplars[2] is None
    assert exemplars[1] is not None and exemplars[1].labels == {"correlation_id": "cid"}


def test_histogram_refuses_nan(reg: MetricsRegistry,
                               promkit_log: pytest.LogCaptureFixture) -> None:
    errors_histogram_observe = Failures(reg, "histogram_observe:ValueError")
    child = reg.histogram(unique("work_seconds"), "H.", ["k"], buckets=[1.0]).labels("a")
    child.observe(math.nan)
    child.observe(math.nan)
    assert child.snapshot() == ([0, 0], 0.0)
    assert errors_histogram_observe.count() == 2
    (logged,) = warnings_about(promkit_log, "histogram_observe:ValueError")
    assert "cannot observe NaN" in logged


def test_histogram_time_observes_the_block_and_lets_exceptions_through(
        reg: MetricsRegistry) -> None:
    histogram = reg.histogram(unique("work_seconds"), "H.", buckets=[10.0])

    @histogram.time()
    def fails() -> None:
        raise KeyError("app")

    with histogram.time():
        pass
    with pytest.raises(KeyError, match="app"):
        fails()
    counts, total = histogram.labels().snapshot()
    assert counts == [2, 0] and 0 <= total < 10


# -- labels --------------------------------------------------------------------------------------


def test_labels_by_position_or_by_name_give_the_same_child(reg: MetricsRegistry) -> None:
    counter = reg.counter(unique("jobs_total"), "C.", ["method", "status"])
    child = counter.labels("GET", 200)
    assert counter.labels(method="GET", status="200") is child
    assert counter.labels("GET", "200") is child  # cleaned to the same series
    assert child.labelvalues == ("GET", "200")


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("GET",), {}, "has labels ['method', 'status']; got 1 values"),
    (("GET", "200", "x"), {}, "has labels ['method', 'status']; got 3 values"),
    (("GET",), {"status": "200"}, "pass label values by position or by name, not both"),
    ((), {"method": "GET", "code": "200"},
     "has labels ['method', 'status'], got ['code', 'method']"),
])
def test_wrong_labels_are_a_precise_error_counted_not_raised(
        reg: MetricsRegistry, promkit_log: pytest.LogCaptureFixture, args: tuple[Any, ...],
        kwargs: dict[str, Any], message: str) -> None:
    errors_labels = Failures(reg, "labels:ValueError")
    name = unique("jobs_total")
    counter = reg.counter(name, "C.", ["method", "status"])
    child = counter.labels(*args, **kwargs)
    assert child is NULL_CHILD
    child.inc()  # a no-op, never an error
    counter.labels(*args, **kwargs)
    assert errors_labels.count() == 2
    (logged,) = warnings_about(promkit_log, "labels:ValueError")
    assert f"metric {name!r} {message}" in logged or f"metric {name!r}: {message}" in logged


def test_recording_on_a_labelled_metric_without_labels_is_counted(
        reg: MetricsRegistry, promkit_log: pytest.LogCaptureFixture) -> None:
    errors_labels = Failures(reg, "labels:ValueError")
    name = unique("jobs_total")
    counter = reg.counter(name, "C.", ["k"])
    counter.inc()
    assert errors_labels.count() == 1
    (logged,) = warnings_about(promkit_log, "labels:ValueError")
    assert f"metric {name!r} needs labels ['k']" in logged


def test_series_limit_folds_into_the_overflow_series(reg: MetricsRegistry) -> None:
    counter = reg.counter(unique("jobs_total"), "C.", ["k"], series_limit=2)
    counter.labels("a").inc()
    counter.labels("b").inc()
    counter.labels("c").inc()
    counter.labels("d").inc()
    children = counter.children()
    assert [c.labelvalues for c in children] == [("a",), ("b",), (OVERFLOW_VALUE,)]
    assert children[-1].get() == 2.0
    assert counter.series_count() == 3
    assert reg.failures.overflows is not None
    assert reg.failures.overflows.labels(counter.name).get() == 2.0


def test_remove_and_clear(reg: MetricsRegistry) -> None:
    gauge = reg.gauge(unique("depth"), "G.", ["k"])
    gauge.labels("a").set(1)
    gauge.labels("b").set(2)
    gauge.remove("a")
    assert [c.labelvalues for c in gauge.children()] == [("b",)]
    # A new child; in multiprocess mode it reads the value the mmap file still holds.
    assert gauge.labels("a").get() == (1.0 if reg.multiprocess else 0.0)
    gauge.clear()
    assert gauge.children() == []


# -- collector protocol --------------------------------------------------------------------------


def test_collect_gives_the_family_and_its_samples(reg: MetricsRegistry) -> None:
    name = unique("work_seconds")
    histogram = reg.histogram(name, "H.", ["k"], buckets=[1.0])
    histogram.labels("a").observe(0.5)
    (family,) = histogram.collect()
    assert family.name == name and family.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[(name + "_bucket", "1.0")] == 1
    assert samples[(name + "_bucket", "+Inf")] == 1
    assert samples[(name + "_count", None)] == 1
    assert samples[(name + "_sum", None)] == 0.5
    assert repr(histogram).startswith("<Histogram ")
