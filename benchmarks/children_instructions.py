"""Instructions per record call of the metric children, and of the forms they avoid.

``python -m benchmarks.children_instructions`` counts with callgrind (as
:mod:`benchmarks.instructions` does for whole requests) the instructions one
``CounterChild.inc()`` costs as written, and as it would cost in the
forms issue #18 asks about: the lock taken with ``with`` instead of
``acquire``/``release``, the try/failure block moved into one decorator
(``guarded``) that wraps an unguarded update, the update moved into a method
of the child (``hook``: one helper shared by the children, overridden by the
multiprocess ones), and the lock read once into a local (a trick the children
dropped: it saved nothing, within 10 instructions). It also counts
``MultiprocessCounterChild.inc()`` on prometheus-client's mmap file.

``--tricks`` also counts each remaining hot-path trick against its plain
form: the ``time()`` imported as ``_now`` against ``time.time()`` (an
``inc`` with an exemplar), the metric's raw-value label cache against
cleaning the values on each ``labels(200)``, a gauge's in-progress token
list against ``inc()``/``dec()``, and ``paired_recorder``'s one shared lock
against a lock per series. The children's code keeps the forms these numbers
justify; the one-line comments there quote them. Counts repeat exactly
(``PYTHONHASHSEED=0``); needs Debian's ``valgrind``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile

from benchmarks.instructions import _env

# Run inside valgrind: N calls of one form, after the set-up.
_PROGRAM = """
import functools, sys
from promkit.instrument._children import CounterChild
from promkit.instrument._safety import FailureSink
from time import time as _now

def guarded(cause):
    def wrap(update):
        @functools.wraps(update)
        def method(self, *args, **kwargs):
            try:
                update(self, *args, **kwargs)
            except Exception as exc:
                self._sink.failure(cause, exc)
        return method
    return wrap

class WithLock(CounterChild):
    __slots__ = ()
    def inc(self, amount=1.0, exemplar=None):
        try:
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            with self._lock:
                self._value += amount
            if exemplar is not None:
                self._exemplar = (exemplar, amount, _now())
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

class Decorated(CounterChild):
    __slots__ = ()
    @guarded("counter_inc")
    def inc(self, amount=1.0, exemplar=None):
        if not amount >= 0:
            raise ValueError(f"counters only go up; got increment {amount!r}")
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()
        if exemplar is not None:
            self._exemplar = (exemplar, amount, _now())

class LocalLock(CounterChild):
    __slots__ = ()
    def inc(self, amount=1.0, exemplar=None):
        try:
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
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

class Hook(CounterChild):
    __slots__ = ()
    def inc(self, amount=1.0, exemplar=None):
        try:
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            self._add(amount)
            if exemplar is not None:
                self._exemplar = (exemplar, amount, _now())
        except Exception as exc:
            self._sink.failure("counter_inc", exc)
    def _add(self, amount):
        self._lock.acquire()
        try:
            self._value += amount
        finally:
            self._lock.release()

class NowAlias(CounterChild):
    # The trick the children dropped: time() imported as _now instead of time.time().
    __slots__ = ()
    def inc(self, amount=1.0, exemplar=None):
        try:
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            self._lock.acquire()
            try:
                self._value += amount
            finally:
                self._lock.release()
            if exemplar is not None:
                self._exemplar = (exemplar, amount, _now())
        except Exception as exc:
            self._sink.failure("counter_inc", exc)

import time
from prometheus_client import CollectorRegistry
from promkit.instrument.registry import MetricsRegistry
from promkit.instrument._children import GaugeChild

def labels_op(alias):
    metric = MetricsRegistry(CollectorRegistry()).counter("bench_total", "Bench.", ["code"])
    metric.labels(200)
    if not alias:  # every call cleans its values and looks the series up under the lock
        resolve = metric._resolve
        metric.labels = lambda *values: resolve(values)
        metric._cache.clear()
        metric._limit_cache = 0
    return lambda: metric.labels(200)

def tokens_op():
    tokens = GaugeChild((), FailureSink()).in_progress_tokens()
    append, pop = tokens.append, tokens.pop
    def op():
        append(None)
        pop()
    return op

def inc_dec_op():
    child = GaugeChild((), FailureSink())
    inc, dec = child.inc, child.dec
    def op():
        inc()
        dec()
    return op

def mp_counter_op():
    import tempfile
    from prometheus_client import values
    from promkit.instrument._mp_children import MultiprocessCounterChild
    from promkit.instrument.catalog import MetricSpec
    directory = tempfile.mkdtemp()
    import os
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    spec = MetricSpec(name="bench_total", kind="counter", help="Bench.", labels=())
    child = MultiprocessCounterChild((), FailureSink(), spec, values.MultiProcessValue())
    return child.inc

