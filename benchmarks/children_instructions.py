"""Instructions per record call of the metric children, and of the forms they avoid.

``python -m benchmarks.children_instructions`` counts with callgrind (as
:mod:`benchmarks.instructions` does for whole requests) the instructions one
``CounterChild.inc()`` costs as written, and as it would cost in the
forms issue #18 asks about: the lock taken with ``with`` instead of
``acquire``/``release``, the try/failure block moved into one decorator
(``guarded``) that wraps an unguarded update, and the lock read once into a
local (a trick the children dropped: it saved nothing, within 10
instructions). The children's code keeps the inline form; the one-line
comments there quote these numbers. Counts repeat exactly
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

cls = {"inline": CounterChild, "with_lock": WithLock, "decorated": Decorated,
       "local_lock": LocalLock}[sys.argv[1]]
inc = cls((), FailureSink()).inc
for _ in range(int(sys.argv[2])):
    inc()
"""

FORMS = ("inline", "with_lock", "decorated", "local_lock")


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
