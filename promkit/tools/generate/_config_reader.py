"""Validation of a config's plain data (parsed YAML, a Python config's ``CONFIG``) into a
:class:`~._config_model.Config`: every problem raises :class:`~._config_model.ConfigError`
naming the field path and, for YAML, the line."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from promkit.instrument.catalog import STANDARD_CATALOG
from promkit.tools.generate._burn import BURN_WINDOWS, check_burn_thresholds
from promkit.tools.generate._config_model import (
    COMPAT_PEERS,
    OLDEST_ALERTMANAGER,
    RECEIVER_TYPES,
    SLO_TYPES,
    AlertmanagerTargets,
    Budgets,
    CompatRules,
    Config,
    ConfigError,
    Receiver,
    Route,
    ScrapeTarget,
    SLOSpec,
    Thresholds,
)
from promkit.tools.generate._durations import parse_duration

__all__ = ["config_from_mapping"]

LATENCY_SLO_METRIC = "http_server_request_duration_seconds"
"""The metric a latency SLO counts; its ``threshold_seconds`` must be one of its bucket bounds."""

_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SLO_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ALERT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?$")


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.lstrip("v").split(".")[:2]
    return int(major), int(minor)


_RATIO_THRESHOLDS = frozenset({
    "http_error_ratio", "disk_used_ratio", "stage_failure_ratio", "external_error_ratio",
})


class _Reader:
    """Typed access to the raw data with errors that name the field path and line."""

    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines

    def error(self, path: str, problem: str) -> ConfigError:
        line = None
        probe = path
        while probe:
            if probe in self.lines:
                line = self.lines[probe]
                break
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
            if parent == probe:
                break
            probe = parent
        if line is None and path and self.lines:
            line = self.lines.get("")
        return ConfigError(self.source, path, problem, line=line)

    def mapping(self, value: Any, path: str, allowed: Sequence[str],
                required: Sequence[str] = ()) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.error(_join(path, str(key)),
                                 f"unknown key {key!r}; expected one of {', '.join(allowed)}")
        for key in required:
            if key not in value:
                raise self.error(path or "(top level)", f"missing required key {key!r}")
        return value

    def string(self, value: Any, path: str, pattern: re.Pattern[str] | None = None,
               what: str = "") -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, f"expected a non-empty string, got {_kind(value)}")
        if pattern is not None and not pattern.match(value):
            raise self.error(path, f"{value!r} is not a valid {what or 'value'}")
        return value

    def duration(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a duration string like '15s' or '7d', got "
                             f"{_kind(value)}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(path, str(exc)) from None
        if seconds <= 0:
            raise self.error(path, f"{value!r}: a duration must be positive")
        return value

    def number(self, value: Any, path: str, *, minimum: float | None = None,
               exclusive_min: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise self.error(path, f"expected a finite number, got {_kind(value)}")
        if minimum is not None and (value < minimum or (exclusive_min and value == minimum)):
            bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
            raise self.error(path, f"{value!r} is out of range; must be {bound}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_kind(value)}")
        return value

    def sequence(self, value: Any, path: str) -> Sequence[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return value

    def strings(self, value: Any, path: str, pattern: re.Pattern[str] | None = None,
                what: str = "", non_empty: bool = True) -> tuple[str, ...]:
        items = self.sequence(value, path)
        if non_empty and not items:
            raise self.error(path, "the list is empty")
        return tuple(self.string(v, f"{path}[{i}]", pattern, what) for i, v in enumerate(items))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


_TOP_KEYS = ("service", "scrape_interval", "evaluation_interval", "targets", "alertmanager",
             "thresholds", "slos", "slo_min_events_per_hour", "budgets", "receivers", "routes",
             "runbook_base", "grafana_url", "alert_for", "compat_rules")


def config_from_mapping(data: Any, *, source: str = "<config>",
                        lines: Mapping[str, int] | None = None) -> Config:
    """Validate plain data (the parsed YAML, or a Python config's CONFIG) into a Config."""
    r = _Reader(source, lines or {})
    if data is None:
        raise r.error("", "the config is empty")
    top = r.mapping(data, "", _TOP_KEYS, required=("service", "targets"))
    service = r.string(top["service"], "service", _SERVICE,
                       "service name (letters, digits, '_', '.', '-')")
    kwargs: dict[str, Any] = {"service": service, "source": source}
    for key in ("scrape_interval", "evaluation_interval"):
        if key in top:
            kwargs[key] = r.duration(top[key], key)
    kwargs["targets"] = _targets(r, top["targets"])
    if top.get("alertmanager") is not None:
        am = r.mapping(top["alertmanager"], "alertmanager", ("targets", "version"))
        version = None
        if am.get("version") is not None:
            raw = am["version"]
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                raise r.error("alertmanager.version", f"quote the version: \"{raw}\" (YAML "
                              "reads an unquoted 0.30 as the number 0.3)")
            version = r.string(raw, "alertmanager.version", _VERSION, "version (0.25, 0.27.0)")
            if _version_tuple(version) < OLDEST_ALERTMANAGER:
                raise r.error("alertmanager.version", f"{version} is older than "
                              f"{'.'.join(map(str, OLDEST_ALERTMANAGER))}, the oldest "
                              "Alertmanager promkit writes a config for")
        targets = () if am.get("targets") is None else _host_ports(
            r, am["targets"], "alertmanager.targets")
        kwargs["alertmanager"] = AlertmanagerTargets(targets, version)
    if top.get("thresholds") is not None:
        kwargs["thresholds"] = _thresholds(r, top["thresholds"])
    if top.get("slos") is not None:
        kwargs["slos"] = _slos(r, top["slos"])
    if "slo_min_events_per_hour" in top:
        kwargs["slo_min_events_per_hour"] = r.number(
            top["slo_min_events_per_hour"], "slo_min_events_per_hour", minimum=0)
    if top.get("budgets") is not None:
        b = r.mapping(top["budgets"], "budgets", ("cpu_hours_per_month",))
        cpu = b.get("cpu_hours_per_month")
        kwargs["budgets"] = Budgets(
            None if cpu is None else r.number(cpu, "budgets.cpu_hours_per_month", minimum=0,
                                              exclusive_min=True))
    receivers = _receivers(r, top.get("receivers") or [])
    kwargs["receivers"] = receivers
    kwargs["routes"] = _routes(r, top.get("routes") or [], {x.name for x in receivers})
    if top.get("runbook_base") is not None:
        base = r.string(top["runbook_base"], "runbook_base").rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise r.error("runbook_base", f"{base!r} is not an absolute http(s) URL; alerts "
                          "carry runbook_url: <runbook_base>/<AlertName>.md, opened from a "
                          "notification, so give where the runbook pages are served, e.g. "
                          "https://github.com/you/your-service/blob/main/docs/runbooks")
        kwargs["runbook_base"] = base
    if "grafana_url" in top:
        url = r.string(top["grafana_url"], "grafana_url").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise r.error("grafana_url", f"expected an http(s) URL, got {url!r}")
        kwargs["grafana_url"] = url
    if top.get("alert_for") is not None:
        overrides = top["alert_for"]
        if not isinstance(overrides, Mapping):
            raise r.error("alert_for", f"expected a mapping of alert name to duration, got "
                          f"{_kind(overrides)}")
        kwargs["alert_for"] = {
            r.string(k, f"alert_for.{k}", _ALERT_NAME, "alert name"):
                r.duration(v, f"alert_for.{k}") for k, v in overrides.items()}
    if top.get("compat_rules") is not None:
        kwargs["compat_rules"] = _compat_rules(r, top["compat_rules"])
    return Config(**kwargs)


_METRIC_PREFIX = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_COMPAT_OPTIONS = {"starlette_exporter": ("prefix", "app_name"), "instrumentator": ()}


def _compat_rules(r: _Reader, value: Any) -> tuple[CompatRules, ...]:
    """``compat_rules``: peer names, or mappings ``{peer: NAME, <the peer's options>}``."""
    out: list[CompatRules] = []
    for i, item in enumerate(r.sequence(value, "compat_rules")):
        path = f"compat_rules[{i}]"
        options: Mapping[str, Any] = {}
        if isinstance(item, Mapping):
            peer = r.string(r.mapping(item, path, ("peer", "prefix", "app_name"),
                                      required=("peer",))["peer"], f"{path}.peer")
            options = {k: v for k, v in item.items() if k != "peer"}
            path_peer = f"{path}.peer"
        else:
            peer = r.string(item, path)
            path_peer = path
        if peer not in COMPAT_PEERS:
            raise r.error(path_peer, f"unknown peer {peer!r}; expected one of "
                          f"{', '.join(COMPAT_PEERS)}")
        if any(c.peer == peer for c in out):
            raise r.error(path_peer, f"{peer!r} is listed twice")
        allowed = _COMPAT_OPTIONS[peer]
        for key in options:
            if key not in allowed:
                takes = f"takes only {', '.join(allowed)}" if allowed else "takes no options"
                raise r.error(f"{path}.{key}", f"{peer} {takes}")
        prefix = None if options.get("prefix") is None else r.string(
            options["prefix"], f"{path}.prefix", _METRIC_PREFIX, "metric name prefix")
        app_name = None if options.get("app_name") is None else r.string(
            options["app_name"], f"{path}.app_name")
        out.append(CompatRules(peer, prefix, app_name))
    return tuple(out)


def _host_ports(r: _Reader, value: Any, path: str) -> tuple[str, ...]:
    return r.strings(value, path, _TARGET, "target (host:port, no scheme or path)")


def _targets(r: _Reader, value: Any) -> tuple[ScrapeTarget, ...]:
    items = r.sequence(value, "targets")
    if not items:
        raise r.error("targets", "the list is empty; give at least one scrape job")
    out: list[ScrapeTarget] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"targets[{i}]"
        m = r.mapping(item, path, ("job", "targets", "metrics_path", "scheme"),
                      required=("job", "targets"))
        job = r.string(m["job"], f"{path}.job", _JOB_NAME, "job name")
        if job in seen:
            raise r.error(f"{path}.job", f"job {job!r} is defined twice")
        seen.add(job)
        metrics_path = r.string(m.get("metrics_path", "/metrics"), f"{path}.metrics_path")
        if not metrics_path.startswith("/"):
            raise r.error(f"{path}.metrics_path", f"{metrics_path!r} must start with '/'")
        scheme = r.string(m.get("scheme", "http"), f"{path}.scheme")
        if scheme not in ("http", "https"):
            raise r.error(f"{path}.scheme", f"{scheme!r} is not http or https")
        out.append(ScrapeTarget(job, _host_ports(r, m["targets"], f"{path}.targets"),
                                metrics_path, scheme))
    return tuple(out)


def _thresholds(r: _Reader, value: Any) -> Thresholds:
    names = [f.name for f in fields(Thresholds)]
    m = r.mapping(value, "thresholds", names)
    kwargs: dict[str, float] = {}
    for key, raw in m.items():
        path = f"thresholds.{key}"
        number = r.number(raw, path, minimum=0, exclusive_min=True)
        if key in _RATIO_THRESHOLDS and number >= 1:
            raise r.error(path, f"{raw!r} is a ratio and must be below 1 (0.02 means 2%)")
        kwargs[key] = number
    return Thresholds(**kwargs)


def _slos(r: _Reader, value: Any) -> tuple[SLOSpec, ...]:
    out: list[SLOSpec] = []
    seen: set[str] = set()
    buckets = STANDARD_CATALOG[LATENCY_SLO_METRIC].buckets or ()
    for i, item in enumerate(r.sequence(value, "slos")):
        path = f"slos[{i}]"
        m = r.mapping(item, path, ("name", "type", "objective", "window", "threshold_seconds"),
                      required=("name", "type", "objective"))
        name = r.string(m["name"], f"{path}.name", _SLO_NAME,
                        "SLO name (lowercase letters, digits and '-')")
        if name in seen:
            raise r.error(f"{path}.name", f"SLO {name!r} is defined twice")
        seen.add(name)
        kind = r.string(m["type"], f"{path}.type")
        if kind not in SLO_TYPES:
            raise r.error(f"{path}.type", f"unknown SLO type {kind!r}; expected one of "
                          f"{', '.join(SLO_TYPES)}")
        objective = r.number(m["objective"], f"{path}.objective")
        if not 0 < objective < 1:
            raise r.error(f"{path}.objective", f"{m['objective']!r} must be strictly between 0 "
                          "and 1 (0.99 means 99%)")
        window = r.duration(m.get("window", "30d"), f"{path}.window")
        longest = max(BURN_WINDOWS, key=lambda b: parse_duration(b.long)).long
        if parse_duration(window) < parse_duration(longest):
            raise r.error(f"{path}.window", f"{window!r} is shorter than the longest burn-rate "
                          f"alert window ({longest}); use {longest} or more (7d, 28d, 30d)")
        threshold = m.get("threshold_seconds")
        if kind == "latency":
            if threshold is None:
                raise r.error(path, "a latency SLO needs threshold_seconds")
            threshold = r.number(threshold, f"{path}.threshold_seconds", minimum=0,
                                 exclusive_min=True)
            if threshold not in buckets:
                raise r.error(f"{path}.threshold_seconds",
                              f"{threshold:g} is not a bucket bound of {LATENCY_SLO_METRIC}; "
                              f"use one of {', '.join(f'{b:g}' for b in buckets)}")
        elif threshold is not None:
            raise r.error(f"{path}.threshold_seconds",
                          f"only latency SLOs take threshold_seconds, this one is {kind!r}")
        spec = SLOSpec(name, kind, objective, window, threshold)
        unreachable = check_burn_thresholds(spec)
        if unreachable is not None:
            raise r.error(f"{path}.objective", unreachable)
        out.append(spec)
    return tuple(out)


def _receivers(r: _Reader, value: Any) -> tuple[Receiver, ...]:
    out: list[Receiver] = []
    seen: set[str] = set()
    for i, item in enumerate(r.sequence(value, "receivers")):
        path = f"receivers[{i}]"
        m = r.mapping(item, path, ("name", "type", "url", "url_file", "url_env",
                                   "send_resolved"), required=("name", "type"))
        name = r.string(m["name"], f"{path}.name")
        if name in seen:
            raise r.error(f"{path}.name", f"receiver {name!r} is defined twice")
        seen.add(name)
        kind = r.string(m["type"], f"{path}.type")
        if kind not in RECEIVER_TYPES:
            raise r.error(f"{path}.type", f"unknown receiver type {kind!r}; expected one of "
                          f"{', '.join(RECEIVER_TYPES)}")
        given = [k for k in ("url", "url_file", "url_env") if m.get(k) is not None]
        if len(given) != 1:
            which = "none" if not given else " and ".join(given)
            raise r.error(path, f"give exactly one of url, url_file, url_env (got {which}); "
                          "keep secret URLs out of the config with url_file or url_env")
        url = m.get("url")
        if url is not None:
            url = r.string(url, f"{path}.url")
            if not re.match(r"^https?://", url):
                raise r.error(f"{path}.url", f"{url!r} is not an http(s) URL")
        url_file = None if m.get("url_file") is None else r.string(m["url_file"],
                                                                    f"{path}.url_file")
        url_env = None if m.get("url_env") is None else r.string(
            m["url_env"], f"{path}.url_env", re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"),
            "environment variable name")
        send_resolved = r.boolean(m.get("send_resolved", True), f"{path}.send_resolved")
        out.append(Receiver(name, kind, url, url_file, url_env, send_resolved))
    return tuple(out)


def _routes(r: _Reader, value: Any, receivers: set[str]) -> tuple[Route, ...]:
    out: list[Route] = []
    for i, item in enumerate(r.sequence(value, "routes")):
        path = f"routes[{i}]"
        m = r.mapping(item, path, ("match", "receiver", "continue", "group_by", "group_wait",
                                   "group_interval", "repeat_interval"), required=("receiver",))
        receiver = r.string(m["receiver"], f"{path}.receiver")
        if receiver not in receivers:
            known = ", ".join(sorted(receivers)) or "none defined"
            raise r.error(f"{path}.receiver", f"unknown receiver {receiver!r} ({known})")
        match: dict[str, str] = {}
        if m.get("match") is not None:
            raw = m["match"]
            if not isinstance(raw, Mapping):
                raise r.error(f"{path}.match", f"expected a mapping of label to value, got "
                              f"{_kind(raw)}")
            for k, v in raw.items():
                label = r.string(k, f"{path}.match.{k}", _LABEL_NAME, "label name")
                match[label] = r.string(v, f"{path}.match.{k}")
        group_by = None
        if m.get("group_by") is not None:
            group_by = r.strings(m["group_by"], f"{path}.group_by")
        durations = {k: (None if m.get(k) is None else r.duration(m[k], f"{path}.{k}"))
                     for k in ("group_wait", "group_interval", "repeat_interval")}
        out.append(Route(receiver, match, r.boolean(m.get("continue", False), f"{path}.continue"),
                         group_by, **durations))
    return tuple(out)
