"""The last minutes measured again: what is still happening, what cleared, what is new."""

from __future__ import annotations

from dataclasses import replace

from promkit.tools.report._failures import failures_section
from promkit.tools.report._latency import latency_section
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import RECENT, Collected, Window, recent_seconds
from promkit.tools.report.thresholds import Thresholds

__all__ = ["with_recent"]


_RECENT_KINDS = frozenset({"http_errors", "http_latency", "stage_failures", "job_failures",
                           "external_errors", "external_latency", "job_latency"})
"""The finding kinds the recent pass measures again."""


def with_recent(c: Collected, t: Thresholds, findings: list[Issue]
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
    failures_section(sub, t, recent)
    latency_section(sub, t, recent)
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
