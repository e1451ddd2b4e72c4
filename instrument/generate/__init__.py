"""Generators: Prometheus config, recording/alert/SLO rules, their promtool tests and
docs/alerts.md from the catalog and a project config (see :mod:`.config`); the
Alertmanager config and Kubernetes manifests come from their own modules when
present.

``generate(config, out_dir)`` writes under ``out_dir``::

    prometheus/prometheus.yml
    prometheus/rules/{recording,alerts,slo}.yml
    prometheus/tests/*_test.yml      (promtool test rules)
    docs/alerts.md
    + write_alertmanager(config, out_dir), write_kubernetes(config, out_dir, rule_groups)
    + write_dashboards(config, out_dir): grafana/dashboards/*.json, grafana/provisioning/

Output is deterministic: the same config gives the same bytes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from instrument.generate._yaml import dump_yaml, generated_header
from instrument.generate.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config

__all__ = ["DEFAULT_CONFIG_PATH", "Config", "ConfigError", "generate", "load_config",
           "source_name"]

_REPO_ROOT = DEFAULT_CONFIG_PATH.parents[1]


def source_name(config: Config) -> str:
    """The config's path as generated headers show it: relative to the repository or cwd."""
    path = Path(config.source)
    if not path.is_absolute() and not path.exists():
        return config.source
    resolved = path.resolve()
    for base in (_REPO_ROOT, Path.cwd()):
        try:
            return resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    written.append(path)


def _optional(module: str) -> Any:
    """A sibling generator module, or None when it is not installed (yet)."""
    name = f"instrument.generate.{module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def generate(config: Config, out_dir: str | Path) -> list[Path]:
    """Write every generated file under ``out_dir``; returns the paths written."""
    from instrument.generate._rule_tests import rule_test_files
    from instrument.generate.prometheus_config import prometheus_config
    from instrument.generate.rules import alerts_markdown, all_rule_groups

    out = Path(out_dir)
    source = source_name(config)
    written: list[Path] = []
    rule_files = all_rule_groups(config)
    prom = out / "prometheus"
    _write(prom / "prometheus.yml",
           generated_header("Prometheus scrape, rule and Alertmanager config", source)
           + dump_yaml(prometheus_config(config)), written)
    for name, groups in rule_files.items():
        what = {"recording.yml": "recording rules (see docs/rules.md)",
                "alerts.yml": "alerting rules (see docs/alerts.md)",
                "slo.yml": "SLO recording rules and multiwindow burn-rate alerts"}[name]
        _write(prom / "rules" / name, generated_header(what, source)
               + dump_yaml({"groups": groups}), written)
    for name, body in rule_test_files(config).items():
        _write(prom / "tests" / name,
               generated_header("promtool unit tests (promtool test rules)", source)
               + dump_yaml(body), written)
    _write(out / "docs" / "alerts.md", alerts_markdown(config, source), written)
    all_groups = [group for groups in rule_files.values() for group in groups]
    alertmanager = _optional("alertmanager")
    if alertmanager is not None:
        alertmanager.write_alertmanager(config, out)
    kubernetes = _optional("kubernetes")
    if kubernetes is not None:
        kubernetes.write_kubernetes(config, out, all_groups)
    dashboards = _optional("dashboards")
    if dashboards is not None:  # last: raises DashboardsUnavailable without the SDK
        written += dashboards.write_dashboards(config, out)
    return written
