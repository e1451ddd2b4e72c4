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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from promkit.instrument.usage import budget_forecast, month_elapsed_fraction, projected_month_end
from promkit.tools.report._prom import Sample
from promkit.tools.report.queries import Collected, parse_duration, range_queries

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

Severity = Literal["critical", "warning"]
_SEVERITY_ORDER = {"critical": 0, "warning": 1}
PROJECTION_DAYS = 30


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
    disk_used_ratio: float = 0.8
    slo_budget_warning: float = 0.25
    latency_slo_seconds: float = 0.2
    slo_objectives: dict[str, float] = field(default_factory=lambda: {
        "availability": 0.99, "latency": 0.95, "job_success": 0.99, "auth_success": 0.95})


@dataclass(frozen=True)
class Issue:
    """Something that needs attention.

    ``kind`` is one of: alert, target_down, slo_budget, http_errors, http_latency,
    stage_failures, job_failures, external_errors, external_latency, job_latency,
    budget, queue_depth, disk, query_failed.
    ``subject`` names what it is about (an alert name, ``GET /route``, a stage,
    ``service/operation``, a resource, a queue, a path).
    """

    severity: Severity
    kind: str
    subject: str
    message: str
    value: float | None = None
    unit: str = ""


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
    trends: dict[str, Any]
    charts: list[dict[str, Any]]
    issues: list[Issue]
    query_errors: dict[str, str]

    @property
    def status(self) -> str:
        return "issues" if self.issues else "nominal"

    def headline(self) -> str:
        """``✓ nominal`` or ``⚠ n issue(s)``: the first line of every digest."""
        if not self.issues:
            return "✓ nominal"
        n = len(self.issues)
        return f"⚠ {n} issue{'s' if n != 1 else ''}"

    def to_dict(self, *, charts: bool = True) -> dict[str, Any]:
        end = self.generated_at
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "generated_at": _iso(end),
            "prometheus": self.prometheus,
            "service": self.service,
            "window": {"since": self.since, "seconds": self.window_seconds,
                       "start": _iso(end - self.window_seconds), "end": _iso(end)},
            "status": self.status,
            "headline": self.headline(),
            "issues": [asdict(i) for i in self.issues],
            "health": self.health,
            "latency": self.latency,
            "failures": self.failures,
            "cost": self.cost,
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


