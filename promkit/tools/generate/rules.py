"""Recording, alerting and SLO rules generated from the catalog and a project config.

Every rule keeps the ``service`` label (each raw selector matches
``service="<config.service>"``, the label the scrape config puts on every
target) and recording rules are named ``level:metric:operations``. The
files: ``rules/recording.yml`` (:func:`recording_groups`),
``rules/alerts.yml`` (:func:`alert_groups`) and ``rules/slo.yml``
(:func:`slo_groups`). :func:`alert_rules` lists every alerting rule of the
last two (the Alertmanager and runbook generators read it); :data:`ALERTS`
describes each alert name once (severity, threshold, what it means).

docs/rules.md documents every recording rule; docs/alerts.md is generated
from :func:`alert_rules` by :func:`alerts_markdown`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promkit.tools.generate._rules_slo import BURN_WINDOWS, burn_statement, slo_groups
from promkit.tools.generate.config import Config, ConfigError

__all__ = [
    "ALERTS",
    "BURN_WINDOWS",
    "SYMPTOM_SLI",
    "AlertInfo",
    "alert_groups",
    "alert_rules",
    "alerts_markdown",
    "all_rule_groups",
    "recording_groups",
    "runbook_url",
    "severity",
    "slo_groups",
]

Rule = dict[str, Any]
Group = dict[str, Any]


@dataclass(frozen=True)
class AlertInfo:
    """What an alert name means, shared by every rule of that name."""

    name: str
    severity: str
    for_: str | None
    summary: str
    description: str
    threshold: str
    """The threshold in words, ``{t.field}`` placeholders filled from the config thresholds."""


def _info(name: str, severity: str, for_: str | None, summary: str, description: str,
          threshold: str) -> AlertInfo:
    return AlertInfo(name, severity, for_, summary, description, threshold)


ALERTS: dict[str, AlertInfo] = {a.name: a for a in (
    _info("HTTPErrorRatioHigh", "critical", "5m",
          "{{ $labels.service }}: {{ $value | humanizePercentage }} of HTTP requests fail (5xx)",
          "More than {t.http_error_ratio_pct} of HTTP requests of {{ $labels.service }} answered "
          "5xx over the last 5 minutes.",
          "5xx ratio > {t.http_error_ratio_pct} (5m rate) for 5m"),
    _info("HTTP5xxRateHigh", "critical", "5m",
          "{{ $labels.service }}: {{ $value | humanize }} HTTP 5xx per second",
          "{{ $labels.service }} answers more than {t.http_5xx_rate:g} 5xx responses per second.",
          "5xx rate > {t.http_5xx_rate:g}/s (5m rate) for 5m"),
    _info("HTTPLatencyP95High", "warning", "10m",
          "{{ $labels.service }} {{ $labels.http_request_method }} {{ $labels.http_route }}: "
          "p95 latency {{ $value | humanizeDuration }}",
          "The 95th percentile of request duration on {{ $labels.http_route }} is above "
          "{t.http_p95_seconds:g}s.",
          "p95 > {t.http_p95_seconds:g}s per route (5m) for 10m"),
    _info("TargetDown", "critical", "2m",
          "{{ $labels.job }} target {{ $labels.instance }} is down",
          "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}) of "
          "{{ $labels.service }}: the process is down, unreachable or /metrics fails.",
          "up == 0 for 2m"),
    _info("QueueDepthHigh", "warning", "5m",
          "Queue {{ $labels.queue }} holds {{ $value }} items",
          "More than {t.queue_depth:g} items wait in queue {{ $labels.queue }} of "
          "{{ $labels.service }}; workers are not keeping up.",
          "queue_depth > {t.queue_depth:g} for 5m"),
    _info("QueueOldestItemTooOld", "warning", "5m",
          "Oldest item in queue {{ $labels.queue }} waits {{ $value | humanizeDuration }}",
          "The oldest item in queue {{ $labels.queue }} has waited more than "
          "{t.queue_oldest_age_seconds:g}s.",
          "oldest item age > {t.queue_oldest_age_seconds:g}s for 5m"),
    _info("QueueReadFailing", "warning", "5m",
          "Queue {{ $labels.queue }} cannot be read",
          "The queue exporter's reads of {{ $labels.queue }} fail or time out, so its depth "
          "and age are unknown.",
          "queue_up == 0 for 5m"),
    _info("DiskUsageHigh", "warning", "5m",
          "Disk of {{ $labels.path }} on {{ $labels.instance }} is "
          "{{ $value | humanizePercentage }} full",
          "The filesystem holding {{ $labels.path }} is more than {t.disk_used_ratio_pct} used.",
          "used ratio > {t.disk_used_ratio_pct} for 5m"),
    _info("AuthFailureSpike", "warning", None,
          "{{ $labels.service }}: {{ $value | humanize }} failed auth attempts in 15m",
          "More than {t.auth_failures_15m:g} authentication attempts failed in 15 minutes: "
          "a credential-stuffing attempt, or a broken login path.",
          "failed attempts > {t.auth_failures_15m:g} in 15m"),
    _info("StageFailureRatioHigh", "warning", "10m",
          "Stage {{ $labels.stage }} fails {{ $value | humanizePercentage }} of runs",
          "More than {t.stage_failure_ratio_pct} of runs of job stage {{ $labels.stage }} fail.",
          "stage failures / runs > {t.stage_failure_ratio_pct} (5m) for 10m"),
    _info("ExternalErrorRatioHigh", "warning", "10m",
          "{{ $labels.peer_service }} {{ $labels.operation }}: "
          "{{ $value | humanizePercentage }} of calls fail",
          "More than {t.external_error_ratio_pct} of calls to {{ $labels.peer_service }} "
          "({{ $labels.operation }}) end in an error or a timeout.",
          "error+timeout / calls > {t.external_error_ratio_pct} (5m) for 10m"),
    _info("ExternalLatencyP95High", "warning", "10m",
          "{{ $labels.peer_service }} {{ $labels.operation }}: p95 "
          "{{ $value | humanizeDuration }}",
          "The 95th percentile duration of calls to {{ $labels.peer_service }} "
          "({{ $labels.operation }}) is above {t.external_p95_seconds:g}s.",
          "p95 > {t.external_p95_seconds:g}s (5m) for 10m"),
    _info("LLMLatencyP95High", "warning", "10m",
          "LLM {{ $labels.gen_ai_provider_name }}/{{ $labels.gen_ai_request_model }}: p95 "
          "{{ $value | humanizeDuration }}",
          "The 95th percentile duration of LLM calls to {{ $labels.gen_ai_provider_name }} "
          "model {{ $labels.gen_ai_request_model }} is above {t.external_p95_seconds:g}s.",
          "p95 > {t.external_p95_seconds:g}s (5m) for 10m"),
    _info("JobLatencyP95High", "warning", "10m",
          "Jobs of queue {{ $labels.queue }}: p95 total latency {{ $value | humanizeDuration }}",
          "The 95th percentile of job latency (creation to terminal status) on queue "
          "{{ $labels.queue }} is above {t.job_p95_seconds:g}s.",
          "p95 > {t.job_p95_seconds:g}s (5m) for 10m"),
    _info("CPUBudgetBurn", "warning", "1h",
          "{{ $labels.service }}: CPU-hours projected to {{ $value | humanize }} this month",
          "At the last day's CPU rate, {{ $labels.service }} will use more CPU-hours this month "
          "than its budget of {budget_hours}.",
          "projected month-end CPU-hours > {budget_hours} for 1h"),
    _info("CPUBudgetExhausted", "warning", None,
          "{{ $labels.service }}: {{ $value | humanize }} CPU-hours used this month",
          "{{ $labels.service }} has used more CPU-hours this month than its budget of "
          "{budget_hours}.",
          "month-to-date CPU-hours > {budget_hours}"),
    _info("PromkitInstrumentationErrors", "info", "5m",
          "promkit swallowed {{ $value | humanize }} recording errors ({{ $labels.cause }})",
          "promkit's recording failed and was swallowed (cause {{ $labels.cause }}); some "
          "metrics are missing or wrong. The process log says why, once per cause.",
          "increase of promkit_instrumentation_errors_total over 15m > 0 for 5m"),
    _info("PromkitSeriesOverflow", "warning", None,
          "{{ $labels.metric }} hit its series limit",
          "New label sets of {{ $labels.metric }} fold into its __overflow__ series: a label "
          "takes unbounded values (raw paths, IDs) or the limit is too low.",
          "increase of promkit_series_overflow_total over 15m > 0"),
    _info("SLOBurnRatePage", "critical", None,
          "SLO {{ $labels.slo }}: error budget burning fast (1h or 6h)",
          "SLO {{ $labels.slo }} of {{ $labels.service }} spends its error budget fast: over "
          "both 1h and 5m at a rate that spends 2% of the budget of the SLO's window in an "
          "hour, or over both 6h and 30m at a rate that spends 5% of it in 6 hours. Page. "
          "While it fires it silences the SLO's ticket and the symptom alerts of the same "
          "SLI (see docs/alerting.md).",
          "error ratio > factor × budget over 1h and 5m (factor = 2% × SLO window / 1h), or "
          "over 6h and 30m (5% × SLO window / 6h); ≥ {min_events} events/h"),
    _info("SLOBurnRateTicket", "warning", None,
          "SLO {{ $labels.slo }}: error budget burning steadily (1d or 3d)",
          "SLO {{ $labels.slo }} of {{ $labels.service }} spends its error budget steadily: "
          "over both 1d and 2h at a rate that spends 10% of the budget of the SLO's window in "
          "a day, or over both 3d and 6h at a rate that spends 10% of it in 3 days. Ticket, "
          "not page.",
          "error ratio > factor × budget over 1d and 2h (factor = 10% × SLO window / 1d), or "
          "over 3d and 6h (10% × SLO window / 3d); ≥ {min_events} events/h"),
    _info("SLOMetricAbsent", "warning", "10m",
          "SLO <name>: its metric is absent",
          "Prometheus has no series of the metric SLO {{ $labels.slo }} is computed from, so "
          "its burn-rate alerts cannot fire. The service is down, not scraped, or renamed it.",
          "no series for 10m"),
)}


SYMPTOM_SLI: dict[str, str] = {
    "HTTPErrorRatioHigh": "availability",
    "HTTP5xxRateHigh": "availability",
    "HTTPLatencyP95High": "latency",
    "StageFailureRatioHigh": "job_success",
    "AuthFailureSpike": "auth_success",
}
"""Threshold alerts on what an SLO type measures (alert name -> SLO type). They carry the
label ``sli``; while the page of an SLO of that type fires, Alertmanager silences them
(``equal: [service, sli]``), and when the config has such an SLO they are warnings, never
pages: the SLO's page is the one page of the incident."""


