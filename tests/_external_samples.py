"""What the external-call tests read back: the calls and durations recorded."""

from __future__ import annotations

from promkit.instrument import MetricsRegistry


def calls(registry: MetricsRegistry, service: str, operation: str, outcome: str,
          status_class: str) -> float | None:
    return registry.collector_registry.get_sample_value(
        "external_calls_total", {"peer_service": service, "operation": operation,
                                 "outcome": outcome, "status_class": status_class})


def durations(registry: MetricsRegistry, service: str, operation: str,
              outcome: str) -> float | None:
    return registry.collector_registry.get_sample_value(
        "external_call_duration_seconds_count",
        {"peer_service": service, "operation": operation, "outcome": outcome})
