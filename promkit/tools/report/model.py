"""The report model: the five questions answered from what Prometheus said.

:func:`build_report` is pure: it takes a :class:`~promkit.tools.report.queries.Collected`
(the answers to the named queries) and thresholds, and returns a
:class:`Report`, whose :meth:`Report.to_dict` is the versioned JSON schema
documented in docs/report.md. Units are base units (seconds, bytes, ratios
0..1); every finding that needs attention is an :class:`Issue`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from promkit.instrument.usage import budget_forecast, month_elapsed_fraction, projected_month_end
from promkit.tools.report._change import change, ratio_change
from promkit.tools.report._prom import Sample
from promkit.tools.report._quantiles import Quantile, quantiles_by
from promkit.tools.report.issues import Issue, Severity, merge_alerts, rank
from promkit.tools.report.queries import (
    RECENT,
    Collected,
    Window,
    parse_duration,
    range_queries,
    recent_seconds,
)

__all__ = [
    "SCHEMA",
    "Issue",
    "Report",
    "Thresholds",
    "build_report",
    "linear_fit",
]

SCHEMA = "promkit.report/v1"
"""The JSON schema id; additions keep it, a renamed or removed field bumps it."""

PROJECTION_DAYS = 30
PROJECTED = frozenset({"request_rate", "queue_depth", "rss", "disk"})
"""The charted series that are capacity (what it will need): only these get a slope
and a projection; an error ratio or a p95 "per day" means nothing."""
MIN_PROJECTION_SECONDS = 3600.0
"""A trend is extrapolated only from at least this much data (and half the window)."""


@dataclass(frozen=True)
class Thresholds:
    """When a figure becomes an issue. Defaults match demo/promkit.yaml's thresholds."""

    http_error_ratio: float = 0.02
    http_p95_seconds: float = 0.5
    min_requests: float = 10.0
    stage_failure_ratio: float = 0.05
    external_error_ratio: float = 0.1
    external_p95_seconds: float = 10.0
    job_p95_seconds: float = 30.0
    queue_depth: float = 30.0
    queue_age_seconds: float = 300.0
    queue_stall_seconds: float = 60.0
    queue_stall_factor: float = 4.0
    """The oldest item's age is an issue past ``queue_age_seconds``, or past
    ``queue_stall_seconds`` when it is over ``queue_stall_factor`` times the window's p95
    queue wait (or no job was picked up): a stuck worker within a minute or two."""
    disk_used_ratio: float = 0.8
    slo_budget_warning: float = 0.25
    latency_slo_seconds: float = 0.2
    slo_objectives: dict[str, float] = field(default_factory=lambda: {
        "availability": 0.99, "latency": 0.95, "job_success": 0.99, "auth_success": 0.95})


FLOOR = 0.1
"""A previous value below this share of the issue's threshold is "near zero": the
change is ``new``, never a percentage off it."""


@dataclass
class Report:
    """A report; sections are plain dicts (see docs/report.md for every field)."""

    generated_at: float
    prometheus: str
    since: str
    window_seconds: float
    service: str | None
    health: dict[str, Any]
    latency: dict[str, Any]
    failures: dict[str, Any]
    cost: dict[str, Any]
    queues: list[dict[str, Any]]
    trends: dict[str, Any]
    charts: list[dict[str, Any]]
    issues: list[Issue]
    query_errors: dict[str, str]
    recent_seconds: float | None = None
    """The last minutes measured again (None: not done, the window being too short)."""

    @property
    def current_issues(self) -> list[Issue]:
        """What is happening in the window: these set the status and the headline."""
        return [i for i in self.issues if i.scope == "current"]

    @property
    def background_issues(self) -> list[Issue]:
        return [i for i in self.issues if i.scope == "background"]

    @property
    def status(self) -> str:
        return "issues" if self.current_issues else "nominal"

    def headline(self) -> str:
        """``✓ nominal`` or ``⚠ n issue(s)`` (current ones): the first line of every digest."""
        n = len(self.current_issues)
        if not n:
            return "✓ nominal"
        return f"⚠ {n} issue{'s' if n != 1 else ''}"

    def to_dict(self, *, charts: bool = True) -> dict[str, Any]:
        end = self.generated_at
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "generated_at": _iso(end),
            "prometheus": self.prometheus,
            "service": self.service,
            "window": {"since": self.since, "seconds": self.window_seconds,
                       "start": _iso(end - self.window_seconds), "end": _iso(end),
                       "recent_seconds": self.recent_seconds},
            "status": self.status,
            "headline": self.headline(),
            "issues": [asdict(i) for i in self.issues],
            "health": self.health,
            "latency": self.latency,
            "failures": self.failures,
            "cost": self.cost,
            "queues": self.queues,
            "trends": self.trends,
            "query_errors": dict(self.query_errors),
        }
        if charts:
            data["charts"] = self.charts
        cleaned: dict[str, Any] = _clean(data)
        return cleaned


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _clean(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# ------------------------------------------------------------------------------ helpers


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _index(samples: Iterable[Sample], *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.get(k, "") for k in keys): s.value for s in samples}


