"""prometheus/prometheus.yml: global intervals, scrape configs, rule files, Alertmanager."""

from __future__ import annotations

from typing import Any

from promkit.tools.generate.config import Config

__all__ = ["COMPAT_RULE_FILE", "RULE_FILES", "base_config", "prometheus_config", "rule_files",
           "scrape_configs"]

RULE_FILES = ("rules/recording.yml", "rules/alerts.yml", "rules/slo.yml")
"""Rule files, relative to prometheus.yml (Prometheus resolves them from its config's dir)."""
COMPAT_RULE_FILE = "rules/compat.yml"
"""The peer-named rules, written only when the config lists ``compat_rules``."""


def rule_files(config: Config) -> list[str]:
    """The rule files ``config`` generates, relative to prometheus.yml."""
    return [*RULE_FILES, *([COMPAT_RULE_FILE] if config.compat_rules else [])]


def scrape_configs(config: Config) -> list[dict[str, Any]]:
    """One scrape job per configured target group, each target labelled ``service``."""
    return [
        {
            "job_name": target.job,
            "scheme": target.scheme,
            "metrics_path": target.metrics_path,
            "static_configs": [{
                "targets": list(target.targets),
                "labels": {"service": config.service},
            }],
        }
        for target in config.targets
    ]


def base_config(config: Config) -> dict[str, Any]:
    """``global`` intervals and, when configured, the Alertmanager targets."""
    out: dict[str, Any] = {
        "global": {
            "scrape_interval": config.scrape_interval,
            "evaluation_interval": config.evaluation_interval,
        },
    }
    if config.alertmanager is not None and config.alertmanager.targets:
        out["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": list(config.alertmanager.targets)}]},
        ]}
    return out


def prometheus_config(config: Config) -> dict[str, Any]:
    out = base_config(config)
    out["rule_files"] = rule_files(config)
    out["scrape_configs"] = scrape_configs(config)
    return out
