"""promkit load: flows, bounds and the breaking point, against a real local app.

The app (uvicorn in a thread on 127.0.0.1) answers after a delay that grows
with the number of requests in flight, and with 500s once too many are in
flight, so the ramp has a breaking point to find. Its delays keep it near 100
requests a second whatever the users, so the client (which shares this process
with the server) stays far from saturating a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from promkit.tools.loadgen import (
    DEMO_FLOWS,
    FlowError,
    LoadConfig,
    LoadError,
    check_loopback,
    load_flows,
    parse_flows,
    percentile,
    render_summary,
    run_load,
)

PER_REQUEST_IN_FLIGHT = 0.01  # seconds of delay per request in flight


class SlowApp:
    """ASGI app: delay = 10 ms x in-flight requests; 500 when ``fail_over`` are in flight.

    With ``cliff`` set the delay is a step instead: ``fast`` seconds while at most
    ``cliff`` requests are in flight, ``slow`` seconds beyond."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self.fail_over: int | None = None
        self.cliff: int | None = None
        self.fast = 0.05
        self.slow = 0.5
        self.polls = 0  # GET /jobs/...: "running" twice, then "done"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.in_flight += 1
        self.requests += 1
        try:
            if self.cliff is not None:
                await asyncio.sleep(self.slow if self.in_flight > self.cliff else self.fast)
            else:
                await asyncio.sleep(PER_REQUEST_IN_FLIGHT * self.in_flight)
            status = 500 if self.fail_over and self.in_flight > self.fail_over else 200
            if scope["path"] == "/jobs" and status == 200:
                status, body = 202, b'{"job_id": "j-42"}'
            elif scope["path"].startswith("/jobs/"):
                self.polls += 1
                body = json.dumps({"seen": scope["path"], "status": "done" if self.polls % 3 == 0
                                   else "running"}).encode()
            else:
                body = b"{}"
        finally:
            self.in_flight -= 1
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(app: Any, lifespan: str = "off") -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # uvicorn binds the port itself: a socket handed in via sockets= misses TCP_NODELAY
    # and every answer waits ~40 ms for a delayed ACK.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False,
                                           lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, str]]:
    app = SlowApp()
    with serving(app, lifespan="on") as url:
        yield app, url


FLOW = parse_flows([{"name": "get", "requests": [{"method": "GET", "path": "/work"}]}])


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


def test_bad_until() -> None:
    for raw, message in (({"until": "done"}, "until"), ({"until": {"s": []}}, "until"),
                         ({"poll_seconds": -1}, "poll_seconds"), ({"max_polls": 0}, "max_polls")):
        with pytest.raises(FlowError, match=message):
            parse_flows([{"name": "x", "requests": [{"path": "/", **raw}]}])


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 95) is None
    assert percentile([3.0], 99) == 3.0


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1/x/",
                                 "http://[::1]:8000", "http://127.5.6.7"])
def test_loopback_accepted(url: str) -> None:
    assert check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "https://example.com",
                                 "http://192.168.1.2", "ftp://127.0.0.1/"])
def test_non_loopback_refused(url: str) -> None:
    with pytest.raises(LoadError):
        check_loopback(url)


def test_allow_remote() -> None:
    assert check_loopback("http://10.0.0.1:8000", allow_remote=True) == "http://10.0.0.1:8000"


