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
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import random
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from promkit.tools._http1 import Connection, HTTPError, Target

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

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class LoadError(Exception):
    """A load run cannot start (bad URL, non-loopback target, bad limits)."""


class FlowError(LoadError):
    """A flow definition is invalid; the message names the flow and request."""


@dataclass(frozen=True)
class FlowRequest:
    method: str
    path: str
    json: Any = None
    expect: tuple[int, ...] = ()
    save: tuple[tuple[str, str], ...] = ()
    """``(variable, response JSON key)`` pairs; later paths use ``{variable}``."""
    until: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``(response JSON key, accepted values)``: repeat the request (a poll) until every
    key has one of its values, at most ``max_polls`` times, ``poll_seconds`` apart."""
    poll_seconds: float = 0.2
    max_polls: int = 50

    def ok(self, status: int) -> bool:
        return status in self.expect if self.expect else status < 400

    def reached(self, body: Any) -> bool:
        """Whether an answer's JSON body ends the polling."""
        return isinstance(body, dict) and all(
            str(body.get(key)) in values for key, values in self.until)


@dataclass(frozen=True)
class Flow:
    name: str
    weight: float
    requests: tuple[FlowRequest, ...]


DEMO_FLOWS: tuple[Flow, ...] = (
    Flow("browse", 4, (FlowRequest("GET", "/recipes"),
                       FlowRequest("GET", "/recipes?q=soup"))),
    Flow("login", 2, (FlowRequest("POST", "/login",
                                  {"username": "demo", "password": "demo-password"}),)),
    Flow("bad_login", 0.5, (FlowRequest("POST", "/login",
                                        {"username": "demo", "password": "wrong"},
                                        expect=(401,)),)),
    Flow("submit_job", 2, (FlowRequest("POST", "/jobs", {"pages": 2}, expect=(202,),
                                       save=(("job_id", "job_id"),)),
                           FlowRequest("GET", "/jobs/{job_id}",
                                       until=(("status", ("done", "failed")),)))),
    Flow("assist", 1, (FlowRequest("POST", "/assist", {"prompt": "Suggest a dinner."}),)),
)
"""The demo API's flows (demo/api.py): recipes, logins (one deliberately wrong), a job
submitted then polled until the worker finished it, and an LLM-backed call."""


def parse_flows(data: Any, where: str = "flows") -> tuple[Flow, ...]:
    """Flows from ``{"flows": [...]}`` or a bare list, validated."""
    if isinstance(data, Mapping):
        data = data.get("flows")
    if not isinstance(data, list) or not data:
        raise FlowError(f"{where}: expected a non-empty list of flows (or {{'flows': [...]}})")
    flows = []
    for i, raw in enumerate(data):
        at = f"{where}: flow {i}"
        if not isinstance(raw, Mapping):
            raise FlowError(f"{at}: must be a mapping with name, weight, requests")
        unknown = set(raw) - {"name", "weight", "requests"}
        if unknown:
            raise FlowError(f"{at}: unknown field(s) {sorted(unknown)}")
        name = str(raw.get("name") or f"flow{i}")
        at = f"{where}: flow {name!r}"
        weight = raw.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
                math.isfinite(weight) and weight >= 0):
            raise FlowError(f"{at}: weight must be a number >= 0, not {weight!r}")
        reqs = raw.get("requests")
        if not isinstance(reqs, list) or not reqs:
            raise FlowError(f"{at}: requests must be a non-empty list")
        flows.append(Flow(name, float(weight), tuple(_request(r, f"{at} request {j}")
                                                     for j, r in enumerate(reqs))))
    if not any(f.weight > 0 for f in flows):
        raise FlowError(f"{where}: every flow has weight 0")
    return tuple(flows)