def _route(key: tuple[str, ...]) -> str:
    route, method = key
    return f"{method} {route}".strip()


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
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


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
        if state == "firing":
            issues.append(Issue("critical" if severity in ("critical", "page") else "warning",
                                "alert", name, f"alert {name} is firing"
                                + (f": {summary}" if summary else "")))
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
                                + (f": {error}" if error else "")))
    targets.sort(key=lambda x: (x["up"], x["job"], x["instance"]))

    slos = _slos_from_rules(c) or _slos_from_raw(c, t)
    for slo in slos:
        left = slo.get("error_budget_remaining")
        if left is None:
            continue
        if left <= 0:
            issues.append(Issue("critical", "slo_budget", slo["name"],
                                f"SLO {slo['name']} has used its whole error budget "
                                f"(SLI {slo['sli']:.4f} < objective {slo['objective']})",
                                left, "ratio"))
        elif left < t.slo_budget_warning:
            issues.append(Issue("warning", "slo_budget", slo["name"],
                                f"SLO {slo['name']}: only {left:.0%} of the error budget left",
                                left, "ratio"))
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
            "error_budget_remaining": remaining, "events": events, "source": source}


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
    keys = ("http_route", "http_request_method")
    p50 = _index(c.instant.get("http_p50", []), *keys)
    p95 = _index(c.instant.get("http_p95", []), *keys)
    reqs = _index(c.instant.get("http_requests", []), *keys)
    w = c.window.seconds
    routes: list[dict[str, Any]] = []
    for key in sorted(set(reqs) | set(p95)):
        n = reqs.get(key)
        routes.append({"route": key[0], "method": key[1], "requests": _num(n),
                       "rps": _num(n / w) if n is not None else None,
                       "p50_seconds": _num(p50.get(key)), "p95_seconds": _num(p95.get(key))})
        value = _num(p95.get(key))
        if value is not None and value > t.http_p95_seconds and (n or 0) >= t.min_requests:
            issues.append(Issue("warning", "http_latency", _route(key),
                                f"{_route(key)} p95 is {_fmt_s(value)} "
                                f"(threshold {_fmt_s(t.http_p95_seconds)})", value, "seconds"))
    routes.sort(key=lambda r: -(r["p95_seconds"] or 0))

    jkeys = ("queue", "job_type")
    parts = {name: _index(c.instant.get(name, []), *jkeys) for name in (
        "job_wait_p50", "job_wait_p95", "job_run_p50", "job_run_p95", "job_total_p95",
        "job_count")}
    jobs: list[dict[str, Any]] = []
    for key in sorted(set().union(*parts.values())):
        entry: dict[str, Any] = {"queue": key[0], "job_type": key[1],
                 "jobs": _num(parts["job_count"].get(key)),
                 "queue_wait_p50_seconds": _num(parts["job_wait_p50"].get(key)),
                 "queue_wait_p95_seconds": _num(parts["job_wait_p95"].get(key)),
                 "run_p50_seconds": _num(parts["job_run_p50"].get(key)),
                 "run_p95_seconds": _num(parts["job_run_p95"].get(key)),
                 "total_p95_seconds": _num(parts["job_total_p95"].get(key))}
        jobs.append(entry)
        total = entry["total_p95_seconds"]
        if total is not None and total > t.job_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "job_latency", subject,
                                f"jobs {subject} p95 is {_fmt_s(total)} "
                                f"(threshold {_fmt_s(t.job_p95_seconds)})", total, "seconds"))

    ekeys = ("peer_service", "operation")
    ext_p95 = _index(c.instant.get("ext_p95", []), *ekeys)
    ext_mean = _index(c.instant.get("ext_mean", []), *ekeys)
    external: list[dict[str, Any]] = []
    for key in sorted(set(ext_p95) | set(ext_mean)):
        value = _num(ext_p95.get(key))
        external.append({"service": key[0], "operation": key[1], "p95_seconds": value,
                         "mean_seconds": _num(ext_mean.get(key))})
        if value is not None and value > t.external_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_latency", subject,
                                f"external call {subject} p95 is {_fmt_s(value)}", value,
                                "seconds"))
    external.sort(key=lambda e: -(e["p95_seconds"] or 0))

    s_p95 = _index(c.instant.get("stage_p95", []), "stage")
    s_mean = _index(c.instant.get("stage_mean", []), "stage")
    s_runs = _index(c.instant.get("stage_runs", []), "stage")
    s_cpu = _index(c.instant.get("stage_cpu", []), "stage")
    stages: list[dict[str, Any]] = []
    for key in set(s_p95) | set(s_runs):
        runs = _num(s_runs.get(key))
        mean = _num(s_mean.get(key))
        stages.append({"stage": key[0], "runs": runs, "p95_seconds": _num(s_p95.get(key)),
                       "mean_seconds": mean, "cpu_seconds": _num(s_cpu.get(key)),
                       "total_seconds": mean * runs if mean is not None and runs else None})
    stages.sort(key=lambda s: -(s["total_seconds"] or s["p95_seconds"] or 0))
    return {"routes": routes, "jobs": jobs, "external": external, "stages": stages}


