"""The CPU-hours budget's recording rules: month-to-date, end-of-month projection, budget."""

from __future__ import annotations

from collections.abc import Sequence

from promkit.tools.generate._promql import Group, Rule, num, sel
from promkit.tools.generate._promql import rate_rule as _rate
from promkit.tools.generate._promql import record_rule as _record
from promkit.tools.generate.config import Config

__all__ = ["MONTH_TO_DATE_INTERVAL", "MONTH_TO_DATE_LOOKBACK", "cpu_budget_groups"]


MONTH_TO_DATE_INTERVAL = "1m"
"""Evaluation interval of the month-to-date group: its rules read 32 days back."""
MONTH_TO_DATE_LOOKBACK = "32d"


def _month_to_date(config: Config, record: str, counter: str, series_by: Sequence[str],
                   by: Sequence[str], last: str, scale: str = "") -> list[Rule]:
    """``record`` (by ``by``): how much ``counter`` grew since the month began (UTC).

    PromQL has no "since the first of the month" range, so each evaluation adds
    what the counters grew since the previous one, read from the counters
    themselves: ``current - last`` per counter series (``series_by``), where
    ``last`` is the previous evaluation's copy of the counter; a series whose
    counter went down (a restart) or that is new counts its whole value (0 on
    the rules' first evaluation, which starts the sum at 0). The
    previous month-to-date and the copies are read with ``last_over_time(...[32d])``,
    so a scrape gap or a Prometheus outage of any length within the month loses
    nothing: the first evaluation after it adds the counters' growth over the gap.
    ``<record>_month`` is the month of each ``record`` sample: the sum starts again
    when it changes. Rules are in evaluation order (each reads the previous
    evaluation's copies before they are replaced).
    """
    c = config
    svc = f'{{service="{c.service}"}}'
    month = f"{record}_month"
    lookback = MONTH_TO_DATE_LOOKBACK
    cur = f"sum by ({', '.join(series_by)}) ({sel(c, counter)})"
    grown = (f"sum by ({', '.join(by)}) (\n"
             f"    ({cur} - last_over_time({last}{svc}[{lookback}])) >= 0\n"
             f"  or\n"
             f"    {cur} and on (service) last_over_time({month}{svc}[{lookback}])\n"
             f"  or\n"
             f"    {cur} * 0\n"
             f"){scale}")
    kept = (f"(\n  last_over_time({record}{svc}[{lookback}])\n"
            f"  and\n  last_over_time({month}{svc}[{lookback}]) == on () group_left month()\n)")
    return [
        _record(record, f"{kept}\n+\n{grown}\nor\n{kept}\nor\n{grown}"),
        _record(month, f"{record}{svc} * 0 + on () group_left month()"),
        _record(last, cur),
    ]


def _month_to_date_groups(config: Config) -> list[Group]:
    """CPU-hours month-to-date from the stage CPU counters (see :func:`_month_to_date`)."""
    rules = _month_to_date(
        config, "service:cpu_hours:month_to_date", "job_stage_cpu_seconds_total",
        ("service", "job", "instance", "stage"), ("service",),
        "service_instance_stage:job_stage_cpu_seconds_total:last", " / 3600")
    return [{"name": "promkit-month-to-date", "interval": MONTH_TO_DATE_INTERVAL,
             "rules": rules}]


def cpu_budget_groups(config: Config) -> list[Group]:
    """The month-to-date group, then the CPU rate, projection and budget group."""
    return [*_month_to_date_groups(config),
            {"name": "promkit-cpu-budget", "rules": _cpu_budget_rules(config)}]


def _cpu_budget_rules(config: Config) -> list[Rule]:
    """The CPU rate, the projection to the end of the month and the budget."""
    c = config
    mtd = "service:cpu_hours:month_to_date"
    rules = [
        _rate(c, "service", "cpu_seconds", "job_stage_cpu_seconds_total", ()),
        _record("service:cpu_hours:projected_month_end",
                f"{mtd}\n+ on (service)\n"
                f"avg_over_time(service:cpu_seconds:rate5m[1d]) / 3600\n"
                f"* scalar((days_in_month() - day_of_month()) * 86400 + 86400 - time() % 86400)"),
    ]
    budget = c.budgets.cpu_hours_per_month
    if budget is not None:
        rules.append(_record("service:cpu_hours_budget:month", f"vector({num(budget)})",
                             {"service": c.service}))
        rules.append(_record("service:cpu_budget_used:ratio",
                             f"{mtd}\n/ on (service)\nservice:cpu_hours_budget:month"))
    return rules