def paired_op(shared):
    # paired_recorder (one lock shared by the two series) against the plain form: each
    # series updated under its own lock.
    import threading
    from bisect import bisect_left
    from promkit.instrument._children import HistogramChild
    from promkit.instrument._recorders import paired_recorder
    h = HistogramChild((), FailureSink(), [0.1, 1.0, 10.0])
    c = CounterChild((), FailureSink())
    if shared:
        record = paired_recorder(h, c)
        return lambda: record(0.5, 0.25)
    bounds, counts, sink = h._bounds, h._counts, h._sink
    h_lock, c_lock = h._lock, c._lock
    def record_two_locks(value, amount):
        try:
            if value != value:
                raise ValueError("cannot observe NaN")
            if not amount >= 0:
                raise ValueError(f"counters only go up; got increment {amount!r}")
            i = bisect_left(bounds, value)
            h_lock.acquire()
            try:
                counts[i] += 1
                h._sum += value
            finally:
                h_lock.release()
            c_lock.acquire()
            try:
                c._value += amount
            finally:
                c_lock.release()
        except Exception as exc:
            sink.failure("paired_record", exc)
    return lambda: record_two_locks(0.5, 0.25)

def exemplar_op(cls):
    inc = cls((), FailureSink()).inc
    ex = {"trace_id": "0" * 32}
    return lambda: inc(1.0, ex)

forms = {"inline": CounterChild, "with_lock": WithLock, "decorated": Decorated,
         "local_lock": LocalLock, "hook": Hook}
form = sys.argv[1]
if form in forms:
    op = forms[form]((), FailureSink()).inc
elif form == "exemplar_now_alias":
    op = exemplar_op(NowAlias)
elif form == "exemplar_time_time":
    op = exemplar_op(CounterChild)
elif form == "labels_alias":
    op = labels_op(True)
elif form == "labels_no_alias":
    op = labels_op(False)
elif form == "gauge_tokens":
    op = tokens_op()
elif form == "gauge_inc_dec":
    op = inc_dec_op()
elif form == "paired_shared_lock":
    op = paired_op(True)
elif form == "paired_two_locks":
    op = paired_op(False)
elif form == "mp_counter":
    op = mp_counter_op()
for _ in range(int(sys.argv[2])):
    op()
"""

FORMS = ("inline", "with_lock", "decorated", "local_lock", "hook")
# Pairs measured against each other: (form, its plainer alternative).
PAIRS = (("exemplar_now_alias", "exemplar_time_time"), ("labels_alias", "labels_no_alias"),
         ("gauge_tokens", "gauge_inc_dec"), ("paired_shared_lock", "paired_two_locks"))


def count(form: str, small: int, large: int) -> float:
    """Instructions per ``inc()`` of ``form`` (start-up cancels out: two runs' difference)."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (small, large):
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p",
                 sys.executable, "-c", _PROGRAM, form, str(n)],
                env=_env(), capture_output=True, text=True, timeout=1800, check=False)
            match = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
            if proc.returncode != 0 or match is None:
                raise RuntimeError(f"{form}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
            totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / (large - small)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.children_instructions",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=110_000)
    ap.add_argument("--tricks", action="store_true",
                    help="also count the hot-path tricks against their plain forms")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    counts = {form: count(form, args.small, args.large) for form in FORMS}
    base = counts["inline"]
    print("### Instructions per CounterChild.inc() (callgrind, PYTHONHASHSEED=0)\n")
    print("| form | instructions / call | over inline |")
    print("|---|---:|---:|")
    for form, value in counts.items():
        print(f"| {form} | {value:,.0f} | {value - base:+,.0f} ({(value - base) / base:+.0%}) |")
    mp = count("mp_counter", args.small, args.large)
    print(f"\nMultiprocessCounterChild.inc() (prometheus-client's mmap file): {mp:,.0f} "
          "instructions / call")
    if args.tricks:
        print("\n### Hot-path tricks against their plain forms (instructions per call)\n")
        print("| trick | instructions / call | plain form | instructions / call | saved |")
        print("|---|---:|---|---:|---:|")
        for trick, plain in PAIRS:
            t, p = count(trick, args.small, args.large), count(plain, args.small, args.large)
            saved = f"{p - t:+,.0f} ({(p - t) / p:+.0%})"
            print(f"| {trick} | {t:,.0f} | {plain} | {p:,.0f} | {saved} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