def severity(config: Config, name: str) -> str:
    """The severity ``name`` gets for ``config``: a critical symptom alert whose SLI an SLO
    covers becomes a warning (see :data:`SYMPTOM_SLI`)."""
    info = ALERTS[name]
    sli = SYMPTOM_SLI.get(name)
    if sli is not None and info.severity == "critical" and any(
            slo.type == sli for slo in config.slos):
        return "warning"
    return info.severity


_PLACEHOLDER = re.compile(r"(?<!\{)\{(t\.[a-z0-9_]+|budget_hours|min_events)(?::([^}]*))?\}")


def _fmt(text: str, config: Config) -> str:
    """Fill ``{t.<threshold>[:fmt]}``, ``{t.<ratio>_pct}``, ``{budget_hours}``, ``{min_events}``.

    Prometheus templates (``{{ $labels.x }}``) pass through unchanged.
    """
    t = config.thresholds
    budget = config.budgets.cpu_hours_per_month

    def fill(match: re.Match[str]) -> str:
        key, spec = match.group(1), match.group(2) or ""
        if key == "budget_hours":
            return f"{budget:g}" if budget is not None else "(none)"
        if key == "min_events":
            return f"{config.slo_min_events_per_hour:g}"
        name = key[2:]
        if name.endswith("_pct"):
            return f"{getattr(t, name[:-4]) * 100:g}%"
        return format(getattr(t, name), spec or "g")

    return _PLACEHOLDER.sub(fill, text)


