"""promkit load's config: loopback-only URLs and the limits a run refuses to start with."""

from __future__ import annotations

from typing import Any

import pytest

from promkit.tools.loadgen import LoadConfig, LoadError, check_loopback


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


@pytest.mark.parametrize("kwargs", [
    {"users_start": 0}, {"users_start": 5, "users_max": 4}, {"users_factor": 1.0},
    {"step_seconds": 0}, {"max_seconds": -1}, {"max_requests": 0}, {"p95_max_ms": 0},
    {"error_ratio_max": 2},
])
def test_bad_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LoadError):
        LoadConfig(url="http://127.0.0.1:1", **kwargs).validate()


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
