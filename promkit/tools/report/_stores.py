"""What a remote-write store's status APIs leave out, read back from its series.

A central store fed by agents scrapes nothing of the service itself, so its
``/api/v1/targets`` lists none of the service's targets; VictoriaMetrics
single-node (1.79) also answers ``/api/v1/rules`` and ``/api/v1/alerts`` with
empty lists, because the rules run in vmalert. The same facts are series in the
store: ``up`` (the agent writes one per scrape), the SLO recording rules'
outputs and ``ALERTS`` (the ruler writes them back). :func:`fill_from_series`
completes a :class:`~promkit.tools.report.queries.Collected` from them, only
where the APIs said nothing, so a Prometheus that runs the rules and scrapes
the targets itself reads exactly as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promkit.tools.report._prom import PrometheusClient, PrometheusError, Sample

if TYPE_CHECKING:
    from promkit.tools.report.queries import Collected

__all__ = ["ALERTS_QUERY", "ALERT_MAX_AGE_SECONDS", "SLO_SERIES_QUERY", "fill_from_series"]

ALERT_MAX_AGE_SECONDS = 120
"""An ``ALERTS`` sample older than this belongs to an alert that has stopped: rulers
write one per evaluation (vmalert every minute by default), and VictoriaMetrics
1.79 keeps returning a series' last sample for minutes after it ends (it looks
back 5 minutes by default)."""
ALERTS_QUERY = f"time() - timestamp(ALERTS) < {ALERT_MAX_AGE_SECONDS}"
"""The age of each alert's last ``ALERTS`` sample (labels kept, the name dropped)."""
SLO_SERIES_QUERY = '{__name__=~"slo:.+"}'


def fill_from_series(client: PrometheusClient, out: Collected) -> None:
    """Add targets seen only in ``up``; SLO rule outputs and alerts when the APIs listed none.

    Raises :class:`PrometheusError` only when the store is unreachable; a refused
    query is recorded in ``out.errors``.
    """
    out.targets.extend(_targets_only_in_up(out.targets, out.instant.get("up") or []))
    if not out.slo_rules:
        for sample in _query(client, out, "slo_series", SLO_SERIES_QUERY):
            out.slo_rules.setdefault(sample.labels.get("__name__", ""), []).append(sample)
    if not out.alerts and "alerts" not in out.errors:
        out.alerts = _alerts(_query(client, out, "alerts_series", ALERTS_QUERY))


def _query(client: PrometheusClient, out: Collected, name: str, expr: str) -> list[Sample]:
    try:
        return client.query(expr, at=out.window.end)
    except PrometheusError as exc:
        if exc.unreachable:
            raise
        out.errors[name] = str(exc)
        return []


def _targets_only_in_up(listed: list[dict[str, Any]], up: list[Sample]) -> list[dict[str, Any]]:
    """Targets-API-shaped entries for the ``(job, instance)`` pairs of ``up`` not listed.

    Agents of an HA pair write ``up`` twice (distinct replica labels): one entry,
    up when either scraped it.
    """
    known = {(str((t.get("labels") or {}).get("job", "")),
              str((t.get("labels") or {}).get("instance", ""))) for t in listed}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in up:
        labels = {k: v for k, v in sample.labels.items() if k != "__name__"}
        key = (labels.get("job", ""), labels.get("instance", ""))
        if key in known:
            continue
        health = "up" if sample.value == 1 else "down"
        if key not in found or health == "up":
            found[key] = {"labels": labels, "health": health, "lastError": "",
                          "scrapeUrl": ""}
    return [found[key] for key in sorted(found)]


def _alerts(ages: list[Sample]) -> list[dict[str, Any]]:
    """``/api/v1/alerts`` entries (without annotations: ``ALERTS`` has none) from ages.

    An alert that went from pending to firing has two ``ALERTS`` series (the
    ``alertstate`` label differs); a store without staleness markers still returns
    the pending one, so the state of the newest sample wins.
    """
    newest: dict[tuple[tuple[str, str], ...], tuple[float, dict[str, Any]]] = {}
    for sample in ages:
        labels = {k: v for k, v in sample.labels.items() if k not in ("__name__", "alertstate")}
        key = tuple(sorted(labels.items()))
        if key not in newest or sample.value < newest[key][0]:
            newest[key] = (sample.value, {"labels": labels, "annotations": {},
                                          "state": sample.labels.get("alertstate", "")})
    return [newest[key][1] for key in sorted(newest)]