def _failures(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    keys = ("http_route", "http_request_method")
    reqs = _index(c.instant.get("http_requests", []), *keys)
    errs = _index(c.instant.get("http_errors", []), *keys)
    routes: list[dict[str, Any]] = []
    for key, n in reqs.items():
        e = errs.get(key, 0.0)
        ratio = _ratio(e, n)
        routes.append({"route": key[0], "method": key[1], "requests": _num(n),
                       "errors": _num(e), "error_ratio": _num(ratio)})
        if ratio is not None and ratio > t.http_error_ratio and e >= 1 and n >= t.min_requests:
            severity: Severity = "critical" if ratio >= 5 * t.http_error_ratio else "warning"
            issues.append(Issue(severity, "http_errors", _route(key),
                                f"{_route(key)} fails {ratio:.1%} of requests "
                                f"({e:.0f} of {n:.0f} answered 5xx)", ratio, "ratio"))
    routes.sort(key=lambda r: (-(r["error_ratio"] or 0), -(r["requests"] or 0)))

    s_runs = _index(c.instant.get("stage_runs", []), "stage")
    stage_failures: list[dict[str, Any]] = []
    per_stage: dict[str, float] = {}
    for s in c.instant.get("stage_failures", []):
        stage, code = s.labels.get("stage", ""), s.labels.get("error_code", "")
        stage_failures.append({"stage": stage, "error_code": code, "count": _num(s.value)})
        per_stage[stage] = per_stage.get(stage, 0.0) + (_num(s.value) or 0.0)
    stage_failures.sort(key=lambda x: -(x["count"] or 0))
    for stage, count in sorted(per_stage.items()):
        runs = s_runs.get((stage,))
        ratio = _ratio(count, runs)
        if ratio is None or ratio > t.stage_failure_ratio:
            names = ", ".join(f["error_code"] for f in stage_failures if f["stage"] == stage)
            issues.append(Issue("warning", "stage_failures", stage,
                                f"stage {stage} failed {count:.0f} times"
                                + (f" ({ratio:.1%} of runs)" if ratio is not None else "")
                                + f": {names}", ratio if ratio is not None else count,
                                "ratio" if ratio is not None else "failures"))

    job_failures: list[dict[str, Any]] = [
        {"queue": s.labels.get("queue", ""), "job_type": s.labels.get("job_type", ""),
         "error_code": s.labels.get("error_code", ""), "count": _num(s.value)}
                    for s in c.instant.get("job_failures", [])]
    job_failures.sort(key=lambda x: -(x["count"] or 0))

    outcomes: dict[tuple[str, str], dict[str, float]] = {}
    for s in c.instant.get("ext_outcomes", []):
        key = (s.labels.get("peer_service", ""), s.labels.get("operation", ""))
        outcomes.setdefault(key, {})[s.labels.get("outcome", "")] = _num(s.value) or 0.0
    external: list[dict[str, Any]] = []
    for key, by_outcome in sorted(outcomes.items()):
        total = sum(by_outcome.values())
        bad = by_outcome.get("error", 0.0) + by_outcome.get("timeout", 0.0)
        ratio = _ratio(bad, total)
        external.append({"service": key[0], "operation": key[1], "calls": total,
                         "success": by_outcome.get("success", 0.0),
                         "error": by_outcome.get("error", 0.0),
                         "timeout": by_outcome.get("timeout", 0.0), "error_ratio": ratio})
        if ratio is not None and ratio > t.external_error_ratio and bad >= 1:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_errors", subject,
                                f"external call {subject}: {ratio:.1%} errors or timeouts "
                                f"({by_outcome.get('timeout', 0.0):.0f} timeouts)", ratio,
                                "ratio"))

    codes: dict[tuple[str, str], float] = {}
    for s in c.instant.get("http_error_codes", []):
        k = ("http", s.labels.get("http_response_status_code", ""))
        codes[k] = codes.get(k, 0.0) + (_num(s.value) or 0.0)
    for f in stage_failures:
        k = ("stage", f["error_code"])
        codes[k] = codes.get(k, 0.0) + (f["count"] or 0.0)
    for f in job_failures:
        k = ("job", f["error_code"])
        codes[k] = codes.get(k, 0.0) + (f["count"] or 0.0)
    top: list[dict[str, Any]] = [{"source": k[0], "code": k[1], "count": v}
                                 for k, v in codes.items() if v > 0]
    top.sort(key=lambda x: -x["count"])
    return {"routes": routes, "stages": stage_failures, "jobs": job_failures,
            "external": external, "top_error_codes": top[:10]}


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
    resources = []
    for resource in sorted(set(used) | {k[0] for k in budgets}):
        units = used.get(resource, 0.0)
        entry: dict[str, Any] = {
            "resource": resource, "used_month_to_date": units,
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
                                    "budget already used", forecast.used_ratio, "ratio"))
            elif forecast.over_budget:
                issues.append(Issue("warning", "budget", resource,
                                    f"{resource}: projected to end the month at "
                                    f"{forecast.projected_ratio:.0%} of budget",
                                    forecast.projected_ratio, "ratio"))
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
    return {"month_elapsed_ratio": month_elapsed_fraction(now), "resources": resources,
            "cpu": cpu, "cost_month_to_date": total_cost,
            "cost_projected_month_end": (projected_month_end(total_cost, now)
                                         if total_cost is not None else None),
            "currency": None}