@pytest.mark.parametrize("data, message", [
    ([], "non-empty list"),
    ([{"name": "x", "requests": []}], "non-empty list"),
    ([{"name": "x", "requests": [{"path": "nope"}]}], "starting with '/'"),
    ([{"name": "x", "requests": [{"method": "BREW", "path": "/"}]}], "BREW"),
    ([{"name": "x", "weight": -1, "requests": [{"path": "/"}]}], "weight"),
    ([{"name": "x", "requests": [{"path": "/", "expect": [999]}]}], "expect"),
    ([{"name": "x", "requests": [{"path": "/", "bogus": 1}]}], "bogus"),
    ([{"name": "x", "weight": 0, "requests": [{"path": "/"}]}], "weight 0"),
])
def test_bad_flows(data: Any, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        parse_flows(data)


def test_flow_files(tmp_path: Path) -> None:
    assert load_flows("demo") == DEMO_FLOWS
    j = tmp_path / "f.json"
    j.write_text(json.dumps({"flows": [{"name": "a", "requests": [{"path": "/a"}]}]}))
    assert load_flows(str(j))[0].requests[0].path == "/a"
    y = tmp_path / "f.yaml"
    y.write_text("flows:\n  - name: b\n    weight: 2\n    requests:\n      - {method: POST, "
                 "path: /b, json: {x: 1}}\n")
    flow = load_flows(str(y))[0]
    assert (flow.name, flow.weight, flow.requests[0].json) == ("b", 2.0, {"x": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(FlowError, match="does not parse"):
        load_flows(str(bad))
    with pytest.raises(FlowError, match="cannot read"):
        load_flows(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("kwargs", [
    {"users_start": 0}, {"users_start": 5, "users_max": 4}, {"users_factor": 1.0},
    {"step_seconds": 0}, {"max_seconds": -1}, {"max_requests": 0}, {"p95_max_ms": 0},
    {"error_ratio_max": 2},
])
def test_bad_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LoadError):
        LoadConfig(url="http://127.0.0.1:1", **kwargs).validate()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promkit", "load", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_refuses_remote_url() -> None:
    proc = _cli("--url", "http://192.0.2.1:8000")
    assert proc.returncode == 2
    assert "loopback" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_json_run(slow_app: tuple[SlowApp, str], tmp_path: Path) -> None:
    _, url = slow_app
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps([{"name": "get", "requests": [{"path": "/"}]}]))
    chart = tmp_path / "load.svg"
    proc = _cli("--url", url, "--flows", str(flows), "--users-max", "4", "--step-seconds",
                "0.3", "--max-seconds", "5", "--p95-max-ms", "10000", "--json", "--chart",
                str(chart))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "promkit.load/v1"
    assert [s["users"] for s in data["steps"]] == [1, 2, 4]
    assert data["breaking_point"] is None and data["stop_reason"] == "users_max"
    assert all(isinstance(s["client_cpu_seconds"], float) and s["client_bound"] is False
               for s in data["steps"])
    assert data["limits"]["client_cpu_max"] == 0.85
    import xml.etree.ElementTree as ET

    svg = ET.fromstring(chart.read_text())
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2  # req/s and p95; no server view
    assert all(len(line.get("points", "").split()) == 3 for line in lines)
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_cli_table_run(slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    proc = _cli("--url", url, "--flows", "demo", "--users-max", "2", "--step-seconds", "0.3",
                "--max-seconds", "5", "--error-ratio-max", "1")
    assert proc.returncode == 0, proc.stderr
    assert "users" in proc.stdout and "breaking point" in proc.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_unreachable_url_is_one_line_exit_2() -> None:
    port = _closed_port()
    started = time.monotonic()
    proc = _cli("--url", f"http://127.0.0.1:{port}", "--max-seconds", "30")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no table: nothing was ramped
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "refused" in lines[0]
    assert time.monotonic() - started < 20


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


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:99999", "port"),
    ("http://127.0.0.1:8000/?x=1", "query"),
])
def test_bad_urls_named(url: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        check_loopback(url)


@pytest.mark.parametrize("kwargs, message", [
    ({"users_factor": float("nan")}, "--users-factor must be a finite number"),
    ({"p95_max_ms": float("inf")}, "--p95-max-ms must be a finite number"),
    ({"think_seconds": float("nan")}, "--think-seconds"),
    ({"error_ratio_max": -0.1}, r"--error-ratio-max must be in \[0, 1\]"),
    ({"client_cpu_max": 0}, "--client-cpu-max"),
])
def test_bad_limits_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadError, match=message):
        LoadConfig(url="http://127.0.0.1:1", **kwargs).validate()


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


# -- the lean HTTP/1.1 client ------------------------------------------------------------


def _raw_server_run(answers: list[bytes], calls: list[tuple[str, bytes]], *,
                    close_after: int | None = None, hang: bool = False) -> Any:
    """Run ``scenario(target)`` against a raw server that answers each request on a
    connection with the next of ``answers`` and records (request line, body)."""
    from promkit.tools._http1 import Target

    async def run(scenario: Any) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served = 0
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    length = next((int(v) for n, _, v in (x.partition(b":") for x in lines)
                                   if n.lower() == b"content-length"), 0)
                    body = await reader.readexactly(length) if length else b""
                    calls.append((lines[0].decode(), body))
                    if hang:
                        await asyncio.Event().wait()
                    writer.write(answers[min(len(calls), len(answers)) - 1])
                    await writer.drain()
                    served += 1
                    if close_after is not None and served >= close_after:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await scenario(Target.from_url(f"http://127.0.0.1:{port}/base"))
        finally:
            server.close()

    return run


def test_http1_keep_alive_lengths_chunked_and_1xx() -> None:
    from promkit.tools._http1 import Connection

    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]
    calls: list[tuple[str, bytes]] = []

    async def scenario(target: Any) -> list[Any]:
        conn = Connection(target, 5)
        out = [await conn.request("GET", "/a"),
               await conn.request("POST", "/jobs", b'{"pages": 2}'),
               await conn.request("DELETE", "/x y/\u00e9"),
               await conn.request("GET", "/gone")]
        conn.close()
        return out

    got = asyncio.run(_raw_server_run(answers, calls)(scenario))
    assert [(r.status, r.body) for r in got] == [
        (200, b"{}"), (201, b'{"a": 1}'), (204, b""), (404, b"")]
    assert calls == [("GET /base/a HTTP/1.1", b""), ("POST /base/jobs HTTP/1.1", b'{"pages": 2}'),
                     ("DELETE /base/x%20y/%C3%A9 HTTP/1.1", b""),
                     ("GET /base/gone HTTP/1.1", b"")]


