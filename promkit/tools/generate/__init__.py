"""Generators: everything ``promkit generate`` writes, from the catalog and a project config.

``generate(config, out_dir)`` writes under ``out_dir`` (see :mod:`.config` for the
config)::

    prometheus/prometheus.yml
    prometheus/rules/{recording,alerts,slo}.yml
    prometheus/rules/compat.yml      (with compat_rules: peers' metric names)
    prometheus/tests/*_test.yml      (promtool test rules)
    prometheus/alertmanager.yml
    prometheus/kubernetes/*.yaml     (Prometheus Operator objects)
    docs/alerts.md
    grafana/dashboards/*.json, grafana/provisioning/   (with grafana-foundation-sdk)

Output is deterministic: the same config gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

# Every generator is imported here; none of them imports grafana-foundation-sdk (only
# _grafana_sdk does, when a dashboard is rendered) or this package.
from promkit.tools.generate._grafana_sdk import sdk_available
from promkit.tools.generate._rule_tests import rule_test_files
from promkit.tools.generate._yaml import dump_yaml, generated_header, source_name
from promkit.tools.generate.alertmanager import ALERTMANAGER_PATH, render_alertmanager
from promkit.tools.generate.alertmanager import alertmanager_target as target_of
from promkit.tools.generate.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from promkit.tools.generate.dashboards import write_dashboards
from promkit.tools.generate.kubernetes import write_kubernetes
from promkit.tools.generate.prometheus_config import prometheus_config
from promkit.tools.generate.rules import alerts_markdown, all_rule_groups

__all__ = ["DEFAULT_CONFIG_PATH", "Config", "ConfigError", "generate", "load_config",
           "sdk_available", "source_name"]


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    written.append(path)


def generate(config: Config, out_dir: str | Path, *, dashboards: bool = True,
             alertmanager_target: tuple[tuple[int, int] | None, str] | None = None
             ) -> list[Path]:
    """Write every generated file under ``out_dir``; returns the paths written.

    ``dashboards=False`` leaves out the Grafana dashboards (which need
    grafana-foundation-sdk: see :func:`sdk_available`). ``alertmanager_target``:
    the Alertmanager version ``alertmanager.yml`` is written for and where it came
    from; default :func:`.alertmanager.alertmanager_target` (the config's
    ``alertmanager.version``, else the installed ``amtool``'s, else the newest form).
    """
    out = Path(out_dir)
    source = source_name(config)
    written: list[Path] = []
    rule_files = all_rule_groups(config)
    all_groups = [group for groups in rule_files.values() for group in groups]
    # Rendered before anything is written: a config that cannot route alerts (no
    # receivers) fails with AlertmanagerError and leaves the output directory alone.
    alertmanager_yml = render_alertmanager(config,
                                           target=alertmanager_target or target_of(config))
    prom = out / "prometheus"
    _write(prom / "prometheus.yml",
           generated_header("Prometheus scrape, rule and Alertmanager config", source)
           + dump_yaml(prometheus_config(config)), written)
    for name, groups in rule_files.items():
        what = {"recording.yml": "recording rules (see docs/rules.md)",
                "alerts.yml": "alerting rules (see docs/alerts.md)",
                "slo.yml": "SLO recording rules and multiwindow burn-rate alerts",
                "compat.yml": "peer-named HTTP series recorded from promkit's "
                              "(see docs/migration.md)"}[name]
        _write(prom / "rules" / name, generated_header(what, source)
               + dump_yaml({"groups": groups}), written)
    for name, body in rule_test_files(config).items():
        _write(prom / "tests" / name,
               generated_header("promtool unit tests (promtool test rules)", source)
               + dump_yaml(body), written)
    _write(out / "docs" / "alerts.md", alerts_markdown(config, source), written)
    _write(out / ALERTMANAGER_PATH, alertmanager_yml, written)
    written += write_kubernetes(config, out, all_groups)
    if dashboards:  # raises DashboardsUnavailable without the SDK
        written += write_dashboards(config, out)
    return written