def num(value: float) -> str:
    """A number as PromQL text, without float noise (``0.010000000000000009`` -> ``0.01``)."""
    return f"{round(value, 10):.10g}" if abs(value) < 1e15 else repr(value)


def sel(config: Config, metric: str, **matchers: str) -> str:
    """``metric{service="<service>", ...}``; a value starting with ``!`` becomes ``!=``."""
    parts = [f'service="{config.service}"']
    for label, value in matchers.items():
        if value.startswith("!~"):
            parts.append(f'{label}!~"{value[2:]}"')
        elif value.startswith("!"):
            parts.append(f'{label}!="{value[1:]}"')
        else:
            parts.append(f'{label}="{value}"')
    return f"{metric}{{{', '.join(parts)}}}"


def _by(labels: Sequence[str]) -> str:
    return ", ".join(("service", *labels))


def alert(config: Config, name: str, expr: str, labels: dict[str, str] | None = None,
          description: str | None = None, summary: str | None = None) -> Rule:
    """An alerting rule for ``name`` of :data:`ALERTS` (``for`` overridable by the config).

    ``summary`` and ``description`` replace the :data:`ALERTS` texts for rules whose
    numbers differ per instance (an SLO's burn factor).
    """
    info = ALERTS[name]
    rule: Rule = {"alert": name, "expr": expr}
    for_ = config.alert_for.get(name, info.for_)
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity(config, name), "service": config.service}
    if name in SYMPTOM_SLI:
        rule["labels"]["sli"] = SYMPTOM_SLI[name]
    rule["labels"].update(labels or {})
    rule["annotations"] = {
        "summary": summary or info.summary,
        "description": description or _fmt(info.description, config),
    }
    if config.runbook_base is not None:
        rule["annotations"]["runbook_url"] = runbook_url(config, name)
    from promkit.tools.generate.dashboards import (  # no cycle at import
        ALERT_PANELS,
        alert_panel_url,
    )

    if name in ALERT_PANELS:
        rule["annotations"]["dashboard"] = alert_panel_url(config, name, config.grafana_url)
    return rule