def _scalar(c: Collected, name: str) -> float | None:
    samples = c.instant.get(name) or []
    return _num(samples[0].value) if samples else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _whole(value: float | None) -> int | None:
    """A count as people read it: ``increase()`` extrapolates (33.9 timeouts) but events
    are whole."""
    return round(value) if value is not None and math.isfinite(value) else None


def _route(key: tuple[str, ...]) -> str:
    route, method = key
    return f"{method} {route}".strip()


_ROUTE_KEYS = ("http_route", "http_request_method")


def _labels(keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in zip(keys, values) if v}


def _quantiles(c: Collected, name: str, keys: tuple[str, ...], phi: float, *,
               previous: bool = False) -> dict[tuple[str, ...], Quantile]:
    query = ("prev_" if previous else "") + name + "_buckets"
    return quantiles_by(c.instant.get(query, []), keys, phi)


def _q(q: Quantile | None) -> float | None:
    return _num(q.value) if q is not None else None


def _bounds(**quantiles: Quantile | None) -> dict[str, str]:
    """``{field: "below"|"above"}`` for the quantiles that are only a bucket bound."""
    return {name: q.bound for name, q in quantiles.items() if q is not None and q.bound}


def _fmt_q(q: Quantile) -> str:
    prefix = {"below": "< ", "above": "> "}.get(q.bound or "", "")
    return prefix + _fmt_s(q.value)


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``(slope per second, intercept)`` of finite points; None if < 2."""
    pts = [(t, v) for t, v in points if math.isfinite(t) and math.isfinite(v)]
    if len(pts) < 2:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    return slope, mv - slope * mt


def _fmt_s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# ------------------------------------------------------------------------------ sections


def _health(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    alerts: list[dict[str, Any]] = []
    for alert in c.alerts:
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        state = str(alert.get("state", ""))
        if state not in ("firing", "pending"):
            continue
        if c.service and labels.get("job") not in (None, c.service):
            continue
        name = labels.get("alertname", "?")
        severity = labels.get("severity", "")
        annotations = alert.get("annotations") or {}
        summary = str(annotations.get("summary") or annotations.get("description") or "")
        alerts.append({"name": name, "state": state, "severity": severity or None,
                       "labels": labels, "active_at": alert.get("activeAt"),
                       "summary": summary or None})
        # Firing alerts become issues in build_report, merged into the finding they
        # describe (issues.merge_alerts).
    alerts.sort(key=lambda a: (a["state"] != "firing", a["name"]))

    targets: list[dict[str, Any]] = []
    for target in c.targets:
        labels = target.get("labels") or {}
        job = str(labels.get("job", target.get("scrapePool", "")))
        if c.service and job != c.service:
            continue
        up = target.get("health") == "up"
        instance = str(labels.get("instance", target.get("scrapeUrl", "")))
        error = str(target.get("lastError") or "") or None
        targets.append({"job": job, "instance": instance, "up": up,
                        "health": target.get("health"), "last_error": error,
                        "last_scrape": target.get("lastScrape")})
        if not up and target.get("health") == "down":
            issues.append(Issue("critical", "target_down", f"{job} {instance}",
                                f"target {job} {instance} is down"
                                + (f": {error}" if error else ""),
                                labels={"job": job, "instance": instance},
                                evidence={"last_error": error}))
    targets.sort(key=lambda x: (x["up"], x["job"], x["instance"]))

    slos = _slos_from_rules(c) or _slos_from_raw(c, t)
    for slo in slos:
        left = slo.get("error_budget_remaining")
        if left is None:
            continue
        if left <= 0:
            issues.append(Issue("critical", "slo_budget", slo["name"],
                                f"SLO {slo['name']} has used its whole error budget"
                                + (f" (SLI {slo['sli']:.4f} < objective {slo['objective']})"
                                   if slo["sli"] is not None and slo["objective"] is not None
                                   else ""),
                                left, "ratio", scope="background", labels={"slo": slo["name"]}))
        elif left < t.slo_budget_warning:
            issues.append(Issue("warning", "slo_budget", slo["name"],
                                f"SLO {slo['name']}: only {left:.0%} of the error budget left",
                                left, "ratio", scope="background", labels={"slo": slo["name"]}))
    return {"alerts": alerts, "targets": targets, "slos": slos,
            "targets_up": sum(1 for x in targets if x["up"]),
            "targets_down": sum(1 for x in targets if not x["up"])}


def _slo_entry(name: str, kind: str, sli: float | None, objective: float, events: float | None,
               source: str) -> dict[str, Any]:
    budget = 1 - objective
    remaining = None
    if sli is not None and budget > 0:
        remaining = 1 - (1 - sli) / budget
    return {"name": name, "type": kind, "objective": objective, "sli": sli,
            "error_budget_remaining": remaining, "events": _whole(events), "source": source}


def _slos_from_raw(c: Collected, t: Thresholds) -> list[dict[str, Any]]:
    """Availability, latency, job success and auth success over the report window."""
    out: list[dict[str, Any]] = []
    obj = t.slo_objectives
    total = _scalar(c, "http_total")
    if total:
        errors = _scalar(c, "http_total_errors") or 0.0
        out.append(_slo_entry("availability", "availability", 1 - errors / total,
                              obj.get("availability", 0.99), total, "raw"))
        fast = _scalar(c, "http_fast")
        if fast is not None:
            out.append(_slo_entry(f"latency < {_fmt_s(t.latency_slo_seconds)}", "latency",
                                  min(1.0, fast / total), obj.get("latency", 0.95), total,
                                  "raw"))
    jobs = _scalar(c, "jobs_finished")
    if jobs:
        failed = _scalar(c, "jobs_failed") or 0.0
        out.append(_slo_entry("job success", "job_success", 1 - failed / jobs,
                              obj.get("job_success", 0.99), jobs, "raw"))
    auth = _scalar(c, "auth_total")
    if auth:
        failed = _scalar(c, "auth_failed") or 0.0
        out.append(_slo_entry("auth success", "auth_success", 1 - failed / auth,
                              obj.get("auth_success", 0.95), auth, "raw"))
    return out


def _slos_from_rules(c: Collected) -> list[dict[str, Any]]:
    """SLOs from the generated SLO recording rules (promkit/tools/generate): per ``slo`` label,
    ``slo:error_budget_remaining:ratio``, ``slo:objective:ratio`` and the SLI as one minus
    the longest-window ``slo:sli_error:ratio_rate<window>``. These cover each SLO's own
    window (e.g. 7d), not the report's."""
    remaining = c.slo_rules.get("slo:error_budget_remaining:ratio") or []
    if not remaining:
        return []
    objectives = {s.labels.get("slo", ""): s.value
                  for s in c.slo_rules.get("slo:objective:ratio") or []}
    error_rules = sorted((n for n in c.slo_rules if n.startswith("slo:sli_error:ratio_rate")),
                         key=_rule_window_seconds)
    errors: dict[str, float] = {}
    for name in error_rules:  # shortest first: the longest window wins
        for s in c.slo_rules[name]:
            errors[s.labels.get("slo", "")] = s.value
    out: list[dict[str, Any]] = []
    for s in remaining:
        name = s.labels.get("slo") or "slo"
        error = _num(errors.get(name))
        out.append({"name": name, "type": None, "objective": _num(objectives.get(name)),
                    "sli": 1 - error if error is not None else None,
                    "error_budget_remaining": _num(s.value), "events": None,
                    "source": "recording_rule"})
    out.sort(key=lambda x: x["name"])
    return out


