"""Instrumentation never breaks the app: failures are counted and logged once.

Every record call (``inc``, ``observe``, ``set``, ``labels``...) catches its
own exceptions and hands them to a :class:`FailureSink`, which counts them in
``promkit_instrumentation_errors_total{cause=...}`` and logs the first one of
each cause. Causes are ``<operation>:<ExceptionClass>``, a bounded set.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promkit.instrument.metrics import Counter

logger = logging.getLogger("promkit")

_guard = threading.local()


class FailureSink:
    """Counts and logs (once per cause) failures inside promkit's recording."""

    def __init__(self) -> None:
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        self.errors: Counter | None = None
        self.overflows: Counter | None = None

    def failure(self, operation: str, exc: BaseException, detail: str = "") -> None:
        """Record that ``operation`` failed with ``exc``; never raises."""
        if getattr(_guard, "active", False):
            return  # a failure while recording a failure: drop it, don't recurse
        _guard.active = True
        try:
            cause = f"{operation}:{type(exc).__name__}"
            if self.errors is not None:
                self.errors.labels(cause).inc()
            self._log_once(cause, exc, detail)
        except Exception:  # pragma: no cover - last line of defence
            pass
        finally:
            _guard.active = False

    def overflow(self, metric_name: str) -> None:
        """Count one recording folded into ``metric_name``'s overflow series."""
        if getattr(_guard, "active", False):
            return
        _guard.active = True
        try:
            if self.overflows is not None:
                self.overflows.labels(metric_name).inc()
            self._log_once(
                f"overflow:{metric_name}",
                None,
                f"metric {metric_name!r} reached its series limit; new label sets fold into "
                "the '__overflow__' series (counted in promkit_series_overflow_total)",
            )
        except Exception:  # pragma: no cover
            pass
        finally:
            _guard.active = False

    def _log_once(self, cause: str, exc: BaseException | None, detail: str) -> None:
        with self._lock:
            if cause in self._logged:
                return
            self._logged.add(cause)
        args: tuple[Any, ...]
        if exc is None:
            logger.warning("promkit: %s", detail)
            return
        message = "promkit: instrumentation failure %s: %s%s (counted in " \
            "promkit_instrumentation_errors_total; further failures of this cause are not logged)"
        args = (cause, exc, f" ({detail})" if detail else "")
        logger.warning(message, *args)
