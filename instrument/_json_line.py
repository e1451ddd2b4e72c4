"""JSON text of a log line: the encoder behind the renderer and the pieces the fast lines share.

:func:`dumps` is the renderer's encoder (never raises: repr() for what JSON
cannot hold, lone surrogates escaped). The access line
(``promkit.instrument._access_line``) and the stage line
(``promkit.instrument._stage_line``) build the same text by hand from the
pieces here: the millisecond suffix of a timestamp, a latency in milliseconds
from integer microseconds, a ``"key":value`` piece, trace IDs, and the test of
whether an ID can be written without the redactor.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import get_current_span as _get_current_span

from promkit.instrument._compat import otel_current_context as _current_context
from promkit.instrument._compat import span_ids as _span_ids
from promkit.instrument._secrets import redact_card_numbers

__all__ = [
    "EXACT_MICROS",
    "FRACTIONS",
    "LEVEL_NAMES",
    "MILLIS",
    "PIECE_CACHE_LIMIT",
    "dumps",
    "hex_without_card",
    "ms_text",
    "piece",
    "plain_uuid",
    "round_ms",
    "safe_repr",
    "trace_ids",
    "trace_json",
    "trace_piece",
]

LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error", logging.CRITICAL: "critical"}
"""stdlib level -> the ``level`` a line carries (structlog's ``add_log_level`` names)."""

MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
"""``.mmmZ``, the end of a timestamp, by millisecond."""

# repr(q / 1000.0) for 0 <= q < EXACT_MICROS is the integer part and these
# fraction digits (trailing zeros dropped, ".0" for none): a double holds the
# three-decimal value exactly enough that the shortest repr is that decimal.
FRACTIONS = tuple(("." + f"{r:03d}".rstrip("0")) if r else ".0" for r in range(1000))
EXACT_MICROS = 10**15

PIECE_CACHE_LIMIT = 4096
"""Most request shapes, stages or job IDs a fast line keeps rendered pieces for."""


def safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder when its ``__repr__`` raises."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=safe_repr
)


def _sanitise(value: Any, depth: int) -> Any:
    # Turns anything into plain JSON types: str keys, lists, finite floats, repr() for the rest.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, (str, int)):
        return value
    if depth > 32:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {
            (key if isinstance(key, str) else safe_repr(key)): _sanitise(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_sanitise(item, depth + 1) for item in value]
    return safe_repr(value)


def dumps(value: Any) -> str:
    """Compact JSON (``ensure_ascii=False``); never raises (see the module doc)."""
    try:
        text = _ENCODER.encode(value)
    except Exception:
        text = _ENCODER.encode(_sanitise(value, 0))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: write them as JSON \\uXXXX escapes
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def piece(key: str, value: object) -> str:
    """``,"key":<JSON of value>``, or "" for None (the renderer leaves None out)."""
    return "" if value is None else ',"' + key + '":' + dumps(value)


def round_ms(seconds: float) -> float:
    """``seconds`` in milliseconds, to the microsecond (half up): the log lines' rounding."""
    return int(seconds * 1e6 + 0.5) / 1000.0


def ms_text(micros: int) -> str:
    """``json.dumps(micros / 1000.0)``: what :func:`round_ms` renders as, from microseconds."""
    if 0 <= micros < EXACT_MICROS:
        return f"{micros // 1000}{FRACTIONS[micros % 1000]}"
    return repr(micros / 1000.0)


# IDs a fast line writes without the redactor: hex digits and dashes it leaves alone.
# Of its rules only a card number can match such text; a canonical UUID or 12
# characters cannot hold one, so the usual ID costs one regex call.
plain_uuid = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f-]{1,12}").fullmatch
_hex_id = re.compile(r"[0-9a-f-]{1,64}").fullmatch


def hex_without_card(value: str) -> bool:
    """Whether ``value``, not a :data:`plain_uuid`, is still written as is: hex digits and
    dashes holding no card number. Callers try :data:`plain_uuid` first (the usual ID)."""
    return _hex_id(value) is not None and redact_card_numbers(value) == value


def trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current span, or None (no valid span)."""
    # Without an SDK (or outside any span) the OpenTelemetry context is empty:
    # one contextvar read, no span objects touched.
    ctx = _current_context()
    if not ctx:
        return None
    return _span_ids(_get_current_span(ctx).get_span_context(), False)


def trace_piece(ids: tuple[str, str] | None) -> str:
    """``,"trace_id":...,"span_id":...`` of hex IDs for a fast line, or "" for None."""
    return "" if ids is None else f',"trace_id":"{ids[0]}","span_id":"{ids[1]}"'


def trace_json() -> str:
    """``,"trace_id":...,"span_id":...`` of the current span for a fast line, or ""."""
    return trace_piece(trace_ids())
