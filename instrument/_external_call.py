"""External calls: one call's outcome, status class, duration and retries, recorded.

The working half of :mod:`promkit.instrument.external` (the public module,
which documents the metrics and also holds the httpx helpers of
:mod:`promkit.instrument._httpx_calls`): :class:`ExternalCall` is both the
decorator and the (async) context manager; :func:`default_classify` gives a
call its outcome unless another classifier does. Recording never raises and
never changes the application's exceptions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

from promkit.instrument._log_output import library_logger
from promkit.instrument.metrics import Counter, Histogram
from promkit.instrument.registry import MetricsRegistry, catalog_metric, default_registry

__all__ = [
    "Classifier",
    "ExternalCall",
    "Outcome",
    "default_classify",
    "external_call",
    "record_retry",
    "status_class",
]

Outcome = Literal["success", "error", "timeout"]
Classifier = Callable[[BaseException | None, int | None], str]

OUTCOMES: frozenset[str] = frozenset({"success", "error", "timeout"})
NO_STATUS = "none"

_CALLS = "external_calls_total"
_DURATION = "external_call_duration_seconds"
_RETRIES = "external_call_retries_total"

F = TypeVar("F", bound=Callable[..., Any])

logger = library_logger("promkit.external")  # the app's logging, or nothing

# Exception classes that mean "the call ran out of time" without importing any
# HTTP library: TimeoutError covers socket.timeout and (3.11+) asyncio's and
# concurrent.futures' TimeoutError; on 3.10 those two are separate classes.
# asyncio.CancelledError is how asyncio.timeout() and wait_for() stop the code
# running inside them, so a call cut short that way counts as a timeout.
_TIMEOUT_TYPES: tuple[type[BaseException], ...] = tuple(
    {TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError, asyncio.CancelledError}
)


def _library_timeouts() -> tuple[type[BaseException], ...]:
    # Only libraries already imported can have raised their exceptions, so we
    # look in sys.modules instead of importing httpx/requests ourselves.
    found: list[type[BaseException]] = []
    httpx_mod = sys.modules.get("httpx")
    if httpx_mod is not None:
        found.append(httpx_mod.TimeoutException)
    requests_exc = sys.modules.get("requests.exceptions")
    if requests_exc is not None:
        found.append(requests_exc.Timeout)
    return tuple(found)


def status_class(status: int | None) -> str:
    """``"2xx"``...``"5xx"`` for an HTTP status, ``"none"`` when there is none."""
    if status is None or not 100 <= status <= 599:
        return NO_STATUS
    return f"{status // 100}xx"


def default_classify(exc: BaseException | None, status: int | None) -> Outcome:
    """The default outcome of a call.

    - a timeout exception (``TimeoutError``, ``asyncio.TimeoutError``,
      ``socket.timeout``, ``httpx.TimeoutException``, ``requests.Timeout``) or
      ``asyncio.CancelledError`` (how ``asyncio.timeout``/``wait_for`` stop the
      code inside them) → ``timeout``;
    - any other exception → ``error``;
    - an HTTP status ≥ 500 or 429 → ``error``;
    - anything else → ``success``.
    """
    if exc is not None:
        if isinstance(exc, _TIMEOUT_TYPES):
            return "timeout"
        library = _library_timeouts()
        if library and isinstance(exc, library):
            return "timeout"
        return "error"
    if status is not None and (status >= 500 or status == 429):
        return "error"
    return "success"


def _status_of(obj: object) -> int | None:
    """The HTTP status of a response-like object (``status_code`` or ``status``)."""
    for attr in ("status_code", "status"):
        value = getattr(obj, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _status_of_exception(exc: BaseException) -> int | None:
    # httpx.HTTPStatusError (raise_for_status) and many SDK errors carry the
    # response, or the status itself.
    status = _status_of(exc)
    if status is None:
        status = _status_of(getattr(exc, "response", None))
    return status


# ----------------------------------------------------------------------- metrics


def record_retry(service: str, operation: str, *, registry: MetricsRegistry | None = None) -> None:
    """Count one retry of ``service``/``operation``; never raises."""
    reg = registry if registry is not None else default_registry()
    try:
        catalog_metric(reg, Counter, _RETRIES).labels(service, operation).inc()
    except Exception as exc:
        reg.failures.failure("external_retry", exc)


# ------------------------------------------------------------------- the wrapper


class ExternalCall:
    """One call to an external service; see :func:`external_call`.

    Inside a ``with`` block set :attr:`status` to the HTTP status you got
    (``call.status = resp.status_code``), or :attr:`outcome` to override the
    classifier (e.g. ``"error"`` for a 200 whose body reports a failure).
    After the block, :attr:`duration` holds the seconds it took and
    :attr:`outcome` the recorded outcome.
    """

    __slots__ = ("_classify", "_registry", "_start", "duration", "operation", "outcome",
                 "service", "status")

    def __init__(self, service: str, operation: str, *, registry: MetricsRegistry | None = None,
                 classify: Classifier | None = None) -> None:
        self.service = service
        self.operation = operation
        self._registry = registry
        self._classify = classify
        self.status: int | None = None
        self.outcome: str | None = None
        self.duration: float | None = None
        self._start = 0.0

    # -- recording ----------------------------------------------------------------

    def _begin(self) -> None:
        self.status = None
        self.outcome = None
        self.duration = None
        self._start = time.perf_counter()

    def _end(self, exc: BaseException | None) -> None:
        duration = time.perf_counter() - self._start
        self.duration = duration
        try:
            registry = self._registry if self._registry is not None else default_registry()
        except Exception:  # pragma: no cover - nowhere to count it
            return
        try:
            status = self.status
            if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
                raise TypeError(f"call.status must be an int HTTP status, not {status!r}")
            if status is None and exc is not None:
                status = _status_of_exception(exc)
            outcome = self.outcome
            if outcome is not None and outcome not in OUTCOMES:
                registry.failures.failure(
                    "external_outcome", ValueError(f"outcome {outcome!r} is not one of "
                                                   f"{sorted(OUTCOMES)}"))
                outcome = None
            if outcome is None:
                outcome = self._run_classifier(registry, exc, status)
            self.outcome = outcome
            self.status = status
            cls = status_class(status)
            calls = catalog_metric(registry, Counter, _CALLS)
            calls.labels(self.service, self.operation, outcome, cls).inc()
            durations = catalog_metric(registry, Histogram, _DURATION)
            durations.labels(self.service, self.operation, outcome).observe(duration)
        except Exception as failure:
            registry.failures.failure("external_call", failure)
            return
        self._log(registry, exc, duration)

    def _run_classifier(self, registry: MetricsRegistry, exc: BaseException | None,
                        status: int | None) -> str:
        if self._classify is None:
            return default_classify(exc, status)
        try:
            outcome = self._classify(exc, status)
            if outcome not in OUTCOMES:
                raise ValueError(f"classify returned {outcome!r}, not one of {sorted(OUTCOMES)}")
            return outcome
        except Exception as failure:
            registry.failures.failure("external_classify", failure)
            return default_classify(exc, status)

    def _log(self, registry: MetricsRegistry, exc: BaseException | None,
             duration: float) -> None:
        try:
            fields: dict[str, Any] = {
                "service": self.service, "operation": self.operation, "outcome": self.outcome,
                "status_code": self.status, "latency_ms": round(duration * 1000.0, 3),
            }
            if exc is not None:
                fields["error_type"] = type(exc).__name__
            if self.outcome == "success":
                logger.debug("external call completed", **fields)
            else:
                logger.info("external call completed", **fields)
        except Exception as failure:
            registry.failures.failure("external_log", failure)

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> ExternalCall:
        self._begin()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._end(exc)  # returns None: the exception, if any, propagates unchanged

    async def __aenter__(self) -> ExternalCall:
        self._begin()
        return self

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._end(exc)

    # -- decorator --------------------------------------------------------------------

    def _fresh(self) -> ExternalCall:
        return ExternalCall(self.service, self.operation, registry=self._registry,
                            classify=self._classify)

    def __call__(self, func: F) -> F:
        """Wrap ``func``; each invocation is one call. A returned response-like object
        (with an int ``status_code`` or ``status``) gives the call its status."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = self._fresh()
                call._begin()
                try:
                    result = await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                except BaseException as exc:
                    call._end(exc)
                    raise
                if call.status is None:
                    call.status = _status_of(result)
                call._end(None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._fresh()
            call._begin()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                call._end(exc)
                raise
            call.status = _status_of(result)
            call._end(None)
            return result

        return cast(F, wrapper)


def external_call(service: str, operation: str, *, registry: MetricsRegistry | None = None,
                  classify: Classifier | None = None) -> ExternalCall:
    """Record a call to ``service``/``operation``: decorator or (async) context manager.

    ``classify(exc, status)`` returns the outcome (``success``, ``error`` or
    ``timeout``); it defaults to :func:`default_classify`. A classifier that
    raises or returns anything else is counted as an instrumentation failure
    and the default decides. Use a new ``external_call(...)`` per ``with``
    block; as a decorator one is reused safely (each invocation gets its own
    record).
    """
    return ExternalCall(service, operation, registry=registry, classify=classify)
