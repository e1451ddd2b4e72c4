"""Many hosts: Prometheus in agent mode remote-writing to a central store.

``promkit generate-agent --config FILE --remote-write-url URL --out DIR`` writes
``DIR/prometheus/agent/``:

- ``agent.yml``: for ``prometheus --enable-feature=agent`` on each host. It
  scrapes exactly what ``prometheus/prometheus.yml`` scrapes (same jobs,
  targets and ``service`` label), adds the external labels ``cluster`` and
  ``replica`` and remote-writes everything to the central store, optionally
  through ``write_relabel_configs`` (drop or keep metric names).
- ``central.yml``: for a plain Prometheus acting as the central store
  (``--web.enable-remote-write-receiver``). It scrapes nothing of the service
  itself; it loads the rule files of ``prometheus/rules/`` and sends alerts to
  the Alertmanager. **Recording and alerting rules run here, not on the
  agents**: an agent has no local query engine and evaluates no rules. With
  Mimir, Thanos or VictoriaMetrics as the store, load the same rule files into
  their ruler (Mimir ruler, Thanos Ruler, vmalert) instead; see docs/scaling.md.
- ``federation.yml``: the alternative without remote_write. A scrape config
  for a central Prometheus pulling ``/federate`` from full (non-agent)
  Prometheus servers that run ``prometheus.yml`` and the rules themselves; it
  pulls the recording rules' outputs (names with a ``:``) and ``up``.

Output is deterministic: the same config and options give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from promkit.tools.generate._yaml import dump_yaml, source_name
from promkit.tools.generate.config import Config
from promkit.tools.generate.prometheus_config import base_config, rule_files, scrape_configs

__all__ = [
    "AGENT_DIR",
    "AgentOptions",
    "agent_config",
    "central_config",
    "federation_config",
    "write_agent",
]

AGENT_DIR = Path("prometheus") / "agent"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
# Prometheus refuses these in remote_write.headers (it sets them itself).
_RESERVED_HEADERS = frozenset({
    "host", "authorization", "content-encoding", "content-type", "content-length",
    "user-agent", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "www-authenticate", "retry-after", "x-prometheus-remote-write-version",
})


@dataclass(frozen=True)
class AgentOptions:
    """How the agents remote-write; see :func:`agent_config`."""

    remote_write_url: str
    """The store's write endpoint, e.g. ``http://central:9090/api/v1/write``."""
    cluster: str = "local"
    """Value of the ``cluster`` external label: the group of agents (a site, an HA pair)."""
    replica: str = "0"
    """Value of the ``replica`` external label; distinct per agent of an HA pair.
    ``${HOSTNAME}`` works with ``--enable-feature=agent,expand-external-labels``."""
    cluster_label: str = "cluster"
    replica_label: str = "replica"
    bearer_token_file: str | None = None
    """A file holding the store's bearer token (never the token itself)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers, e.g. ``X-Scope-OrgID`` (Mimir) or ``THANOS-TENANT``."""
    drop_metrics: str | None = None
    """Regex of metric names not to send (``write_relabel_configs`` action ``drop``)."""
    keep_metrics: str | None = None
    """Regex of metric names to send, nothing else (action ``keep``)."""
    remote_name: str = "central"
    federate_from: tuple[str, ...] = ()
    """``host:port`` of the per-host Prometheus servers for ``federation.yml``."""

    def validate(self) -> None:
        """Raise ValueError naming the bad option."""
        url = urlsplit(self.remote_write_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"--remote-write-url {self.remote_write_url!r}: expected an "
                             "http(s) URL such as http://central:9090/api/v1/write")
        if url.username or url.password:
            raise ValueError("--remote-write-url must not hold credentials; use "
                             "--bearer-token-file (or basic_auth.password_file by hand)")
        for name, value in (("--cluster-label", self.cluster_label),
                            ("--replica-label", self.replica_label)):
            if not _LABEL_NAME.match(value):
                raise ValueError(f"{name} {value!r} is not a valid label name")
        if self.cluster_label == self.replica_label:
            raise ValueError("the cluster and replica labels must differ")
        for name, value in (("--cluster", self.cluster), ("--replica", self.replica)):
            if not value:
                raise ValueError(f"{name} must not be empty")
        for header in self.headers:
            if not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"--header {header!r}: not a header Prometheus may send "
                                 "(use --bearer-token-file for authorization)")
        for name, regex in (("--drop-metrics", self.drop_metrics),
                            ("--keep-metrics", self.keep_metrics)):
            if regex is not None:
                try:
                    re.compile(regex)
                except re.error as exc:
                    raise ValueError(f"{name} {regex!r} is not a regex: {exc}") from None


