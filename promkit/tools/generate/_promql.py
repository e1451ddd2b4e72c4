"""PromQL building blocks of the rule generators: numbers, selectors, ``by`` lists,
``le`` values, and the rule dicts of the recording rules (``record``, ``expr``, ``labels``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promkit.tools.generate.config import Config

__all__ = ["QUANTILES", "Group", "Rule", "bucket_le", "by_labels", "mean_rule", "num",
           "quantile_rules", "rate_rule", "record_rule", "sel"]

Rule = dict[str, Any]
"""A rule as Prometheus's rule files have it (``record`` or ``alert``, ``expr``, ...)."""
Group = dict[str, Any]
"""A rule group (``name``, ``rules``, optional ``interval``)."""


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


def by_labels(labels: Sequence[str]) -> str:
    """The ``by (...)`` list of a rule: ``service`` first, then ``labels``."""
    return ", ".join(("service", *labels))


def bucket_le(value: float) -> str:
    """The ``le`` label prometheus-client writes for a bucket bound (``0.2``, ``1.0``)."""
    from prometheus_client.utils import floatToGoString

    text: str = floatToGoString(value)
    return text


def record_rule(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    """A recording rule ``name`` of ``expr`` (``labels`` added when given)."""
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))
"""The quantiles of :func:`quantile_rules`: (rule name part, quantile)."""


def quantile_rules(config: Config, level: str, metric: str, labels: Sequence[str],
                   window: str = "5m", **matchers: str) -> list[Rule]:
    """``<level>:<metric>:p50_<window>``, ``p95`` and ``p99`` from the buckets, by ``labels``."""
    by = by_labels((*labels, "le"))
    return [record_rule(
        f"{level}:{metric}:{name}_{window}",
        f"histogram_quantile({q}, sum by ({by}) (rate({sel(config, metric + '_bucket', **matchers)}"
        f"[{window}])))",
    ) for name, q in QUANTILES]


def rate_rule(config: Config, level: str, name: str, metric: str, labels: Sequence[str],
              window: str = "5m", **matchers: str) -> Rule:
    """``<level>:<name>:rate<window>``: the summed rate of ``metric`` by ``labels``."""
    return record_rule(f"{level}:{name}:rate{window}",
                       f"sum by ({by_labels(labels)}) "
                       f"(rate({sel(config, metric, **matchers)}[{window}]))")


def mean_rule(config: Config, level: str, metric: str, labels: Sequence[str]) -> Rule:
    """``<level>:<metric>:mean5m``: a histogram's mean over 5m (sum rate / count rate)."""
    by = by_labels(labels)
    return record_rule(
        f"{level}:{metric}:mean5m",
        f"sum by ({by}) (rate({sel(config, metric + '_sum')}[5m]))\n"
        f"/\nsum by ({by}) (rate({sel(config, metric + '_count')}[5m]))",
    )
