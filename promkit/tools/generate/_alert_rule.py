"""What each alert means, and the alerting rule of an alert name.

:data:`ALERTS` describes each alert name once (severity, ``for``, summary,
description, threshold in words); :func:`alert` builds the alerting rule of a
name for a config (severity per :func:`severity`, ``for`` per the config's
``alert_for``, annotations with the config's thresholds, runbook and panel).
The rules that use it are in :mod:`._rules_alerts` and :mod:`._rules_slo`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from promkit.tools.generate._promql import Rule
from promkit.tools.generate.config import Config
from promkit.tools.generate.dashboards import ALERT_PANELS, alert_panel_url

__all__ = ["ALERTS", "SYMPTOM_SLI", "AlertInfo", "alert", "fill_placeholders", "runbook_url",
           "severity"]


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


def fill_placeholders(text: str, config: Config) -> str:
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
        "description": description or fill_placeholders(info.description, config),
    }
    if config.runbook_base is not None:
        rule["annotations"]["runbook_url"] = runbook_url(config, name)
    if name in ALERT_PANELS:
        rule["annotations"]["dashboard"] = alert_panel_url(config, name, config.grafana_url)
    return rule


def runbook_url(config: Config, name: str) -> str | None:
    """``<runbook_base>/<name>.md``, the ``runbook_url`` annotation (None without a base)."""
    return None if config.runbook_base is None else f"{config.runbook_base}/{name}.md"
