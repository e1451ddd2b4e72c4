"""The external dependencies and cost dashboard: calls, LLM tokens, usage, CPU-hours budget."""

from __future__ import annotations

from promkit.tools.generate._grafana_kit import (
    FIRING,
    pct,
    raw_quantile,
    rule_quantiles,
    sel,
    target,
    variables,
)
from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, RowSpec
from promkit.tools.generate.config import Config

__all__ = ["external_cost_dashboard"]


_USAGE_BY = "resource, provider, model, role"


def _cost_month_to_date() -> str:
    return (f"sum(sum by ({_USAGE_BY}) (increase({sel('usage_units_total')}[$__range]))\n"
            f"* on ({_USAGE_BY}) group_left\n"
            f"max by ({_USAGE_BY}) ({sel('usage_unit_price')}))")


def external_cost_dashboard(config: Config) -> DashboardSpec:
    t = config.thresholds
    dep = "{{peer_service}} {{operation}}"
    timeouts = sel("service_external:external_calls:rate5m", 'outcome="timeout"')
    calls = RowSpec("External calls", (
        PanelSpec("external-calls", "Calls per second by service, operation and outcome",
                  "Calls to external services per second over 5 minutes "
                  "(service_external:external_calls:rate5m); the callee is peer_service.",
                  "cps",
                  (target(sel("service_external:external_calls:rate5m"), dep + " {{outcome}}"),),
                  width=8, stacked=True, min=0),
        PanelSpec("external-error-ratio", "Error ratio by dependency",
                  "Calls ending in an error or a timeout over all calls, over 5 minutes "
                  "(service_external:external_call_error_ratio:ratio_rate5m); the alert "
                  f"fires above {pct(t.external_error_ratio)}.", "percentunit",
                  (target(sel("service_external:external_call_error_ratio:ratio_rate5m"), dep),),
                  width=8, min=0, thresholds=((t.external_error_ratio, "red"),)),
        PanelSpec("external-latency", "Latency p50 / p95 / p99 by dependency",
                  "Duration of external calls over 5 minutes "
                  "(service_external:external_call_duration_seconds:p50_5m, p95_5m, p99_5m) "
                  "and the p99 from the raw buckets with exemplars; the alert fires when p95 "
                  f"is above {t.external_p95_seconds:g}s.", "s",
                  (*rule_quantiles("service_external:external_call_duration_seconds", dep),
                   target(raw_quantile("external_call_duration_seconds", "0.99",
                                       "peer_service, operation"), "p99 raw " + dep,
                          exemplar=True)),
                  width=8, min=0, thresholds=((t.external_p95_seconds, "red"),)),
        PanelSpec("external-retries", "Retries per second",
                  "Retries of external calls per second "
                  "(service_external:external_call_retries:rate5m).", "cps",
                  (target(sel("service_external:external_call_retries:rate5m"), dep),),
                  width=8, min=0),
        PanelSpec("external-timeouts", "Timeouts per second",
                  "External calls that timed out, per second "
                  "(service_external:external_calls:rate5m, outcome timeout).", "cps",
                  (target(f"sum by (peer_service, operation) ({timeouts})", dep),),
                  width=8, min=0),
        PanelSpec("llm-latency", "LLM call latency p50 / p95 / p99",
                  "Duration of LLM calls by provider and model "
                  "(service_llm:gen_ai_client_operation_duration_seconds:p50_5m, p95_5m, "
                  "p99_5m) and the p99 from the raw buckets with exemplars.", "s",
                  (*rule_quantiles("service_llm:gen_ai_client_operation_duration_seconds",
                                   "{{gen_ai_provider_name}} {{gen_ai_request_model}}"),
                   target(raw_quantile("gen_ai_client_operation_duration_seconds", "0.99",
                                       "gen_ai_provider_name, gen_ai_request_model"),
                          "p99 raw {{gen_ai_provider_name}} {{gen_ai_request_model}}",
                          exemplar=True)),
                  width=8, min=0, thresholds=((t.external_p95_seconds, "red"),)),
    ))
    budget = config.budgets.cpu_hours_per_month
    cpu_targets = [
        target(sel("service:cpu_hours:month_to_date"), "used this month"),
        target(sel("service:cpu_hours:projected_month_end"), "projected at month end"),
    ]
    if budget is not None:
        cpu_targets.append(target(sel("service:cpu_hours_budget:month"), "budget"))
    usage_panels: list[PanelSpec] = [
        PanelSpec("llm-tokens", "LLM tokens per second",
                  "LLM tokens per second by provider, model and token type "
                  "(service_llm:gen_ai_client_tokens:rate5m).", "suffix: tokens/s",
                  (target(sel("service_llm:gen_ai_client_tokens:rate5m"),
                          "{{gen_ai_request_model}} {{gen_ai_token_type}}"),),
                  width=8, stacked=True, min=0),
        PanelSpec("usage-rate", "Usage per hour by resource",
                  "Billable units used per hour (tokens, pages, CPU seconds...) by resource, "
                  "provider, model and role (service_usage:usage_units:rate5m x 3600).",
                  "suffix: units/h",
                  (target(f"{sel('service_usage:usage_units:rate5m')} * 3600",
                          "{{resource}} {{provider}} {{model}} {{role}}"),),
                  width=8, min=0),
        PanelSpec("cost-rate", "Cost per hour by resource",
                  "Cost per hour in the price table's currency: usage rate times "
                  "usage_unit_price (service_usage:usage_cost:rate5m x 3600).", "short",
                  (target(f"sum by (resource) ({sel('service_usage:usage_cost:rate5m')}) * 3600",
                          "{{resource}}"),
                   target(f"{sel('service:usage_cost:rate5m')} * 3600", "total")),
                  width=8, min=0),
        PanelSpec("cost-month-to-date", "Cost this month so far",
                  "Cost since the first of the month (UTC, the panel's time range now/M): "
                  "increase of usage_units_total times usage_unit_price. The currency is the "
                  "price table's.", "short",
                  (target(_cost_month_to_date(), "month to date", instant=True),),
                  kind="stat", width=6, height=6, time_from="now/M"),
        PanelSpec("cost-projected", "Cost projected to month end",
                  "This month's cost so far divided by the elapsed fraction of the month: "
                  "where the month ends at the current pace, in the price table's currency.",
                  "short",
                  (target(f"{_cost_month_to_date()}\n/ scalar(((day_of_month() - 1) * 86400 "
                          "+ time() % 86400) / (days_in_month() * 86400))", "projected",
                          instant=True),),
                  kind="stat", width=6, height=6, time_from="now/M"),
        PanelSpec("usage-vs-budget", "Usage this month vs monthly budget",
                  "Units used since the first of the month over usage_monthly_budget_units, "
                  "by resource (1 = the whole budget).", "percentunit",
                  (target(f"sum by (resource) (increase({sel('usage_units_total')}[$__range]))\n"
                          f"/ on (resource)\nmax by (resource) "
                          f"({sel('usage_monthly_budget_units')})", "{{resource}}", instant=True),),
                  kind="bargauge", width=6, height=6, time_from="now/M", min=0, max=1,
                  thresholds=((0.8, "orange"), (1, "red"))),
        PanelSpec("cpu-hours-month", "CPU-hours this month vs budget",
                  "Stage CPU-hours used this month (service:cpu_hours:month_to_date), the "
                  "projection to the month's end at the last day's pace "
                  "(service:cpu_hours:projected_month_end)"
                  + (f" and the budget of {budget:g} CPU-hours "
                     "(service:cpu_hours_budget:month)." if budget is not None else "."),
                  "h", tuple(cpu_targets), width=6, height=6, min=0),
    ]
    usage = RowSpec("Usage and cost", tuple(usage_panels))
    return DashboardSpec(
        "promkit-external-cost", "external-cost.json",
        "promkit / External dependencies and cost",
        "Calls to external services (rate, errors, latency, retries, timeouts), LLM tokens, "
        "billable usage and cost, month-to-date against budget with the month-end projection.",
        variables(config, "service"), (calls, usage), annotations=(FIRING,))
