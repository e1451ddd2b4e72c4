"""The ``promkit`` command line.

Each subcommand lives in a ``_add_<name>(subparsers)`` function that builds its
parser and sets ``handler`` with ``set_defaults``; :data:`SUBCOMMANDS` lists
them, so a new subcommand is one function and one entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from promkit._version import __version__

if TYPE_CHECKING:
    from promkit.exporters import RedisQueueCollector
    from promkit.tools.generate import Config

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

TOKEN_ENV = "PROMKIT_METRICS_TOKEN"
REDIS_URL_ENV = "PROMKIT_REDIS_URL"
DEFAULT_SERVE_PORT = 9464
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or setting: printed as ``promkit: error: ...``, exit code 2."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: must be 0 to 65535")
    return port


# -- promkit serve -------------------------------------------------------------------------


def _add_serve(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve /metrics of this process (process, platform, GC and promkit metrics)",
        allow_abbrev=False,
        description=(
            "Serve the default registry (prometheus-client's REGISTRY with its process, "
            "platform and GC collectors, plus promkit's self-metrics) on "
            "http://HOST:PORT/metrics until SIGINT or SIGTERM. With PROMETHEUS_MULTIPROC_DIR "
            "set it serves the aggregated multiprocess metrics. A bearer token, if any, "
            f"comes from --token-file or the {TOKEN_ENV} environment variable. With "
            "--tls-cert it serves https; with --tls-client-ca (or --tls-client-ca-dir) "
            "scrapers must present a certificate signed by that CA."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=DEFAULT_SERVE_PORT,
                        help="port to listen on, 0 for any free port (default: %(default)s)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file holding the bearer token scrapers must send "
                             f"(default: ${TOKEN_ENV}, else no token)")
    # A token given as an argument would show in `ps` and shell history: refuse
    # it by name, without echoing the value back.
    parser.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="serve https with this PEM certificate (intermediates after it)")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="its unencrypted PEM private key (default: read from --tls-cert)")
    tls.add_argument("--tls-client-ca", metavar="FILE",
                     help="require client certificates signed by the CA certificates in "
                          "this PEM file")
    tls.add_argument("--tls-client-ca-dir", metavar="DIR",
                     help="the same, from a directory of CA certificates in OpenSSL's "
                          "hashed layout (openssl rehash)")
    parser.add_argument("--redis-url", metavar="URL",
                        help="Redis holding the --redis-queue queues (default: "
                             f"${REDIS_URL_ENV}; prefer it when the URL holds a password)")
    parser.add_argument("--redis-queue", metavar="SPEC", action="append", default=[],
                        help="also report a Redis queue's depth and age: list:KEY, "
                             "stream:KEY[:GROUP] or zset:KEY, with ?option=value "
                             "(repeatable; see docs/queues.md)")
    parser.add_argument("--redis-timeout", metavar="SECONDS", type=float, default=0.5,
                        help="per-scrape Redis read timeout (default: %(default)s)")
    parser.set_defaults(handler=_serve)


class _RefuseToken(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.error(f"the token is not accepted on the command line (it would show in ps "
                     f"and shell history); use --token-file FILE or {TOKEN_ENV}")


def _read_token(path: str | None) -> str | None:
    if path is None:
        token = os.environ.get(TOKEN_ENV)
        if token is None:
            return None
        if not token.strip():
            raise UsageError(f"{TOKEN_ENV} is set but empty; unset it to serve without a token")
        return token.strip()
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            token = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read --token-file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {path!r} is not UTF-8 text") from None
    token = token.strip()
    if not token:
        raise UsageError(f"--token-file {path!r} is empty")
    if "\n" in token or "\r" in token:
        raise UsageError(f"--token-file {path!r} holds more than one line")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # Serve anyway (the file may be on a read-only mount) but say so.
        print(f"promkit: warning: --token-file {path!r} is readable by other users",
              file=sys.stderr)
    return token


def _check_tls_flags(args: argparse.Namespace) -> bool:
    """Check the --tls-* flags' combination (the files are checked when the server
    starts); True when client certificates are required."""
    if args.tls_cert is None:
        for flag in ("tls_key", "tls_client_ca", "tls_client_ca_dir"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} needs --tls-cert")
        return False
    key = args.tls_key if args.tls_key is not None else args.tls_cert
    with contextlib.suppress(OSError):  # an unreadable file is reported when it is loaded
        if os.stat(key).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            flag = "--tls-key" if args.tls_key is not None else "--tls-cert"
            print(f"promkit: warning: {flag} {key!r} (the private key) is readable by "
                  "other users", file=sys.stderr)
    return args.tls_client_ca is not None or args.tls_client_ca_dir is not None


def _serve(args: argparse.Namespace) -> int:
    from promkit.exporters import serve_metrics

    token = _read_token(args.token_file)
    client_auth = _check_tls_flags(args)
    queues = _redis_queues(args)
    notes = [*(["bearer token required"] if token else []),
             *(["client certificate required"] if client_auth else [])]

    def started(url: str) -> None:
        print(f"promkit: serving metrics on {url}" + (f" ({', '.join(notes)})" if notes else "")
              + (f" with {len(queues.specs)} Redis queue(s)" if queues else ""), flush=True)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve_metrics(args.host, args.port, token=token, on_started=started,
                                certfile=args.tls_cert, keyfile=args.tls_key,
                                client_cafile=args.tls_client_ca,
                                client_capath=args.tls_client_ca_dir,
                                client_auth_required=client_auth)

    try:
        asyncio.run(run())
    except ValueError as exc:
        # A TLS file that is missing, unreadable, not PEM, encrypted or not matching,
        # found before the port is bound.
        raise UsageError(str(exc)) from None
    except OSError as exc:
        # An unknown or non-local address is a bad argument (2); a busy port or
        # a missing permission is a failure to start (1).
        bad_address = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        print(f"promkit: error: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE if bad_address else 1
    finally:
        if queues is not None:
            queues.close()
    print("promkit: stopped", flush=True)
    return 0


def _redis_queues(args: argparse.Namespace) -> RedisQueueCollector | None:
    """The queue collector of ``--redis-queue``, registered on the default registry."""
    url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    if not args.redis_queue:
        if args.redis_url:
            raise UsageError("--redis-url given without any --redis-queue SPEC")
        return None
    if not url:
        raise UsageError(f"--redis-queue needs --redis-url URL (or {REDIS_URL_ENV})")
    if not 0 < args.redis_timeout <= 30:
        raise UsageError(f"--redis-timeout must be in (0, 30] seconds, not {args.redis_timeout}")
    from promkit.instrument.registry import default_registry, multiprocess_dir

    if multiprocess_dir() is not None:
        raise UsageError("--redis-queue cannot be served with PROMETHEUS_MULTIPROC_DIR set "
                         "(multiprocess output holds only the processes' files); run a "
                         "separate `promkit serve --redis-queue ...` without it")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise UsageError("--redis-queue needs the redis package: pip install 'promkit[redis]'"
                         ) from None
    from promkit.exporters import RedisQueueCollector
    from promkit.instrument.queues import QueueSpecError

    try:
        return RedisQueueCollector(url, args.redis_queue, timeout=args.redis_timeout,
                                   registry=default_registry())
    except (QueueSpecError, ValueError) as exc:
        # ValueError covers a malformed URL; its text never holds the password.
        raise UsageError(str(exc)) from None


# -- promkit report ------------------------------------------------------------------------

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"
EXIT_ISSUES = 1
EXIT_POST_FAILED = 3


def _add_report(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="answer the five questions (health, latency, failures, cost, trends) from "
             "Prometheus",
        allow_abbrev=False,
        description=(
            "Query Prometheus's HTTP API over a window and report: is it healthy (alerts, "
            "SLO error budgets, targets down), where the time goes (latency by route, job "
            "queue wait / run, stages, external calls), what fails and why, what it costs "
            "(month to date and projected against budgets) and what it will need (trends "
            "with a linear projection). Terminal text by default; --json, --markdown or "
            "--html FILE; --post URL sends the digest to a webhook, always: when no report "
            "can be made it posts a warning saying what could not be read. Exit codes: 0 "
            "report made (issues or not), 1 issues found with --fail-on-issues, 2 Prometheus "
            "unreachable or empty or a bad argument (with --post the warning was posted), 3 "
            "the --post webhook failed: nothing was posted."
        ),
    )
    parser.add_argument("--prometheus", metavar="URL", default=DEFAULT_PROMETHEUS,
                        help="Prometheus base URL (default: %(default)s, the demo's)")
    parser.add_argument("--since", default="1h", metavar="DURATION",
                        help="report window: 1h, 24h, 7d, 30m... (default: %(default)s)")
    parser.add_argument("--service", metavar="JOB",
                        help="only series and targets with this job label")
    parser.add_argument("--at", metavar="TIME",
                        help="end the window at TIME instead of now: ISO 8601 "
                             "(2026-11-16T12:00:00Z; no zone means UTC) or Unix seconds; "
                             "alerts are then read from the ALERTS series at that time")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the report as JSON (schema promkit.report/v1)")
    out.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML page with charts to FILE")
    parser.add_argument("--no-color", action="store_true",
                        help="no ANSI colours in terminal text (default: colour on a TTY "
                             "unless NO_COLOR is set)")
    parser.add_argument("--post", metavar="URL",
                        help="POST the digest to URL, always: '✓ nominal', '⚠ n issues', or "
                             "'⚠ promkit report failed' with what could not be read")
    parser.add_argument("--post-format", default="auto",
                        choices=("auto", "discord", "slack", "ntfy", "generic"),
                        help="webhook payload (default: by URL host; else generic JSON)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-request timeout for Prometheus and the webhook "
                             "(default: %(default)s)")
    parser.add_argument("--fail-on-issues", action="store_true",
                        help="exit 1 when the report found issues")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from promkit.tools.report import ReportError, generate, parse_time
    from promkit.tools.report.html import render_html
    from promkit.tools.report.post import PostError, post_failure, post_report
    from promkit.tools.report.render import render_json, render_markdown, render_text

    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout must be in (0, 300] seconds, not {args.timeout}")
    at = None
    if args.at is not None:
        try:
            at = parse_time(args.at)
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None
    try:
        report = generate(args.prometheus, args.since, service=args.service,
                          timeout=args.timeout, now=at)
    except ReportError as exc:
        if not args.post:
            raise UsageError(str(exc)) from None
        # The digest always fires: most of all when Prometheus cannot be read.
        print(f"promkit: error: {exc}", file=sys.stderr)
        try:
            used = post_failure(str(exc), args.post, prometheus=args.prometheus,
                                since=args.since, service=args.service, fmt=args.post_format,
                                timeout=args.timeout)
        except PostError as post_exc:
            print(f"promkit: error: {post_exc}; nothing was posted", file=sys.stderr)
            return EXIT_POST_FAILED
        print(f"promkit: posted the failure ({used}): ⚠ promkit report failed",
              file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(render_json(report))
    elif args.markdown:
        sys.stdout.write(render_markdown(report))
    else:
        color = (sys.stdout.isatty() and not args.no_color
                 and not os.environ.get("NO_COLOR"))
        sys.stdout.write(render_text(report, color=color))
    sys.stdout.flush()
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(render_html(report))
        except OSError as exc:
            raise UsageError(f"cannot write --html {args.html!r}: {exc.strerror or exc}"
                             ) from None
        print(f"promkit: wrote {args.html}", file=sys.stderr)
    if args.post:
        try:
            used = post_report(report, args.post, fmt=args.post_format, timeout=args.timeout)
        except PostError as exc:
            print(f"promkit: error: {exc}; nothing was posted", file=sys.stderr)
            return EXIT_POST_FAILED
        print(f"promkit: posted the digest ({used}): {report.headline()}", file=sys.stderr)
    if args.fail_on_issues and report.current_issues:
        return EXIT_ISSUES
    return 0


# -- promkit init --------------------------------------------------------------------------


def _add_init(subparsers: Subparsers) -> None:
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


# -- promkit generate ----------------------------------------------------------------------


def _add_generate(subparsers: Subparsers) -> None:
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


# -- promkit generate-agent ----------------------------------------------------------------


def _add_generate_agent(subparsers: Subparsers) -> None:
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


# -- promkit load --------------------------------------------------------------------------


def _add_load(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "load",
        help="ramp concurrent virtual users against a loopback service to find its "
             "breaking point",
        allow_abbrev=False,
        description=(
            "Run virtual users doing weighted request flows against --url, ramping the "
            "number of users step by step until a step's p95 latency or error ratio passes "
            "its limit (the breaking point), --users-max is done, or a bound (--max-seconds, "
            "--max-requests) is hit. Prints a per-step table (users, rps, p50/p95/p99, "
            "errors) and the breaking point, or JSON with --json. Only loopback URLs "
            "(127.0.0.0/8, ::1, localhost) are accepted: our machines must never load-test "
            "anything else. --allow-remote lifts that for a service you own, elsewhere. "
            "Each step records the client's own CPU; a step where the client itself "
            "saturates (--client-cpu-max) is marked client-bound and never reported as the "
            "service's breaking point. "
            "Exit codes: 0 run done (breaking point found or not), 1 --chart could not be "
            "written, 2 bad arguments, or a "
            "URL that is not loopback or cannot be reached (checked before any step)."
        ),
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="base URL of the service (default: %(default)s, the demo API)")
    parser.add_argument("--flows", default="demo", metavar="demo|FILE",
                        help="the demo API's flows, or a JSON/YAML flow file (see "
                             "docs/report.md) (default: %(default)s)")
    parser.add_argument("--users-start", type=int, default=1, metavar="N",
                        help="virtual users in the first step (default: %(default)s)")
    parser.add_argument("--users-max", type=int, default=64, metavar="N",
                        help="most virtual users (default: %(default)s)")
    parser.add_argument("--users-factor", type=float, default=2.0, metavar="X",
                        help="users are multiplied by X each step (default: %(default)s)")
    parser.add_argument("--step-seconds", type=float, default=10.0, metavar="S",
                        help="length of each step (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=120.0, metavar="S",
                        help="stop after S seconds in all (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=100_000, metavar="N",
                        help="stop after N requests in all (default: %(default)s)")
    parser.add_argument("--p95-max-ms", type=float, default=500.0, metavar="MS",
                        help="a step breaks when its p95 exceeds MS (default: %(default)s)")
    parser.add_argument("--error-ratio-max", type=float, default=0.05, metavar="R",
                        help="a step breaks when its error ratio exceeds R "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="per-request timeout (default: %(default)s)")
    parser.add_argument("--think-seconds", type=float, default=0.0, metavar="S",
                        help="mean pause of a user between flows (default: %(default)s)")
    parser.add_argument("--client-cpu-max", type=float, default=0.85, metavar="R",
                        help="a step whose client used more than R of a core per client "
                             "process is client-bound: its client figures never make it the "
                             "breaking point (the --prometheus view still can) and the ramp "
                             "stops (default: %(default)s)")
    parser.add_argument("--prometheus", metavar="URL",
                        help="Prometheus scraping the service: each step also reads the "
                             "service's own p95, error ratio, queue depth and oldest age, "
                             "and the breaking point is judged on both views")
    parser.add_argument("--prometheus-job", metavar="NAME",
                        help="with --prometheus, only series with job=NAME")
    parser.add_argument("--seed", type=int, help="seed the users' flow choices")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--chart", metavar="FILE",
                        help="also write an SVG chart of req/s and p95 against users "
                             "(an .html FILE wraps it in a page)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="accept a non-loopback URL (never on shared or CI machines)")
    parser.set_defaults(handler=_load)


def _load(args: argparse.Namespace) -> int:
    import json

    from promkit.tools.loadgen import LoadConfig, LoadError, check_loopback, load_flows, run_cli

    try:
        url = check_loopback(args.url, allow_remote=args.allow_remote)
        if args.chart:
            import os

            folder = os.path.dirname(args.chart) or "."
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise LoadError(f"--chart {args.chart!r}: folder {folder!r} does not exist "
                                "or is not writable")
        prometheus = (check_loopback(args.prometheus, allow_remote=args.allow_remote,
                                     option="--prometheus")
                      if args.prometheus else None)
        config = LoadConfig(
            url=url, flows=load_flows(args.flows), users_start=args.users_start,
            users_max=args.users_max, users_factor=args.users_factor,
            step_seconds=args.step_seconds, max_seconds=args.max_seconds,
            max_requests=args.max_requests, p95_max_ms=args.p95_max_ms,
            error_ratio_max=args.error_ratio_max, timeout=args.timeout,
            think_seconds=args.think_seconds, client_cpu_max=args.client_cpu_max,
            prometheus=prometheus, prometheus_job=args.prometheus_job, seed=args.seed)
        config.validate()
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = run_cli(config)
    except LoadError as exc:  # the service cannot be reached: nothing was ramped
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print("promkit: load run interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        from promkit.tools.loadgen import render_summary

        sys.stdout.write(render_summary(result))
    if args.chart:
        from promkit.tools.loadgen import render_chart

        svg = render_chart(result)
        if args.chart.endswith((".html", ".htm")):
            svg = ("<!doctype html>\n<meta charset=\"utf-8\">\n<title>promkit load</title>\n"
                   + svg)
        try:
            with open(args.chart, "w", encoding="utf-8") as handle:
                handle.write(svg)
        except OSError as exc:
            print(f"promkit: cannot write --chart {args.chart}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    return 0


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    _add_init, _add_generate, _add_generate_agent, _add_serve, _add_report, _add_load,
]
"""The functions that add each subcommand's parser (each sets ``handler``)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promkit",
        allow_abbrev=False,
        description="Prometheus/OpenMetrics instrumentation kit for Python services.",
    )
    parser.add_argument("--version", action="version", version=f"promkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"promkit: error: {exc}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
