"""Error codes: an exception mapped to a bounded label value.

Stage timers and job runs label failures with an error code from a mapping
hook: the per-timer (or per-tracker) ``error_code=`` callable, else the
process-wide one set with :func:`set_error_code_mapper`, else the exception's
class name. A mapper that raises (or returns something that is not a
non-empty string) falls back to the class name, and the failure is counted as
an instrumentation error; returning ``None`` means "use the default".

Public through :mod:`promkit.instrument.stages` (and ``promkit.instrument``).
"""

from __future__ import annotations

from collections.abc import Callable

from promkit.instrument._safety import FailureSink

__all__ = ["ErrorCodeMapper", "error_code_for", "get_error_code_mapper", "set_error_code_mapper"]

ErrorCodeMapper = Callable[[BaseException], str | None]
"""Maps an exception to an error code (a bounded label value); None means "the default"."""

_global_mapper: ErrorCodeMapper | None = None


def set_error_code_mapper(mapper: ErrorCodeMapper | None) -> ErrorCodeMapper | None:
    """Set the process-wide exception → error code mapping; returns the previous one.

    ``None`` restores the default (the exception's class name). Per-timer
    ``error_code=`` callables take precedence over this one.
    """
    global _global_mapper
    previous = _global_mapper
    _global_mapper = mapper
    return previous


def get_error_code_mapper() -> ErrorCodeMapper | None:
    """The process-wide error code mapping, or None for the default."""
    return _global_mapper


def error_code_for(exc: BaseException, mapper: ErrorCodeMapper | None = None,
                   sink: FailureSink | None = None) -> str:
    """The error code of ``exc``: ``mapper``, else the global mapper, else the class name.

    Never raises: a failing mapper (or one returning a non-string or empty
    value) falls back to the class name and, when ``sink`` is given, is
    counted there as an instrumentation failure.
    """
    fn = mapper if mapper is not None else _global_mapper
    if fn is not None:
        try:
            code = fn(exc)
            if type(code) is str and code:
                return code
            if code is not None:
                raise TypeError(
                    f"error code mapper returned {type(code).__name__} {code!r}; "
                    "expected a non-empty str (or None for the default)"
                )
        except Exception as failure:
            if sink is not None:
                sink.failure("error_code_mapper", failure)
    return type(exc).__name__
