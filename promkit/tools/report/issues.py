"""Issues: one line per fact, what is happening now first.

Each :class:`Issue` is ``current`` (a finding about the report window) or
``background`` (an SLO budget over its long window, a month-to-date budget,
an alert whose condition the report no longer sees in the window).
:func:`merge_alerts` folds a firing alert into the finding it describes (one
line, naming the alert); :func:`rank` orders current issues by severity and by
how much they changed against the window before, background after them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ALERT_KINDS",
    "BACKGROUND_KINDS",
    "Issue",
    "Recent",
    "Scope",
    "Severity",
    "merge_alerts",
    "rank",
]

Severity = Literal["critical", "warning"]
Scope = Literal["current", "background"]
Recent = Literal["ongoing", "cleared", "new"]
"""A window finding measured again over the last minutes: still there (``ongoing``), gone
(``cleared``), or seen only there (``new``)."""
_SEVERITY_WEIGHT = {"critical": 2.0, "warning": 1.0}

BACKGROUND_KINDS = frozenset({"slo_budget", "budget"})
"""Kinds that describe long or cumulative windows: always background."""

ALERT_KINDS: dict[str, str] = {
    # The generated alerts (promkit/tools/generate/rules.py) -> the finding kind they
    # describe; the finding's labels say which series.
    "HTTPErrorRatioHigh": "http_errors",
    "HTTP5xxRateHigh": "http_errors",
    "HTTPLatencyP95High": "http_latency",
    "TargetDown": "target_down",
    "QueueDepthHigh": "queue_depth",
    "QueueOldestItemTooOld": "queue_age",
    "QueueReadFailing": "queue_unreadable",
    "DiskUsageHigh": "disk",
    "StageFailureRatioHigh": "stage_failures",
    "ExternalErrorRatioHigh": "external_errors",
    "ExternalLatencyP95High": "external_latency",
    "JobLatencyP95High": "job_latency",
    "CPUBudgetBurn": "budget",
    "CPUBudgetExhausted": "budget",
}
_SLO_ALERT_KINDS = {"availability": "http_errors", "latency": "http_latency",
                    "job_success": "job_failures"}
"""``SLOBurnRatePage`` by its ``sli`` label (another SLI: an alert the report does not
measure, so current)."""


@dataclass(frozen=True)
class Issue:
    """Something that needs attention.

    ``kind`` is one of: alert, target_down, slo_budget, http_errors, http_latency,
    stage_failures, job_failures, external_errors, external_latency, job_latency,
    budget, queue_depth, queue_age, queue_unreadable, disk, query_failed.
    ``subject`` names what it is about (an alert name, ``GET /route``, a stage,
    ``service/operation``, a resource, a queue, a path); ``labels`` are the same
    as Prometheus labels (what alerts are matched on). ``change`` is the figure
    against the window before (see :func:`promkit.tools.report._change.change`),
    ``evidence`` the counts behind it (status codes, error codes, timeouts...),
    ``alerts`` the firing alerts merged into this line, ``recent`` what the last
    minutes say (None when not measured again).
    """

    severity: Severity
    kind: str
    subject: str
    message: str
    value: float | None = None
    unit: str = ""
    scope: Scope = "current"
    change: dict[str, Any] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    recent: Recent | None = None


def _alert_kind(labels: dict[str, str]) -> str | None:
    name = labels.get("alertname", "")
    if name == "SLOBurnRateTicket":  # a slow burn over 1-3 days: the budget's long window
        return "slo_budget"
    if name == "SLOBurnRatePage":  # a fast burn, over the last hours: what is happening
        return _SLO_ALERT_KINDS.get(labels.get("sli", ""))
    return ALERT_KINDS.get(name)


def _matches(issue: Issue, labels: dict[str, str]) -> bool:
    """The alert is about this finding: every label both carry has the same value."""
    return all(labels[k] == v for k, v in issue.labels.items() if k in labels)


def merge_alerts(findings: list[Issue], alerts: Iterable[dict[str, Any]], *,
                 window_start: float) -> list[Issue]:
    """Findings with the firing ``alerts`` folded in (entries of ``health.alerts``).

    An alert that describes a finding becomes part of that line (the more severe of
    the two wins). An alert of a kind the report measures but found nothing about in
    the window is background: its condition no longer holds there. Any other alert
    (one the report does not know) is current, ranked as new when it became active
    inside the window.
    """
    out = list(findings)
    for alert in alerts:
        if alert.get("state") != "firing":
            continue
        labels: dict[str, str] = alert.get("labels") or {}
        name = alert.get("name") or labels.get("alertname", "?")
        severity: Severity = ("critical" if alert.get("severity") in ("critical", "page")
                              else "warning")
        kind = _alert_kind(labels)
        summary = alert.get("summary")
        hits = [i for i, f in enumerate(out) if kind and f.kind == kind and _matches(f, labels)]
        for i in hits:
            f = out[i]
            out[i] = replace(f, alerts=[*f.alerts, name], severity=_worse(f.severity, severity))
        if hits:
            continue
        message = f"alert {name} is firing" + (f": {summary}" if summary else "")
        if kind is not None:
            out.append(Issue(severity, "alert", name, message + " (its condition no longer "
                             "holds in the report window)", scope="background",
                             labels=labels, alerts=[name]))
        else:
            active = _active_at(alert.get("active_at"))
            new = active is not None and active >= window_start
            out.append(Issue(severity, "alert", name, message, labels=labels, alerts=[name],
                             change={"previous": None, "current": None, "ratio": None,
                                     "trend": "new", "score": 1.0} if new else None))
    return out


def _worse(a: Severity, b: Severity) -> Severity:
    return "critical" if "critical" in (a, b) else "warning"


def _active_at(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        # Prometheus writes up to nanoseconds, trailing zeros dropped (".12Z" too); Python
        # 3.10's fromisoformat reads exactly 3 or 6 fraction digits: always give it 6.
        text = re.sub(r"\.(\d+)", lambda m: "." + (m[1] + "000000")[:6],
                      text.replace("Z", "+00:00"))
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _score(issue: Issue) -> float:
    if issue.recent == "new":
        return 1.0  # seen only in the last minutes: new against the window before too
    return float(issue.change["score"]) if issue.change else 0.0


def rank(issues: Iterable[Issue]) -> list[Issue]:
    """Current issues first, by severity plus change (critical counts 2, warning 1,
    the change score -1..1: a new warning ties a steady critical, and then the
    larger change wins, then a finding before an alert), those that cleared in the
    last minutes after the rest; background after, by severity. Background kinds
    are marked so whatever the finder said."""
    marked = [replace(i, scope="background") if i.kind in BACKGROUND_KINDS else i
              for i in issues]
    current = [i for i in marked if i.scope == "current"]
    background = [i for i in marked if i.scope == "background"]
    # Ties: the larger change, then a finding (it has evidence) before a bare alert.
    current.sort(key=lambda i: (i.recent == "cleared",
                                -(_SEVERITY_WEIGHT[i.severity] + _score(i)), -_score(i),
                                -_SEVERITY_WEIGHT[i.severity], i.kind == "alert", i.kind,
                                i.subject))
    background.sort(key=lambda i: (-_SEVERITY_WEIGHT[i.severity], i.kind, i.subject))
    return current + background