def _request(raw: Any, at: str) -> FlowRequest:
    if not isinstance(raw, Mapping):
        raise FlowError(f"{at}: must be a mapping with method and path")
    unknown = set(raw) - {"method", "path", "json", "expect", "save", "until",
                          "poll_seconds", "max_polls"}
    if unknown:
        raise FlowError(f"{at}: unknown field(s) {sorted(unknown)}")
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        raise FlowError(f"{at}: method {method!r} is not one of {sorted(METHODS)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise FlowError(f"{at}: path must be a string starting with '/', not {path!r}")
    expect = raw.get("expect", [])
    if not isinstance(expect, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
        raise FlowError(f"{at}: expect must be a list of HTTP statuses, not {expect!r}")
    save = raw.get("save", {})
    if not isinstance(save, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in save.items()):
        raise FlowError(f"{at}: save must map variable names to response JSON keys")
    until = raw.get("until", {})
    if not isinstance(until, Mapping) or not all(
            isinstance(k, str) and (isinstance(v, str) or (
                isinstance(v, list) and v and all(isinstance(x, str) for x in v)))
            for k, v in until.items()):
        raise FlowError(f"{at}: until must map response JSON keys to a value or a list of "
                        f"values, not {until!r}")
    poll_seconds = raw.get("poll_seconds", 0.2)
    if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float)) or not (
            math.isfinite(poll_seconds) and 0 <= poll_seconds <= 60):
        raise FlowError(f"{at}: poll_seconds must be a number in [0, 60], not {poll_seconds!r}")
    max_polls = raw.get("max_polls", 50)
    if isinstance(max_polls, bool) or not isinstance(max_polls, int) or not (
            1 <= max_polls <= 10_000):
        raise FlowError(f"{at}: max_polls must be an integer in [1, 10000], not {max_polls!r}")
    return FlowRequest(method, path, raw.get("json"), tuple(expect), tuple(save.items()),
                       tuple((k, (v,) if isinstance(v, str) else tuple(v))
                             for k, v in until.items()), float(poll_seconds), max_polls)


def load_flows(spec: str) -> tuple[Flow, ...]:
    """``"demo"`` or the path of a JSON or YAML flow file."""
    if spec == "demo":
        return DEMO_FLOWS
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"cannot read --flows {spec!r}: {exc.strerror or exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FlowError(f"--flows {spec!r} does not parse: {first}") from None
    return parse_flows(data, spec)


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


def check_loopback(url: str, *, allow_remote: bool = False, option: str = "--url") -> str:
    """The URL without a trailing slash; LoadError if it is not http(s) or not loopback."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"{option} {url!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise LoadError(f"{option} {url!r} has a port outside 0-65535 or not a number") from None
    if parts.query or parts.fragment:
        raise LoadError(f"{option} {url!r} has a query or fragment; give the service's base URL")
    if not allow_remote and not _is_loopback_host(parts.hostname):
        raise LoadError(f"{option} {url!r} is not a loopback address (127.0.0.0/8, ::1, "
                        "localhost); load tests from this tool only hit loopback unless you "
                        "pass --allow-remote for a service you own")
    return url.rstrip("/")


@dataclass(frozen=True)
class LoadConfig:
    url: str
    flows: tuple[Flow, ...] = DEMO_FLOWS
    users_start: int = 1
    users_max: int = 64
    users_factor: float = 2.0
    step_seconds: float = 10.0
    max_seconds: float = 120.0
    max_requests: int = 100_000
    p95_max_ms: float = 500.0
    error_ratio_max: float = 0.05
    timeout: float = 10.0
    think_seconds: float = 0.0
    min_samples: int = 5
    seed: int | None = None
    prometheus: str | None = None
    """Prometheus base URL: each step also reads the service's own view from it."""
    prometheus_job: str | None = None
    """Only series with this ``job`` label (as ``promkit report --service``)."""
    client_cpu_max: float = 0.85
    """A step whose client used more than this share of one core (per client process)
    is client-bound: its figures measure the load generator, not the service."""

    def validate(self) -> None:
        """LoadError naming the first bad limit (NaN and infinities are refused)."""
        for name, value in (("--users-factor", self.users_factor),
                            ("--step-seconds", self.step_seconds),
                            ("--max-seconds", self.max_seconds), ("--timeout", self.timeout),
                            ("--p95-max-ms", self.p95_max_ms),
                            ("--error-ratio-max", self.error_ratio_max),
                            ("--think-seconds", self.think_seconds),
                            ("--client-cpu-max", self.client_cpu_max)):
            if not math.isfinite(value):
                raise LoadError(f"{name} must be a finite number, not {value}")
        if not 1 <= self.users_start <= self.users_max:
            raise LoadError(f"need 1 <= --users-start ({self.users_start}) <= --users-max "
                            f"({self.users_max})")
        if self.users_max > 10_000:
            raise LoadError(f"--users-max {self.users_max} is over the limit of 10000")
        if self.users_factor <= 1:
            raise LoadError(f"--users-factor must be > 1, not {self.users_factor}")
        for name, value, hi in (("--step-seconds", self.step_seconds, 3600),
                                ("--max-seconds", self.max_seconds, 86400),
                                ("--timeout", self.timeout, 600)):
            if not 0 < value <= hi:
                raise LoadError(f"{name} must be in (0, {hi}], not {value}")
        if not 1 <= self.max_requests <= 10_000_000:
            raise LoadError(f"--max-requests must be in [1, 10000000], not {self.max_requests}")
        if self.p95_max_ms <= 0:
            raise LoadError(f"--p95-max-ms must be > 0, not {self.p95_max_ms}")
        if not 0 <= self.error_ratio_max <= 1:
            raise LoadError(f"--error-ratio-max must be in [0, 1], not {self.error_ratio_max}")
        if self.think_seconds < 0:
            raise LoadError(f"--think-seconds must be >= 0, not {self.think_seconds}")
        if not 0 < self.client_cpu_max <= 1:
            raise LoadError(f"--client-cpu-max must be in (0, 1], not {self.client_cpu_max}")


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class ServerView:
    """What the service's own metrics (from Prometheus) say about one step."""

    window_seconds: int
    rps: float | None = None
    p95: float | None = None
    error_ratio: float | None = None
    queue_depth: float | None = None
    oldest_age: float | None = None
    error: str | None = None
    """Why the view could not be read (a failed query), else None."""

    def to_dict(self) -> dict[str, Any]:
        return {"window_seconds": self.window_seconds, "rps": self.rps,
                "p95_seconds": self.p95, "error_ratio": self.error_ratio,
                "queue_depth_max": self.queue_depth,
                "queue_oldest_age_seconds_max": self.oldest_age, "error": self.error}


