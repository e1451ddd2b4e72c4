"""promkit report against a remote-write store: targets, SLOs and alerts read from its series.

A canned client plays two servers: a VictoriaMetrics-like store whose status APIs
list nothing (its series hold ``up``, the SLO rules' outputs and ``ALERTS``), and a
Prometheus that lists everything (the series must then change nothing). The live
counterpart is tests/integration/test_victoriametrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from promkit.tools.report import PrometheusClient, PrometheusError
from promkit.tools.report._prom import Sample, Series
from promkit.tools.report._stores import ALERTS_QUERY, SLO_SERIES_QUERY
from promkit.tools.report.model import build_report
from promkit.tools.report.queries import Window, collect


def window() -> Window:
    """The hour up to now (a window ending in the past reads alerts from ALERTS: --at)."""
    return Window(since="1h", seconds=3600, end=time.time())


API = {"job": "api", "instance": "10.0.0.1:8000"}
WORKER = {"job": "worker", "instance": "10.0.0.2:9464"}


def up(labels: dict[str, str], value: float, **extra: str) -> Sample:
    return Sample({"__name__": "up", **labels, **extra}, value)


class CannedStore(PrometheusClient):
    """Answers the report's calls from canned data; ``series`` maps a query to its samples."""

    def __init__(self, *, series: dict[str, list[Sample]],
                 targets: Sequence[dict[str, Any]] = (), alerts: Sequence[dict[str, Any]] = (),
                 rules: Sequence[dict[str, Any]] = (),
                 refuse: frozenset[str] = frozenset()) -> None:
        super().__init__("http://store.example:8428")
        self.series = series
        self.listed_targets, self.listed_alerts = list(targets), list(alerts)
        self.listed_rules, self.refuse = list(rules), refuse
        self.asked: list[str] = []

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
        self.asked.append(expr)
        if expr in self.refuse:
            raise PrometheusError(f"Prometheus refused /api/v1/query: cannot parse {expr}")
        if expr.startswith("up"):
            return self.series.get("up", [])
        return self.series.get(expr, [])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        return []

    def targets(self) -> list[dict[str, Any]]:
        return self.listed_targets

    def alerts(self) -> list[dict[str, Any]]:
        return self.listed_alerts

    def rules(self) -> list[dict[str, Any]]:
        return self.listed_rules


def alerts_series() -> list[Sample]:
    """Ages of ``ALERTS`` samples: the alert went pending -> firing 10 s ago; another pends."""
    down = {"alertname": "TargetDown", "severity": "critical", **WORKER}
    return [
        Sample({**down, "alertstate": "pending"}, 12.0),  # kept by a store without staleness
        Sample({**down, "alertstate": "firing"}, 1.5),
        Sample({"alertname": "QueueDeep", "severity": "warning", "alertstate": "pending"}, 3.0),
    ]


def slo_series() -> list[Sample]:
    labels = {"service": "demo", "slo": "api-availability"}
    return [Sample({"__name__": name, **labels}, value) for name, value in (
        ("slo:error_budget_remaining:ratio", 0.6), ("slo:objective:ratio", 0.99),
        ("slo:sli_error:ratio_rate7d", 0.004), ("slo:sli_events:rate5m", 3.0))]


def store_without_status_apis() -> CannedStore:
    return CannedStore(series={
        # An HA pair of agents writes `up` twice; one replica failed its last scrape.
        "up": [up(API, 1, replica="a"), up(API, 0, replica="b"), up(WORKER, 0, replica="a")],
        ALERTS_QUERY: alerts_series(),
        SLO_SERIES_QUERY: slo_series(),
    })


def test_store_without_status_apis_reads_targets_slos_and_alerts_from_series() -> None:
    collected = collect(store_without_status_apis(), window())
    health = build_report(collected, prometheus="http://store.example:8428").health

    assert [(t["job"], t["instance"], t["up"]) for t in health["targets"]] == [
        ("worker", WORKER["instance"], False), ("api", API["instance"], True)]
    assert (health["targets_up"], health["targets_down"]) == (1, 1)
    # The newest ALERTS sample decides the state; labels lose __name__ and alertstate.
    assert [(a["name"], a["state"]) for a in health["alerts"]] == [
        ("TargetDown", "firing"), ("QueueDeep", "pending")]
    assert health["alerts"][0]["labels"] == {"alertname": "TargetDown",
                                             "severity": "critical", **WORKER}
    assert [(s["name"], s["source"], s["error_budget_remaining"]) for s in health["slos"]] == [
        ("api-availability", "recording_rule", 0.6)]
    assert health["slos"][0]["sli"] == pytest.approx(0.996)


def test_issues_name_the_down_target_and_the_firing_alert() -> None:
    report = build_report(collect(store_without_status_apis(), window()),
                          prometheus="http://store.example:8428")
    down = [i for i in report.issues if i.kind == "target_down"]
    assert [(i.subject, i.severity) for i in down] == [(f"worker {WORKER['instance']}",
                                                       "critical")]
    assert down[0].alerts == ["TargetDown"]  # the alert is merged into the finding's line
    assert not any(i.subject == "QueueDeep" for i in report.issues)  # pending: no issue


def test_prometheus_listing_everything_reads_as_before() -> None:
    listed_target = {"labels": dict(API), "health": "up", "lastError": "",
                     "scrapePool": "api"}
    listed_alert = {"labels": {"alertname": "QueueDeep", "severity": "warning"},
                    "annotations": {"summary": "31 items"}, "state": "pending"}
    store = CannedStore(
        series={"up": [up(API, 1)], ALERTS_QUERY: alerts_series(),
                SLO_SERIES_QUERY: slo_series(),
                "slo:error_budget_remaining:ratio": slo_series()[:1]},
        targets=[listed_target], alerts=[listed_alert],
        rules=[{"name": "slo:error_budget_remaining:ratio", "type": "recording"}])
    collected = collect(store, window())
    assert collected.targets == [listed_target]
    assert collected.alerts == [listed_alert]
    assert list(collected.slo_rules) == ["slo:error_budget_remaining:ratio"]
    assert ALERTS_QUERY not in store.asked and SLO_SERIES_QUERY not in store.asked


def test_a_refused_series_query_is_a_query_error_not_a_failure() -> None:
    store = store_without_status_apis()
    store.refuse = frozenset({ALERTS_QUERY, SLO_SERIES_QUERY})
    collected = collect(store, window())
    assert collected.alerts == [] and collected.slo_rules == {}
    assert set(collected.errors) == {"alerts_series", "slo_series"}
    assert "cannot parse" in collected.errors["alerts_series"]
    assert len(collected.targets) == 2  # `up` still answered


def test_an_unreachable_store_still_raises() -> None:
    class Gone(CannedStore):
        def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
            if expr == SLO_SERIES_QUERY:
                raise PrometheusError("cannot reach Prometheus", unreachable=True)
            return super().query(expr, at=at)

    with pytest.raises(PrometheusError, match="cannot reach"):
        collect(Gone(series={}), window())
