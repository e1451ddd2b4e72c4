"""The exporter server's limits: sizes, counts and times, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """Size, count and time limits of the exporter server (sizes in bytes, times in seconds)."""

    max_request_line: int = 8192
    max_header_line: int = 8192
    max_headers: int = 100
    max_header_bytes: int = 65536
    max_body_bytes: int = 65536
    header_timeout: float = 10.0
    """From a request's first byte (a new connection: from accept) to the end of its headers."""
    body_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    """How long a keep-alive connection may wait for the first byte of its next request."""
    write_timeout: float = 30.0
    max_requests_per_connection: int = 1000
    max_connections: int = 256
    """Open connections; past it the longest-idle one is evicted, or 503 when all are busy."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"ServerLimits.{name} must be positive, not {value!r}")
