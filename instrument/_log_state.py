"""The logging set-up in force, and the gate that says when a fast line may write by itself.

:func:`~promkit.instrument.logs.configure_logging` records what it set up in a
:class:`LoggingState` (``current.state``; None when promkit did not configure
logging). The access line and the stage line write the structlog pipeline's
line themselves only while :class:`FastPathGate` finds nothing but that
set-up in play.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from promkit.instrument._compat import STRUCTLOG_CONFIG

if TYPE_CHECKING:
    from structlog.typing import Processor

    from promkit.instrument._log_config import JsonLinesHandler
    from promkit.instrument._log_processors import SampleEvents, TimestampRFC3339
    from promkit.instrument._logs_pii import RedactPII
    from promkit.instrument._safety import FailureSink

__all__ = ["ROOT", "FastPathGate", "LoggingState", "current", "has_real_handler"]

ROOT = logging.getLogger()


class LoggingState:
    """Everything one ``configure_logging`` call set up (read by the fast lines)."""

    def __init__(self, **kw: Any) -> None:
        self.service: str = kw["service"]
        self.handler: JsonLinesHandler = kw["handler"]
        self.timestamper: TimestampRFC3339 = kw["timestamper"]
        self.redactor: RedactPII = kw["redactor"]
        self.sampler: SampleEvents | None = kw["sampler"]
        self.structlog_processors: list[Processor] = kw["structlog_processors"]
        self.fast_capable: bool = kw["fast_capable"]
        self.handler_filters: int = len(self.handler.filters)
        self.failures: FailureSink = kw["failures"]
        # The fast lines write a finished line here: straight to the only sink, else
        # through the handler's loop over sinks (-0.9k instructions per stage line at
        # INFO, python -m benchmarks.instructions --driver stages).
        sinks = self.handler.sinks
        self.write_line: Callable[[str], None] = (
            sinks[0].write_line if len(sinks) == 1 else self.handler.write_line)
        self.write_cause = f"log_sink_{sinks[0].name}" if len(sinks) == 1 else "log_handler"


class _Current:
    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: LoggingState | None = None


current = _Current()
"""``current.state``: the set-up of the last ``configure_logging``, None after a reset."""


def has_real_handler(logger: logging.Logger) -> bool:
    """Whether ``logger`` has a handler other than a ``NullHandler``."""
    return any(not isinstance(h, logging.NullHandler) for h in logger.handlers)


# Private read of structlog's live configuration, with a public fallback (see _compat).
_STRUCTLOG_CONFIG: Any = STRUCTLOG_CONFIG


class FastPathGate:
    """Whether a fast line may write its line itself, as the pipeline would.

    True when nothing but ``configure_logging``'s own set-up is in play for
    ``stdlib`` (a ``promkit.*`` logger): promkit's handler alone on the root
    logger, no other handlers or filters on the way, the handler's level
    and filters as configured, structlog's processors as configured. The
    full check (:meth:`check`) costs more than a line, so :meth:`open` makes
    it at most once a second: its verdict holds for the second it was made
    in, for that state and for levels at or above the handler's; a change of
    any of these or of the root logger's handler count checks again at once.
    ``prefix`` is that second's timestamp prefix.
    """

    __slots__ = ("min_level", "prefix", "second", "state", "stdlib")

    def __init__(self, stdlib: logging.Logger) -> None:
        self.stdlib = stdlib
        self.state: LoggingState | None = None
        self.second = -1
        self.min_level = logging.CRITICAL + 1
        self.prefix = ""

    def open(self, state: LoggingState, level: int, second: int) -> bool:
        """Whether a line at ``level`` may be written directly in ``second`` under ``state``."""
        if (second == self.second and state is self.state and level >= self.min_level
                and len(ROOT.handlers) == 1):
            return True
        return self.check(state, level, second)

    def check(self, state: LoggingState, level: int, second: int) -> bool:
        """Check everything now; remember a positive verdict for ``second``."""
        stdlib = self.stdlib
        handler = state.handler
        handlers = ROOT.handlers
        parent = stdlib.parent
        ok = (
            state.fast_capable
            and second > 0  # a clock before 1970 (tests): the timestamper floors, not truncates
            and len(handlers) == 1 and handlers[0] is handler and not ROOT.filters
            and not stdlib.handlers and not stdlib.filters and stdlib.propagate
            and not stdlib.disabled
            and (parent is ROOT or (
                parent is not None and parent.parent is ROOT
                and not has_real_handler(parent)
                and not parent.filters and parent.propagate))
            and handler.level <= level and len(handler.filters) == state.handler_filters
            and _STRUCTLOG_CONFIG.default_processors is state.structlog_processors
        )
        if ok:
            # Kept for the second: asking the timestamper per line cost +0.7k
            # instructions per stage line (benchmarks.instructions --driver stages).
            self.prefix = state.timestamper.prefix(second)
            self.state, self.second, self.min_level = state, second, handler.level
        else:
            self.state = None
        return bool(ok)
