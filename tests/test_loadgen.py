"""promkit load: the run itself — the ramp, its bounds and the breaking point, flows with
variables and polling, the client watching its own CPU, the live progress line — against
a real local app (tests/apps/load_target.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promkit.tools.loadgen import LoadConfig, LoadError, parse_flows, render_summary, run_load
from tests.apps.load_target import FLOW, SlowApp, slow_target


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, str]]:
    with slow_target() as target:
        yield target


def test_breaking_point_found_by_p95(slow_app: tuple[SlowApp, str]) -> None:
    app, url = slow_app
    # Up to 4 requests in flight take 50 ms, more take 500 ms: 1, 2 and 4 users stay
    # 150 ms under a 200 ms limit and 8 users are 300 ms over it, whatever the
    # machine's load. 4 users never have more than 4 requests in flight.
    app.cliff = 4
    config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=64, step_seconds=0.6,
                        max_seconds=30, p95_max_ms=200, error_ratio_max=0.5, seed=1)
    result = asyncio.run(run_load(config))
    text = render_summary(result)
    assert result.stop_reason == "breaking_point", text
    assert result.breaking_point is not None, text
    assert result.breaking_point.users == 8, text
    assert [s.users for s in result.steps] == [1, 2, 4, 8], text
    assert any("p95" in why for why in result.breaking_point.breached)
    assert all(not s.breached for s in result.steps[:-1])
    assert not any(s.client_bound for s in result.steps), text
    data = result.to_dict()
    assert data["breaking_point"]["users"] == 8
    assert data["max_users_ok"] == 4
    assert data["total_requests"] == sum(s["requests"] for s in data["steps"])
    assert all(0 <= s["client_cpu_ratio"] < 0.85 and s["client_bound"] is False
               for s in data["steps"])
    assert "breaking point: 8 concurrent users" in text
    assert "p95 ms" in text and "client cpu %" in text


def test_breaking_point_found_by_error_ratio(slow_app: tuple[SlowApp, str]) -> None:
    app, url = slow_app
    app.fail_over = 3
    config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=32, step_seconds=0.5,
                        max_seconds=20, p95_max_ms=10_000, error_ratio_max=0.05)
    result = asyncio.run(run_load(config))
    assert result.breaking_point is not None, render_summary(result)
    assert result.breaking_point.users >= 4
    assert any("error ratio" in why for why in result.breaking_point.breached)


def test_not_reached_when_users_max_holds(slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=2, step_seconds=0.3,
                        max_seconds=20, p95_max_ms=1000)
    result = asyncio.run(run_load(config))
    assert result.breaking_point is None
    assert result.stop_reason == "users_max"
    assert [s.users for s in result.steps] == [1, 2]
    assert "breaking point: not reached" in render_summary(result)


def test_time_bound_holds(slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=64, step_seconds=0.4,
                        max_seconds=1.0, p95_max_ms=10_000)
    started = time.monotonic()
    result = asyncio.run(run_load(config))
    assert time.monotonic() - started < 2.5
    assert result.stop_reason == "max_seconds"
    assert result.breaking_point is None
    assert result.elapsed < 2.0


def test_request_bound_holds(slow_app: tuple[SlowApp, str]) -> None:
    app, url = slow_app
    config = LoadConfig(url=url, flows=FLOW, users_start=4, users_max=64, step_seconds=5,
                        max_seconds=20, max_requests=50, p95_max_ms=10_000)
    result = asyncio.run(run_load(config))
    assert result.stop_reason == "max_requests"
    assert app.requests <= 50
    assert result.total_requests <= 50


def test_flow_variables_and_expectations(slow_app: tuple[SlowApp, str]) -> None:
    _app, url = slow_app
    flows = parse_flows({"flows": [{"name": "submit", "requests": [
        {"method": "POST", "path": "/jobs", "json": {"pages": 1}, "expect": [202],
         "save": {"job_id": "job_id"}},
        {"method": "GET", "path": "/jobs/{job_id}"}]}]})
    config = LoadConfig(url=url, flows=flows, users_start=1, users_max=1, step_seconds=0.3,
                        max_seconds=5)
    result = asyncio.run(run_load(config))
    assert result.total_requests >= 2
    assert sum(s.errors for s in result.steps) == 0


def test_flow_polls_until_done_and_reports_flow_time(slow_app: tuple[SlowApp, str]) -> None:
    app, url = slow_app
    flows = parse_flows({"flows": [
        {"name": "submit", "requests": [
            {"method": "POST", "path": "/jobs", "json": {"pages": 1}, "expect": [202],
             "save": {"job_id": "job_id"}},
            {"method": "GET", "path": "/jobs/{job_id}", "until": {"status": "done"},
             "poll_seconds": 0.01}]},
        {"name": "impatient", "weight": 0.5, "requests": [
            {"method": "GET", "path": "/jobs/j-1", "until": {"status": ["never"]},
             "poll_seconds": 0, "max_polls": 2}]}]})
    config = LoadConfig(url=url, flows=flows, users_start=1, users_max=1, step_seconds=1.0,
                        max_seconds=5, seed=3)
    result = asyncio.run(run_load(config))
    step = result.steps[0]
    done = step.flow_times["submit"]
    assert done and step.errors == 0
    # each submit flow is a POST and (usually three) polls: longer than any one request
    assert min(done) > min(step.latencies)
    assert step.flow_failures.get("impatient", 0) >= 1
    assert "impatient" not in step.flow_times
    assert app.polls >= 3
    data = result.to_dict()["steps"][0]
    assert data["flows"]["submit"]["completed"] == len(done)
    assert data["flows"]["submit"]["p95_seconds"] >= data["flows"]["submit"]["p50_seconds"]
    assert data["flows"]["impatient"]["failed"] >= 1
    assert data["flow_p95_seconds"] is not None
    assert "flow p95 ms" in render_summary(result)


def test_unreachable_timeout_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from promkit.tools import loadgen

    async def never(*_args: Any, **_kwargs: Any) -> Any:
        await asyncio.Event().wait()

    monkeypatch.setattr(loadgen.asyncio, "open_connection", never)
    with pytest.raises(LoadError, match=r"127\.0\.0\.1:9 timed out after 0\.05 s"):
        asyncio.run(loadgen.check_reachable("http://127.0.0.1:9", 0.05))


def test_target_that_hangs_up_is_refused_before_any_step() -> None:
    async def scenario() -> str:
        async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            config = LoadConfig(url=f"http://127.0.0.1:{port}", flows=FLOW, max_seconds=10)
            with pytest.raises(LoadError) as info:
                await run_load(config)
            return str(info.value)
        finally:
            server.close()
            await server.wait_closed()

    message = asyncio.run(scenario())
    assert "first request (GET /) failed" in message


def test_progress_line_shows_live_rate() -> None:
    from promkit.tools.loadgen import StepResult, _Run, progress_line

    config = LoadConfig(url="http://127.0.0.1:1", users_max=8, max_seconds=60)
    run = _Run(config)
    run.issued = 130
    run.step = StepResult(4, started=100.0, latencies=[0.01] * 95 + [0.2] * 5, errors=3)
    line = progress_line(run, 2, 12.0, now=102.0)
    assert "users 4/8" in line
    assert "50 req/s" in line  # 100 requests in the 2 s the step has run
    assert "p95 10.0 ms" in line
    assert "err 3 (3.0%)" in line


def test_client_bound_step_is_never_the_breaking_point(
        slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    # A client clock that burns 95% of a core: every step is client-bound. The
    # impossible p95 limit breaks the first step, and it must not be reported.
    config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=8, step_seconds=0.3,
                        max_seconds=10, p95_max_ms=0.001)
    result = asyncio.run(run_load(config, cpu_clock=lambda: time.perf_counter() * 0.95))
    text = render_summary(result)
    assert result.breaking_point is None, text
    assert result.stop_reason == "client_bound"
    assert [s.users for s in result.steps] == [1]
    step = result.steps[0]
    assert step.client_bound and step.breached
    assert step.client_cpu_ratio == pytest.approx(0.95, abs=0.01)
    assert "CLIENT-BOUND" in text and "breaking point: not reached (the client saturated" in text
    data = result.to_dict()
    assert data["breaking_point"] is None and data["client_bound_at"] == 1
    assert data["max_users_ok"] is None
    assert data["steps"][0]["client_bound"] is True
    assert data["steps"][0]["client_cpu_seconds"] > 0
