"""The project-config commands: ``promkit init`` writes promkit.yaml; ``promkit generate``
and ``promkit generate-agent`` write Prometheus, Alertmanager and Grafana files from it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from promkit.tools._cli_usage import Subparsers, UsageError

if TYPE_CHECKING:
    from promkit.tools.generate import Config


def add_init(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "init",
        help="write a commented starting promkit.yaml in the current directory",
        allow_abbrev=False,
        description=(
            "Write a commented promkit.yaml (service, scrape targets, thresholds, SLOs, "
            "receivers) that `promkit generate` reads as it is. An existing file is never "
            "overwritten."
        ),
    )
    parser.add_argument("--service", metavar="NAME",
                        help="the service's name (default: the current directory's name)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="where to write it (default: ./promkit.yaml)")
    parser.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from promkit.tools.generate import DEFAULT_CONFIG_PATH, ConfigError
    from promkit.tools.init import default_service_name, write_starter_config

    path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    service = args.service if args.service is not None else default_service_name(Path.cwd())
    try:
        write_starter_config(path, service)
    except FileExistsError:
        raise UsageError(f"{path} exists already; not overwriting it") from None
    except ConfigError as exc:
        raise UsageError(f"--service {service!r}: {exc.problem}") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"promkit: wrote {path} (service {service!r}); edit it, then run "
          f"`promkit generate`", flush=True)
    return 0


def add_generate(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write Prometheus config, rules, promtool tests and dashboards from promkit.yaml",
        allow_abbrev=False,
        description=(
            "Write DIR/prometheus/ (prometheus.yml, rules/*.yml, tests/*.yml, alertmanager.yml, "
            "kubernetes/*.yaml), DIR/docs/alerts.md and DIR/grafana/ (dashboards, with the "
            "dashboards extra) from the metric catalog and a project config (YAML, or a Python "
            "file defining CONFIG). The output is deterministic."
        ),
    )
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="project config (default: ./promkit.yaml; `promkit init` writes one)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="directory to write into (default: the current directory)")
    parser.add_argument("--no-dashboards", action="store_true",
                        help="do not write the Grafana dashboards")
    parser.add_argument("--alertmanager-version", metavar="X.Y", default=None,
                        help="write alertmanager.yml for this Alertmanager (0.25 reads no "
                             "webhook url_file); default: the config's alertmanager.version, "
                             "else the installed amtool's, else the newest form")
    parser.set_defaults(handler=_generate)


def _project_config(option: str | None) -> Config:
    """The config of ``--config``, else ./promkit.yaml; a missing default names `promkit init`."""
    from promkit.tools.generate import DEFAULT_CONFIG_PATH, ConfigError, load_config

    if option is None and not DEFAULT_CONFIG_PATH.exists():
        raise UsageError(f"no {DEFAULT_CONFIG_PATH} here: run `promkit init` to write one, "
                         "or pass --config FILE")
    try:
        return load_config(option or DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _generate(args: argparse.Namespace) -> int:
    from promkit.tools.generate import ConfigError, generate, sdk_available
    from promkit.tools.generate._grafana_sdk import SDK_REQUIREMENT
    from promkit.tools.generate.alertmanager import AlertmanagerError, alertmanager_target

    config = _project_config(args.config)
    out = args.out or "."
    dashboards = not args.no_dashboards and sdk_available()
    try:
        target = alertmanager_target(config, args.alertmanager_version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        written = generate(config, out, dashboards=dashboards, alertmanager_target=target)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except AlertmanagerError as exc:  # a config that loads but cannot route alerts
        raise UsageError(f"{config.source}: {exc}") from None
    print(f"promkit: generated {len(written)} files under {out} from {config.source}",
          flush=True)
    version, why = target
    print("promkit: alertmanager.yml is for Alertmanager "
          + (f"{'.'.join(map(str, version))} and later ({why})" if version is not None
             else f"0.26 and later ({why})"), flush=True)
    if not args.no_dashboards and not dashboards:
        print("promkit: Grafana dashboards skipped: they need grafana-foundation-sdk "
              f"(Python >= 3.11): pip install 'promkit[dashboards]' (pins {SDK_REQUIREMENT}), "
              "or pass --no-dashboards", flush=True)
    return 0


def add_generate_agent(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "generate-agent",
        help="write a Prometheus agent config remote-writing to a central store (many hosts)",
        allow_abbrev=False,
        description=(
            "Write DIR/prometheus/agent/: agent.yml (prometheus --enable-feature=agent: scrape "
            "like prometheus.yml, external labels cluster/replica, remote_write to URL), "
            "central.yml (a central Prometheus with --web.enable-remote-write-receiver that "
            "evaluates the rules) and federation.yml (the federation alternative). "
            "See docs/scaling.md."
        ),
    )
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="project config (default: ./promkit.yaml)")
    parser.add_argument("--remote-write-url", metavar="URL", required=True,
                        help="the central store's write endpoint, e.g. "
                             "http://central:9090/api/v1/write")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="directory to write into (default: the current directory)")
    parser.add_argument("--cluster", default="local",
                        help="value of the cluster external label (default: %(default)s)")
    parser.add_argument("--replica", default="0",
                        help="value of the replica external label, distinct per agent of an "
                             "HA pair; '${HOSTNAME}' needs expand-external-labels "
                             "(default: %(default)s)")
    parser.add_argument("--cluster-label", default="cluster", help=argparse.SUPPRESS)
    parser.add_argument("--replica-label", default="replica",
                        help="name of the replica label (Mimir's HA tracker default is "
                             "__replica__; default: %(default)s)")
    parser.add_argument("--bearer-token-file", metavar="FILE",
                        help="file holding the store's bearer token")
    parser.add_argument("--header", metavar="NAME=VALUE", action="append", default=[],
                        help="extra HTTP header, e.g. X-Scope-OrgID=team-a (repeatable)")
    parser.add_argument("--drop-metrics", metavar="REGEX",
                        help="metric names not to remote-write (write_relabel_configs drop)")
    parser.add_argument("--keep-metrics", metavar="REGEX",
                        help="remote-write only these metric names (write_relabel_configs keep)")
    parser.add_argument("--federate-from", metavar="HOST:PORT", action="append", default=[],
                        help="per-host Prometheus servers for federation.yml (repeatable)")
    parser.set_defaults(handler=_generate_agent)


def _generate_agent(args: argparse.Namespace) -> int:
    from promkit.tools.generate import ConfigError
    from promkit.tools.generate.remote_write import AgentOptions, write_agent

    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r}: expected NAME=VALUE")
        headers[name.strip()] = value.strip()
    options = AgentOptions(
        remote_write_url=args.remote_write_url, cluster=args.cluster, replica=args.replica,
        cluster_label=args.cluster_label, replica_label=args.replica_label,
        bearer_token_file=args.bearer_token_file, headers=headers,
        drop_metrics=args.drop_metrics, keep_metrics=args.keep_metrics,
        federate_from=tuple(args.federate_from),
    )
    try:
        options.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = _project_config(args.config)
    out = args.out or "."
    try:
        written = write_agent(config, out, options)
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(f"promkit: generated {len(written)} files under {out}/prometheus/agent "
          f"from {config.source}", flush=True)
    return 0
