"""``promkit load``: find how many concurrent users break a service.

Virtual users (asyncio tasks, each with its own keep-alive HTTP/1.1 connection from
the lean client in ``_http1``) repeat flows — short request sequences picked by
weight — while the number of users ramps up step by step (``users_start``, times
``users_factor`` each step, up to ``users_max``). After each step the step's latency
percentiles and error ratio are checked: the first step whose p95 exceeds
``p95_max_ms`` or whose error ratio exceeds ``error_ratio_max`` is the breaking
point, and the run stops. A run is bounded in wall time (``max_seconds``) and in
requests (``max_requests``), refuses any URL that is not loopback by default, and
refuses an unreachable one before the first step.

The client watches itself: each step records the CPU of the client's process tree;
a step over ``client_cpu_max`` of a core per client process is client-bound, its
figures are the client's, and it is never the breaking point. With ``prometheus``
set, each step also reads the service's own view from Prometheus and a breach in
either view breaks the step (the server's even when the client was saturated).

Flows are data (:class:`Flow`, :class:`FlowRequest`); the ``demo`` set
drives the demo API, and a JSON or YAML file can define others::

    {"flows": [
      {"name": "browse", "weight": 3, "requests": [{"method": "GET", "path": "/recipes"}]},
      {"name": "submit", "weight": 1, "requests": [
        {"method": "POST", "path": "/jobs", "json": {"pages": 2}, "expect": [202],
         "save": {"job_id": "job_id"}},
        {"method": "GET", "path": "/jobs/{job_id}", "until": {"status": ["done"]}}]}]}

A request counts as an error when it fails to complete (connection error,
timeout) or when its status is not expected: ``expect`` lists the statuses
that count as success; without it, any status below 400 does. A request with
``until`` is polled until its JSON answer matches; each step reports the
end-to-end time of the flows completed in it.

This module is the run itself (virtual users, the ramp, the live progress line) and
the tool's public names; the rest is in private modules of one concept each: flows
(``_load_flows``), the config and loopback check (``_load_config``), step results and
their judging (``_load_results``), the server view (``_load_server``), the table and
the chart (``_load_render``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TextIO

from promkit.tools._http1 import Connection, HTTPError, Target
from promkit.tools._load_config import LoadConfig, check_loopback
from promkit.tools._load_flows import (
    DEMO_FLOWS,
    Flow,
    FlowError,
    FlowRequest,
    LoadError,
    load_flows,
    parse_flows,
)
from promkit.tools._load_render import render_chart, render_summary
from promkit.tools._load_results import (
    LoadResult,
    StepResult,
    judge,
    judge_server,
    limit_ms,
    percentile,
)
from promkit.tools._load_server import ServerView, prometheus_client

__all__ = [
    "DEMO_FLOWS",
    "Flow",
    "FlowError",
    "FlowRequest",
    "LoadConfig",
    "LoadError",
    "LoadResult",
    "ServerView",
    "StepResult",
    "check_loopback",
    "load_flows",
    "parse_flows",
    "percentile",
    "render_chart",
    "render_summary",
    "run_load",
]


class _Run:
    """Shared state of one run: the current step, the request budget, the stop flag."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.reason = ""
        self.issued = 0
        self.step = StepResult(config.users_start)
        self.in_flight = 0

    def take(self) -> bool:
        if self.issued >= self.config.max_requests:
            self.halt("max_requests")
            return False
        self.issued += 1
        return True

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


def _body(req: FlowRequest) -> bytes | None:
    return None if req.json is None else json.dumps(req.json).encode()


async def _user(run: _Run, target: Target, index: int) -> None:
    config = run.config
    seed = None if config.seed is None else config.seed * 100_003 + index
    rng = random.Random(seed)
    weights = [f.weight for f in config.flows]
    bodies = {id(req): _body(req) for flow in config.flows for req in flow.requests}
    conn = Connection(target, min(config.timeout, config.max_seconds))
    try:
        while not run.stop.is_set():
            flow = rng.choices(config.flows, weights)[0]
            variables: dict[str, str] = {}
            flow_started = time.perf_counter()
            completed = True
            for req in flow.requests:
                polls = 0
                while True:
                    if run.stop.is_set() or not run.take():
                        return
                    try:
                        path = req.path.format_map(variables) if variables else req.path
                    except (KeyError, ValueError, IndexError):
                        path = req.path
                    started = time.perf_counter()
                    ok = False
                    body: Any = None
                    run.in_flight += 1
                    try:
                        response = await conn.request(req.method, path, bodies[id(req)])
                        ok = req.ok(response.status)
                        if ok and (req.save or req.until):
                            with contextlib.suppress(ValueError):
                                body = json.loads(response.body)
                    except HTTPError:
                        ok = False
                    finally:
                        run.in_flight -= 1
                    # Count into the step the request finished in (a slow request that
                    # spans a step boundary is latency of the busier step).
                    finished = run.step
                    finished.latencies.append(time.perf_counter() - started)
                    if not ok:
                        finished.errors += 1
                        completed = False
                        break
                    polls += 1
                    if not req.until or req.reached(body):
                        break
                    if polls >= req.max_polls:
                        completed = False
                        break
                    await asyncio.sleep(req.poll_seconds)
                if not completed:
                    break
                if isinstance(body, dict):
                    for var, key in req.save:
                        if key in body:
                            variables[var] = str(body[key])
            step = run.step
            if completed:
                step.flow_times.setdefault(flow.name, []).append(
                    time.perf_counter() - flow_started)
            else:
                step.flow_failures[flow.name] = step.flow_failures.get(flow.name, 0) + 1
            if config.think_seconds:
                await asyncio.sleep(config.think_seconds * rng.uniform(0.5, 1.5))
    finally:
        conn.close()


