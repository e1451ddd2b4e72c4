"""What does it cost? Usage and cost rate over the window, month to date, budgets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from promkit.instrument.usage import budget_forecast, month_elapsed_fraction, projected_month_end
from promkit.tools.report._change import change
from promkit.tools.report._figures import index, num, scalar
from promkit.tools.report._prom import Sample
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import Collected

__all__ = ["cost_section"]


def cost_section(c: Collected, issues: list[Issue]) -> dict[str, Any]:
    now = datetime.fromtimestamp(c.window.end, tz=timezone.utc)
    prices = {tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role")):
              s.value for s in c.instant.get("usage_price", [])}
    budgets = index(c.instant.get("usage_budget", []), "resource")
    used: dict[str, float] = {}
    spent: dict[str, float] = {}
    priced: dict[str, bool] = {}
    for s in c.instant.get("usage_mtd", []):
        key = tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role"))
        value = num(s.value) or 0.0
        used[key[0]] = used.get(key[0], 0.0) + value
        price = prices.get(key)
        if price is not None and math.isfinite(price):
            spent[key[0]] = spent.get(key[0], 0.0) + value * price
            priced[key[0]] = True
    rate, cost_rate = _usage_rates(c.instant.get("usage_rate", []), prices)
    prev_rate, prev_cost_rate = _usage_rates(c.instant.get("prev_usage_rate", []), prices)
    # Less than one unit over the whole window is "none" (no percentage off it).
    rate_floor = 1.0 / c.window.seconds
    resources = []
    for resource in sorted(set(used) | {k[0] for k in budgets} | set(rate)):
        units = used.get(resource, 0.0)
        entry: dict[str, Any] = {
            "resource": resource,
            "rate_per_second": rate.get(resource),
            "rate_previous_per_second": prev_rate.get(resource),
            "rate_change": change(rate.get(resource), prev_rate.get(resource, 0.0), rate_floor),
            "cost_per_hour": cost_rate.get(resource),
            "cost_per_hour_previous": prev_cost_rate.get(resource),
            "used_month_to_date": units,
            "projected_month_end": projected_month_end(units, now),
            "cost_month_to_date": spent.get(resource) if priced.get(resource) else None,
            "cost_projected_month_end": (projected_month_end(spent[resource], now)
                                         if priced.get(resource) else None),
            "budget": None, "budget_used_ratio": None, "budget_projected_ratio": None,
        }
        budget = num(budgets.get((resource,)))
        if budget is not None and budget >= 0:
            forecast = budget_forecast(units, budget, now)
            entry.update(budget=budget, budget_used_ratio=forecast.used_ratio,
                         budget_projected_ratio=forecast.projected_ratio)
            if forecast.used > budget:
                issues.append(Issue("critical", "budget", resource,
                                    f"{resource}: {forecast.used_ratio:.0%} of the monthly "
                                    "budget already used", forecast.used_ratio, "ratio",
                                    labels={"resource": resource}))
            elif forecast.over_budget:
                issues.append(Issue("warning", "budget", resource,
                                    f"{resource}: projected to end the month at "
                                    f"{forecast.projected_ratio:.0%} of budget",
                                    forecast.projected_ratio, "ratio",
                                    labels={"resource": resource}))
        resources.append(entry)
    cpu_process = scalar(c, "cpu_seconds_mtd")
    cpu_usage = used.get("cpu_seconds")
    cpu_seconds = cpu_usage if cpu_usage is not None else cpu_process
    cpu: dict[str, Any] = {"source": "usage_units_total" if cpu_usage is not None else "process",
                           "used_hours": None, "projected_hours": None, "budget_hours": None}
    if cpu_seconds is not None:
        cpu["used_hours"] = cpu_seconds / 3600
        cpu["projected_hours"] = projected_month_end(cpu_seconds, now) / 3600
        budget = num(budgets.get(("cpu_seconds",)))
        cpu["budget_hours"] = budget / 3600 if budget is not None else None
    total_cost = sum(spent.values()) if spent else None
    per_hour = sum(cost_rate.values()) if cost_rate else None
    per_hour_before = sum(prev_cost_rate.values()) if prev_cost_rate else None
    per_hour_change = None
    if per_hour is not None:
        # Relative floor: a previous cost under 1% of the larger is "new".
        per_hour_change = change(per_hour, per_hour_before or 0.0,
                                 0.01 * max(per_hour, per_hour_before or 0.0) or 1e-12)
    return {"month_elapsed_ratio": month_elapsed_fraction(now), "resources": resources,
            "cpu": cpu, "cost_per_hour": per_hour, "cost_per_hour_previous": per_hour_before,
            "cost_per_hour_change": per_hour_change, "cost_month_to_date": total_cost,
            "cost_projected_month_end": (projected_month_end(total_cost, now)
                                         if total_cost is not None else None),
            "currency": None}


def _usage_rates(samples: Iterable[Sample], prices: dict[tuple[str, ...], float]
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Units per second and cost per hour by resource, over one window."""
    units: dict[str, float] = {}
    cost: dict[str, float] = {}
    for s in samples:
        key = tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role"))
        value = num(s.value)
        if value is None:
            continue
        units[key[0]] = units.get(key[0], 0.0) + value
        price = prices.get(key)
        if price is not None and math.isfinite(price):
            cost[key[0]] = cost.get(key[0], 0.0) + value * price * 3600
    return units, cost