def runbook_url(config: Config, name: str) -> str | None:
    """``<runbook_base>/<name>.md``, the ``runbook_url`` annotation (None without a base)."""
    return None if config.runbook_base is None else f"{config.runbook_base}/{name}.md"


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))


def _quantiles(config: Config, level: str, metric: str, labels: Sequence[str],
               window: str = "5m", **matchers: str) -> list[Rule]:
    by = _by((*labels, "le"))
    return [_record(
        f"{level}:{metric}:{name}_{window}",
        f"histogram_quantile({q}, sum by ({by}) (rate({sel(config, metric + '_bucket', **matchers)}"
        f"[{window}])))",
    ) for name, q in QUANTILES]


def _rate(config: Config, level: str, name: str, metric: str, labels: Sequence[str],
          window: str = "5m", **matchers: str) -> Rule:
    return _record(f"{level}:{name}:rate{window}",
                   f"sum by ({_by(labels)}) (rate({sel(config, metric, **matchers)}[{window}]))")


def _mean(config: Config, level: str, metric: str, labels: Sequence[str]) -> Rule:
    by = _by(labels)
    return _record(
        f"{level}:{metric}:mean5m",
        f"sum by ({by}) (rate({sel(config, metric + '_sum')}[5m]))\n"
        f"/\nsum by ({by}) (rate({sel(config, metric + '_count')}[5m]))",
    )


# -- recording rules -----------------------------------------------------------------------

_ROUTE = ("http_request_method", "http_route")
_EXTERNAL = ("peer_service", "operation")
_LLM = ("gen_ai_provider_name", "gen_ai_request_model")


