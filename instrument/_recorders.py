"""Recorders: one call that updates several in-process series under one lock.

The HTTP middleware records a request's duration and sizes, and a stage its
wall and CPU seconds, with one call each. When every series is a
single-process child the updates happen inline under one shared lock; any
other combination (multiprocess files, null children) falls back to the
children's own calls. Never raises.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from promkit.instrument._children import CounterChild, HistogramChild

__all__ = ["http_request_recorder", "paired_recorder"]


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

    # One lock for both: 4,068 instr./record against 4,981 with a lock each
    # (python -m benchmarks.children_instructions --tricks: paired_shared_lock).
    lock = counter._lock = histogram._lock
    bounds, counts, sink = histogram._bounds, histogram._counts, histogram._sink

    def record(value: float, amount: float) -> None:
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            i = bisect_left(bounds, value)
            # acquire/release: `with lock` costs +1,072 instr. (benchmarks.children_instructions)
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


def http_request_recorder(duration: Any, request_size: Any,
                          response_size: Any) -> Callable[[float, Any, int, int], None]:
    """``record(seconds, exemplar, request_bytes, response_bytes)`` for one request.

    Observes ``seconds`` (with ``exemplar``, when not None) in ``duration``
    and the two sizes in theirs (``request_bytes < 0``: unknown, not
    recorded). The HTTP middleware calls this once per request when it
    records body sizes (without them it calls ``duration.observe``). Three
    in-process series are updated inline under the request-size series' lock
    (the one series shared by every status of a route), which the other two
    take from then on: one acquisition for the three updates. Otherwise
    (multiprocess files) each series gets its own call. Never raises.
    """
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
    # One lock for the three series, as paired_recorder shares one for two (-913 instr.).
    lock = duration._lock = response_size._lock = request_size._lock
    q_bounds, q_counts = request_size._bounds, request_size._counts
    r_bounds, r_counts = response_size._bounds, response_size._counts

    def record(seconds: float, exemplar: Any, request_bytes: int, response_bytes: int) -> None:
        try:
            if seconds != seconds:
                raise ValueError("cannot observe NaN")
            i = bisect_left(d_bounds, seconds)
            k = bisect_left(r_bounds, response_bytes)
            # acquire/release: `with lock` costs +1,072 instr. (benchmarks.children_instructions)
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
                exemplars[i] = (exemplar, seconds, time.time())
        except Exception as exc:
            sink.failure("http_record", exc)

    return record

