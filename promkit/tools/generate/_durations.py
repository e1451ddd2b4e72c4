"""Prometheus durations (``90s``, ``5m``, ``1h30m``, ``7d``) to seconds and back."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``90s``, ``5m``, ``1h30m``, ``7d``); ValueError if bad."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; use a number and a unit "
                         "(ms, s, m, h, d, w, y), e.g. '15s', '5m', '1h30m', '7d'")
    return float(sum(int(g) * u for g, u in zip(match.groups(), _DURATION_UNITS) if g))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for whole ``seconds`` (``3600`` -> ``1h``)."""
    total = round(seconds)
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return "".join(out)