def _rule_window_seconds(name: str) -> float:
    suffix = name.rsplit("ratio_rate", 1)[-1]
    try:
        return parse_duration(suffix)
    except ValueError:
        return 0.0


def _latency(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    p50 = _quantiles(c, "http", _ROUTE_KEYS, 0.5)
    p95 = _quantiles(c, "http", _ROUTE_KEYS, 0.95)
    prev95 = _quantiles(c, "http", _ROUTE_KEYS, 0.95, previous=True)
    reqs = _index(c.instant.get("http_requests", []), *_ROUTE_KEYS)
    w = c.window.seconds
    routes: list[dict[str, Any]] = []
    for key in sorted(set(reqs) | set(p95)):
        n = reqs.get(key)
        q50, q95 = p50.get(key), p95.get(key)
        routes.append({"route": key[0], "method": key[1], "requests": _whole(n),
                       "rps": _num(n / w) if n is not None else None,
                       "p50_seconds": _q(q50), "p95_seconds": _q(q95),
                       "quantile_bounds": _bounds(p50_seconds=q50, p95_seconds=q95)})
        if q95 is not None and q95.value > t.http_p95_seconds and (n or 0) >= t.min_requests:
            issues.append(Issue("warning", "http_latency", _route(key),
                                f"{_route(key)} p95 is {_fmt_q(q95)} "
                                f"(threshold {_fmt_s(t.http_p95_seconds)})", q95.value, "seconds",
                                change=change(q95.value, _q(prev95.get(key)),
                                              FLOOR * t.http_p95_seconds),
                                evidence={"requests": _whole(n), "p95_seconds": q95.value},
                                labels=_labels(_ROUTE_KEYS, key)))
    routes.sort(key=lambda r: -(r["p95_seconds"] or 0))

    jkeys = ("queue", "job_type")
    quantiles = {f"{part}_p{p}": _quantiles(c, f"job_{part}", jkeys, int(p) / 100)
                 for part in ("wait", "run") for p in ("50", "95")}
    total95 = _quantiles(c, "job_total", jkeys, 0.95)
    prev_total95 = _quantiles(c, "job_total", jkeys, 0.95, previous=True)
    count = _index(c.instant.get("job_count", []), *jkeys)
    jobs: list[dict[str, Any]] = []
    for key in sorted(set(count).union(total95, *quantiles.values())):
        fields = {"queue_wait_p50_seconds": quantiles["wait_p50"].get(key),
                  "queue_wait_p95_seconds": quantiles["wait_p95"].get(key),
                  "run_p50_seconds": quantiles["run_p50"].get(key),
                  "run_p95_seconds": quantiles["run_p95"].get(key),
                  "total_p95_seconds": total95.get(key)}
        entry: dict[str, Any] = {"queue": key[0], "job_type": key[1],
                                 "jobs": _whole(count.get(key))}
        entry.update({name: _q(q) for name, q in fields.items()})
        entry["quantile_bounds"] = _bounds(**fields)
        jobs.append(entry)
        total = total95.get(key)
        if total is not None and total.value > t.job_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "job_latency", subject,
                                f"jobs {subject} p95 is {_fmt_q(total)} "
                                f"(threshold {_fmt_s(t.job_p95_seconds)})", total.value,
                                "seconds", change=change(total.value, _q(prev_total95.get(key)),
                                                         FLOOR * t.job_p95_seconds),
                                evidence={"jobs": entry["jobs"],
                                          "queue_wait_p95_seconds":
                                              entry["queue_wait_p95_seconds"],
                                          "run_p95_seconds": entry["run_p95_seconds"]},
                                labels=_labels(jkeys, key)))

    ekeys = ("peer_service", "operation")
    ext_p95 = _quantiles(c, "ext", ekeys, 0.95)
    prev_ext_p95 = _quantiles(c, "ext", ekeys, 0.95, previous=True)
    ext_mean = _index(c.instant.get("ext_mean", []), *ekeys)
    external: list[dict[str, Any]] = []
    for key in sorted(set(ext_p95) | set(ext_mean)):
        q = ext_p95.get(key)
        external.append({"service": key[0], "operation": key[1], "p95_seconds": _q(q),
                         "mean_seconds": _num(ext_mean.get(key)),
                         "quantile_bounds": _bounds(p95_seconds=q)})
        if q is not None and q.value > t.external_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_latency", subject,
                                f"external call {subject} p95 is {_fmt_q(q)}", q.value,
                                "seconds", change=change(q.value, _q(prev_ext_p95.get(key)),
                                                         FLOOR * t.external_p95_seconds),
                                evidence={"p95_seconds": q.value},
                                labels=_labels(ekeys, key)))
    external.sort(key=lambda e: -(e["p95_seconds"] or 0))

    s_p95 = _quantiles(c, "stage", ("stage",), 0.95)
    s_mean = _index(c.instant.get("stage_mean", []), "stage")
    s_runs = _index(c.instant.get("stage_runs", []), "stage")
    s_cpu = _index(c.instant.get("stage_cpu", []), "stage")
    stages: list[dict[str, Any]] = []
    for key in set(s_p95) | set(s_runs):
        runs = _num(s_runs.get(key))
        mean = _num(s_mean.get(key))
        q = s_p95.get(key)
        stages.append({"stage": key[0], "runs": _whole(runs), "p95_seconds": _q(q),
                       "mean_seconds": mean, "cpu_seconds": _num(s_cpu.get(key)),
                       "total_seconds": mean * runs if mean is not None and runs else None,
                       "quantile_bounds": _bounds(p95_seconds=q)})
    stages.sort(key=lambda s: -(s["total_seconds"] or s["p95_seconds"] or 0))
    return {"routes": routes, "jobs": jobs, "external": external, "stages": stages}


