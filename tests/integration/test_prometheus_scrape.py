"""A real Prometheus scrapes a real uvicorn app serving promkit's /metrics."""

from __future__ import annotations

import json
import time

import pytest

APP = "metrics_demo:app"

# Durations the app is told to observe; buckets are 0.01, 0.1, 1.0.
DURATIONS = [0.005, 0.005, 0.05, 0.05, 0.05, 0.5, 0.5]


def _near(expected: float) -> object:
    return lambda v: abs(v - expected) < 1e-9


def test_prometheus_sees_the_target_up_and_the_recorded_values(uvicorn_app, prometheus):
    app = uvicorn_app(APP)
    for d in DURATIONS[:3]:
        assert app.get(f"/work?d={d}").status_code == 200
    prom = prometheus([app.address])
    targets = prom.client.wait_for_targets_up(count=1)
    assert targets[0]["scrapeUrl"] == f"{app.url}/metrics"
    assert prom.wait_for_value(f'up{{instance="{app.address}"}}', _near(1.0)) == 1.0
    assert prom.wait_for_value('app_requests_total{route="/work"}', _near(3.0)) == 3.0

    # Values recorded after the first scrapes arrive too.
    for d in DURATIONS[3:]:
        assert app.get(f"/work?d={d}").status_code == 200
    n = len(DURATIONS)
    assert prom.wait_for_value('app_requests_total{route="/work"}', _near(n)) == n
    assert prom.wait_for_value('app_work_duration_seconds_count{route="/work"}', _near(n)) == n
    assert prom.value('app_work_duration_seconds_sum{route="/work"}') == pytest.approx(
        sum(DURATIONS))
    buckets = {dict(k)["le"]: v for k, v in prom.client.values(
        'app_work_duration_seconds_bucket{route="/work"}').items()}
    assert buckets == {"0.01": 2.0, "0.1": 5.0, "1.0": 7.0, "+Inf": 7.0}
    # p50 falls in the (0.01, 0.1] bucket; p95 in (0.1, 1.0].
    p50 = prom.value("histogram_quantile(0.5, app_work_duration_seconds_bucket)")
    p95 = prom.value("histogram_quantile(0.95, app_work_duration_seconds_bucket)")
    assert p50 is not None and 0.01 < p50 <= 0.1
    assert p95 is not None and 0.1 < p95 <= 1.0
    # Gauges and promkit's own self-metrics arrive as well.
    assert prom.value("app_worker_info") == 1.0
    assert prom.value('sum(promkit_exposition_duration_seconds_count)') >= 1


def test_prometheus_negotiates_openmetrics_and_stores_exemplars(uvicorn_app, prometheus):
    app = uvicorn_app(APP)
    started = time.time() - 5
    prom = prometheus([app.address], features=["exemplar-storage"])
    prom.client.wait_for_targets_up(count=1)
    trace_ids = {app.get("/work?d=0.05").json()["trace_id"] for _ in range(3)}

    # promkit's exposition histogram is labelled by the format it rendered:
    # Prometheus asked for OpenMetrics, and never fell back to text.
    prom.wait_for_value('promkit_exposition_duration_seconds_count{format="openmetrics"}',
                        lambda v: v >= 1)
    assert prom.query('promkit_exposition_duration_seconds_count{format="text"}') == []
    prom.wait_for_value('app_requests_total{route="/work"}', _near(3.0))

    # Exemplars only travel in OpenMetrics; the last one of each series is stored.
    def exemplars(expr: str) -> list[dict[str, str]]:
        found = prom.client.query_exemplars(expr, started, time.time() + 5)
        return [e["labels"] for series in found for e in series["exemplars"]]

    deadline = time.monotonic() + 10
    counter_ex: list[dict[str, str]] = []
    bucket_ex: list[dict[str, str]] = []
    while time.monotonic() < deadline and not (counter_ex and bucket_ex):
        counter_ex = exemplars('app_requests_total{route="/work"}')
        bucket_ex = exemplars('app_work_duration_seconds_bucket{route="/work",le="0.1"}')
        time.sleep(0.25)
    assert counter_ex and bucket_ex, "no exemplars stored within 10s"
    assert {e["trace_id"] for e in counter_ex} <= trace_ids
    assert {e["trace_id"] for e in bucket_ex} <= trace_ids


def test_prometheus_config_reload_adds_a_target(uvicorn_app, prometheus):
    from ._servers import prometheus_config

    first = uvicorn_app(APP)
    second = uvicorn_app(APP)
    prom = prometheus([first.address])
    prom.client.wait_for_targets_up(count=1)
    prom.reload(prometheus_config([first.address, second.address]))
    targets = prom.client.wait_for_targets_up(count=2)
    assert {t["labels"]["instance"] for t in targets} == {first.address, second.address}
    prom.wait_for("up == 1", lambda r: len(r) == 2)


# ------------------------------------------------ the other fixtures later issues reuse


def test_rules_fire_and_reach_a_real_alertmanager(prometheus, alertmanager, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "fixture", "rules": [
        {"record": "fixture:one", "expr": "vector(1)"},
        {"alert": "FixtureAlwaysFiring", "expr": "vector(1)", "labels": {"severity": "info"},
         "annotations": {"summary": "fires at once"}},
    ]}]}))
    am = alertmanager()
    prom = prometheus(rule_files=[rules], alertmanagers=[am.address])
    assert prom.wait_for_value("fixture:one", lambda v: v == 1.0) == 1.0
    assert [g["name"] for g in prom.client.rules()] == ["fixture"]
    prom.wait_for('ALERTS{alertname="FixtureAlwaysFiring",alertstate="firing"}')
    alerts = am.wait_for_alerts(alertname="FixtureAlwaysFiring")
    assert alerts[0]["labels"]["severity"] == "info"
    assert alerts[0]["annotations"]["summary"] == "fires at once"


def test_redis_server_fixture(redis_server):
    client = redis_server.client()
    try:
        assert client.ping()
        client.rpush("jobs", "a", "b")
        assert client.llen("jobs") == 2
    finally:
        client.close()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
