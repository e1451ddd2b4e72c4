"""Alertmanager config as code: routes by service and severity, receivers, inhibition.

:func:`alertmanager_config` builds the config (a plain dict) from a project
:class:`~promkit.tools.generate.config.Config`; :func:`write_alertmanager` writes
it to ``<out>/prometheus/alertmanager.yml``. The output is deterministic and
never holds a secret:

- ``url`` in the project config is written as given: use it only for URLs that
  are not secrets (a loopback webhook). Discord and Slack webhook URLs carry
  their token, so an inline ``url`` is refused for them unless it is loopback.
- ``url_file`` becomes Alertmanager's own ``*_file`` option (``url_file``,
  ``webhook_url_file``, ``api_url_file``): Alertmanager reads the file.
- ``url_env``: Alertmanager cannot read the environment, so the generated file
  names a file, ``<secrets_dir>/<receiver>.url`` (default
  ``/etc/promkit/secrets``), that the deployment fills from the variable
  (``printf %s "$VAR" > ...``, a Kubernetes Secret mounted there, or
  :func:`write_runtime_alertmanager`).

The file is written for one Alertmanager version (:func:`alertmanager_target`):
``--alertmanager-version``, else the config's ``alertmanager.version``, else the
installed ``amtool``'s when ``promkit generate`` runs, else the newest form.
Alertmanager 0.25 (Debian bookworm's ``prometheus-alertmanager``) reads
``api_url_file`` (Slack) but not ``url_file`` (webhook, ntfy) or
``webhook_url_file`` (Discord), which arrived in 0.26: for 0.25 a receiver whose
URL is in a file or the environment can only be a Slack one, and any other is a
:class:`~promkit.tools.generate.config.ConfigError` naming the receiver's field
and the ways out (a non-secret ``url``, a newer Alertmanager, or
:func:`write_runtime_alertmanager`: a runtime copy, outside the repository and
readable by its owner only, with the URLs inlined).

ntfy has no Alertmanager integration of its own in Alertmanager; ntfy accepts
Alertmanager's webhook JSON when the topic URL carries ``?template=alertmanager``
(ntfy's built-in template, ntfy >= 2.14), so an ntfy receiver is a webhook
receiver whose URL gets that parameter (added to inline URLs here and when a
runtime copy is written; a ``url_file`` read natively must hold it already).
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from promkit.tools.generate._yaml import dump_yaml, generated_header, source_name
from promkit.tools.generate.config import (
    OLDEST_ALERTMANAGER,
    Config,
    ConfigError,
    Receiver,
    Route,
)
from promkit.tools.generate.rules import alert_rules

__all__ = [
    "ALERTMANAGER_PATH",
    "DEFAULT_SECRETS_DIR",
    "GROUP_BY",
    "NATIVE_FILE_KEYS_0_25",
    "SEVERITIES",
    "SEVERITY_TIMING",
    "AlertmanagerError",
    "Version",
    "alertmanager_config",
    "alertmanager_target",
    "inline_secrets",
    "installed_alertmanager",
    "ntfy_url",
    "parse_version",
    "render_alertmanager",
    "target_down_alerts",
    "write_alertmanager",
    "write_runtime_alertmanager",
]

ALERTMANAGER_PATH = Path("prometheus") / "alertmanager.yml"
DEFAULT_SECRETS_DIR = "/etc/promkit/secrets"
GROUP_BY = ("alertname", "service")
SEVERITIES = ("critical", "warning", "info")

# Pages go out fast and repeat hourly while they fire; warnings batch for a few
# minutes and repeat twice a working day; info is a daily digest.
SEVERITY_TIMING: Mapping[str, Mapping[str, str]] = {
    "critical": {"group_wait": "10s", "group_interval": "2m", "repeat_interval": "1h"},
    "warning": {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
    "info": {"group_wait": "1m", "group_interval": "15m", "repeat_interval": "24h"},
}
ROOT_TIMING: Mapping[str, str] = SEVERITY_TIMING["warning"]
_TIMING_KEYS = ("group_wait", "group_interval", "repeat_interval")
NATIVE_FILE_KEYS_0_25 = ("api_url_file",)
"""The URL-from-file options Alertmanager 0.25 understands (webhook and Discord's came in 0.26)."""
FILE_KEYS_SINCE: Mapping[str, tuple[int, int]] = {
    "api_url_file": (0, 22), "url_file": (0, 26), "webhook_url_file": (0, 26)}
"""The first Alertmanager release that reads each URL-from-file option."""

Version = tuple[int, int]


def parse_version(text: str) -> Version:
    """``(major, minor)`` of ``0.25``, ``0.25.0`` or ``v0.27.0``; ValueError otherwise."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?$", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an Alertmanager version (0.25, 0.27.0)")
    return int(match[1]), int(match[2])


def installed_alertmanager(amtool: str | None = None) -> tuple[Version, str] | None:
    """The version of the installed ``amtool`` (``amtool --version``) and its path, or None."""
    import shutil
    import subprocess

    path = amtool or shutil.which("amtool") or shutil.which("amtool", path="/usr/bin")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"version (\d+\.\d+)", out.stdout + out.stderr)
    return (parse_version(match[1]), path) if match else None


def alertmanager_target(config: Config, override: str | None = None, *,
                        detect: bool = True) -> tuple[Version | None, str]:
    """``(version, where it came from)`` for the generated file.

    ``override`` (``--alertmanager-version``) wins, then the config's
    ``alertmanager.version``, then (``detect``) the installed ``amtool``; ``(None,
    ...)`` means the newest form (Alertmanager >= 0.26).
    """
    if override is not None:
        version = parse_version(override)
        if version < OLDEST_ALERTMANAGER:
            raise ValueError(f"--alertmanager-version {override}: promkit writes configs for "
                             f"Alertmanager {_dotted(OLDEST_ALERTMANAGER)} or later")
        return version, "--alertmanager-version"
    if config.alertmanager is not None and config.alertmanager.version is not None:
        return parse_version(config.alertmanager.version), "alertmanager.version"
    if detect:
        found = installed_alertmanager()
        if found is not None:
            return found[0], f"the installed amtool, {found[1]}"
    return None, "no version given or installed: the newest form"


def _dotted(version: Version) -> str:
    return ".".join(map(str, version))

# Receiver type -> (Alertmanager integration, inline URL key, file URL key).
_INTEGRATIONS: Mapping[str, tuple[str, str, str]] = {
    "webhook": ("webhook_configs", "url", "url_file"),
    "ntfy": ("webhook_configs", "url", "url_file"),
    "discord": ("discord_configs", "webhook_url", "webhook_url_file"),
    "slack": ("slack_configs", "api_url", "api_url_file"),
}
_SECRET_URL_TYPES = ("discord", "slack")
_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1)$")

_TITLE = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
          '{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.service }}, '
          '{{ .CommonLabels.severity }})')
_TEXT = ('{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n'
         '{{ if .Annotations.runbook_url }}Runbook: {{ .Annotations.runbook_url }}\n{{ end }}'
         '{{ end }}')


class AlertmanagerError(ValueError):
    """The project config cannot be turned into a safe Alertmanager config."""


def ntfy_url(url: str) -> str:
    """``url`` with ntfy's ``template=alertmanager`` query parameter (added once)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k in ("template", "tpl") for k, _ in query):
        query.append(("template", "alertmanager"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_loopback(url: str) -> bool:
    return bool(_LOOPBACK.match(urlsplit(url).hostname or ""))


def _secret_file(receiver: Receiver, secrets_dir: str) -> str | None:
    if receiver.url_file is not None:
        return receiver.url_file
    if receiver.url_env is not None:
        return f"{secrets_dir.rstrip('/')}/{receiver.name}.url"
    return None


def _receiver(config: Config, receiver: Receiver, secrets_dir: str,
              version: Version | None) -> dict[str, Any]:
    if receiver.type not in _INTEGRATIONS:
        raise AlertmanagerError(f"receiver {receiver.name!r}: unknown type {receiver.type!r}")
    integration, url_key, file_key = _INTEGRATIONS[receiver.type]
    since = FILE_KEYS_SINCE[file_key]
    if receiver.url is None and version is not None and version < since:
        field = "url_file" if receiver.url_file is not None else "url_env"
        index = config.receivers.index(receiver)
        raise ConfigError(
            config.source, f"receivers[{index}].{field}",
            f"Alertmanager {_dotted(version)} cannot read the URL of {receiver.type} receiver "
            f"{receiver.name!r} from a file ({file_key} came in {_dotted(since)}), and the "
            "generated file must "
            "not hold the URL. Give a URL that is no secret with url, write for Alertmanager "
            f">= {_dotted(since)} (alertmanager.version, or --alertmanager-version), or run "
            "Alertmanager on a runtime copy with the URL inlined outside the repository "
            "(promkit.tools.generate.alertmanager.write_runtime_alertmanager)")
    entry: dict[str, Any] = {"send_resolved": receiver.send_resolved}
    if receiver.url is not None:
        if receiver.type in _SECRET_URL_TYPES and not _is_loopback(receiver.url):
            raise AlertmanagerError(
                f"receiver {receiver.name!r}: a {receiver.type} webhook URL contains its "
                "token; give it with url_file or url_env, not url, so it stays out of the "
                "generated (committed) file")
        entry[url_key] = ntfy_url(receiver.url) if receiver.type == "ntfy" else receiver.url
    else:
        entry[file_key] = _secret_file(receiver, secrets_dir)
    if receiver.type == "webhook":
        entry["max_alerts"] = 0
    elif receiver.type == "discord":
        entry["title"] = _TITLE
        entry["message"] = _TEXT
    elif receiver.type == "slack":
        entry["title"] = _TITLE
        entry["text"] = _TEXT
    return {"name": receiver.name, integration: [entry]}


def _matchers(match: Mapping[str, str]) -> list[str]:
    def quote(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    return [f'{k}="{quote(v)}"' for k, v in sorted(match.items())]


def _user_route(route: Route, timing: Mapping[str, str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"receiver": route.receiver}
    if route.match:
        out["matchers"] = _matchers(route.match)
    if route.group_by is not None:
        out["group_by"] = list(route.group_by)
    for key in _TIMING_KEYS:
        value = getattr(route, key)
        if value is not None:
            out[key] = timing.get(key, value) if timing else value
    if route.continue_:
        out["continue"] = True
    return out


def _compatible(route: Route, fixed: Mapping[str, str]) -> bool:
    """False when ``route`` matches a label to another value than the branch fixes."""
    return all(route.match.get(k, v) == v for k, v in fixed.items())


def _default_receiver(config: Config) -> str:
    for route in reversed(config.routes):
        if not route.match:
            return route.receiver
    if config.receivers:
        return config.receivers[0].name
    raise AlertmanagerError("the config has no receivers; add at least one under receivers:")


def target_down_alerts(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the alerts that say a scrape target is down (they inhibit the rest).

    An alert counts when its expression reads the ``up`` series (``up == 0``,
    ``up{...}``, ``absent(up...)``), or its name ends in ``TargetDown``.
    """
    names: set[str] = set()
    up = re.compile(r"(?<![A-Za-z0-9_:])up\s*(\{|==|<|$)")
    for rule in rules:
        name = str(rule.get("alert", ""))
        if name and (name.endswith("TargetDown") or up.search(str(rule.get("expr", "")))):
            names.add(name)
    return sorted(names)


def _absent_alerts(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """Alerts that fire when a metric is missing, which a down target also causes."""
    return sorted({str(r["alert"]) for r in rules
                   if "alert" in r and str(r.get("expr", "")).lstrip().startswith("absent(")})


def _inhibit_rules(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    down = target_down_alerts(rules)
    if down:
        names = "|".join(down)
        # A down target silences the other alerts of the same instance...
        out.append({
            "source_matchers": [f'alertname=~"{names}"'],
            "target_matchers": [f'alertname!~"{names}"'],
            "equal": ["service", "instance"],
        })
        # ...and the service's "metric absent" alerts, whose cause it is.
        absent = _absent_alerts(rules)
        if absent:
            out.append({
                "source_matchers": [f'alertname=~"{names}"'],
                "target_matchers": [f'alertname=~"{"|".join(absent)}"'],
                "equal": ["service"],
            })
    # A page for an SLO silences the threshold alerts on the same SLI of the service
    # (HTTPErrorRatioHigh... carry sli="availability"): one incident, one page.
    labelled = [r.get("labels") or {} for r in rules]
    if any("sli" in x and "slo" in x for x in labelled) and any(
            "sli" in x and "slo" not in x for x in labelled):
        out.append({
            "source_matchers": ['severity="critical"', 'slo=~".+"', 'sli=~".+"'],
            "target_matchers": ['sli=~".+"', 'slo=""'],
            "equal": ["service", "sli"],
        })
    # A page for an SLO silences that SLO's tickets (the slower burn-rate windows).
    out.append({
        "source_matchers": ['severity="critical"', 'slo=~".+"'],
        "target_matchers": ['severity=~"warning|info"', 'slo=~".+"'],
        "equal": ["service", "slo"],
    })
    out.append({
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity=~"warning|info"'],
        "equal": list(GROUP_BY),
    })
    out.append({
        "source_matchers": ['severity="warning"'],
        "target_matchers": ['severity="info"'],
        "equal": list(GROUP_BY),
    })
    return out


def alertmanager_config(config: Config, *, rules: Sequence[Mapping[str, Any]] | None = None,
                        timing: Mapping[str, str] | None = None,
                        secrets_dir: str = DEFAULT_SECRETS_DIR,
                        version: Version | None = None) -> dict[str, Any]:
    """The Alertmanager config for ``config`` as a dict (what ``alertmanager.yml`` holds).

    ``version``: the Alertmanager to write for (default: the config's
    ``alertmanager.version``, else the newest form; see :func:`alertmanager_target`).
    Raises :class:`~promkit.tools.generate.config.ConfigError` for a receiver that
    version cannot load without a secret in the file.

    ``rules``: the alerting rules (default ``rules.alert_rules(config)``), read
    to find the target-down alerts that inhibit the others. ``timing``:
    ``group_wait``/``group_interval``/``repeat_interval`` to use on every route
    instead of the per-severity defaults (tests use ``0s``/``1s``).
    """
    if rules is None:
        rules = alert_rules(config)
    if version is None:
        version = alertmanager_target(config, detect=False)[0]
    default = _default_receiver(config)

    def timed(values: Mapping[str, str]) -> dict[str, str]:
        return {k: (timing or {}).get(k, values[k]) for k in _TIMING_KEYS}

    branches: list[dict[str, Any]] = []
    for severity in SEVERITIES:
        fixed = {"service": config.service, "severity": severity}
        children = [_user_route(r, timing) for r in config.routes if _compatible(r, fixed)]
        branch: dict[str, Any] = {"receiver": default,
                                  "matchers": [f'severity="{severity}"'],
                                  **timed(SEVERITY_TIMING[severity])}
        if children:
            branch["routes"] = children
        branches.append(branch)
    # Alerts of the service without a known severity still follow the user's routes.
    fixed = {"service": config.service}
    branches.extend(_user_route(r, timing) for r in config.routes
                    if _compatible(r, fixed) and "severity" not in r.match)
    return {
        "route": {
            "receiver": default,
            "group_by": list(GROUP_BY),
            **timed(ROOT_TIMING),
            "routes": [{
                "receiver": default,
                "matchers": _matchers({"service": config.service}),
                "routes": branches,
            }],
        },
        "inhibit_rules": _inhibit_rules(rules),
        "receivers": [_receiver(config, r, secrets_dir, version) for r in config.receivers],
    }


def _dump(data: Mapping[str, Any]) -> str:
    return dump_yaml(dict(data))


def render_alertmanager(config: Config, **kwargs: Any) -> str:
    """``alertmanager.yml`` text: a header comment, then :func:`alertmanager_config`.

    ``target``: ``(version, where it came from)`` from :func:`alertmanager_target`
    (default: the config's version, no detection); other ``kwargs`` go to
    :func:`alertmanager_config`.
    """
    secrets_dir = kwargs.get("secrets_dir", DEFAULT_SECRETS_DIR)
    version, why = kwargs.pop("target", None) or alertmanager_target(config, detect=False)
    kwargs["version"] = version
    header = [generated_header("the Alertmanager config (routes, inhibition, receivers)",
                               source_name(config)).rstrip("\n")]
    written_for = (f"Alertmanager {_dotted(version)} and later ({why})" if version is not None
                   else "Alertmanager 0.26 and later (no version given)")
    header += [
        f"# Written for {written_for}; `amtool check-config` checks it.",
        "# No secret is written here: URLs are inline only when they are no secret, else in",
        "# files Alertmanager reads (see docs/alerting.md).",
    ]
    for receiver in config.receivers:
        if receiver.url_env is not None:
            header.append(f"# Receiver {receiver.name!r}: write ${receiver.url_env} to "
                          f"{_secret_file(receiver, secrets_dir)} at deploy time.")
    return "\n".join(header) + "\n" + _dump(alertmanager_config(config, **kwargs))


def write_alertmanager(config: Config, out_dir: str | Path, **kwargs: Any) -> Path:
    """Write ``<out_dir>/prometheus/alertmanager.yml``; returns its path."""
    path = Path(out_dir) / ALERTMANAGER_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_alertmanager(config, **kwargs), encoding="utf-8")
    return path


def _read_secret(receiver: Receiver, env: Mapping[str, str]) -> str:
    if receiver.url_env is not None:
        value = env.get(receiver.url_env)
        if not value:
            raise AlertmanagerError(f"receiver {receiver.name!r}: environment variable "
                                    f"{receiver.url_env} is not set")
        return value.strip()
    assert receiver.url_file is not None
    try:
        value = Path(receiver.url_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AlertmanagerError(f"receiver {receiver.name!r}: cannot read url_file "
                                f"{receiver.url_file}: {exc.strerror or exc}") from None
    if not value:
        raise AlertmanagerError(f"receiver {receiver.name!r}: {receiver.url_file} is empty")
    return value


def inline_secrets(am_config: Mapping[str, Any], config: Config, *,
                   env: Mapping[str, str] | None = None,
                   native_files: Sequence[str] = NATIVE_FILE_KEYS_0_25) -> dict[str, Any]:
    """A copy of ``am_config`` with ``*_file`` URLs replaced by their values.

    Values come from the receiver's ``url_file`` or ``url_env`` (read from
    ``env``, default ``os.environ``). A ``url_file`` whose option is in
    ``native_files`` (the ones Alertmanager 0.25 reads itself: Slack's
    ``api_url_file``) stays a file; pass ``()`` to inline everything. The
    result may hold secrets: write it only outside the repository
    (:func:`write_runtime_alertmanager` does, mode 0600).
    """
    env = os.environ if env is None else env
    out = copy.deepcopy(dict(am_config))
    by_name = {r["name"]: r for r in out.get("receivers", [])}
    for receiver in config.receivers:
        if receiver.url is not None or receiver.name not in by_name:
            continue
        integration, url_key, file_key = _INTEGRATIONS[receiver.type]
        if receiver.url_file is not None and file_key in native_files:
            continue
        value = _read_secret(receiver, env)
        if receiver.type == "ntfy":
            value = ntfy_url(value)
        for entry in by_name[receiver.name].get(integration, []):
            if file_key in entry:
                del entry[file_key]
                entry[url_key] = value
    return out


def write_runtime_alertmanager(config: Config, path: str | Path, *,
                               env: Mapping[str, str] | None = None,
                               native_files: Sequence[str] = NATIVE_FILE_KEYS_0_25,
                               **kwargs: Any) -> Path:
    """Write the config with URLs inlined to ``path`` (mode 0600), for Alertmanager 0.25.

    ``path`` must be outside the repository (it holds the secret URLs); the demo
    launcher and the tests use a runtime/tmp directory. ``kwargs`` go to
    :func:`alertmanager_config` (``timing``, ``rules``, ``secrets_dir``).
    """
    path = Path(path)
    # The full form (every URL-from-file option), then the URLs inlined where needed.
    kwargs.setdefault("version", max(FILE_KEYS_SINCE.values()))
    data = inline_secrets(alertmanager_config(config, **kwargs), config, env=env,
                          native_files=native_files)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# Runtime copy with secrets inlined; never commit.\n" + _dump(data))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path
