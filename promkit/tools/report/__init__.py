"""``promkit report``: the five questions a small team asks, answered from Prometheus.

1. Is it healthy? 2. Where is the time going? 3. What is failing and why?
4. What does it cost? 5. What will it need?

:func:`generate` queries a Prometheus server and returns a
:class:`~promkit.tools.report.model.Report`; the renderers turn it into terminal
text, Markdown, JSON (schema ``promkit.report/v1``, see docs/report.md) or a
self-contained HTML page, and :func:`~promkit.tools.report.post.post_report`
sends the digest to a webhook.
"""

from __future__ import annotations

import time

from promkit.tools.report._prom import PrometheusClient, PrometheusError
from promkit.tools.report.model import SCHEMA, Issue, Report, Thresholds, build_report
from promkit.tools.report.queries import (
    Collected,
    Window,
    collect,
    parse_duration,
    parse_time,
)

__all__ = [
    "SCHEMA",
    "Collected",
    "Issue",
    "PrometheusClient",
    "PrometheusError",
    "Report",
    "ReportError",
    "Thresholds",
    "Window",
    "build_report",
    "generate",
    "parse_duration",
    "parse_time",
]


class ReportError(Exception):
    """No report can be made: Prometheus unreachable, empty, or a bad argument."""


def generate(prometheus: str, since: str = "1h", *, service: str | None = None,
             thresholds: Thresholds | None = None, timeout: float = 10.0,
             now: float | None = None) -> Report:
    """Query ``prometheus`` over the last ``since`` and build the report.

    Raises :class:`ReportError` (one line, no traceback needed) when Prometheus
    cannot be reached, answers something that is not its API, or has no
    targets and no data for the selection.
    """
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise ReportError(f"--since: {exc}") from None
    t = thresholds or Thresholds()
    window = Window(since=since, seconds=seconds, end=time.time() if now is None else now)
    try:
        client = PrometheusClient(prometheus, timeout=timeout)
        collected = collect(client, window, service, latency_slo_seconds=t.latency_slo_seconds)
    except PrometheusError as exc:
        raise ReportError(str(exc)) from None
    if not collected.targets and not collected.instant.get("up"):
        scope = f" for job={service!r}" if service else ""
        raise ReportError(f"Prometheus at {client.url} has no targets and no data{scope}: "
                          "is it scraping anything (check its config and /targets)?")
    if service and not any((tg.get("labels") or {}).get("job") == service
                           for tg in collected.targets) and not collected.instant.get("up"):
        raise ReportError(f"Prometheus at {client.url} has no target with job={service!r}")
    return build_report(collected, prometheus=client.url, thresholds=t)