def _failures(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    keys = _ROUTE_KEYS
    reqs = _index(c.instant.get("http_requests", []), *keys)
    errs = _index(c.instant.get("http_errors", []), *keys)
    prev_reqs = _index(c.instant.get("prev_http_requests", []), *keys)
    prev_errs = _index(c.instant.get("prev_http_errors", []), *keys)
    route_codes: dict[tuple[str, ...], dict[str, int]] = {}
    for s in c.instant.get("http_error_codes", []):
        count = _whole(s.value)
        if count:
            key = tuple(s.labels.get(k, "") for k in keys)
            route_codes.setdefault(key, {})[s.labels.get("http_response_status_code", "")] = count
    routes: list[dict[str, Any]] = []
    for key, n in reqs.items():
        e = errs.get(key, 0.0)
        ratio = _ratio(e, n)
        routes.append({"route": key[0], "method": key[1], "requests": _whole(n),
                       "errors": _whole(e), "error_ratio": _num(ratio)})
        if ratio is not None and ratio > t.http_error_ratio and e >= 1 and n >= t.min_requests:
            severity: Severity = "critical" if ratio >= 5 * t.http_error_ratio else "warning"
            codes = route_codes.get(key, {})
            shown = ", ".join(f"{n} × {code}" for code, n in sorted(
                codes.items(), key=lambda x: -x[1])) or "5xx"
            issues.append(Issue(severity, "http_errors", _route(key),
                                f"{_route(key)} fails {ratio:.1%} of requests "
                                f"({_whole(e)} of {_whole(n)}: {shown})", ratio, "ratio",
                                change=change(ratio, _ratio(prev_errs.get(key, 0.0),
                                                            prev_reqs.get(key)),
                                              FLOOR * t.http_error_ratio),
                                evidence={"status_codes": codes, "errors": _whole(e),
                                          "requests": _whole(n)},
                                labels=_labels(keys, key)))
    routes.sort(key=lambda r: (-(r["error_ratio"] or 0), -(r["requests"] or 0)))

    s_runs = _index(c.instant.get("stage_runs", []), "stage")
    prev_runs = _index(c.instant.get("prev_stage_runs", []), "stage")
    prev_failed: dict[str, float] = {}
    for s in c.instant.get("prev_stage_failures", []):
        stage = s.labels.get("stage", "")
        prev_failed[stage] = prev_failed.get(stage, 0.0) + (_num(s.value) or 0.0)
    stage_failures: list[dict[str, Any]] = []
    per_stage: dict[str, float] = {}
    for s in c.instant.get("stage_failures", []):
        stage, code = s.labels.get("stage", ""), s.labels.get("error_code", "")
        if not _whole(s.value):
            continue
        stage_failures.append({"stage": stage, "error_code": code, "count": _whole(s.value)})
        per_stage[stage] = per_stage.get(stage, 0.0) + (_num(s.value) or 0.0)
    stage_failures.sort(key=lambda x: -(x["count"] or 0))
    for stage, failed in sorted(per_stage.items()):
        runs = s_runs.get((stage,))
        ratio = _ratio(failed, runs)
        if ratio is None or ratio > t.stage_failure_ratio:
            codes = {f["error_code"]: f["count"] for f in stage_failures if f["stage"] == stage}
            names = ", ".join(f"{n} × {code}" for code, n in codes.items())
            previous = _ratio(prev_failed.get(stage, 0.0), prev_runs.get((stage,)))
            issues.append(Issue("warning", "stage_failures", stage,
                                f"stage {stage} failed {_whole(failed)} times"
                                + (f" ({ratio:.1%} of runs)" if ratio is not None else "")
                                + f": {names}", ratio if ratio is not None else failed,
                                "ratio" if ratio is not None else "failures",
                                change=(change(ratio, previous, FLOOR * t.stage_failure_ratio)
                                        if ratio is not None else None),
                                evidence={"error_codes": codes, "failures": _whole(failed),
                                          "runs": _whole(runs)},
                                labels={"stage": stage}))

    job_failures: list[dict[str, Any]] = [
        {"queue": s.labels.get("queue", ""), "job_type": s.labels.get("job_type", ""),
         "error_code": s.labels.get("error_code", ""), "count": _whole(s.value)}
        for s in c.instant.get("job_failures", []) if _whole(s.value)]
    job_failures.sort(key=lambda x: -(x["count"] or 0))

    def outcomes_of(name: str) -> dict[tuple[str, str], dict[str, float]]:
        out: dict[tuple[str, str], dict[str, float]] = {}
        for s in c.instant.get(name, []):
            key = (s.labels.get("peer_service", ""), s.labels.get("operation", ""))
            by = out.setdefault(key, {})
            outcome = s.labels.get("outcome", "")
            by[outcome] = by.get(outcome, 0.0) + (_num(s.value) or 0.0)
        return out

    def bad_ratio(by_outcome: dict[str, float] | None) -> float | None:
        if not by_outcome:
            return None
        bad = by_outcome.get("error", 0.0) + by_outcome.get("timeout", 0.0)
        return _ratio(bad, sum(by_outcome.values()))

    previous_outcomes = outcomes_of("prev_ext_outcomes")
    external: list[dict[str, Any]] = []
    for key, by_outcome in sorted(outcomes_of("ext_outcomes").items()):
        counts = {name: _whole(by_outcome.get(name, 0.0)) or 0
                  for name in ("success", "error", "timeout")}
        ratio = bad_ratio(by_outcome)
        calls = _whole(sum(by_outcome.values()))
        external.append({"service": key[0], "operation": key[1], "calls": calls, **counts,
                         "error_ratio": ratio})
        if ratio is not None and ratio > t.external_error_ratio and (
                counts["error"] + counts["timeout"]) >= 1:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_errors", subject,
                                f"external call {subject}: {ratio:.1%} errors or timeouts "
                                f"({counts['error']} errors, {counts['timeout']} timeouts "
                                f"of {calls} calls)", ratio, "ratio",
                                change=change(ratio, bad_ratio(previous_outcomes.get(key)),
                                              FLOOR * t.external_error_ratio),
                                evidence={"calls": calls, **counts},
                                labels={"peer_service": key[0], "operation": key[1]}))

    totals: dict[tuple[str, str], int] = {}
    for by_code in route_codes.values():
        for code, n in by_code.items():
            totals[("http", code)] = totals.get(("http", code), 0) + n
    for f in stage_failures:
        k = ("stage", f["error_code"])
        totals[k] = totals.get(k, 0) + f["count"]
    for f in job_failures:
        k = ("job", f["error_code"])
        totals[k] = totals.get(k, 0) + f["count"]
    top: list[dict[str, Any]] = [{"source": k[0], "code": k[1], "count": v}
                                 for k, v in totals.items() if v > 0]
    top.sort(key=lambda x: -x["count"])
    return {"routes": routes, "stages": stage_failures, "jobs": job_failures,
            "external": external, "top_error_codes": top[:10]}


