"""Shared pieces: the synthetic series, statistics, markdown tables, server processes."""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

# Same composition as ../shared/bench: 9 bounds + +Inf = 10 buckets; a histogram
# label value gives 13 series (10 _bucket, _count, _sum, _created); gauges pad.
HIST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SERIES_PER_HISTOGRAM_CHILD = len(HIST_BUCKETS) + 1 + 3
HIST_NAME = "synthetic_request_duration_seconds"
HIST_HELP = "synthetic"
GAUGE_NAME = "synthetic_pad"
GAUGE_HELP = "pad"


def composition(target: int) -> tuple[int, int]:
    """(histogram label values, gauge series) giving exactly ``target`` text series."""
    n_hist = target // SERIES_PER_HISTOGRAM_CHILD
    return n_hist, target - n_hist * SERIES_PER_HISTOGRAM_CHILD


def describe_composition(target: int) -> str:
    n_hist, n_gauge = composition(target)
    return f"{n_hist} histogram label values x 13 series + {n_gauge} gauge series"


def build_promkit(target: int, registry: Any, gauge_mode: str | None = None) -> None:
    """Create the synthetic series in a promkit ``MetricsRegistry``."""
    n_hist, n_gauge = composition(target)
    hist = registry.histogram(HIST_NAME, HIST_HELP, ["route"], buckets=HIST_BUCKETS,
                              series_limit=max(n_hist, 1) + 1)
    for i in range(n_hist):
        hist.labels(f"/route/{i}").observe(0.003 * (i % 7))
    if n_gauge:
        options: dict[str, Any] = {"series_limit": n_gauge + 1}
        if gauge_mode is not None:
            options["multiprocess_mode"] = gauge_mode
        gauge = registry.gauge(GAUGE_NAME, GAUGE_HELP, ["k"], **options)
        for i in range(n_gauge):
            gauge.labels(str(i)).set(i)


def build_prometheus_client(target: int, registry: CollectorRegistry) -> None:
    """Create the identical series with plain prometheus-client metrics."""
    n_hist, n_gauge = composition(target)
    hist = Histogram(HIST_NAME, HIST_HELP, ["route"], buckets=HIST_BUCKETS, registry=registry)
    for i in range(n_hist):
        hist.labels(f"/route/{i}").observe(0.003 * (i % 7))
    if n_gauge:
        gauge = Gauge(GAUGE_NAME, GAUGE_HELP, ["k"], registry=registry)
        for i in range(n_gauge):
            gauge.labels(str(i)).set(i)


# ------------------------------------------------------------------ comparing outputs

Sample = tuple[str, frozenset[tuple[str, str]], float | None]


def sample_set(body: bytes | str, openmetrics: bool) -> set[Sample]:
    """Every sample of an exposition, parsed; ``_created`` values are dropped."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    parse = parse_openmetrics if openmetrics else parse_text
    out: set[Sample] = set()
    for family in parse(text):
        for s in family.samples:
            value = None if s.name.endswith("_created") else float(s.value)
            out.add((s.name, frozenset(s.labels.items()), value))
    return out


def compare_samples(a: bytes | str, b: bytes | str, openmetrics: bool) -> tuple[bool, str]:
    """Whether two expositions carry the same samples, and a short explanation."""
    sa, sb = sample_set(a, openmetrics), sample_set(b, openmetrics)
    if sa == sb:
        return True, f"same {len(sa)} samples"
    only_a, only_b = sorted(sa - sb, key=str), sorted(sb - sa, key=str)
    return False, (f"{len(only_a)} samples only in promkit (e.g. {only_a[:2]}), "
                   f"{len(only_b)} only in prometheus_client (e.g. {only_b[:2]})")


def count_series(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


# -------------------------------------------------------------------------- timing


def interleaved(entries: Sequence[tuple[str, Callable[[], Any]]], reps: int,
                before: dict[str, Callable[[], Any]] | None = None) -> dict[str, list[float]]:
    """Run every entry once per repetition, rotating the order; ms per call.

    ``before[name]`` (untimed) runs right before that entry, e.g. to drop a cache.
    """
    before = before or {}
    times: dict[str, list[float]] = {name: [] for name, _ in entries}
    n = len(entries)
    for rep in range(reps):
        for k in range(n):
            name, fn = entries[(rep + k) % n]
            if name in before:
                before[name]()
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else math.nan


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
          align: Sequence[str] | None = None) -> str:
    """A markdown table; ``align`` holds 'l' or 'r' per column (numbers right)."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def fmt_ms(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def environment() -> str:
    from importlib.metadata import version

    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "-"

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"python {platform.python_version()}, {platform.platform()}, "
            f"{os.cpu_count()} CPUs, loadavg {load}; promkit {v('promkit')}, "
            f"prometheus_client {v('prometheus_client')}, starlette {v('starlette')}, "
            f"uvicorn {v('uvicorn')}, h11 {v('h11')}, anyio {v('anyio')}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (a server started next binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout`` s; SIGKILL it if it is still there."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