def agent_config(config: Config, options: AgentOptions) -> dict[str, Any]:
    """The agent-mode config: scrape like prometheus.yml, remote-write everything."""
    options.validate()
    remote: dict[str, Any] = {"name": options.remote_name, "url": options.remote_write_url}
    if options.bearer_token_file:
        remote["authorization"] = {"type": "Bearer",
                                   "credentials_file": options.bearer_token_file}
    if options.headers:
        remote["headers"] = dict(sorted(options.headers.items()))
    relabel: list[dict[str, Any]] = []
    if options.keep_metrics:
        relabel.append({"source_labels": ["__name__"], "regex": options.keep_metrics,
                        "action": "keep"})
    if options.drop_metrics:
        relabel.append({"source_labels": ["__name__"], "regex": options.drop_metrics,
                        "action": "drop"})
    if relabel:
        remote["write_relabel_configs"] = relabel
    # Metadata (HELP/TYPE/UNIT) lets the store's UI and Grafana show help texts.
    remote["metadata_config"] = {"send": True}
    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "external_labels": {options.cluster_label: options.cluster,
                                options.replica_label: options.replica},
        },
        "scrape_configs": scrape_configs(config),
        "remote_write": [remote],
    }


def central_config(config: Config, *, rules_dir: str = "..") -> dict[str, Any]:
    """A plain central Prometheus receiving remote writes and evaluating the rules.

    ``rules_dir`` is where ``rules/`` lies relative to this file (``..``: the
    generated ``prometheus/`` directory).
    """
    out = base_config(config)
    out["rule_files"] = [f"{rules_dir}/{name}" for name in rule_files(config)]
    # Its own health only; the service's series arrive by remote_write.
    out["scrape_configs"] = [{"job_name": "prometheus-central",
                              "static_configs": [{"targets": ["127.0.0.1:9090"]}]}]
    return out


def federation_config(config: Config, sources: Sequence[str]) -> dict[str, Any]:
    """A central scrape config pulling rule outputs and ``up`` from per-host Prometheus."""
    service = config.service
    return {"scrape_configs": [{
        "job_name": f"federate-{service}",
        "honor_labels": True,  # keep job/instance/service as the host's Prometheus has them
        "metrics_path": "/federate",
        "scrape_interval": config.scrape_interval,
        "params": {"match[]": [
            f'{{service="{service}", __name__=~".+:.+"}}',
            f'up{{service="{service}"}}',
            # compat_rules' outputs carry peers' names, without colons
            *([f'{{service="{service}", promkit_compat!=""}}'] if config.compat_rules else []),
        ]},
        "static_configs": [{"targets": list(sources) or ["HOST-PROMETHEUS:9090"]}],
    }]}


def _header(what: str, source: str, run: str) -> str:
    return (f"# GENERATED by `promkit generate-agent` from {source}: {what}.\n"
            f"# Run: {run}\n"
            "# Do not edit by hand; change the config or options and regenerate.\n")


def write_agent(config: Config, out_dir: str | Path, options: AgentOptions) -> list[Path]:
    """Write agent.yml, central.yml and federation.yml under ``out_dir/prometheus/agent/``."""
    source = source_name(config)
    directory = Path(out_dir) / AGENT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    expand = "${" in options.cluster + options.replica
    features = "agent,expand-external-labels" if expand else "agent"
    files = {
        "agent.yml": (
            "Prometheus agent: scrape the service, remote-write to the central store",
            f"prometheus --enable-feature={features} --config.file=agent.yml "
            "--storage.agent.path=DATA",
            agent_config(config, options)),
        "central.yml": (
            "central Prometheus: receive remote writes, evaluate the recording/alert rules",
            "prometheus --web.enable-remote-write-receiver --config.file=central.yml",
            central_config(config)),
        "federation.yml": (
            "alternative to remote_write: scrape_configs entry federating per-host servers",
            "paste into the central Prometheus's scrape_configs",
            federation_config(config, options.federate_from)),
    }
    written: list[Path] = []
    for name, (what, run, body) in files.items():
        path = directory / name
        text = _header(what, source, run) + dump_yaml(body)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