def _queues(c: Collected, t: Thresholds, issues: list[Issue]) -> list[dict[str, Any]]:
    """Depth, oldest-item age and readability of each queue, read now (the window's end)
    and at the end of the window before. The age is the one figure that shows a stuck
    worker: wait times are recorded only when a job is picked up."""
    figures = {name: _index(c.instant.get(name, []), "queue")
               for name in ("queue_depth", "queue_age", "queue_up", "prev_queue_depth",
                            "prev_queue_age", "prev_queue_up")}
    waits = _quantiles(c, "job_wait", ("queue",), 0.95)
    out: list[dict[str, Any]] = []
    for key in sorted(set(figures["queue_depth"]) | set(figures["queue_age"])
                      | set(figures["queue_up"])):
        queue = key[0]
        depth = _num(figures["queue_depth"].get(key))
        age = _num(figures["queue_age"].get(key))
        up = _num(figures["queue_up"].get(key))
        entry: dict[str, Any] = {"queue": queue, "depth": _whole(depth), "oldest_age_seconds": age,
                 "up": None if up is None else up >= 1,
                 "depth_previous": _whole(_num(figures["prev_queue_depth"].get(key))),
                 "oldest_age_previous_seconds": _num(figures["prev_queue_age"].get(key))}
        out.append(entry)
        evidence = {"depth": entry["depth"], "oldest_age_seconds": age, "up": entry["up"]}
        labels = {"queue": queue}
        subject = f"queue={queue}"  # as in v1's queue_depth issue
        if up is not None and up < 1:
            prev_up = _num(figures["prev_queue_up"].get(key))
            issues.append(Issue("critical", "queue_unreadable", subject,
                                f"queue {queue} cannot be read (queue_up 0): its depth and "
                                "age are unknown", 0.0, "",
                                change=change(1.0, None if prev_up is None else 1 - prev_up,
                                              0.5),
                                evidence=evidence, labels=labels))
        wait = waits.get(key)
        # A stuck worker shows in the age long before the threshold: far longer than
        # jobs waited in the window (or none was picked up at all).
        stalled = (age is not None and age >= t.queue_stall_seconds and (depth or 0) > 0
                   and (wait is None or age > t.queue_stall_factor * wait.value))
        if age is not None and (age > t.queue_age_seconds or stalled):
            usual = (f"jobs waited p95 {_fmt_s(wait.value)} in the window" if wait
                     else "no job was picked up in the window")
            issues.append(Issue("warning", "queue_age", subject,
                                f"queue {queue}: the oldest item has waited {_fmt_s(age)} "
                                f"({entry['depth']} waiting; {usual})", age, "seconds",
                                change=change(age, entry["oldest_age_previous_seconds"],
                                              FLOOR * t.queue_age_seconds),
                                evidence=evidence, labels=labels))
        if depth is not None and depth > t.queue_depth:
            issues.append(Issue("warning", "queue_depth", subject,
                                f"queue {queue} holds {_whole(depth)} items "
                                f"(threshold {t.queue_depth:.0f})", depth, "items",
                                change=change(depth, entry["depth_previous"],
                                              FLOOR * t.queue_depth),
                                evidence=evidence, labels=labels))
    return out


