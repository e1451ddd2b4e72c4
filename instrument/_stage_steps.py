"""The step driver of async stages: CPU time counted only while the stage's coroutine runs.

``@stage_timer`` on an ``async def`` runs the coroutine's first step itself
(through :func:`stage_steps`), between two readings of the clocks. A
coroutine that suspends is driven on by :func:`later_steps`, which excludes
the time the event loop spends elsewhere while the stage awaits: time another
task runs on the loop is not the stage's CPU time.
"""

from __future__ import annotations

import types
from collections.abc import Generator
from time import perf_counter
from typing import Any

from promkit.instrument._cpu_clock import cpu_at

__all__ = ["later_steps", "stage_steps"]


@types.coroutine
def stage_steps(step: Any, result: list[Any]) -> Generator[Any, Any, None]:
    """The steps of ``step`` (a coroutine or an ``__await__`` iterator); its result is
    appended to ``result`` when it returns.

    The caller takes the first step with ``next(steps, None)`` and tells by
    ``result`` whether the stage ended in it. This generator then returns
    None, which ``next`` sees without the StopIteration that
    ``step.send(None)`` raises when a coroutine returns (-140 ns, -0.6k
    instructions per empty async stage at INFO: benchmarks.instructions
    --driver stages and a timed A/B). What ``step`` yields, and what is sent
    or thrown in, pass through ``yield from`` unchanged; a stage that
    suspends is driven on by :func:`later_steps`.
    """
    result.append((yield from step))


@types.coroutine
def later_steps(step: Any, yielded: Any, c0: list[Any]) -> Generator[Any, Any, Any]:
    """Drive an async stage on from its first suspension; returns its result.

    ``step`` (a coroutine or an ``__await__`` iterator) has just yielded
    ``yielded``. What it yields (futures, trio traps...) passes through to the
    event loop untouched, and what the loop sends or throws goes back in, so
    results and cancellation behave exactly as with a plain ``await``.

    ``c0[0]`` is the stage's CPU start (None: ``cpu=False``, no CPU counted);
    each suspension moves it on by the CPU the thread spent elsewhere
    meanwhile, so that when the stage ends (the caller reads the clock then)
    ``now - c0[0]`` is the CPU of its own steps.
    """
    send = step.send
    cpu = c0[0] is not None
    paused = cpu_at(perf_counter()) if cpu else 0.0
    while True:
        thrown: BaseException | None = None
        try:
            value = yield yielded
        except GeneratorExit:
            if cpu:  # closing runs the stage's own code
                c0[0] += cpu_at(perf_counter()) - paused
            step.close()
            raise
        except BaseException as exc:
            thrown, value = exc, None
        if cpu:
            c0[0] += cpu_at(perf_counter()) - paused
        try:
            yielded = send(value) if thrown is None else step.throw(thrown)
        except StopIteration as stop:
            return stop.value
        if cpu:
            paused = cpu_at(perf_counter())
