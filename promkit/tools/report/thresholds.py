"""When a figure becomes an issue."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FLOOR", "Thresholds"]


@dataclass(frozen=True)
class Thresholds:
    """When a figure becomes an issue. Defaults match demo/promkit.yaml's thresholds."""

    http_error_ratio: float = 0.02
    http_p95_seconds: float = 0.5
    min_requests: float = 10.0
    stage_failure_ratio: float = 0.05
    job_failure_ratio: float = 0.05
    external_error_ratio: float = 0.1
    external_p95_seconds: float = 10.0
    job_p95_seconds: float = 30.0
    queue_depth: float = 30.0
    queue_age_seconds: float = 300.0
    queue_stall_seconds: float = 60.0
    queue_stall_factor: float = 4.0
    """The oldest item's age is an issue past ``queue_age_seconds``, or past
    ``queue_stall_seconds`` when it is over ``queue_stall_factor`` times the window's p95
    queue wait (or no job was picked up): a stuck worker within a minute or two."""
    disk_used_ratio: float = 0.8
    slo_budget_warning: float = 0.25
    latency_slo_seconds: float = 0.5
    slo_objectives: dict[str, float] = field(default_factory=lambda: {
        "availability": 0.99, "latency": 0.95, "job_success": 0.99, "auth_success": 0.95})


FLOOR = 0.1
"""A previous value below this share of the issue's threshold is "near zero": the
change is ``new``, never a percentage off it."""