def test_http1_reopens_a_connection_the_server_closed_and_reads_to_eof() -> None:
    from promkit.tools._http1 import Connection

    # The server closes after each answer without saying so: the next request on the
    # kept connection fails before any answer byte and is sent again on a new one.
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.0 200 OK\r\n\r\nuntil-eof"]
    calls: list[tuple[str, bytes]] = []

    async def scenario(target: Any) -> list[Any]:
        conn = Connection(target, 5)
        first = await conn.request("GET", "/1")
        await asyncio.sleep(0)  # let the server's close arrive
        second = await conn.request("GET", "/2")
        conn.close()
        return [first, second]

    got = asyncio.run(_raw_server_run(answers, calls, close_after=1)(scenario))
    assert [(r.status, r.body) for r in got] == [(200, b"ok"), (200, b"until-eof")]
    assert [c[0] for c in calls] == ["GET /base/1 HTTP/1.1", "GET /base/2 HTTP/1.1"]


def test_http1_timeout_and_garbage_are_errors() -> None:
    from promkit.tools._http1 import Connection, HTTPError

    calls: list[tuple[str, bytes]] = []

    async def timeout(target: Any) -> str:
        with pytest.raises(HTTPError) as info:
            await Connection(target, 0.2).request("GET", "/slow")
        return str(info.value)

    assert "within 0.2 s" in asyncio.run(_raw_server_run([b""], calls, hang=True)(timeout))

    async def garbage(target: Any) -> str:
        with pytest.raises(HTTPError) as info:
            await Connection(target, 5).request("GET", "/")
        return str(info.value)

    assert "not an HTTP/1.x answer" in asyncio.run(
        _raw_server_run([b"SSH-2.0-OpenSSH\r\n\r\n"], calls)(garbage))


# -- the server's own view (--prometheus) --------------------------------------------------


class FakePrometheus:
    """Unit-test stand-in for Prometheus's /api/v1/query: the HTTP series exist, and
    the service's p95 is ``p95s[n]`` at the n-th step (the last value repeats)."""

    def __init__(self, p95s: list[float], *, series: bool = True) -> None:
        self.p95s = p95s
        self.series = series
        self.steps = 0
        self.queries: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        import urllib.parse

        expr = urllib.parse.parse_qs(scope["query_string"].decode())["query"][0]
        self.queries.append(expr)
        value: float | None
        if expr.startswith("count("):
            value = 3.0 if self.series else None
        elif expr.startswith("histogram_quantile"):
            value = self.p95s[min(self.steps, len(self.p95s) - 1)]
            self.steps += 1
        elif "queue_depth" in expr:
            value = 7.0
        elif "oldest" in expr:
            value = 1.5
        elif expr.startswith("(sum"):
            value = 0.0
        else:
            value = 42.0
        result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        body = json.dumps({"status": "success",
                           "data": {"resultType": "vector", "result": result}}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


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
    config = LoadConfig(url=url, flows=FLOW, prometheus=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(LoadError, match="cannot reach Prometheus"):
        asyncio.run(run_load(config))


def test_cli_refuses_remote_prometheus() -> None:
    proc = _cli("--url", "http://127.0.0.1:1", "--prometheus", "http://192.0.2.1:9090")
    assert proc.returncode == 2
    assert "--prometheus 'http://192.0.2.1:9090' is not a loopback" in proc.stderr


def test_chart_marks_the_breaking_point_and_the_server_view(
        slow_app: tuple[SlowApp, str], tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from promkit.tools.loadgen import render_chart

    _, url = slow_app
    with serving(FakePrometheus([0.01, 0.9])) as prom:
        config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=8, step_seconds=0.3,
                            max_seconds=10, p95_max_ms=200, prometheus=prom)
        result = asyncio.run(run_load(config, cpu_clock=lambda: 0.0))
    text = render_chart(result)
    svg = ET.fromstring(text)
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 3
    assert "breaking point: 2 users" in text and "server (dashed)" in text


def test_cli_chart_folder_checked_first(tmp_path: Path) -> None:
    proc = _cli("--url", "http://127.0.0.1:1", "--chart", str(tmp_path / "no" / "x.svg"))
    assert proc.returncode == 2
    assert "--chart" in proc.stderr and "does not exist" in proc.stderr
