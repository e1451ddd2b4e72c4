"""``rules/alerts.yml``: the threshold alerts, and every alerting rule of the rule files."""

from __future__ import annotations

from promkit.tools.generate._alert_rule import alert
from promkit.tools.generate._promql import Group, Rule, num, sel
from promkit.tools.generate._promql import by_labels as _by
from promkit.tools.generate._rules_slo import slo_groups
from promkit.tools.generate.config import Config

__all__ = ["alert_groups", "alert_rules"]


def alert_groups(config: Config) -> list[Group]:
    c = config
    t = c.thresholds
    rules: list[Rule] = [
        alert(c, "HTTPErrorRatioHigh",
              f"service:http_error_ratio:ratio_rate5m{{service=\"{c.service}\"}} "
              f"> {num(t.http_error_ratio)}"),
        alert(c, "HTTP5xxRateHigh",
              f"service:http_errors:rate5m{{service=\"{c.service}\"}} > {num(t.http_5xx_rate)}"),
        alert(c, "HTTPLatencyP95High",
              f"service_route:http_server_request_duration_seconds:p95_5m"
              f"{{service=\"{c.service}\"}} > {num(t.http_p95_seconds)}"),
        alert(c, "TargetDown", f"{sel(c, 'up')} == 0"),
        alert(c, "QueueDepthHigh",
              f"service_queue:queue_depth:max{{service=\"{c.service}\"}} > {num(t.queue_depth)}"),
        alert(c, "QueueOldestItemTooOld",
              f"service_queue:queue_oldest_item_age_seconds:max{{service=\"{c.service}\"}} "
              f"> {num(t.queue_oldest_age_seconds)}"),
        alert(c, "QueueReadFailing",
              f"min by ({_by(('queue',))}) ({sel(c, 'queue_up')}) == 0"),
        alert(c, "DiskUsageHigh",
              f"service_instance:system_filesystem_utilization_ratio:max"
              f"{{service=\"{c.service}\"}} > {num(t.disk_used_ratio)}"),
        alert(c, "AuthFailureSpike",
              f"service:auth_failures:increase15m{{service=\"{c.service}\"}} "
              f"> {num(t.auth_failures_15m)}"),
        alert(c, "StageFailureRatioHigh",
              f"service_stage:job_stage_failure_ratio:ratio_rate5m{{service=\"{c.service}\"}} "
              f"> {num(t.stage_failure_ratio)}"),
        alert(c, "ExternalErrorRatioHigh",
              f"service_external:external_call_error_ratio:ratio_rate5m"
              f"{{service=\"{c.service}\"}} > {num(t.external_error_ratio)}"),
        alert(c, "ExternalLatencyP95High",
              f"service_external:external_call_duration_seconds:p95_5m"
              f"{{service=\"{c.service}\"}} > {num(t.external_p95_seconds)}"),
        alert(c, "LLMLatencyP95High",
              f"service_llm:gen_ai_client_operation_duration_seconds:p95_5m"
              f"{{service=\"{c.service}\"}} > {num(t.external_p95_seconds)}"),
        alert(c, "JobLatencyP95High",
              f"service_queue:job_duration_seconds:p95_5m{{service=\"{c.service}\"}} "
              f"> {num(t.job_p95_seconds)}"),
    ]
    if c.budgets.cpu_hours_per_month is not None:
        rules += [
            alert(c, "CPUBudgetBurn",
                  f"service:cpu_hours:projected_month_end{{service=\"{c.service}\"}}\n"
                  f"> on (service)\nservice:cpu_hours_budget:month"),
            alert(c, "CPUBudgetExhausted",
                  f"service:cpu_hours:month_to_date{{service=\"{c.service}\"}}\n"
                  f"> on (service)\nservice:cpu_hours_budget:month"),
        ]
    rules += [
        alert(c, "PromkitInstrumentationErrors",
              f"sum by ({_by(('cause',))}) "
              f"(increase({sel(c, 'promkit_instrumentation_errors_total')}[15m])) > 0"),
        alert(c, "PromkitSeriesOverflow",
              f"sum by ({_by(('metric',))}) "
              f"(increase({sel(c, 'promkit_series_overflow_total')}[15m])) > 0"),
    ]
    return [{"name": "promkit-alerts", "rules": rules}]


def alert_rules(config: Config) -> list[Rule]:
    """Every generated alerting rule (alerts.yml then slo.yml), as Prometheus rule dicts.

    Each has ``labels.severity`` (critical, warning or info), ``labels.service``
    and ``annotations`` ``summary``, ``description``, ``runbook_url`` (with a
    ``runbook_base``) and ``dashboard`` (when a panel shows the alert). SLO alerts
    repeat per SLO with an ``slo`` label (same alert name).
    """
    return [rule for group in (*alert_groups(config), *slo_groups(config))
            for rule in group["rules"] if "alert" in rule]
