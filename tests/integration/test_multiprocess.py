"""Multiprocess mode with real worker processes (gunicorn + UvicornWorker, uvicorn --workers)."""

from __future__ import annotations

import collections
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from promkit.exporters._multiprocess import (
    cleanup_dead_processes,
    multiprocess_exposition,
    multiprocess_json,
)

from ._servers import AppServer, app_env, wait_until

APP = "metrics_demo:app"
WORKERS = 3
# (duration, how many): buckets are 0.01, 0.1, 1.0.
WORK = [(0.005, 7), (0.05, 20), (0.5, 9), (2.0, 4)]
N = sum(n for _, n in WORK)


def mp_env(path: Path) -> dict[str, str]:
    return {"PROMETHEUS_MULTIPROC_DIR": str(path)}


def spread_holds(app: AppServer, workers: int, timeout: float = 20.0) -> collections.Counter[int]:
    """Send /hold requests (each blocks its worker 50 ms) until every worker got some.

    Returns holds per worker pid. New connections plus blocked loops make the
    kernel hand connections to the other workers.
    """
    held: collections.Counter[int] = collections.Counter()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(8) as pool:
        while len(held) < workers or min(held.values()) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"requests did not reach {workers} workers: {dict(held)}")
            for pid in pool.map(lambda _: app.get("/hold?block=0.05").json()["pid"], range(16)):
                held[pid] += 1
    return held


def send_work(app: AppServer) -> collections.Counter[int]:
    durations = [d for d, n in WORK for _ in range(n)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda d: app.get(f"/work?d={d}"), durations))
    assert all(r.status_code == 200 for r in responses)
    return collections.Counter(r.json()["pid"] for r in responses)


