"""The promkit dashboards, declared as data from the catalog's metrics and the rules.

Panels read the recording rules of ``prometheus/rules/`` (named
``level:metric:operations``; see :mod:`.rules`) where one exists for what they
show: RED by route, latency quantiles, SLO error ratios and budget, cost and
the CPU-hours budget. Where a rule drops a label the panel needs (``instance``,
``error_code``, status code) or none is defined, the panel queries the raw
catalog metric. Every selector carries ``service="$service"``; template
variables ``$route``, ``$stage`` and ``$instance`` are regexes (All = ``.*``).

Each dashboard is declared in its own module (:mod:`._grafana_http`,
:mod:`._grafana_jobs`, :mod:`._grafana_external`, :mod:`._grafana_slos`,
:mod:`._grafana_runtime`) from the building blocks of :mod:`._grafana_kit`;
:func:`dashboard_specs` lists them and :data:`ALERT_PANELS` names the panel
each alert links to.
"""

from __future__ import annotations

from promkit.tools.generate._grafana_external import external_cost_dashboard
from promkit.tools.generate._grafana_http import (
    database_dashboard,
    service_overview_dashboard,
    websockets_dashboard,
)
from promkit.tools.generate._grafana_jobs import jobs_dashboard
from promkit.tools.generate._grafana_model import DashboardSpec
from promkit.tools.generate._grafana_runtime import resources_dashboard, self_monitoring_dashboard
from promkit.tools.generate._grafana_slos import slos_dashboard
from promkit.tools.generate.config import Config

__all__ = ["ALERT_PANELS", "dashboard_specs"]

ALERT_PANELS: dict[str, tuple[str, str]] = {
    "HTTPErrorRatioHigh": ("promkit-service-overview", "error-ratio-by-route"),
    "HTTP5xxRateHigh": ("promkit-service-overview", "top-failing-routes"),
    "HTTPLatencyP95High": ("promkit-service-overview", "latency-by-route"),
    "TargetDown": ("promkit-self", "targets-up"),
    "QueueDepthHigh": ("promkit-jobs", "queue-depth"),
    "QueueOldestItemTooOld": ("promkit-jobs", "queue-oldest-age"),
    "QueueReadFailing": ("promkit-jobs", "queue-up"),
    "DiskUsageHigh": ("promkit-resources", "disk-used"),
    "AuthFailureSpike": ("promkit-service-overview", "auth-attempts"),
    "StageFailureRatioHigh": ("promkit-jobs", "stage-failure-ratio"),
    "ExternalErrorRatioHigh": ("promkit-external-cost", "external-error-ratio"),
    "ExternalLatencyP95High": ("promkit-external-cost", "external-latency"),
    "LLMLatencyP95High": ("promkit-external-cost", "llm-latency"),
    "JobLatencyP95High": ("promkit-jobs", "job-latency-quantiles"),
    "CPUBudgetBurn": ("promkit-external-cost", "cpu-hours-month"),
    "CPUBudgetExhausted": ("promkit-external-cost", "cpu-hours-month"),
    "PromkitInstrumentationErrors": ("promkit-self", "instrumentation-errors"),
    "PromkitSeriesOverflow": ("promkit-self", "series-overflow"),
    "SLOBurnRatePage": ("promkit-slos", "burn-rate-page"),
    "SLOBurnRateTicket": ("promkit-slos", "burn-rate-ticket"),
    "SLOMetricAbsent": ("promkit-slos", "sli-events"),
}
"""Alert name -> (dashboard uid, panel key) of the panel that shows what fired."""


def dashboard_specs(config: Config) -> list[DashboardSpec]:
    """Every dashboard for ``config`` (the SLO dashboard only when the config has SLOs)."""
    specs = [service_overview_dashboard(config), websockets_dashboard(config),
             database_dashboard(config), jobs_dashboard(config), external_cost_dashboard(config),
             resources_dashboard(config)]
    if config.slos:
        specs.append(slos_dashboard(config))
    specs.append(self_monitoring_dashboard(config))
    return specs
