"""Small helpers the report's sections share: figures from samples, and their text."""

from __future__ import annotations

import math
from collections.abc import Iterable

from promkit.tools.report._prom import Sample
from promkit.tools.report._quantiles import Quantile, quantiles_by
from promkit.tools.report.queries import Collected

__all__ = [
    "ROUTE_KEYS",
    "bounds",
    "bucket_quantiles",
    "fmt_quantile",
    "fmt_seconds",
    "index",
    "labels_of",
    "linear_fit",
    "num",
    "q_value",
    "ratio_of",
    "route_name",
    "scalar",
    "whole",
]


def num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def index(samples: Iterable[Sample], *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.get(k, "") for k in keys): s.value for s in samples}


def scalar(c: Collected, name: str) -> float | None:
    samples = c.instant.get(name) or []
    return num(samples[0].value) if samples else None


def ratio_of(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def whole(value: float | None) -> int | None:
    """A count as people read it: ``increase()`` extrapolates (33.9 timeouts) but events
    are whole."""
    return round(value) if value is not None and math.isfinite(value) else None


def route_name(key: tuple[str, ...]) -> str:
    route, method = key
    return f"{method} {route}".strip()


ROUTE_KEYS = ("http_route", "http_request_method")


def labels_of(keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in zip(keys, values) if v}


def bucket_quantiles(c: Collected, name: str, keys: tuple[str, ...], phi: float, *,
               previous: bool = False) -> dict[tuple[str, ...], Quantile]:
    query = ("prev_" if previous else "") + name + "_buckets"
    return quantiles_by(c.instant.get(query, []), keys, phi)


def q_value(q: Quantile | None) -> float | None:
    return num(q.value) if q is not None else None


def bounds(**quantiles: Quantile | None) -> dict[str, str]:
    """``{field: "below"|"above"}`` for the quantiles that are only a bucket bound."""
    return {name: q.bound for name, q in quantiles.items() if q is not None and q.bound}


BOUND_PREFIX = {"below": "< ", "above": "> "}
"""How a quantile that is only a bucket bound reads: ``< 100 ms``, ``> 120 s``."""


def fmt_quantile(q: Quantile) -> str:
    return BOUND_PREFIX.get(q.bound or "", "") + fmt_seconds(q.value)


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``(slope per second, intercept)`` of finite points; None if < 2."""
    pts = [(t, v) for t, v in points if math.isfinite(t) and math.isfinite(v)]
    if len(pts) < 2:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    return slope, mv - slope * mt


def fmt_seconds(seconds: float) -> str:
    """A duration for people: ``400 µs``, ``123 ms``, ``4.50 s``, ``2.5 min``."""
    if seconds < 1:
        if seconds >= 0.001 or seconds == 0:
            return f"{seconds * 1000:.0f} ms"
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