def server_queries(window_seconds: int, job: str | None) -> dict[str, str]:
    """PromQL for a step's server view: the catalog's HTTP histogram and queue gauges."""
    from promkit.tools.report.queries import HTTP, selector

    w = f"{window_seconds}s"
    sel = selector(job)
    err = selector(job, 'http_response_status_class="5xx"')
    return {
        "rps": f"sum(rate({HTTP}_count{sel}[{w}]))",
        "p95": f"histogram_quantile(0.95, sum by (le) (rate({HTTP}_bucket{sel}[{w}])))",
        "error_ratio": f"(sum(rate({HTTP}_count{err}[{w}])) or vector(0)) / "
                       f"sum(rate({HTTP}_count{sel}[{w}]))",
        "queue_depth": f"max(max_over_time(queue_depth{sel}[{w}]))",
        "oldest_age": f"max(max_over_time(queue_oldest_item_age_seconds{sel}[{w}]))",
    }


def read_server_view(client: Any, window_seconds: int, job: str | None) -> ServerView:
    """The server view over the last ``window_seconds``; a failed query is noted, not raised."""
    from promkit.tools.report import PrometheusError

    view = ServerView(window_seconds)
    for name, expr in server_queries(window_seconds, job).items():
        try:
            samples = client.query(expr)
        except PrometheusError as exc:
            view.error = str(exc)
            return view
        value = samples[0].value if samples else None
        if value is not None and math.isfinite(value):
            setattr(view, name, value)
    return view


