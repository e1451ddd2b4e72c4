"""Recording, alerting and SLO rules generated from the catalog and a project config.

Every rule keeps the ``service`` label (each raw selector matches
``service="<config.service>"``, the label the scrape config puts on every
target) and recording rules are named ``level:metric:operations``. The
files, each built by its own module: ``rules/recording.yml``
(:func:`recording_groups`, :mod:`._rules_recording` and :mod:`._rules_budget`),
``rules/alerts.yml`` (:func:`alert_groups`, :mod:`._rules_alerts`),
``rules/slo.yml`` (:func:`slo_groups`, :mod:`._rules_slo`) and, with
``compat_rules``, ``rules/compat.yml`` (:mod:`._rules_compat`);
:func:`all_rule_groups` puts them together. :func:`alert_rules` lists every
alerting rule of alerts.yml and slo.yml (the Alertmanager and runbook
generators read it); :data:`ALERTS` (:mod:`._alert_rule`) describes each alert
name once (severity, threshold, what it means).

docs/rules.md documents every recording rule; docs/alerts.md is generated
from :func:`alert_rules` by :func:`alerts_markdown` (:mod:`._alerts_markdown`).
"""

from __future__ import annotations

from promkit.tools.generate._alert_rule import (
    ALERTS,
    SYMPTOM_SLI,
    AlertInfo,
    runbook_url,
    severity,
)
from promkit.tools.generate._alerts_markdown import alerts_markdown
from promkit.tools.generate._burn import BURN_WINDOWS
from promkit.tools.generate._promql import Group
from promkit.tools.generate._rules_alerts import alert_groups, alert_rules
from promkit.tools.generate._rules_compat import compat_groups
from promkit.tools.generate._rules_recording import recording_groups
from promkit.tools.generate._rules_slo import slo_groups
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


def all_rule_groups(config: Config) -> dict[str, list[Group]]:
    """Rule groups by file name under ``prometheus/rules/`` (``compat.yml`` only when the
    config lists ``compat_rules``).

    Raises :class:`ConfigError` when ``alert_for`` names an alert that is not generated.
    """
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
