"""The thread CPU clock, read as rarely as a stage timer can.

Reading the thread CPU clock (:func:`time.thread_time`) is a system call (the
vDSO does not serve it): 0.2-0.6 us, as much as the rest of a stage timer.
Stages often follow one another closely (stages run back to back, the steps
of async stages on one loop), so a stage that starts within
:data:`CHAIN_WINDOW` of the thread's last reading takes as its start that
reading plus the wall time since (:func:`cpu_at`): exact while the thread ran
in between. Had it been preempted or blocked there, the stage's CPU comes out
short by that pause (10 us at most), never over its true value and never
below zero. Every closing reading (:func:`read_cpu`) is kept for the next
start on the same thread.
"""

from __future__ import annotations

import math
import os
import threading
from time import thread_time

__all__ = ["CHAIN_WINDOW", "cpu_at", "cpu_reading", "read_cpu"]

CHAIN_WINDOW = 10e-6
"""A start this soon (wall seconds) after the thread's last CPU reading is derived from it."""


class _LastCpuReading(threading.local):
    """This thread's latest closing CPU-clock reading.

    ``last = (perf_counter(), thread_time())``, read in that order.
    """

    def __init__(self) -> None:
        self.last = (-math.inf, 0.0)


cpu_reading = _LastCpuReading()


def _forget_cpu_reading() -> None:
    # A forked child's thread has a CPU clock of its own, starting afresh.
    cpu_reading.last = (-math.inf, 0.0)


os.register_at_fork(after_in_child=_forget_cpu_reading)


def cpu_at(t0: float) -> float:
    """The thread CPU clock at ``t0`` (a ``perf_counter()`` value just read)."""
    t_last, c_last = cpu_reading.last
    return c_last + (t0 - t_last) if t0 - t_last < CHAIN_WINDOW else thread_time()


def read_cpu(t1: float) -> float:
    """The thread CPU clock now (``t1``: ``perf_counter()`` just before), kept for a next start."""
    c1 = thread_time()
    cpu_reading.last = (t1, c1)
    return c1