def scrape(app: AppServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One text scrape, parsed: (sample name, labels) -> value."""
    response = app.get("/metrics")
    assert response.status_code == 200, response.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parse_text(response.text) for s in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def worker_pids(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[int]:
    return {int(dict(labels)["pid"]) for (name, labels) in samples if name == "app_worker_info"}


def assert_work_totals(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
    assert sample(samples, "app_requests_total", route="/work") == N
    assert sample(samples, "app_work_duration_seconds_count", route="/work") == N
    expected_sum = sum(d * n for d, n in WORK)
    assert sample(samples, "app_work_duration_seconds_sum", route="/work") == pytest.approx(
        expected_sum)
    cumulative = {"0.01": 7, "0.1": 27, "1.0": 36, "+Inf": 40}
    for le, count in cumulative.items():
        assert sample(samples, "app_work_duration_seconds_bucket", route="/work", le=le) == count


def kill_worker(app: AppServer, victim: int, remaining: set[int], timeout: float = 20.0
                ) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """kill -9 ``victim``; return the first scrape after a replacement worker serves."""
    os.kill(victim, signal.SIGKILL)

    def replaced() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = scrape(app)
        pids = worker_pids(samples)
        if victim not in pids and len(pids) == WORKERS and remaining <= pids:
            return samples
        return None

    result: dict[tuple[str, frozenset[tuple[str, str]]], float] = wait_until(
        replaced, timeout, 0.2, f"worker {victim} replaced and its live gauges gone")
    return result


# --------------------------------------------------------------------------- gunicorn


def test_gunicorn_workers_merge_exactly_and_a_killed_worker_keeps_its_counts(
        gunicorn_app, multiproc_dir):
    app = gunicorn_app(APP, workers=WORKERS, env=mp_env(multiproc_dir),
                       extra_args=["--config", "python:gunicorn_conf"])
    held = spread_holds(app, WORKERS)
    handled = send_work(app)
    holds = sum(held.values())

    # Every scrape, whichever worker serves it, sees the same merged totals.
    for _ in range(6):
        samples = scrape(app)
        assert_work_totals(samples)
        assert sample(samples, "app_requests_total", route="/hold") == holds
        assert sample(samples, "app_held_requests") == holds  # livesum over workers
        assert worker_pids(samples) == set(held)  # liveall: one series per live worker
    assert set(handled) <= set(held)

    victim = min(held, key=lambda pid: (held[pid], pid))
    samples = kill_worker(app, victim, set(held) - {victim})
    # The dead worker's live gauge is gone; its counters and histograms stay.
    assert sample(samples, "app_held_requests") == holds - held[victim]
    assert sample(samples, "app_requests_total", route="/hold") == holds
    assert_work_totals(samples)
    # child_exit folded its files into the archives (counted once, never lost).
    assert not list(multiproc_dir.glob(f"*_{victim}.db"))
    assert (multiproc_dir / "counter_archive.db").exists()


def test_multiprocess_json_and_openmetrics(gunicorn_app, multiproc_dir):
    app = gunicorn_app(APP, workers=2, env=mp_env(multiproc_dir))
    held = spread_holds(app, 2)
    send_work(app)
    scrape(app)  # so promkit's own exposition histogram has a series

    data = app.get("/metrics?format=json").json()
    metrics = {m["name"]: m for m in data["metrics"]}
    requests = {s["labels"]["route"]: s["value"] for s in metrics["app_requests_total"]["samples"]}
    assert requests == {"/work": N, "/hold": sum(held.values())}
    assert metrics["app_requests_total"]["type"] == "counter"
    (hist,) = metrics["app_work_duration_seconds"]["samples"]
    assert hist["labels"] == {"route": "/work"}
    assert hist["count"] == N
    assert hist["buckets"] == {"0.01": 7, "0.1": 27, "1.0": 36, "+Inf": 40}
    assert hist["sum"] == pytest.approx(sum(d * n for d, n in WORK))
    assert metrics["app_held_requests"]["samples"] == [
        {"labels": {}, "value": float(sum(held.values()))}]
    info = metrics["app_worker_info"]
    assert {int(s["labels"]["pid"]) for s in info["samples"]} == set(held)
    # Catalog metrics get their unit back (the mmap files do not store it).
    assert metrics["promkit_exposition_duration_seconds"]["unit"] == "seconds"

    response = app.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(response.text)}  # strict parser
    counter = families["app_requests"]
    assert counter.type == "counter"
    values = {s.labels["route"]: s.value for s in counter.samples if s.name.endswith("_total")}
    assert values == {"/work": N, "/hold": sum(held.values())}
    buckets = {s.labels["le"]: s.value for s in families["app_work_duration_seconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets == {"0.01": 7, "0.1": 27, "1.0": 36, "+Inf": 40}
    assert families["promkit_exposition_duration_seconds"].unit == "seconds"


def test_prometheus_scrapes_the_merged_totals(gunicorn_app, multiproc_dir, prometheus):
    app = gunicorn_app(APP, workers=WORKERS, env=mp_env(multiproc_dir))
    held = spread_holds(app, WORKERS)
    send_work(app)
    prom = prometheus([app.address])
    prom.client.wait_for_targets_up(count=1)
    assert prom.wait_for_value('app_requests_total{route="/work"}', lambda v: v == N) == N
    assert prom.value('app_work_duration_seconds_count{route="/work"}') == N
    assert prom.value('app_work_duration_seconds_bucket{route="/work",le="0.1"}') == 27
    assert prom.value("app_held_requests") == sum(held.values())
    assert prom.value("count(app_worker_info)") == WORKERS
    p50 = prom.value("histogram_quantile(0.5, app_work_duration_seconds_bucket)")
    assert p50 is not None and 0.01 < p50 <= 0.1


# ------------------------------------------------------------------ uvicorn --workers


def test_uvicorn_workers_clean_up_a_killed_worker_at_scrape_time(uvicorn_app, multiproc_dir):
    # No hooks here: uvicorn's supervisor cannot call mark_process_dead, so the
    # scrape-time cleanup alone must drop the dead worker's live gauges.
    app = uvicorn_app(APP, workers=WORKERS, env=mp_env(multiproc_dir), ready_timeout=30)
    wait_until(lambda: len(worker_pids(scrape(app))) == WORKERS, 20, 0.2, "all workers up")
    held = spread_holds(app, WORKERS)
    send_work(app)
    holds = sum(held.values())
    samples = scrape(app)
    assert_work_totals(samples)
    assert sample(samples, "app_held_requests") == holds

    victim = max(held, key=lambda pid: (held[pid], pid))
    samples = kill_worker(app, victim, set(held) - {victim})
    assert sample(samples, "app_held_requests") == holds - held[victim]
    assert sample(samples, "app_requests_total", route="/hold") == holds
    assert_work_totals(samples)


# ------------------------------------------------- cleanup and robustness, in-process

_WRITER = textwrap.dedent("""
    from prometheus_client import CollectorRegistry
    from promkit.instrument import MetricsRegistry
    r = MetricsRegistry(CollectorRegistry())
    r.counter("jobs_done_total", "Jobs done.").inc(5)
    r.gauge("jobs_running", "Jobs running.", multiprocess_mode="livesum").set(2)
    r.gauge("jobs_peak", "Peak jobs.", multiprocess_mode="max").set(7)
""")


def _run_writer(path: Path, wait: bool) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER], env=app_env(mp_env(path)))
    if wait:
        assert proc.wait(20) == 0
    return proc


def _state(pid: int) -> str:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return data[data.rfind(b")") + 2:data.rfind(b")") + 3].decode()


def test_cleanup_removes_live_gauges_of_exited_and_zombie_processes(multiproc_dir):
    _run_writer(multiproc_dir, wait=True)  # exited and reaped
    zombie = _run_writer(multiproc_dir, wait=False)
    try:
        if Path("/proc").is_dir():
            wait_until(lambda: _state(zombie.pid) == "Z", 20, 0.05, "writer exited (zombie)")
        else:  # pragma: no cover - no /proc: only exited processes are detected
            zombie.wait(20)
        text = multiprocess_exposition(path=str(multiproc_dir))
        families = {f.name: f for f in parse_text(text)}
        assert families["jobs_done"].samples[0].value == 10  # both processes' counts kept
        assert families["jobs_peak"].samples[0].value == 7  # max is not a live mode: kept
        assert "jobs_running" not in families  # both livesum files cleaned up
        assert not list(multiproc_dir.glob("gauge_livesum_*.db"))
        # Both exited: their counters were folded into the archive.
        assert [p.name for p in multiproc_dir.glob("counter_*.db")] == ["counter_archive.db"]
        assert cleanup_dead_processes(str(multiproc_dir)) == []
    finally:
        zombie.wait(20)


def test_a_bad_or_half_written_file_does_not_break_the_scrape(multiproc_dir, caplog):
    _run_writer(multiproc_dir, wait=True)
    (multiproc_dir / "counter_999991.db").write_bytes(b"\0\0")  # still being created
    # A header claiming 64 bytes used, followed by junk where an entry should be.
    junk = struct.pack("i", 64) + b"\0" * 4 + struct.pack("i", 20) + b"{not json" + b"\xff" * 43
    (multiproc_dir / "histogram_999992.db").write_bytes(junk)
    with caplog.at_level("WARNING", logger="promkit.exporters"):
        text = multiprocess_exposition(openmetrics=True, path=str(multiproc_dir))
        data = multiprocess_json(path=str(multiproc_dir))
        multiprocess_exposition(path=str(multiproc_dir))
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["jobs_done"].samples[0].value == 5
    assert {m["name"] for m in data["metrics"]} >= {"jobs_done_total", "jobs_peak"}
    json.dumps(data, allow_nan=False)
    reports = [r for r in caplog.records if "histogram_999992.db" in r.getMessage()]
    assert len(reports) == 1  # reported once, not on every scrape
