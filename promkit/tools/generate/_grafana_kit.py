"""Building blocks of the dashboard declarations: selectors, queries, template variables.

Every selector carries ``service="$service"``; template variables ``$route``,
``$stage`` and ``$instance`` are regexes (All = ``.*``).
"""

from __future__ import annotations

from promkit.tools.generate._grafana_model import TargetSpec, VariableSpec
from promkit.tools.generate.config import Config

__all__ = ["FIRING", "INSTANCE", "QUANTILES", "RATE", "ROUTE", "STAGE", "SVC", "pct",
           "raw_quantile", "rule_quantiles", "sel", "target", "variables"]

SVC = 'service="$service"'
ROUTE = 'http_route=~"$route"'
STAGE = 'stage=~"$stage"'
INSTANCE = 'instance=~"$instance"'
RATE = "[$__rate_interval]"
QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))


def sel(metric: str, *matchers: str) -> str:
    """``metric{service="$service", <matchers>}``."""
    return f"{metric}{{{', '.join((SVC, *matchers))}}}"


def target(expr: str, legend: str = "", **kw: bool) -> TargetSpec:
    """A panel query: ``expr`` with its legend (``instant``, ``exemplar``, ``table`` flags)."""
    return TargetSpec(expr=expr, legend=legend, **kw)


def raw_quantile(metric: str, q: str, by: str, *matchers: str) -> str:
    """A quantile from the raw buckets (exemplars attach to these series)."""
    labels = f"{by}, le" if by else "le"
    inner = f"sum by ({labels}) (rate({sel(metric + '_bucket', *matchers)}{RATE}))"
    return f"histogram_quantile({q}, {inner})"


def rule_quantiles(rule_base: str, legend: str, *matchers: str) -> list[TargetSpec]:
    """The p50, p95 and p99 recording rules ``<rule_base>:<q>_5m`` as queries."""
    return [target(sel(f"{rule_base}:{name}_5m", *matchers), f"{name} {legend}".strip())
            for name, _ in QUANTILES]


def variables(config: Config, *names: str) -> tuple[VariableSpec, ...]:
    """The template variables ``names`` (service, instance, route, stage), in that order."""
    known = {
        "service": VariableSpec("service", "Service", "label_values(up, service)",
                                default=config.service),
        "instance": VariableSpec("instance", "Instance", f"label_values(up{{{SVC}}}, instance)",
                                 multi=True),
        "route": VariableSpec(
            "route", "Route",
            f"label_values(http_server_request_duration_seconds_count{{{SVC}}}, http_route)",
            multi=True),
        "stage": VariableSpec(
            "stage", "Stage", f"label_values(job_stage_duration_seconds_count{{{SVC}}}, stage)",
            multi=True),
    }
    return tuple(known[name] for name in names)


FIRING = ("Firing alerts", f'ALERTS{{{SVC}, alertstate="firing"}}')
"""The annotation every dashboard shows: the service's firing alerts."""


def pct(value: float) -> str:
    """A ratio as a percentage for panel descriptions (``0.02`` -> ``2%``)."""
    return f"{value * 100:g}%"
