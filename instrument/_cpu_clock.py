"""The thread CPU clock, read as rarely as a stage timer can.

Reading the thread CPU clock (:func:`time.thread_time`) is a system call (the
vDSO does not serve it): 0.2-0.6 us, as much as the rest of a stage timer.
Stages often follow one another closely (stages run back to back, the steps
of async stages on one loop), so a stage boundary (a start, an end, an async
stage's suspension or resumption) within :data:`CHAIN_WINDOW` of the thread's
last reading takes that reading plus the wall time since (:func:`cpu_at`):
exact while the thread ran in between; the clock is read at most once per
10 us of a thread's wall time. Had the thread been preempted or blocked in
such a gap, the boundary is off by that pause (under 10 us), so a stage's CPU
comes out within 10 us of its true value either way (the timers keep it
between zero and the stage's wall time).
"""

from __future__ import annotations

import math
import os
import threading
from time import thread_time

__all__ = ["CHAIN_WINDOW", "cpu_at", "cpu_reading"]

CHAIN_WINDOW = 10e-6
"""A boundary this soon (wall seconds) after the thread's last CPU reading is derived from it."""


class _LastCpuReading(threading.local):
    """This thread's latest CPU-clock reading.

    ``last = (perf_counter(), thread_time())``, read in that order.
    """

    def __init__(self) -> None:
        self.last = (-math.inf, 0.0)


cpu_reading = _LastCpuReading()


def _forget_cpu_reading() -> None:
    # A forked child's thread has a CPU clock of its own, starting afresh.
    cpu_reading.last = (-math.inf, 0.0)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_cpu_reading)


def cpu_at(t: float) -> float:
    """The thread CPU clock at ``t`` (a ``perf_counter()`` value just read).

    Derived from the thread's last reading when that is less than
    :data:`CHAIN_WINDOW` old, else read (and kept for the next call).
    """
    t_last, c_last = cpu_reading.last
    if t - t_last < CHAIN_WINDOW:
        return c_last + (t - t_last)
    c = thread_time()
    cpu_reading.last = (t, c)
    return c
