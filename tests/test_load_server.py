"""promkit load's server view (--prometheus): the service's own metrics break a step where
the client saw nothing or was saturated, and a Prometheus without the service is refused.
Against a real local app and a fake Prometheus (tests/apps/load_target.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from promkit.tools.loadgen import LoadConfig, LoadError, render_summary, run_load
from tests.apps.load_target import FLOW, FakePrometheus, SlowApp, closed_port, serving, slow_target


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, str]]:
    with slow_target() as target:
        yield target


def test_server_view_breaks_where_the_client_saw_nothing(
        slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    fake = FakePrometheus([0.01, 0.9])
    with serving(fake) as prom:
        config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=8, step_seconds=0.3,
                            max_seconds=10, p95_max_ms=200, prometheus=prom,
                            prometheus_job="api")
        result = asyncio.run(run_load(config, cpu_clock=lambda: 0.0))
    text = render_summary(result)
    assert result.breaking_point is not None, text
    assert result.breaking_point.users == 2
    assert not result.breaking_point.breached  # the client's p95 was ~20 ms
    assert result.breaking_point.server_breached == ["p95 900 ms > 200 ms"]
    assert "breaking point: 2 concurrent users (server: p95 900 ms > 200 ms)" in text
    assert "srv p95 ms" in text and "SERVER BREAKS" in text
    data = result.to_dict()
    first = data["steps"][0]["server"]
    assert first["p95_seconds"] == 0.01 and first["queue_depth_max"] == 7.0
    assert first["queue_oldest_age_seconds_max"] == 1.5 and first["error_ratio"] == 0.0
    assert data["breaking_point"]["server_reasons"] == ["p95 900 ms > 200 ms"]
    assert all('job="api"' in q for q in fake.queries if "{" in q)


def test_server_view_breaks_even_when_the_client_is_saturated(
        slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    with serving(FakePrometheus([0.9])) as prom:
        config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=8, step_seconds=0.3,
                            max_seconds=10, p95_max_ms=0.001, prometheus=prom)
        result = asyncio.run(run_load(config, cpu_clock=lambda: time.perf_counter() * 0.95))
    bp = result.breaking_point
    assert bp is not None and bp.users == 1 and bp.client_bound
    # the client's own breach is left out: it was saturated
    assert bp.reasons() == ["server: p95 900 ms > 0.001 ms"]


def test_prometheus_without_the_service_is_refused(slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    with serving(FakePrometheus([0.1], series=False)) as prom:
        config = LoadConfig(url=url, flows=FLOW, prometheus=prom, prometheus_job="nope")
        with pytest.raises(LoadError, match="no http_server_request_duration_seconds series "
                                            "with job='nope'"):
            asyncio.run(run_load(config))
    config = LoadConfig(url=url, flows=FLOW, prometheus=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(LoadError, match="cannot reach Prometheus"):
        asyncio.run(run_load(config))
