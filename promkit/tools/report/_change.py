"""A figure against the same figure over the window before: bounded and defined.

A plain percentage is meaningless off a near-zero base ("error ratio +10115%");
here a previous value below ``floor`` (a level that is not worth a percentage,
e.g. a tenth of the issue's threshold, or less than one event) makes the
change ``new``, and ``score`` — the change relative to the larger of the two,
in [-1, 1] — ranks findings without ever growing without bound.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["change", "ratio_change"]

UP = 1.25
"""``current / previous`` from which a change is ``up`` (and below ``1 / UP``, ``down``)."""


def change(current: float | None, previous: float | None, floor: float) -> dict[str, Any] | None:
    """``{previous, current, ratio, trend, score}`` or None when ``current`` is unknown.

    ``trend`` is ``new`` (previous below ``floor``, current not), ``gone`` (the
    reverse), ``up``, ``down`` or ``steady``; ``ratio`` is ``current / previous``
    only when previous is at least ``floor``; ``score`` is ``1`` for new, ``-1``
    for gone, else ``(current - previous) / max(current, previous)``.
    """
    if current is None or not math.isfinite(current):
        return None
    prev = previous if previous is not None and math.isfinite(previous) else 0.0
    low_now, low_before = abs(current) < floor, abs(prev) < floor
    ratio: float | None = None
    if low_before and low_now:
        trend, score = "steady", 0.0
    elif low_before:
        trend, score = "new", 1.0
    elif low_now:
        trend, score = "gone", -1.0
    else:
        ratio = current / prev
        big = max(abs(current), abs(prev))
        score = (current - prev) / big
        trend = "up" if ratio >= UP else "down" if ratio <= 1 / UP else "steady"
    return {"previous": previous if previous is not None and math.isfinite(previous) else None,
            "current": current, "ratio": ratio, "trend": trend, "score": score}


def ratio_change(c: dict[str, Any] | None) -> float | None:
    """``current / previous - 1`` of a :func:`change`, when defined."""
    if c is None or c.get("ratio") is None:
        return None
    value: float = c["ratio"] - 1
    return value