def _cost(c: Collected, issues: list[Issue]) -> dict[str, Any]:
    now = datetime.fromtimestamp(c.window.end, tz=timezone.utc)
    prices = {tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role")):
              s.value for s in c.instant.get("usage_price", [])}
    budgets = _index(c.instant.get("usage_budget", []), "resource")
    used: dict[str, float] = {}
    spent: dict[str, float] = {}
    priced: dict[str, bool] = {}
    for s in c.instant.get("usage_mtd", []):
        key = tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role"))
        value = _num(s.value) or 0.0
        used[key[0]] = used.get(key[0], 0.0) + value
        price = prices.get(key)
        if price is not None and math.isfinite(price):
            spent[key[0]] = spent.get(key[0], 0.0) + value * price
            priced[key[0]] = True
    rate, cost_rate = _usage_rates(c.instant.get("usage_rate", []), prices)
    prev_rate, prev_cost_rate = _usage_rates(c.instant.get("prev_usage_rate", []), prices)
    # Less than one unit over the whole window is "none" (no percentage off it).
    rate_floor = 1.0 / c.window.seconds
    resources = []
    for resource in sorted(set(used) | {k[0] for k in budgets} | set(rate)):
        units = used.get(resource, 0.0)
        entry: dict[str, Any] = {
            "resource": resource,
            "rate_per_second": rate.get(resource),
            "rate_previous_per_second": prev_rate.get(resource),
            "rate_change": change(rate.get(resource), prev_rate.get(resource, 0.0), rate_floor),
            "cost_per_hour": cost_rate.get(resource),
            "cost_per_hour_previous": prev_cost_rate.get(resource),
            "used_month_to_date": units,
            "projected_month_end": projected_month_end(units, now),
            "cost_month_to_date": spent.get(resource) if priced.get(resource) else None,
            "cost_projected_month_end": (projected_month_end(spent[resource], now)
                                         if priced.get(resource) else None),
            "budget": None, "budget_used_ratio": None, "budget_projected_ratio": None,
        }
        budget = _num(budgets.get((resource,)))
        if budget is not None and budget >= 0:
            forecast = budget_forecast(units, budget, now)
            entry.update(budget=budget, budget_used_ratio=forecast.used_ratio,
                         budget_projected_ratio=forecast.projected_ratio)
            if forecast.used > budget:
                issues.append(Issue("critical", "budget", resource,
                                    f"{resource}: {forecast.used_ratio:.0%} of the monthly "
                                    "budget already used", forecast.used_ratio, "ratio",
                                    labels={"resource": resource}))
            elif forecast.over_budget:
                issues.append(Issue("warning", "budget", resource,
                                    f"{resource}: projected to end the month at "
                                    f"{forecast.projected_ratio:.0%} of budget",
                                    forecast.projected_ratio, "ratio",
                                    labels={"resource": resource}))
        resources.append(entry)
    cpu_process = _scalar(c, "cpu_seconds_mtd")
    cpu_usage = used.get("cpu_seconds")
    cpu_seconds = cpu_usage if cpu_usage is not None else cpu_process
    cpu: dict[str, Any] = {"source": "usage_units_total" if cpu_usage is not None else "process",
                           "used_hours": None, "projected_hours": None, "budget_hours": None}
    if cpu_seconds is not None:
        cpu["used_hours"] = cpu_seconds / 3600
        cpu["projected_hours"] = projected_month_end(cpu_seconds, now) / 3600
        budget = _num(budgets.get(("cpu_seconds",)))
        cpu["budget_hours"] = budget / 3600 if budget is not None else None
    total_cost = sum(spent.values()) if spent else None
    per_hour = sum(cost_rate.values()) if cost_rate else None
    per_hour_before = sum(prev_cost_rate.values()) if prev_cost_rate else None
    per_hour_change = None
    if per_hour is not None:
        # Relative floor: a previous cost under 1% of the larger is "new".
        per_hour_change = change(per_hour, per_hour_before or 0.0,
                                 0.01 * max(per_hour, per_hour_before or 0.0) or 1e-12)
    return {"month_elapsed_ratio": month_elapsed_fraction(now), "resources": resources,
            "cpu": cpu, "cost_per_hour": per_hour, "cost_per_hour_previous": per_hour_before,
            "cost_per_hour_change": per_hour_change, "cost_month_to_date": total_cost,
            "cost_projected_month_end": (projected_month_end(total_cost, now)
                                         if total_cost is not None else None),
            "currency": None}


