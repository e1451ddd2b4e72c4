"""The ``stage completed`` line of :mod:`promkit.instrument.stages`, written directly.

Identical to what the structlog pipeline writes for the same event, built by
hand from the pieces of ``promkit.instrument._json_line`` while
``promkit.instrument._log_state``'s gate finds only ``configure_logging``'s own
set-up in play; otherwise the caller logs through structlog. The public names
are re-exported by :mod:`promkit.instrument.logs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from math import trunc
from typing import Any

import structlog

from promkit.instrument._compat import (
    STRUCTLOG_CONTEXT_VARS,
    logger_level_cache,
    otel_current_context,
)
from promkit.instrument._json_line import (
    EXACT_MICROS,
    FRACTIONS,
    MILLIS,
    PIECE_CACHE_LIMIT,
    hex_without_card,
    ms_text,
    piece,
    plain_uuid,
    trace_json,
)
from promkit.instrument._log_state import FastPathGate, LoggingState, current
from promkit.instrument.correlation import correlation_id_var

__all__ = ["STAGE_COMPLETED_EVENT", "StageLineWriter"]

STAGE_COMPLETED_EVENT = "stage completed"
"""``event`` of a finished stage's line."""

# Private reads of structlog and OpenTelemetry, each with a public fallback
# chosen at import (see _compat): None vars -> the pipeline.
_STRUCTLOG_VARS: dict[str, Any] | None = STRUCTLOG_CONTEXT_VARS
_otel_current: Callable[[], object] = otel_current_context
_MISSING: Any = object()
level_cache = logger_level_cache  # the isEnabledFor cache, or an empty dict (see _compat)
_BOUND_JOB_ID = f"{structlog.contextvars.STRUCTLOG_KEY_PREFIX}job_id"
_BOUND_CORRELATION_ID = f"{structlog.contextvars.STRUCTLOG_KEY_PREFIX}correlation_id"


