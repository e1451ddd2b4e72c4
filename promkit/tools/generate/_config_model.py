"""The project config as data: frozen dataclasses whose field names are the YAML keys.

``continue`` is ``Route.continue_``. :mod:`.config` reads and validates a
config file into a :class:`Config`; every problem is a :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from promkit.tools.generate._durations import parse_duration

__all__ = [
    "COMPAT_PEERS",
    "OLDEST_ALERTMANAGER",
    "RECEIVER_TYPES",
    "SLO_TYPES",
    "AlertmanagerTargets",
    "Budgets",
    "CompatRules",
    "Config",
    "ConfigError",
    "Receiver",
    "Route",
    "SLOSpec",
    "ScrapeTarget",
    "Thresholds",
]

SLO_TYPES = ("availability", "latency", "job_success", "auth_success")
COMPAT_PEERS = ("starlette_exporter", "instrumentator")
"""Peers whose metric names ``compat_rules`` can record from promkit's (docs/migration.md)."""
RECEIVER_TYPES = ("webhook", "ntfy", "discord", "slack")
OLDEST_ALERTMANAGER = (0, 25)
"""The oldest Alertmanager the generated config loads in (``discord_configs`` came in 0.25)."""


class ConfigError(ValueError):
    """A config problem: ``str()`` reads ``FILE:LINE: PATH: PROBLEM``."""

    def __init__(self, source: str, path: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.line = line
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job; every target gets the label ``service=<Config.service>``."""

    job: str
    targets: tuple[str, ...]
    metrics_path: str = "/metrics"
    scheme: str = "http"


@dataclass(frozen=True)
class AlertmanagerTargets:
    """Where Prometheus sends alerts, and the Alertmanager version the generated
    ``alertmanager.yml`` is written for (``"0.25"``; ``None``: the installed ``amtool``'s
    when ``promkit generate`` runs, else the newest form)."""

    targets: tuple[str, ...] = ()
    version: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds; every field has the issue's default."""

    http_error_ratio: float = 0.02
    http_5xx_rate: float = 1.0
    http_p95_seconds: float = 0.5
    queue_depth: float = 30
    queue_oldest_age_seconds: float = 300
    disk_used_ratio: float = 0.8
    auth_failures_15m: float = 100
    stage_failure_ratio: float = 0.05
    external_error_ratio: float = 0.1
    external_p95_seconds: float = 10
    job_p95_seconds: float = 30


@dataclass(frozen=True)
class SLOSpec:
    """An SLO: ``objective`` of events good over ``window``.

    ``type``: ``availability`` (HTTP requests not 5xx), ``latency`` (HTTP
    requests faster than ``threshold_seconds``, a bucket bound of
    ``http_server_request_duration_seconds``), ``job_success`` (jobs finished
    with outcome ``success``), ``auth_success`` (auth attempts with outcome
    ``success``).
    """

    name: str
    type: str
    objective: float
    window: str = "30d"
    threshold_seconds: float | None = None

    @property
    def error_budget(self) -> float:
        return 1.0 - self.objective


@dataclass(frozen=True)
class Budgets:
    cpu_hours_per_month: float | None = None


@dataclass(frozen=True)
class Receiver:
    """A notification target; exactly one of ``url``, ``url_file``, ``url_env``."""

    name: str
    type: str
    url: str | None = None
    url_file: str | None = None
    url_env: str | None = None
    send_resolved: bool = True


@dataclass(frozen=True)
class Route:
    """An Alertmanager route: alerts whose labels equal ``match`` go to ``receiver``."""

    receiver: str
    match: Mapping[str, str] = field(default_factory=dict)
    continue_: bool = False
    group_by: tuple[str, ...] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None


@dataclass(frozen=True)
class CompatRules:
    """Recording rules that give promkit's HTTP series a peer's names and labels.

    ``peer``: one of :data:`COMPAT_PEERS`. starlette_exporter's metric ``prefix``
    (``None``: its default, ``starlette``) and ``app_name`` label (``None``: its
    default, ``starlette``) can be set to what the peer was configured with.
    """

    peer: str
    prefix: str | None = None
    app_name: str | None = None


@dataclass(frozen=True)
class Config:
    service: str
    targets: tuple[ScrapeTarget, ...]
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    alertmanager: AlertmanagerTargets | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    slos: tuple[SLOSpec, ...] = ()
    slo_min_events_per_hour: float = 10.0
    budgets: Budgets = field(default_factory=Budgets)
    receivers: tuple[Receiver, ...] = ()
    routes: tuple[Route, ...] = ()
    runbook_base: str | None = None
    """Where the runbook pages are served, an absolute http(s) URL: alert ``A`` gets the
    annotation ``runbook_url: <runbook_base>/A.md``. ``None``: no ``runbook_url``."""
    grafana_url: str = "http://127.0.0.1:3000"
    """Where Grafana runs: alerts link to the panel that shows what they watch."""
    alert_for: Mapping[str, str] = field(default_factory=dict)
    """Per-alert ``for`` overrides by alert name (e.g. short ones in tests)."""
    compat_rules: tuple[CompatRules, ...] = ()
    """Peers' metric names recorded from promkit's (``rules/compat.yml``); opt-in."""
    source: str = field(default="<config>", compare=False)
    """Where the config came from, for messages and generated-file headers."""

    @property
    def evaluation_seconds(self) -> float:
        return parse_duration(self.evaluation_interval)

    def receiver(self, name: str) -> Receiver:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(f"no receiver named {name!r}")
