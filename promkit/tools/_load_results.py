"""What a ``promkit load`` step and run measured, and the judging of a step against the
limits: the client's view (latency percentiles, error ratio) and, with ``--prometheus``,
the server's."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from promkit.tools._load_config import LoadConfig
from promkit.tools._load_server import ServerView, read_server_view


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


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


def limit_ms(seconds: float) -> str:
    """Milliseconds with a decimal below 100 ms, so "25.2 ms > 25 ms" never reads "25 > 25"."""
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def judge(step: StepResult, config: LoadConfig, in_flight: int) -> None:
    """Note the limits the client's figures of the step pass (none below ``min_samples``
    requests, unless none completed while some were in flight)."""
    if step.requests < config.min_samples:
        if step.requests == 0 and in_flight:
            step.breached.append("no request completed during the step")
        return
    p95 = step.quantiles()["p95"]
    if p95 is not None and p95 * 1000 > config.p95_max_ms:
        step.breached.append(f"p95 {limit_ms(p95)} ms > {config.p95_max_ms:g} ms")
    if step.error_ratio > config.error_ratio_max:
        step.breached.append(f"error ratio {step.error_ratio:.1%} > "
                             f"{config.error_ratio_max:.1%}")


async def judge_server(step: StepResult, config: LoadConfig, prometheus: Any) -> None:
    """Read the server view of the step (with ``--prometheus``) and note its breaches."""
    if prometheus is None:
        return
    window = max(1, math.ceil(step.seconds))
    view = await asyncio.to_thread(read_server_view, prometheus, window, config.prometheus_job)
    step.server = view
    if view.p95 is not None and view.p95 * 1000 > config.p95_max_ms:
        step.server_breached.append(f"p95 {limit_ms(view.p95)} ms > {config.p95_max_ms:g} ms")
    if view.error_ratio is not None and view.error_ratio > config.error_ratio_max:
        step.server_breached.append(f"error ratio {view.error_ratio:.1%} > "
                                    f"{config.error_ratio_max:.1%}")
