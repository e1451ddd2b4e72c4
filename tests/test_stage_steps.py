"""The async stage's step driver: results, exceptions, sends, throws and closes pass through."""

import asyncio
import types

import pytest
from _stage_helpers import DURATION, FAILURES, Boom, sample  # tests/ is on sys.path

from promkit.instrument._stage_steps import later_steps, stage_steps
from promkit.instrument.stages import stage_timer


def drive(awaitable_iter):
    """Take the first step as the decorator does: (steps, yielded, result list)."""
    result = []
    steps = stage_steps(awaitable_iter, result)
    return steps, next(steps, None), result


def test_a_stage_that_ends_in_its_first_step_leaves_its_result():
    async def value():
        return 42

    async def nothing():
        return None

    _, _, result = drive(value())
    assert result == [42]
    _, _, result = drive(nothing())
    assert result == [None]


def test_a_first_step_that_raises_raises_the_same_exception():
    error = Boom()

    async def broken():
        raise error

    with pytest.raises(Boom) as info:
        drive(broken())
    assert info.value is error


def test_what_a_suspended_stage_yields_and_is_sent_passes_through():
    @types.coroutine
    def trap(tag):
        return (yield tag)

    async def two_steps():
        first = await trap("a")
        second = await trap("b")
        return first + second

    steps, yielded, result = drive(two_steps())
    assert yielded == "a" and result == []
    assert steps.send(1) == "b"
    with pytest.raises(StopIteration):
        steps.send(2)
    assert result == [3]


def test_a_throw_reaches_the_suspended_stage_and_a_close_closes_it():
    closed = []

    @types.coroutine
    def trap():
        yield "wait"

    async def handles():
        try:
            await trap()
        except Boom:
            return "handled"

    async def cleans_up():
        try:
            await trap()
        finally:
            closed.append(True)

    steps, _, result = drive(handles())
    with pytest.raises(StopIteration):
        steps.throw(Boom())
    assert result == ["handled"]
    steps, _, result = drive(cleans_up())
    steps.close()
    assert closed == [True] and result == []


def test_an_await_iterator_is_driven_like_a_coroutine():
    class Ready:
        def __await__(self):
            value = yield "tick"
            return value * 2

    steps, yielded, result = drive(Ready().__await__())
    assert yielded == "tick"
    with pytest.raises(StopIteration):
        steps.send(21)
    assert result == [42]


async def test_later_steps_drives_the_rest_on_the_event_loop():
    async def sleeper():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    steps, yielded, result = drive(sleeper())
    c0 = [None]  # cpu=False: no CPU readings
    assert await later_steps(steps, yielded, c0) is None  # stage_steps itself returns None
    assert result == ["done"] and c0 == [None]


async def test_decorated_stages_return_raise_and_nest(registry):
    error = Boom()

    @stage_timer("inner", registry=registry)
    async def inner(suspend: bool, fail: bool = False):
        if suspend:
            await asyncio.sleep(0)
        if fail:
            raise error
        return suspend

    @stage_timer("outer", registry=registry)
    async def outer():
        return [await inner(False), await inner(True)]

    assert await outer() == [False, True]
    for suspend in (False, True):
        with pytest.raises(Boom) as info:
            await inner(suspend, fail=True)
        assert info.value is error
    assert sample(registry, DURATION + "_count", stage="inner") == 4
    assert sample(registry, DURATION + "_count", stage="outer") == 1
    assert sample(registry, FAILURES, stage="inner", error_code="Boom") == 2


async def test_a_decorated_stage_closed_while_suspended_closes_its_coroutine(registry):
    closed = []

    @types.coroutine
    def trap():
        yield "wait"

    @stage_timer("closing", registry=registry)
    async def stage():
        try:
            await trap()
        finally:
            closed.append(True)

    coro = stage()
    assert coro.send(None) == "wait"
    coro.close()
    assert closed == [True]
    assert sample(registry, FAILURES, stage="closing", error_code="GeneratorExit") == 1
