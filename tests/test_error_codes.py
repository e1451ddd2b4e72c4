"""Error codes (instrument/_error_codes.py): mapper precedence, fallbacks, failures counted."""

import pytest
from _stage_helpers import FAILURES, Boom, sample  # tests/ is on sys.path

from promkit.instrument.stages import (
    error_code_for,
    get_error_code_mapper,
    set_error_code_mapper,
    stage_timer,
)


@pytest.fixture(autouse=True)
def _restore_mapper():
    previous = get_error_code_mapper()
    yield
    set_error_code_mapper(previous)


def test_error_code_default_global_and_per_timer(registry):
    class RateLimited(Exception):
        pass

    def fail(exc, **options):
        @stage_timer("llm", registry=registry, **options)
        def call():
            raise exc

        with pytest.raises(type(exc)):
            call()

    fail(RateLimited())
    assert sample(registry, FAILURES, stage="llm", error_code="RateLimited") == 1

    set_error_code_mapper(lambda exc: "429" if isinstance(exc, RateLimited) else None)
    fail(RateLimited())
    fail(Boom())  # None from the mapper means the default
    assert sample(registry, FAILURES, stage="llm", error_code="429") == 1
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 1

    fail(RateLimited(), error_code=lambda exc: "rate_limited")  # per-timer beats global
    assert sample(registry, FAILURES, stage="llm", error_code="rate_limited") == 1


def test_failing_mapper_falls_back_to_class_name_and_is_counted(registry):
    def broken(exc):
        raise RuntimeError("mapper bug")

    with pytest.raises(Boom), stage_timer("llm", registry=registry, error_code=broken):
        raise Boom()
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 1
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="error_code_mapper:RuntimeError") == 1

    with pytest.raises(Boom), stage_timer("llm", registry=registry, error_code=lambda e: 42):
        raise Boom()
    assert sample(registry, FAILURES, stage="llm", error_code="Boom") == 2
    assert sample(registry, "promkit_instrumentation_errors_total",
                  cause="error_code_mapper:TypeError") == 1


def test_error_code_for_helper():
    assert error_code_for(KeyError("x")) == "KeyError"
    assert error_code_for(KeyError("x"), lambda e: "missing") == "missing"
    assert error_code_for(KeyError("x"), lambda e: "") == "KeyError"