@dataclass
class StepResult:
    users: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    errors: int = 0
    complete: bool = True
    breached: list[str] = field(default_factory=list)
    started: float = 0.0
    """``time.perf_counter()`` when the step began (for the live figures)."""
    client_cpu_seconds: float = 0.0
    """CPU the client (this process and its children) used during the step."""
    client_processes: int = 1
    flow_times: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """End-to-end seconds of each flow that completed during the step, by flow name."""
    flow_failures: dict[str, int] = field(default_factory=dict)
    """Flows that ended early (a failed request, or polling that never reached ``until``)."""
    server: ServerView | None = None
    """The service's own view of the step (with ``--prometheus``)."""
    server_breached: list[str] = field(default_factory=list)
    client_bound: bool = False
    """The client used more than ``client_cpu_max`` of a core per process: the step's
    latency and throughput are the client's, not the service's."""

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def live_rps(self, now: float) -> float:
        """Requests per second so far: of the whole step once it ended, else since it began."""
        if self.seconds > 0:
            return self.rps
        elapsed = now - self.started
        return self.requests / elapsed if self.started and elapsed > 0 else 0.0

    @property
    def client_cpu_ratio(self) -> float:
        """Client CPU per client process as a share of one core (1.0 = a core busy)."""
        if self.seconds <= 0:
            return 0.0
        return self.client_cpu_seconds / self.seconds / max(1, self.client_processes)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantiles(self) -> dict[str, float | None]:
        values = sorted(self.latencies)
        return {"p50": percentile(values, 50), "p95": percentile(values, 95),
                "p99": percentile(values, 99)}

    @property
    def breaks(self) -> bool:
        """The service broke: its own metrics say so, or the client saw it while the
        client itself was not saturated."""
        return bool(self.server_breached) or (bool(self.breached) and not self.client_bound)

    def reasons(self) -> list[str]:
        """Why the step breaks (client reasons left out when the client was saturated);
        with a server view each reason says whose view it comes from."""
        client = [] if self.client_bound else list(self.breached)
        if self.server is None:
            return client
        return [f"client: {r}" for r in client] + [f"server: {r}" for r in self.server_breached]

    def flow_quantiles(self) -> dict[str, float | None]:
        """p50 and p95 end-to-end time of every flow completed in the step."""
        values = sorted(t for times in self.flow_times.values() for t in times)
        return {"p50": percentile(values, 50), "p95": percentile(values, 95)}

    def flows_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in sorted(set(self.flow_times) | set(self.flow_failures)):
            values = sorted(self.flow_times.get(name, []))
            out[name] = {"completed": len(values), "failed": self.flow_failures.get(name, 0),
                         "p50_seconds": percentile(values, 50),
                         "p95_seconds": percentile(values, 95)}
        return out

    def to_dict(self) -> dict[str, Any]:
        q = self.quantiles()
        fq = self.flow_quantiles()
        return {"users": self.users, "seconds": round(self.seconds, 3),
                "requests": self.requests, "errors": self.errors,
                "error_ratio": self.error_ratio, "rps": round(self.rps, 3),
                "p50_seconds": q["p50"], "p95_seconds": q["p95"], "p99_seconds": q["p99"],
                "complete": self.complete, "breached": list(self.breached),
                "flow_p50_seconds": fq["p50"], "flow_p95_seconds": fq["p95"],
                "flows": self.flows_dict(),
                "client_cpu_seconds": round(self.client_cpu_seconds, 4),
                "client_cpu_ratio": round(self.client_cpu_ratio, 4),
                "client_processes": self.client_processes,
                "client_bound": self.client_bound,
                "server": self.server.to_dict() if self.server is not None else None,
                "server_breached": list(self.server_breached)}