def recording_groups(config: Config) -> list[Group]:
    c = config
    http = "http_server_request_duration_seconds"
    groups: list[Group] = []
    groups.append({"name": "promkit-http", "rules": [
        _rate(c, "service_route", "http_requests", f"{http}_count", _ROUTE),
        _rate(c, "service_route", "http_errors", f"{http}_count", _ROUTE,
              http_response_status_class="5xx"),
        _record("service_route:http_error_ratio:ratio_rate5m",
                "service_route:http_errors:rate5m\n/\nservice_route:http_requests:rate5m"),
        _rate(c, "service", "http_requests", f"{http}_count", ()),
        _record("service:http_errors:rate5m",
                "sum by (service) (rate("
                f"{sel(c, http + '_count', http_response_status_class='5xx')}[5m]))\n"
                "or\nservice:http_requests:rate5m * 0"),
        _record("service:http_error_ratio:ratio_rate5m",
                "service:http_errors:rate5m\n/\nservice:http_requests:rate5m"),
        *_quantiles(c, "service_route", http, _ROUTE),
        *_quantiles(c, "service", http, ()),
        _record("service:http_server_active_requests:sum",
                f"sum by (service) ({sel(c, 'http_server_active_requests')})"),
        _rate(c, "service_route", "http_server_unhandled_exceptions",
              "http_server_unhandled_exceptions_total", (*_ROUTE, "error_type")),
        _rate(c, "service_route", "http_server_client_disconnects",
              "http_server_client_disconnects_total", _ROUTE),
        *_quantiles(c, "service_route", "http_server_response_body_size_bytes", _ROUTE)[1:2],
        *_quantiles(c, "service_route", "http_server_request_body_size_bytes", _ROUTE)[1:2],
    ]})
    groups.append({"name": "promkit-websocket-auth-db", "rules": [
        _record("service_route:websocket_server_active_connections:sum",
                f"sum by ({_by(('http_route',))}) "
                f"({sel(c, 'websocket_server_active_connections')})"),
        _rate(c, "service_route", "websocket_server_messages", "websocket_server_messages_total",
              ("http_route", "direction")),
        _rate(c, "service_route", "websocket_server_closes", "websocket_server_closes_total",
              ("http_route", "close_code")),
        *_quantiles(c, "service_route", "websocket_server_session_duration_seconds",
                    ("http_route",))[1:2],
        _rate(c, "service_auth", "auth_attempts", "auth_attempts_total", ("auth_type", "outcome")),
        _record("service:auth_failures:increase15m",
                f"sum by (service) (increase({sel(c, 'auth_attempts_total', outcome='!success')}"
                "[15m]))"),
        _record("service:auth_failure_ratio:ratio_rate5m",
                f"sum by (service) (rate({sel(c, 'auth_attempts_total', outcome='!success')}[5m]))"
                f"\n/\nsum by (service) (rate({sel(c, 'auth_attempts_total')}[5m]))"),
        *_quantiles(c, "service_db", "db_client_operation_duration_seconds",
                    ("db_system_name", "db_operation_name")),
        _rate(c, "service_db", "db_client_operations", "db_client_operation_duration_seconds_count",
              ("db_system_name", "db_operation_name")),
    ]})
    groups.append({"name": "promkit-jobs-stages", "rules": [
        _rate(c, "service_stage", "job_stage_runs", "job_stage_duration_seconds_count", ("stage",)),
        _rate(c, "service_stage", "job_stage_failures", "job_stage_failures_total", ("stage",)),
        _record("service_stage:job_stage_failure_ratio:ratio_rate5m",
                "service_stage:job_stage_failures:rate5m\n/\nservice_stage:job_stage_runs:rate5m"),
        *_quantiles(c, "service_stage", "job_stage_duration_seconds", ("stage",)),
        _rate(c, "service_stage", "job_stage_cpu_seconds", "job_stage_cpu_seconds_total",
              ("stage",)),
        *(rule for metric in ("job_queue_wait_seconds", "job_run_duration_seconds",
                              "job_duration_seconds")
          for rule in (*_quantiles(c, "service_queue", metric, ("queue",)),
                       _mean(c, "service_queue", metric, ("queue",)))),
        _rate(c, "service_queue", "jobs_created", "jobs_created_total", ("queue", "job_type")),
        _rate(c, "service_queue", "jobs_finished", "jobs_finished_total",
              ("queue", "job_type", "outcome")),
        _record("service_queue:job_failure_ratio:ratio_rate5m",
                f"sum by ({_by(('queue',))}) (rate("
                f"{sel(c, 'jobs_finished_total', outcome='!success')}[5m]))\n/\n"
                f"sum by ({_by(('queue',))}) (rate({sel(c, 'jobs_finished_total')}[5m]))"),
        _record("service:jobs_in_flight:sum",
                f"sum by ({_by(('job_type',))}) ({sel(c, 'jobs_in_flight')})"),
        _rate(c, "service", "jobs_skipped", "jobs_skipped_total", ("job_type", "reason")),
        _rate(c, "service", "jobs_recovered", "jobs_recovered_total", ("job_type", "reason")),
        _rate(c, "service", "job_persist_failures", "job_persist_failures_total", ("store",)),
        _rate(c, "service", "worker_cold_starts", "worker_cold_starts_total", ("worker_type",)),
        _record("service_cache:cache_hit_ratio:ratio_rate5m",
                f"sum by ({_by(('cache',))}) (rate({sel(c, 'cache_requests_total', result='hit')}"
                f"[5m]))\n/\nsum by ({_by(('cache',))}) "
                f"(rate({sel(c, 'cache_requests_total')}[5m]))"),
        *_quantiles(c, "service_queue", "job_enqueue_queue_depth", ("queue",))[1:2],
    ]})
    groups.append({"name": "promkit-queues", "rules": [
        _record("service_queue:queue_depth:max",
                f"max by ({_by(('queue',))}) ({sel(c, 'queue_depth')})"),
        _record("service_queue:queue_oldest_item_age_seconds:max",
                f"max by ({_by(('queue',))}) ({sel(c, 'queue_oldest_item_age_seconds')})"),
        _record("service_queue:queue_stream_pending:max",
                f"max by ({_by(('queue', 'group'))}) ({sel(c, 'queue_stream_pending')})"),
        _record("service_queue:queue_stream_lag:max",
                f"max by ({_by(('queue', 'group'))}) ({sel(c, 'queue_stream_lag')})"),
    ]})
    groups.append({"name": "promkit-external-llm", "rules": [
        _rate(c, "service_external", "external_calls", "external_calls_total",
              (*_EXTERNAL, "outcome")),
        _record("service_external:external_call_error_ratio:ratio_rate5m",
                f"sum by ({_by(_EXTERNAL)}) (rate("
                f"{sel(c, 'external_calls_total', outcome='!success')}[5m]))\n/\n"
                f"sum by ({_by(_EXTERNAL)}) (rate({sel(c, 'external_calls_total')}[5m]))"),
        *_quantiles(c, "service_external", "external_call_duration_seconds", _EXTERNAL),
        _rate(c, "service_external", "external_call_retries", "external_call_retries_total",
              _EXTERNAL),
        *_quantiles(c, "service_llm", "gen_ai_client_operation_duration_seconds", _LLM),
        _rate(c, "service_llm", "gen_ai_client_tokens", "gen_ai_client_tokens_total",
              (*_LLM, "gen_ai_token_type")),
    ]})
    usage_labels = ("resource", "provider", "model", "role")
    by_usage = _by(usage_labels)
    groups.append({"name": "promkit-usage-cost", "rules": [
        _rate(c, "service_usage", "usage_units", "usage_units_total", usage_labels),
        _record("service_usage:usage_cost:rate5m",
                f"service_usage:usage_units:rate5m\n* on ({by_usage}) group_left\n"
                f"max by ({by_usage}) ({sel(c, 'usage_unit_price')})"),
        _record("service:usage_cost:rate5m",
                "sum by (service) (service_usage:usage_cost:rate5m)"),
    ]})
    groups.append({"name": "promkit-resources-self", "rules": [
        _record("service_instance:process_memory_usage_bytes:max",
                f"max by ({_by(('job', 'instance'))}) ({sel(c, 'process_memory_usage_bytes')})"),
        _rate(c, "service_instance", "process_cpu_time_seconds",
              "process_cpu_time_seconds_total", ("job", "instance")),
        _record("service_instance:process_open_file_descriptors:max",
                f"max by ({_by(('job', 'instance'))}) ({sel(c, 'process_open_file_descriptors')})"),
        _record("service_instance:system_filesystem_utilization_ratio:max",
                f"max by ({_by(('instance', 'path'))}) "
                f"({sel(c, 'system_filesystem_utilization_ratio')})"),
        *_quantiles(c, "service_instance", "python_event_loop_lag_seconds",
                    ("job", "instance"))[2:],
        _rate(c, "service", "promkit_instrumentation_errors",
              "promkit_instrumentation_errors_total", ("cause",)),
        _rate(c, "service", "promkit_series_overflow", "promkit_series_overflow_total",
              ("metric",)),
        *_quantiles(c, "service", "promkit_exposition_duration_seconds", ("format",))[2:],
    ]})
    groups += _month_to_date_groups(config)
    groups.append({"name": "promkit-cpu-budget", "rules": _cpu_budget_rules(config)})
    return groups


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