class StageLineWriter:
    """The ``stage completed`` line of :mod:`promkit.instrument.stages`, written directly.

    :meth:`completed` writes what the structlog pipeline would for
    ``log.info("stage completed", stage=..., latency_ms=..., cpu_ms=...,
    job_id=...)`` on the ``promkit.worker`` logger and returns True, or
    returns False and writes nothing when it cannot be sure of that (logging
    not configured by promkit, sampling or extra processors, other handlers
    or filters, structlog contextvars other than ``job_id`` and
    ``correlation_id`` bound, values the redactor would change): the caller
    then logs through structlog with ``latency_ms``/``cpu_ms`` rounded by
    :func:`round_ms`, as this does. Never raises.
    """

    __slots__ = ("_gate", "_levels", "_stages", "_state", "_stdlib", "_values")

    def __init__(self, logger_name: str) -> None:
        self._stdlib = logging.getLogger(logger_name)
        self._gate = FastPathGate(self._stdlib)
        self._levels = level_cache(self._stdlib)
        # (state, stage name) -> the fixed text around the IDs, or None: no fast path
        # Pieces rendered for the set-up in force (_state); a new set-up starts them over.
        self._stages: dict[str, tuple[str, str] | None] = {}  # stage -> text around the IDs
        self._values: dict[str, str] = {}  # job ID -> its JSON piece
        self._state: LoggingState | None = None

    def completed(self, stage: str, wall_seconds: float, cpu_seconds: float | None,
                  job_id: Any = None) -> bool:
        """Write the line of one finished stage; False: not written, use the pipeline."""
        try:
            state = current.state
            if state is None or state.sampler is not None:
                return False
            # The level cache read inline: -0.3k instructions per stage line (python -m
            # benchmarks.instructions --driver stages).
            enabled = self._levels.get(logging.INFO)
            if enabled is None:
                enabled = self._stdlib.isEnabledFor(logging.INFO)
            if not enabled:
                return True  # filtered, as the pipeline would
            gate = self._gate
            now = state.timestamper.clock()
            # math.trunc, not int(), for every float -> int here: int() of a float is a
            # slow type call before 3.13 (-1.7k instructions, -0.13 us per stage line on
            # 3.11: benchmarks.instructions --driver stages and a timed A/B).
            second = trunc(now)
            if not gate.open(state, logging.INFO, second) or _STRUCTLOG_VARS is None:
                return False
            cid = correlation_id_var.get()
            if type(cid) is not str:  # None, or Ellipsis after structlog's clear_contextvars()
                cid = None
            if _STRUCTLOG_VARS:
                # One pass over structlog's context variables (not a copy of the
                # whole context): job_id and correlation_id may be bound, as a
                # job run binds them; anything else goes through the pipeline.
                for var_name, var in list(_STRUCTLOG_VARS.items()):
                    value = var.get()
                    if value is Ellipsis:
                        continue
                    if var_name == _BOUND_JOB_ID:
                        if job_id is None:
                            job_id = value
                    elif var_name == _BOUND_CORRELATION_ID:
                        if cid is None:
                            cid = value
                    else:
                        return False
            if self._state is not state:
                self._stages.clear()
                self._values.clear()
                self._state = state
            head = self._stages.get(stage, _MISSING)
            if head is _MISSING:
                head = self._head(state, stage)
            if head is None:
                return False
            if cid is None:
                cid_part = ""
            elif type(cid) is str and (plain_uuid(cid) or hex_without_card(cid)):
                cid_part = f',"correlation_id":"{cid}"'
            else:
                return False
            job_part: str | None = ""
            if job_id is not None:
                job_part = self._values.get(job_id) if type(job_id) is str else None
                if job_part is None:
                    job_part = self._job_part(state, job_id)
            # No call without a context: -1.4k instructions per stage line (python -m
            # benchmarks.instructions --driver stages).
            trace_part = trace_json() if _otel_current() else ""
            # round_ms(x)'s repr from integer microseconds, as the access line does
            # (see FRACTIONS): the same text without two float reprs (-3.2k
            # instructions per stage line, benchmarks.instructions --driver stages).
            micros = trunc(wall_seconds * 1e6 + 0.5)
            cpu_micros = -1 if cpu_seconds is None else trunc(cpu_seconds * 1e6 + 0.5)
            if 0 <= micros < EXACT_MICROS and 0 <= cpu_micros < EXACT_MICROS:
                # The usual line (CPU seconds, both in range) as one string: no
                # intermediate pieces (-1.7k instructions per stage at INFO,
                # python -m benchmarks.instructions --driver stages).
                text = (f'{{"timestamp":"{gate.prefix}{MILLIS[trunc((now - second) * 1000.0)]}'
                        f'{head[0]}{cid_part}{job_part}{head[1]},"latency_ms":{micros // 1000}'
                        f'{FRACTIONS[micros % 1000]}{trace_part},"extra":{{"cpu_ms":'
                        f'{cpu_micros // 1000}{FRACTIONS[cpu_micros % 1000]}}}}}')
            else:
                extra = ("" if cpu_seconds is None
                         else f',"extra":{{"cpu_ms":{ms_text(cpu_micros)}}}')
                text = (f'{{"timestamp":"{gate.prefix}{MILLIS[trunc((now - second) * 1000.0)]}'
                        f'{head[0]}{cid_part}{job_part}{head[1]},"latency_ms":{ms_text(micros)}'
                        f'{trace_part}{extra}}}')
            try:
                state.write_line(text)
            except Exception as exc:
                state.failures.failure(state.write_cause, exc)
            return True
        except Exception:
            return False  # the pipeline will say what is wrong, and count it

    def _head(self, state: LoggingState, stage: str) -> tuple[str, str] | None:
        redactor = state.redactor
        redact = redactor.redact_value
        parts: tuple[str, str] | None = None
        if type(stage) is str and redact("cpu_ms", 1.0) == 1.0 and not redactor.renames("cpu_ms"):
            head = ('","level":"info"' + piece("service", redact("service", state.service))
                    + piece("event", redact("event", STAGE_COMPLETED_EVENT)))
            parts = (head, piece("stage", redact("stage", stage)))
        if len(self._stages) < PIECE_CACHE_LIMIT:
            self._stages[stage] = parts
        return parts

    def _job_part(self, state: LoggingState, job_id: Any) -> str:
        part = piece("job_id", state.redactor.redact_value("job_id", job_id))
        if type(job_id) is str:
            if len(self._values) >= PIECE_CACHE_LIMIT:
                self._values.clear()  # job ids do not repeat for long: start over
            self._values[job_id] = part
        return part