def _series_label(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "total"


def _trends(c: Collected, t: Thresholds, issues: list[Issue]) -> tuple[
        dict[str, Any], list[dict[str, Any]]]:
    specs = range_queries(c.window, c.service)
    horizon = PROJECTION_DAYS * 86400
    charts: list[dict[str, Any]] = []
    trends: list[dict[str, Any]] = []
    for name, (title, unit, _expr) in specs.items():
        series = c.ranges.get(name, [])
        chart_series: list[dict[str, Any]] = []
        for s in series:
            pts = [(p[0], p[1]) for p in s.points if math.isfinite(p[1])]
            label = _series_label(s.labels)
            chart_series.append({"label": label, "points": [[p[0], p[1]] for p in pts]})
            trends.append(_trend(name, title, unit, label, pts, horizon, c.window.seconds))
        charts.append({"name": name, "title": title, "unit": unit, "series": chart_series})
    for tr in trends:
        current, projected = tr["current"], tr["projected_30d"]
        if tr["name"] == "queue_depth" and current is not None and current > t.queue_depth:
            issues.append(Issue("warning", "queue_depth", tr["series"],
                                f"queue {tr['series']} holds {current:.0f} items "
                                f"(threshold {t.queue_depth:.0f})", current, "items"))
        if tr["name"] == "disk" and current is not None:
            if current > t.disk_used_ratio:
                issues.append(Issue("critical", "disk", tr["series"],
                                    f"disk {tr['series']} is {current:.0%} full", current,
                                    "ratio"))
            elif projected is not None and projected > t.disk_used_ratio and tr["slope_per_day"]:
                days = (t.disk_used_ratio - current) / tr["slope_per_day"]
                issues.append(Issue("warning", "disk", tr["series"],
                                    f"disk {tr['series']} will pass {t.disk_used_ratio:.0%} in "
                                    f"about {days:.0f} days at the current rate", projected,
                                    "ratio"))
    rates = [x for x in trends if x["name"] == "request_rate"]
    growth = rates[0]["growth_ratio"] if rates else None
    return {"traffic_growth_ratio": growth, "projection_days": PROJECTION_DAYS,
            "series": trends}, charts


def _trend(name: str, title: str, unit: str, label: str, pts: list[tuple[float, float]],
           horizon: float, window: float) -> dict[str, Any]:
    values = [v for _, v in pts]
    fit = linear_fit(pts)
    current = values[-1] if values else None
    mean = sum(values) / len(values) if values else None
    slope = fit[0] if fit else None
    projected = None
    # Extrapolate only from data that covers at least half the window.
    if fit is not None and pts and pts[-1][0] - pts[0][0] >= window / 2:
        projected = fit[0] * (pts[-1][0] + horizon) + fit[1]
        if unit in ("ratio", "items", "bytes", "requests/s"):
            projected = max(0.0, projected)
    growth = slope * window / mean if slope is not None and mean else None
    return {"name": name, "title": title, "unit": unit, "series": label, "current": current,
            "mean": mean, "max": max(values) if values else None,
            "slope_per_day": slope * 86400 if slope is not None else None,
            "growth_ratio": growth, "projected_30d": projected}


def build_report(c: Collected, *, prometheus: str, thresholds: Thresholds | None = None
                 ) -> Report:
    t = thresholds or Thresholds()
    issues: list[Issue] = []
    health = _health(c, t, issues)
    failures = _failures(c, t, issues)
    latency = _latency(c, t, issues)
    cost = _cost(c, issues)
    trends, charts = _trends(c, t, issues)
    for name, error in sorted(c.errors.items()):
        issues.append(Issue("warning", "query_failed", name, error))
    issues.sort(key=lambda i: (_SEVERITY_ORDER[i.severity], i.kind, i.subject))
    return Report(generated_at=c.window.end, prometheus=prometheus, since=c.window.since,
                  window_seconds=c.window.seconds, service=c.service, health=health,
                  latency=latency, failures=failures, cost=cost, trends=trends, charts=charts,
                  issues=issues, query_errors=dict(c.errors))

