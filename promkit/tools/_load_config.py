"""What a ``promkit load`` run is pointed at and bounded by: the loopback check of its
URLs and :class:`LoadConfig`, the limits a run refuses to start without."""

from __future__ import annotations

import ipaddress
import math
import socket
import urllib.parse
from dataclasses import dataclass

from promkit.tools._load_flows import DEMO_FLOWS, Flow, LoadError


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
