"""Is it healthy? Alerts, scrape targets and SLOs with their error budgets."""

from __future__ import annotations

from typing import Any

from promkit.tools.report._change import change
from promkit.tools.report._figures import fmt_seconds, index, num, scalar, whole
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import Collected, parse_duration
from promkit.tools.report.thresholds import Thresholds

__all__ = ["health_section"]


def health_section(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
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
    prev_up = index(c.instant.get("prev_up", []), "job", "instance")
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
            # Was it up at the end of the window before? (Unknown: no change.)
            before = prev_up.get((job, instance))
            issues.append(Issue("critical", "target_down", f"{job} {instance}",
                                f"target {job} {instance} is down"
                                + (f": {error}" if error else ""),
                                change=(change(1.0, 1.0 - before, 0.5) if before is not None
                                        else None),
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
            "error_budget_remaining": remaining, "events": whole(events), "source": source}


def _slos_from_raw(c: Collected, t: Thresholds) -> list[dict[str, Any]]:
    """Availability, latency, job success and auth success over the report window."""
    out: list[dict[str, Any]] = []
    obj = t.slo_objectives
    total = scalar(c, "http_total")
    if total:
        errors = scalar(c, "http_total_errors") or 0.0
        out.append(_slo_entry("availability", "availability", 1 - errors / total,
                              obj.get("availability", 0.99), total, "raw"))
        fast = scalar(c, "http_fast")
        if fast is not None:
            out.append(_slo_entry(f"latency < {fmt_seconds(t.latency_slo_seconds)}", "latency",
                                  min(1.0, fast / total), obj.get("latency", 0.95), total,
                                  "raw"))
    jobs = scalar(c, "jobs_finished")
    if jobs:
        failed = scalar(c, "jobs_failed") or 0.0
        out.append(_slo_entry("job success", "job_success", 1 - failed / jobs,
                              obj.get("job_success", 0.99), jobs, "raw"))
    auth = scalar(c, "auth_total")
    if auth:
        failed = scalar(c, "auth_failed") or 0.0
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
        error = num(errors.get(name))
        out.append({"name": name, "type": None, "objective": num(objectives.get(name)),
                    "sli": 1 - error if error is not None else None,
                    "error_budget_remaining": num(s.value), "events": None,
                    "source": "recording_rule"})
    out.sort(key=lambda x: x["name"])
    return out


def _rule_window_seconds(name: str) -> float:
    suffix = name.rsplit("ratio_rate", 1)[-1]
    try:
        return parse_duration(suffix)
    except ValueError:
        return 0.0