@dataclass
class LoadResult:
    config: LoadConfig
    steps: list[StepResult]
    stop_reason: str
    elapsed: float
    breaking_point: StepResult | None = None

    @property
    def total_requests(self) -> int:
        return sum(s.requests for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        bp = self.breaking_point
        return {
            "schema": "promkit.load/v1",
            "url": c.url,
            "flows": [f.name for f in c.flows],
            "limits": {"users_start": c.users_start, "users_max": c.users_max,
                       "users_factor": c.users_factor, "step_seconds": c.step_seconds,
                       "max_seconds": c.max_seconds, "max_requests": c.max_requests,
                       "p95_max_seconds": c.p95_max_ms / 1000,
                       "error_ratio_max": c.error_ratio_max,
                       "client_cpu_max": c.client_cpu_max},
            "steps": [s.to_dict() for s in self.steps],
            "breaking_point": ({"users": bp.users, "reasons": bp.reasons(),
                                "client_reasons": list(bp.breached),
                                "server_reasons": list(bp.server_breached)}
                               if bp is not None else None),
            "max_users_ok": max((s.users for s in self.steps
                                 if not s.breached and not s.server_breached and s.complete
                                 and not s.client_bound),
                                default=None),
            "client_bound_at": next((s.users for s in self.steps if s.client_bound), None),
            "stop_reason": self.stop_reason,
            "total_requests": self.total_requests,
            "elapsed_seconds": round(self.elapsed, 3),
        }


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
    prometheus = await asyncio.to_thread(_prometheus_client, config)
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
                    _judge(step, config, run.in_flight)
                    await _judge_server(step, config, prometheus)
                if step.breaks:
                    breaking = step
                break
            _judge(step, config, run.in_flight)
            await _judge_server(step, config, prometheus)
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


def _prometheus_client(config: LoadConfig) -> Any:
    """A client for ``config.prometheus`` that answers and has the service's HTTP series."""
    if config.prometheus is None:
        return None
    from promkit.tools.report import PrometheusClient, PrometheusError
    from promkit.tools.report.queries import HTTP, selector

    try:
        client = PrometheusClient(config.prometheus, timeout=5.0)
        found = client.query(f"count({HTTP}_count{selector(config.prometheus_job)})")
    except PrometheusError as exc:
        raise LoadError(str(exc)) from None
    if not found:
        where = f" with job={config.prometheus_job!r}" if config.prometheus_job else ""
        raise LoadError(f"Prometheus at {config.prometheus} has no {HTTP} series{where}; "
                        "is it scraping the service (and is --prometheus-job right)?")
    return client


async def _judge_server(step: StepResult, config: LoadConfig, prometheus: Any) -> None:
    if prometheus is None:
        return
    window = max(1, math.ceil(step.seconds))
    view = await asyncio.to_thread(read_server_view, prometheus, window, config.prometheus_job)
    step.server = view
    if view.p95 is not None and view.p95 * 1000 > config.p95_max_ms:
        step.server_breached.append(f"p95 {_limit_ms(view.p95)} ms > {config.p95_max_ms:g} ms")
    if view.error_ratio is not None and view.error_ratio > config.error_ratio_max:
        step.server_breached.append(f"error ratio {view.error_ratio:.1%} > "
                                    f"{config.error_ratio_max:.1%}")


def _limit_ms(seconds: float) -> str:
    """Milliseconds with a decimal below 100 ms, so "25.2 ms > 25 ms" never reads "25 > 25"."""
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _judge(step: StepResult, config: LoadConfig, in_flight: int) -> None:
    if step.requests < config.min_samples:
        if step.requests == 0 and in_flight:
            step.breached.append("no request completed during the step")
        return
    p95 = step.quantiles()["p95"]
    if p95 is not None and p95 * 1000 > config.p95_max_ms:
        step.breached.append(f"p95 {_limit_ms(p95)} ms > {config.p95_max_ms:g} ms")
    if step.error_ratio > config.error_ratio_max:
        step.breached.append(f"error ratio {step.error_ratio:.1%} > "
                             f"{config.error_ratio_max:.1%}")


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
    p95 = f"{_limit_ms(q)} ms" if q is not None else "–"
    return (f"[{bar}] step {steps_done + 1} users {step.users}/{c.users_max} | "
            f"{run.issued} req | {step.live_rps(now):.0f} req/s | p95 {p95} | "
            f"err {step.errors} ({step.error_ratio:.1%}) | {elapsed:.0f}/{c.max_seconds:.0f} s")


def progress_bar(stream: TextIO) -> Progress:
    """A one-line progress display redrawn in place on ``stream`` (a terminal)."""
    def show(run: _Run, steps_done: int, elapsed: float) -> None:
        stream.write("\r" + progress_line(run, steps_done, elapsed)[:150] + "\033[K")
        stream.flush()
    return show


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_summary(result: LoadResult) -> str:
    """The per-step table and the breaking point, for a terminal."""
    server = any(s.server is not None for s in result.steps)
    headers = ["users", "seconds", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "errors",
               "error %", "flow p95 ms", "client cpu %"]
    if server:
        headers += ["srv rps", "srv p95 ms", "srv err %", "queue", "oldest s"]
    headers.append("")
    rows = []
    for s in result.steps:
        q = s.quantiles()
        notes = []
        if s.client_bound:
            notes.append("CLIENT-BOUND (client figures measure the load generator)")
        if s.breached:
            notes.append(("client breaks: " if s.client_bound else "BREAKS: ")
                         + "; ".join(s.breached))
        if s.server_breached:
            notes.append("SERVER BREAKS: " + "; ".join(s.server_breached))
        if s.server is not None and s.server.error:
            notes.append(f"(server view: {s.server.error})")
        if not s.complete:
            notes.append("(cut short)")
        row = [str(s.users), f"{s.seconds:.1f}", str(s.requests), f"{s.rps:.1f}",
               _ms(q["p50"]), _ms(q["p95"]), _ms(q["p99"]), str(s.errors),
               f"{s.error_ratio * 100:.1f}", _ms(s.flow_quantiles()["p95"]),
               f"{s.client_cpu_ratio * 100:.0f}"]
        if server:
            v = s.server or ServerView(0)
            row += [_num(v.rps, 1), _ms(v.p95),
                    _num(None if v.error_ratio is None else v.error_ratio * 100, 1),
                    _num(v.queue_depth, 0), _num(v.oldest_age, 1)]
        rows.append([*row, " ".join(notes)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.rjust(w) if i < len(headers) - 1 else c
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    c = result.config
    bp = result.breaking_point
    bound = next((s for s in result.steps if s.client_bound), None)
    if bp is not None:
        lines.append(f"breaking point: {bp.users} concurrent users ({'; '.join(bp.reasons())})")
    elif bound is not None:
        lines.append(f"breaking point: not reached (the client saturated at {bound.users} "
                     f"users: {bound.client_cpu_ratio:.0%} of a core per client process > "
                     f"--client-cpu-max {c.client_cpu_max:.0%}; from there on the figures "
                     "are the client's, not the service's)")
    else:
        why = {"users_max": f"all steps up to {c.users_max} users stayed within limits",
               "max_seconds": f"stopped at --max-seconds {c.max_seconds:g}",
               "max_requests": f"stopped at --max-requests {c.max_requests}",
               }.get(result.stop_reason, f"stopped ({result.stop_reason})")
        lines.append(f"breaking point: not reached ({why})")
    lines.append(f"{result.total_requests} requests in {result.elapsed:.1f} s; limits: p95 <= "
                 f"{c.p95_max_ms:g} ms, errors <= {c.error_ratio_max:.1%}")
    return "\n".join(lines) + "\n"


def render_chart(result: LoadResult) -> str:
    """An SVG chart of the steps: throughput (req/s) and p95 against users, the breaking
    point and client-bound steps marked; with a server view its p95 is drawn too."""
    from xml.sax.saxutils import escape

    steps = result.steps
    width, height, left, right, top, bottom = 720, 360, 70, 70, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(steps) - 1)

    def x(i: int) -> float:
        return left + (plot_w * i / n if len(steps) > 1 else plot_w / 2)

    rps = [s.rps for s in steps]
    p95 = [(s.quantiles()["p95"] or 0.0) * 1000 for s in steps]
    srv = [(s.server.p95 * 1000 if s.server is not None and s.server.p95 is not None
            else None) for s in steps]
    rps_max = max(rps, default=0.0) * 1.1 or 1.0
    ms_max = max([*p95, *(v for v in srv if v is not None),
                  result.config.p95_max_ms], default=0.0) * 1.1 or 1.0

    def y(value: float, top_value: float) -> float:
        return top + plot_h - plot_h * value / top_value

    def line(values: list[float | None], top_value: float, colour: str, dash: str = "") -> str:
        points = " ".join(f"{x(i):.1f},{y(v, top_value):.1f}"
                          for i, v in enumerate(values) if v is not None)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} '
                f'points="{points}"/>')

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<title>promkit load: {escape(result.config.url)}</title>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="#444"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
           f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="#444"/>']
    limit_y = y(result.config.p95_max_ms, ms_max)
    out.append(f'<line x1="{left}" y1="{limit_y:.1f}" x2="{left + plot_w}" y2="{limit_y:.1f}" '
               'stroke="#d62728" stroke-dasharray="2 4"/>')
    for i, s in enumerate(steps):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f'{s.users}</text>')
        if s.client_bound:
            out.append(f'<rect x="{x(i) - 6:.1f}" y="{top}" width="12" height="{plot_h}" '
                       'fill="#999" opacity="0.25"><title>client-bound</title></rect>')
        if s is result.breaking_point:
            out.append(f'<line x1="{x(i):.1f}" y1="{top}" x2="{x(i):.1f}" '
                       f'y2="{top + plot_h}" stroke="#d62728"/>')
            out.append(f'<text x="{x(i) - 4:.1f}" y="{top - 6}" text-anchor="end" '
                       f'fill="#d62728">breaking point: {s.users} users</text>')
    for frac in (0.0, 0.5, 1.0):
        ty = top + plot_h - plot_h * frac
        out.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#1f77b4">'
                   f'{rps_max * frac:.0f}</text>')
        out.append(f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="#ff7f0e">'
                   f'{ms_max * frac:.0f}</text>')
    out += [line(list(rps), rps_max, "#1f77b4"), line(list(p95), ms_max, "#ff7f0e")]
    if any(v is not None for v in srv):
        out.append(line(srv, ms_max, "#2ca02c", "6 3"))
    out += [f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">'
            'concurrent users</text>',
            f'<text x="{left}" y="{top - 22}" fill="#1f77b4">req/s</text>',
            f'<text x="{left + plot_w}" y="{top - 22}" text-anchor="end" fill="#ff7f0e">'
            'p95 ms (client)' + (' / server (dashed)' if any(v is not None for v in srv)
                                 else '') + f'; limit {result.config.p95_max_ms:g} ms</text>',
            "</svg>"]
    return "\n".join(out) + "\n"


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
