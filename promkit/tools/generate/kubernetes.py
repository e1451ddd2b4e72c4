"""Kubernetes manifests for the Prometheus Operator: PrometheusRule, ServiceMonitors, PodMonitor.

:func:`write_kubernetes` writes ``<out>/prometheus/kubernetes/``:

- ``prometheusrule.yaml``: a ``PrometheusRule`` holding the same rule groups as
  ``prometheus/rules/`` (recording, alerting and SLO rules);
- ``servicemonitor-api.yaml``: scrapes the API's Service (port named ``http``);
- ``servicemonitor-queue-exporter.yaml``: scrapes the Redis queue exporter's
  Service (port ``metrics``);
- ``podmonitor-worker.yaml``: scrapes worker pods directly (port ``metrics``),
  since workers usually have no Service.

Every object carries ``release: <release>`` (kube-prometheus-stack selects
rules and monitors by its Helm release name; default ``kube-prometheus-stack``)
and ``app.kubernetes.io/part-of: promkit``. Monitors select workloads labelled
``app.kubernetes.io/name: <service>`` and ``app.kubernetes.io/component:
api|worker|queue-exporter``. Relabelings set ``service`` to the project's
service name and ``job`` to the job names of ``prometheus.yml``, so the rules
see the same labels in a cluster as on one host. No ``namespace`` is written:
apply with ``kubectl apply -n <namespace> -f prometheus/kubernetes/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promkit.tools.generate._yaml import dump_yaml, generated_header, source_name
from promkit.tools.generate.config import Config

__all__ = [
    "API_VERSION",
    "COMPONENTS",
    "DEFAULT_RELEASE",
    "KUBERNETES_DIR",
    "Component",
    "kubernetes_manifests",
    "write_kubernetes",
]

API_VERSION = "monitoring.coreos.com/v1"
DEFAULT_RELEASE = "kube-prometheus-stack"
KUBERNETES_DIR = Path("prometheus") / "kubernetes"


@dataclass(frozen=True)
class Component:
    """A scraped part of the service and how the cluster exposes it."""

    name: str
    """``app.kubernetes.io/component`` of its pods/Service."""
    kind: str
    """``ServiceMonitor`` or ``PodMonitor``."""
    port: str
    """The named container/Service port serving metrics."""
    job_pattern: str
    """Finds its scrape job in the project config (``targets[].job``)."""


COMPONENTS: tuple[Component, ...] = (
    Component("api", "ServiceMonitor", "http", r"api"),
    Component("queue-exporter", "ServiceMonitor", "metrics", r"queue"),
    Component("worker", "PodMonitor", "metrics", r"worker"),
)


def _labels(config: Config, release: str, component: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": config.service,
        "app.kubernetes.io/part-of": "promkit",
        "app.kubernetes.io/managed-by": "promkit-generate",
    }
    if component is not None:
        labels["app.kubernetes.io/component"] = component
    labels["release"] = release
    return labels


def _job(config: Config, component: Component) -> tuple[str, str]:
    """(job name, metrics path) of the component's scrape job, or conventional defaults."""
    for target in config.targets:
        if re.search(component.job_pattern, target.job):
            return target.job, target.metrics_path
    return f"{config.service}-{component.name}", "/metrics"


def _monitor(config: Config, component: Component, release: str) -> dict[str, Any]:
    job, path = _job(config, component)
    endpoint: dict[str, Any] = {
        "port": component.port,
        "path": path,
        "interval": config.scrape_interval,
        "relabelings": [
            {"action": "replace", "targetLabel": "service", "replacement": config.service},
            {"action": "replace", "targetLabel": "job", "replacement": job},
        ],
    }
    endpoints_key = "endpoints" if component.kind == "ServiceMonitor" else "podMetricsEndpoints"
    return {
        "apiVersion": API_VERSION,
        "kind": component.kind,
        "metadata": {
            "name": f"{config.service}-{component.name}",
            "labels": _labels(config, release, component.name),
        },
        "spec": {
            "selector": {"matchLabels": {
                "app.kubernetes.io/name": config.service,
                "app.kubernetes.io/component": component.name,
            }},
            endpoints_key: [endpoint],
        },
    }


def kubernetes_manifests(config: Config, rule_groups: Sequence[Mapping[str, Any]], *,
                         release: str = DEFAULT_RELEASE) -> dict[str, dict[str, Any]]:
    """File name (under ``prometheus/kubernetes/``) -> manifest, in a fixed order."""
    out: dict[str, dict[str, Any]] = {
        "prometheusrule.yaml": {
            "apiVersion": API_VERSION,
            "kind": "PrometheusRule",
            "metadata": {"name": f"{config.service}-rules", "labels": _labels(config, release)},
            "spec": {"groups": [dict(g) for g in rule_groups]},
        },
    }
    for component in COMPONENTS:
        out[f"{component.kind.lower()}-{component.name}.yaml"] = _monitor(config, component,
                                                                           release)
    return out


def write_kubernetes(config: Config, out_dir: str | Path,
                     rule_groups: Sequence[Mapping[str, Any]], *,
                     release: str = DEFAULT_RELEASE) -> list[Path]:
    """Write the manifests to ``<out_dir>/prometheus/kubernetes/``; returns the paths.

    Files there that this generator no longer produces are removed, so a renamed
    component leaves nothing stale behind.
    """
    directory = Path(out_dir) / KUBERNETES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    manifests = kubernetes_manifests(config, rule_groups, release=release)
    for stale in directory.glob("*.yaml"):
        if stale.name not in manifests:
            stale.unlink()
    paths = []
    for name, manifest in manifests.items():
        what = f"Kubernetes {manifest['kind']} for the Prometheus Operator"
        path = directory / name
        path.write_text(generated_header(what, source_name(config)) + dump_yaml(manifest),
                        encoding="utf-8")
        paths.append(path)
    return paths
