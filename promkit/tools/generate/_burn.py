"""The multiwindow burn-rate alerts of an SLO: their windows, factors and thresholds.

Burn-rate factors follow the Google SRE workbook's budget-consumption shares,
scaled to each SLO's window (as sloth and pyrra do): an alert whose long window
is ``L`` and whose share is ``s`` fires when the error ratio is above
``factor x (1 - objective)`` with ``factor = s x window / L``. So the page over
1h spends 2% of the budget whatever the window: factor 14.4 for 30d, 3.36 for
7d. :func:`burn_factor` computes it; the config refuses an SLO for which an
alert could never fire (:func:`check_burn_thresholds`: ``factor x budget >= 1``).
The SLO rules that use them are in :mod:`._rules_slo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from promkit.tools.generate._durations import format_duration, parse_duration
from promkit.tools.generate._promql import num

if TYPE_CHECKING:
    from promkit.tools.generate.config import SLOSpec

__all__ = ["BURN_ALERTS", "BURN_WINDOWS", "BurnWindow", "burn_factor", "burn_statement",
           "check_burn_thresholds"]


@dataclass(frozen=True)
class BurnWindow:
    """One multiwindow burn-rate alert: its windows and the budget share it stands for."""

    alert: str
    """The alert the window pair belongs to (each alert ORs two pairs)."""
    long: str
    short: str
    share: float
    """Share of the SLO's error budget spent over ``long`` when the error ratio is at the
    pair's threshold (the SRE workbook's table)."""


# Page on fast burn, ticket on slow: the SRE workbook's shares (chapter "Alerting on SLOs").
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("SLOBurnRatePage", "1h", "5m", 0.02),
    BurnWindow("SLOBurnRatePage", "6h", "30m", 0.05),
    BurnWindow("SLOBurnRateTicket", "1d", "2h", 0.10),
    BurnWindow("SLOBurnRateTicket", "3d", "6h", 0.10),
)
BURN_ALERTS = ("SLOBurnRatePage", "SLOBurnRateTicket")


def burn_factor(slo_window: str, burn: BurnWindow) -> float:
    """How many times the sustainable error rate ``burn`` fires at, for an SLO over
    ``slo_window``: ``share x window / long window`` (14.4 for 2% in 1h of 30d)."""
    return burn.share * parse_duration(slo_window) / parse_duration(burn.long)


def burn_statement(slo: SLOSpec, burn: BurnWindow) -> str:
    """What the alert's threshold means for ``slo``, in numbers (docs/alerts.md).

    The share is recomputed from the factor as written in the rule (rounded like
    the rule's text), so the sentence states what the generated rule does.
    """
    factor = float(num(burn_factor(slo.window, burn)))
    window = parse_duration(slo.window)
    long = parse_duration(burn.long)
    share = factor * long / window
    threshold = factor * slo.error_budget
    text = (f"fires above {num(factor)} × {num(slo.error_budget * 100)}% = "
            f"{num(threshold * 100)}% errors over {burn.long} and {burn.short}: at that rate "
            f"{num(round(share * 100, 6))}% of the {slo.window} error budget is spent in "
            f"{burn.long}")
    if factor >= 1:
        return f"{text}, and all of it in {format_duration(window / factor)}"
    return (f"{text}; the factor is below 1, so at that pace only "
            f"{num(round(factor * 100, 4))}% of the budget would be spent over the whole "
            f"{slo.window}")


def check_burn_thresholds(slo: SLOSpec) -> str | None:
    """Why an alert of ``slo`` could never fire (``factor x budget >= 1``), or None."""
    for burn in BURN_WINDOWS:
        factor = burn_factor(slo.window, burn)
        if factor * slo.error_budget >= 1:
            # factor x budget < 1 <=> objective > 1 - 1/factor <=> window < long / (share x budget)
            lowest = 1 - 1 / factor
            longest = parse_duration(burn.long) / (burn.share * slo.error_budget)
            return (f"{num(slo.objective)} over {slo.window} leaves an error budget of "
                    f"{num(slo.error_budget * 100)}%, so {burn.alert} over {burn.long} and "
                    f"{burn.short} ({num(burn.share * 100)}% of the budget in {burn.long}) "
                    "would need an error ratio above "
                    f"{num(factor)} x {num(slo.error_budget)} = {num(factor * slo.error_budget)}"
                    f", and a ratio is at most 1: it could never fire. Use an objective above "
                    f"{lowest:.6g} or a window shorter than {format_duration(longest)}")
    return None