# -- alerting rules ------------------------------------------------------------------------


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


def all_rule_groups(config: Config) -> dict[str, list[Group]]:
    """Rule groups by file name under ``prometheus/rules/`` (``compat.yml`` only when the
    config lists ``compat_rules``).

    Raises :class:`ConfigError` when ``alert_for`` names an alert that is not generated.
    """
    from promkit.tools.generate._rules_compat import compat_groups

    files = {
        "recording.yml": recording_groups(config),
        "alerts.yml": alert_groups(config),
        "slo.yml": slo_groups(config),
    }
    if config.compat_rules:
        files["compat.yml"] = compat_groups(config)
    names = {rule["alert"] for groups in files.values() for group in groups
             for rule in group["rules"] if "alert" in rule}
    for name in config.alert_for:
        if name not in names:
            raise ConfigError(config.source, f"alert_for.{name}",
                              f"no generated alert is named {name!r}; known: "
                              f"{', '.join(sorted(names))}")
    return files


def alert_rules(config: Config) -> list[Rule]:
    """Every generated alerting rule (alerts.yml then slo.yml), as Prometheus rule dicts.

    Each has ``labels.severity`` (critical, warning or info), ``labels.service``
    and ``annotations`` ``summary``, ``description``, ``runbook_url`` (with a
    ``runbook_base``) and ``dashboard`` (when a panel shows the alert). SLO alerts
    repeat per SLO with an ``slo`` label (same alert name).
    """
    return [rule for group in (*alert_groups(config), *slo_groups(config))
            for rule in group["rules"] if "alert" in rule]