Progress = Callable[[_Run, int, float], None]
CpuClock = Callable[[], float]


def client_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its reaped children."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


async def check_reachable(url: str, timeout: float) -> None:
    """LoadError naming the refused, timed-out or unresolvable connection to ``url``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        raise LoadError(f"cannot reach --url {url}: the connection to {where} timed out "
                        f"after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise LoadError(f"cannot reach --url {url}: the connection to {where} was refused "
                        "(is the service running?)") from None
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise LoadError(f"cannot reach --url {url}: connecting to {where} failed: "
                        f"{why}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def run_load(config: LoadConfig, *, progress: Progress | None = None,
                   cpu_clock: CpuClock = client_cpu_seconds) -> LoadResult:
    """Ramp users until a threshold breaks, ``users_max`` is done, or a bound is hit.

    LoadError before any step when the limits are bad or the service cannot be reached.
    ``cpu_clock`` gives the client's CPU seconds so far (its whole process tree)."""
    config.validate()
    await check_reachable(config.url, min(config.timeout, 5.0))
    prometheus = await asyncio.to_thread(prometheus_client, config)
    target = Target.from_url(config.url)
    run = _Run(config)
    begin = time.perf_counter()
    deadline = begin + config.max_seconds
    steps: list[StepResult] = []
    breaking: StepResult | None = None
    tasks: list[asyncio.Task[None]] = []
    ticker: asyncio.Task[None] | None = None
    # One request before the clock starts: the first request pays for lazy imports
    # and the like, which is not the service's latency. A service that cannot answer
    # it is not worth ramping against.
    if run.take():
        warm = Connection(target, min(config.timeout, config.max_seconds))
        try:
            await warm.request("GET", "/")
        except HTTPError as exc:
            raise LoadError(f"cannot reach --url {config.url}: the first request "
                            f"(GET /) failed: {exc}") from None
        finally:
            warm.close()
    if progress is not None:
        ticker = asyncio.create_task(_tick(run, progress, begin, lambda: len(steps)))
    users = config.users_start
    try:
        while True:
            step = StepResult(users)
            run.step = step
            while len(tasks) < users:
                tasks.append(asyncio.create_task(_user(run, target, len(tasks))))
            cpu_start = cpu_clock()
            step_start = step.started = time.perf_counter()
            end = min(step_start + config.step_seconds, deadline)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.stop.wait(), max(0.0, end - step_start))
            now = time.perf_counter()
            step.seconds = now - step_start
            step.client_cpu_seconds = max(0.0, cpu_clock() - cpu_start)
            step.client_bound = step.client_cpu_ratio > config.client_cpu_max
            steps.append(step)
            if now >= deadline and not run.stop.is_set():
                run.halt("max_seconds")
            if run.stop.is_set():
                # A step cut short by a bound is judged only when it ran long
                # enough to say anything.
                step.complete = step.seconds >= config.step_seconds * 0.999
                if step.complete or step.requests >= config.min_samples:
                    judge(step, config, run.in_flight)
                    await judge_server(step, config, prometheus)
                if step.breaks:
                    breaking = step
                break
            judge(step, config, run.in_flight)
            await judge_server(step, config, prometheus)
            if step.breaks:
                breaking = step
                run.halt("breaking_point")
                break
            if step.client_bound:
                # More users would only measure the client harder; what it saw at
                # this step is not the service's breaking point (unless the service's
                # own metrics say so, above).
                run.halt("client_bound")
                break
            if users >= config.users_max:
                run.halt("users_max")
                break
            users = min(config.users_max, max(users + 1, math.ceil(users *
                                                                    config.users_factor)))
    finally:
        run.halt(run.reason or "interrupted")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
    reason = run.reason
    if breaking is not None:
        reason = "breaking_point"
    return LoadResult(config, steps, reason, time.perf_counter() - begin, breaking)



async def _tick(run: _Run, progress: Progress, begin: float, done: Callable[[], int]) -> None:
    while True:
        progress(run, done(), time.perf_counter() - begin)
        await asyncio.sleep(0.25)


def progress_line(run: _Run, steps_done: int, elapsed: float,
                  now: float | None = None) -> str:
    """The live line: step, users running, requests, req/s, p95 and errors of the step so far."""
    c = run.config
    step = run.step
    now = time.perf_counter() if now is None else now
    frac = min(1.0, elapsed / c.max_seconds)
    width = 20
    bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
    q = step.quantiles()["p95"]
    p95 = f"{limit_ms(q)} ms" if q is not None else "–"
    return (f"[{bar}] step {steps_done + 1} users {step.users}/{c.users_max} | "
            f"{run.issued} req | {step.live_rps(now):.0f} req/s | p95 {p95} | "
            f"err {step.errors} ({step.error_ratio:.1%}) | {elapsed:.0f}/{c.max_seconds:.0f} s")


def progress_bar(stream: TextIO) -> Progress:
    """A one-line progress display redrawn in place on ``stream`` (a terminal)."""
    def show(run: _Run, steps_done: int, elapsed: float) -> None:
        stream.write("\r" + progress_line(run, steps_done, elapsed)[:150] + "\033[K")
        stream.flush()
    return show



def run_cli(config: LoadConfig, *, show_progress: bool | None = None) -> LoadResult:
    """Run with a progress bar on stderr when it is a terminal."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    progress = progress_bar(sys.stderr) if show_progress else None
    try:
        return asyncio.run(run_load(config, progress=progress))
    finally:
        if show_progress:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