def _usage_rates(samples: Iterable[Sample], prices: dict[tuple[str, ...], float]
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Units per second and cost per hour by resource, over one window."""
    units: dict[str, float] = {}
    cost: dict[str, float] = {}
    for s in samples:
        key = tuple(s.labels.get(k, "") for k in ("resource", "provider", "model", "role"))
        value = _num(s.value)
        if value is None:
            continue
        units[key[0]] = units.get(key[0], 0.0) + value
        price = prices.get(key)
        if price is not None and math.isfinite(price):
            cost[key[0]] = cost.get(key[0], 0.0) + value * price * 3600
    return units, cost


def _series_label(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "total"


def _trends(c: Collected, t: Thresholds, issues: list[Issue]) -> tuple[
        dict[str, Any], list[dict[str, Any]]]:
    specs = range_queries(c.window, c.service)
    charts: list[dict[str, Any]] = []
    trends: list[dict[str, Any]] = []
    for name, (title, unit, _expr) in specs.items():
        series = c.ranges.get(name, [])
        chart_series: list[dict[str, Any]] = []
        for s in series:
            pts = [(p[0], p[1]) for p in s.points if math.isfinite(p[1])]
            label = _series_label(s.labels)
            chart_series.append({"label": label, "points": [[p[0], p[1]] for p in pts]})
            trends.append(_trend(name, title, unit, label, pts, c.window.seconds))
        charts.append({"name": name, "title": title, "unit": unit, "series": chart_series})
    for tr in trends:
        current, projected, slope = tr["current"], tr["projected_30d"], tr["slope_per_day"]
        if tr["name"] != "disk" or current is None:
            continue
        labels = {"path": tr["series"].removeprefix("path=")}
        if current > t.disk_used_ratio:
            issues.append(Issue("critical", "disk", tr["series"],
                                f"disk {tr['series']} is {current:.0%} full", current, "ratio",
                                labels=labels))
        elif projected is not None and projected > t.disk_used_ratio and slope and slope > 0:
            days = (t.disk_used_ratio - current) / slope
            if days <= PROJECTION_DAYS:
                issues.append(Issue("warning", "disk", tr["series"],
                                    f"disk {tr['series']} is {current:.0%} full and will pass "
                                    f"{t.disk_used_ratio:.0%} "
                                    + (f"in about {days:.0f} days" if days >= 1.5
                                       else "within a day")
                                    + " at the rate of this window", projected, "ratio",
                                    labels=labels, evidence={"used_ratio": current,
                                                             "slope_per_day": slope}))
    requests, before = _scalar(c, "http_total"), _scalar(c, "prev_http_total")
    traffic = change(requests, before, t.min_requests)
    return {"traffic_growth_ratio": ratio_change(traffic), "traffic_change": traffic,
            "projection_days": PROJECTION_DAYS,
            "min_projection_seconds": max(MIN_PROJECTION_SECONDS, c.window.seconds / 2),
            "series": trends}, charts


def _trend(name: str, title: str, unit: str, label: str, pts: list[tuple[float, float]],
           window: float) -> dict[str, Any]:
    values = [v for _, v in pts]
    current = values[-1] if values else None
    mean = sum(values) / len(values) if values else None
    slope = projected = None
    # Extrapolate (and give a per-day slope) only from enough data: minutes of a
    # fresh process projected 30 days ahead gave "40 GiB" and "disk full in 0 days".
    # (95%: a range query's points span the window less one step.)
    if name in PROJECTED and pts and pts[-1][0] - pts[0][0] >= 0.95 * max(
            MIN_PROJECTION_SECONDS, window / 2):
        fit = linear_fit(pts)
        if fit is not None:
            slope = fit[0]
            projected = fit[0] * (pts[-1][0] + PROJECTION_DAYS * 86400) + fit[1]
            if unit in ("ratio", "items", "bytes", "requests/s", "seconds"):
                projected = max(0.0, projected)
            if unit == "ratio":
                projected = min(1.0, projected)
    return {"name": name, "title": title, "unit": unit, "series": label, "current": current,
            "mean": mean, "max": max(values) if values else None,
            "slope_per_day": slope * 86400 if slope is not None else None,
            "growth_ratio": _half_growth(values), "projected_30d": projected}


def _half_growth(values: list[float]) -> float | None:
    """Mean of the window's second half against its first, ``- 1``; None when the first
    half's mean is near zero (under 5% of the largest value): no percentage off it."""
    if len(values) < 4:
        return None
    half = len(values) // 2
    first = sum(values[:half]) / half
    second = sum(values[half:]) / (len(values) - half)
    peak = max(abs(v) for v in values)
    if first <= 0 or first < 0.05 * peak:
        return None
    return second / first - 1


_RECENT_KINDS = frozenset({"http_errors", "http_latency", "stage_failures", "external_errors",
                           "external_latency", "job_latency"})
"""The finding kinds the recent pass measures again."""


def _with_recent(c: Collected, t: Thresholds, findings: list[Issue]
                 ) -> tuple[list[Issue], float | None]:
    """Mark the window's findings ``ongoing`` or ``cleared`` by the last minutes, and add
    what only the last minutes show (a fault minutes old, diluted in a long window)."""
    seconds = recent_seconds(c.window)
    measured = all(f"recent_{name}" in c.instant for name in RECENT)
    if seconds is None or not measured:  # too short a window, or a query failed
        return findings, None
    sub = Collected(window=Window(since=f"{seconds:.0f}s", seconds=seconds, end=c.window.end),
                    service=c.service)
    sub.instant = {name[len("recent_"):]: samples for name, samples in c.instant.items()
                   if name.startswith("recent_")}
    # A finding only the last minutes show is compared with the whole window.
    sub.instant.update({f"prev_{name}": c.instant.get(name, []) for name in RECENT})
    recent: list[Issue] = []
    _failures(sub, t, recent)
    _latency(sub, t, recent)
    minutes = f"{seconds / 60:.0f} min"
    seen = {(i.kind, i.subject) for i in recent}
    out = []
    for f in findings:
        if f.kind not in _RECENT_KINDS:
            out.append(f)
        elif (f.kind, f.subject) in seen:
            out.append(replace(f, recent="ongoing"))
        else:
            out.append(replace(f, recent="cleared",
                               message=f"{f.message}; not seen in the last {minutes}"))
    known = {(f.kind, f.subject) for f in findings}
    out.extend(replace(i, recent="new", message=f"{i.message} in the last {minutes}")
               for i in recent if (i.kind, i.subject) not in known)
    return out, seconds


def build_report(c: Collected, *, prometheus: str, thresholds: Thresholds | None = None
                 ) -> Report:
    t = thresholds or Thresholds()
    findings: list[Issue] = []
    health = _health(c, t, findings)
    failures = _failures(c, t, findings)
    latency = _latency(c, t, findings)
    findings, recent = _with_recent(c, t, findings)
    queues = _queues(c, t, findings)
    cost = _cost(c, findings)
    trends, charts = _trends(c, t, findings)
    for name, error in sorted(c.errors.items()):
        # A refused query makes the report partial; it says nothing about the service.
        findings.append(Issue("warning", "query_failed", name, error, scope="background"))
    issues = rank(merge_alerts(findings, health["alerts"], window_start=c.window.start))
    return Report(generated_at=c.window.end, prometheus=prometheus, since=c.window.since,
                  window_seconds=c.window.seconds, service=c.service, health=health,
                  latency=latency, failures=failures, cost=cost, queues=queues, trends=trends,
                  charts=charts, issues=issues, query_errors=dict(c.errors),
                  recent_seconds=recent)
