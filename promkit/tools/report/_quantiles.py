"""Quantiles from histogram buckets, saying when a quantile is only a bound.

The report reads ``sum by (le, ...) (increase(<metric>_bucket[window]))`` and
computes quantiles here, the way PromQL's ``histogram_quantile`` does (linear
interpolation inside the bucket that holds the rank), so that it also knows
*which* bucket that was. A quantile in the lowest bucket is only known to be
below that bucket's bound (``histogram_quantile`` would interpolate from zero:
steps whose mean is 25 µs showed "p95 95 ms" with a 100 ms lowest bucket); one
in the ``+Inf`` bucket is only known to be above the highest finite bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from promkit.tools.report._prom import Sample

__all__ = ["Quantile", "bucket_quantile", "quantiles_by"]

Bound = Literal["below", "above"]


@dataclass(frozen=True)
class Quantile:
    """``value`` in the metric's unit; ``bound`` is ``below`` when the true quantile is
    below ``value`` (the lowest bucket's bound), ``above`` when above it (the highest
    finite bound), None when interpolated inside a bucket."""

    value: float
    bound: Bound | None = None


def bucket_quantile(phi: float, buckets: Iterable[tuple[float, float]]) -> Quantile | None:
    """The ``phi`` quantile of cumulative ``(upper bound, count)`` buckets; None without
    observations or without a ``+Inf`` bucket (as ``histogram_quantile`` gives NaN)."""
    ordered = sorted((le, c) for le, c in buckets if not math.isnan(le) and math.isfinite(c))
    if not ordered or ordered[-1][0] != math.inf:
        return None
    # Counts come from increase() per bucket, extrapolated independently: keep them
    # monotonic as PromQL does.
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0 or len(ordered) < 2:
        return None
    rank = phi * total
    index = next(i for i, c in enumerate(counts) if c >= rank)
    if index == len(ordered) - 1:
        return Quantile(ordered[-2][0], "above")
    upper = ordered[index][0]
    if index == 0:
        return Quantile(upper, "below") if upper > 0 else Quantile(upper)
    lower, below = ordered[index - 1][0], counts[index - 1]
    in_bucket = counts[index] - below
    if in_bucket <= 0:
        return Quantile(upper)
    return Quantile(lower + (upper - lower) * (rank - below) / in_bucket)


def quantiles_by(samples: Iterable[Sample], keys: tuple[str, ...], phi: float
                 ) -> dict[tuple[str, ...], Quantile]:
    """Group bucket samples (labelled ``le`` and ``keys``; series that differ only in other
    labels are summed, as ``sum by (le, keys)`` would) and take each group's quantile."""
    groups: dict[tuple[str, ...], dict[float, float]] = {}
    for s in samples:
        try:
            le = float(s.labels.get("le", "nan"))
        except ValueError:
            continue
        group = groups.setdefault(tuple(s.labels.get(k, "") for k in keys), {})
        group[le] = group.get(le, 0.0) + s.value
    out: dict[tuple[str, ...], Quantile] = {}
    for key, buckets in groups.items():
        q = bucket_quantile(phi, buckets.items())
        if q is not None:
            out[key] = q
    return out