def _link(url: str | None) -> str:
    """A Markdown link to a runbook from docs/alerts.md, or ``-`` without ``runbook_base``."""
    return "-" if url is None else f"[{url.rsplit('/', 1)[-1]}]({url})"


def alerts_markdown(config: Config, source: str) -> str:
    """docs/alerts.md: every alert with severity, expression, threshold and runbook."""
    lines = [
        "# Alerts",
        "",
        f"<!-- GENERATED by `promkit generate` from {source}; do not edit. -->",
        "",
        f"Every alert `promkit generate` writes for the config `{source}` (service "
        f"`{config.service}`), in prometheus/rules/alerts.yml and prometheus/rules/slo.yml. "
        "Each carries the labels `severity` and `service` and the annotations `summary`, "
        "`description`, `runbook_url` (`<runbook_base>/<alert>.md`, when the config sets "
        "`runbook_base`) and, when a panel shows it, `dashboard`. Thresholds come from "
        "the config's `thresholds` "
        "(see [rules.md](rules.md)); `for` can be overridden per alert with `alert_for`.",
        "",
        "| alert | severity | for | threshold | runbook |",
        "| --- | --- | --- | --- | --- |",
    ]
    rules = alert_rules(config)
    seen: list[str] = []
    for rule in rules:
        if rule["alert"] not in seen:
            seen.append(rule["alert"])
    for name in seen:
        info = ALERTS[name]
        first = next(r for r in rules if r["alert"] == name)
        lines.append(f"| [{name}](#{name.lower()}) | {first['labels']['severity']} "
                     f"| {first.get('for', '-')} "
                     f"| {_fmt(info.threshold, config)} | "
                     f"{_link(runbook_url(config, name))} |")
    for name in seen:
        info = ALERTS[name]
        lines += ["", f"## {name}", "", _fmt(info.description, config).replace(
            "{{ $labels.", "`").replace(" }}", "`"), ""]
        burns = [b for b in BURN_WINDOWS if b.alert == name]
        for rule in (r for r in rules if r["alert"] == name):
            slo = rule["labels"].get("slo")
            if slo:
                spec = next(s for s in config.slos if s.name == slo)
                lines += [f"SLO `{slo}` ({num(spec.objective * 100)}% over {spec.window})"
                          + (":" if not burns else ", it"), ""]
                lines += [f"- {burn_statement(spec, b)}." for b in burns]
                lines += [""] if burns else []
            lines += ["```promql", rule["expr"].rstrip(), "```", ""]
        sli = SYMPTOM_SLI.get(name)
        if sli is not None:
            covered = [slo.name for slo in config.slos if slo.type == sli]
            effective = rule["labels"]["severity"]
            if covered:
                text = (f"the SLO {', '.join(f'`{n}`' for n in covered)} covers it, so "
                        "Alertmanager silences this alert while that SLO's `SLOBurnRatePage` "
                        "fires")
                if effective != info.severity:
                    text += (f", and it is a `{effective}`, not a `{info.severity}`: the "
                             "SLO's page is the incident's one page")
            else:
                text = f"no SLO of type `{sli}` is configured, so no page silences it"
            lines += [f"Watches the `{sli}` SLI (label `sli=\"{sli}\"`): {text}.", ""]
        lines.append(f"Severity `{rule['labels']['severity']}`, for `{rule.get('for', '0s')}`; "
                     "runbook: "
                     f"{_link(runbook_url(config, name))}.")
    return "\n".join(lines).rstrip() + "\n"
