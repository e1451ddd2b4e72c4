"""A worker pool that recycles: real processes record through promkit and are SIGKILLed.

Each recycle kills the oldest worker of the pool and forks a new one, as
gunicorn's ``max_requests`` or a job pool does. Every scrape must show exact
totals of everything every worker (dead or alive) recorded, live gauges of
live workers only, and a directory that does not grow with the recycles.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families as parse_text

from promkit.exporters import mark_process_dead, multiprocess_exposition
from promkit.instrument import MetricsRegistry

POOL = 3
RECYCLES = 30


def _worker(conn: Connection, jobs: int) -> None:
    registry = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    done = registry.counter("jobs_done_total", "Jobs done.", ["kind"])
    seconds = registry.histogram("job_seconds", "Job time.", ["kind"], buckets=[0.1, 1.0])
    running = registry.gauge("jobs_running", "Jobs running.", multiprocess_mode="livesum")
    for i in range(jobs):
        done.labels("ocr").inc()
        seconds.labels("ocr").observe(0.05 if i % 2 else 0.5)
    running.set(1)
    conn.send("ready")
    conn.recv()  # until killed


class Pool:
    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self.workers: list[tuple[Any, Connection]] = []
        self.jobs = 0  # every job any worker ever recorded
        self.fast = 0  # of which observed 0.05 s
        self.started = 0

    def start(self) -> None:
        jobs = self.started % 5 + 1
        self.started += 1
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, jobs), daemon=True)
        proc.start()
        assert parent.poll(60) and parent.recv() == "ready"
        self.workers.append((proc, parent))
        self.jobs += jobs
        self.fast += jobs // 2

    def kill_oldest(self) -> int:
        proc, conn = self.workers.pop(0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(20)
        conn.close()
        return int(proc.pid)

    def stop(self) -> None:
        while self.workers:
            self.kill_oldest()


def scrape(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = multiprocess_exposition(path=str(path))
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parse_text(text) for s in family.samples}


def test_a_recycling_pool_keeps_exact_totals_and_a_bounded_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    pool = Pool()
    try:
        for _ in range(POOL):
            pool.start()
        scrape(tmp_path)
        fresh = sorted(p.name for p in tmp_path.glob("*.db"))
        fresh_files = len(fresh)
        # One file per type and worker: counter, histogram, gauge_livesum, and the types of
        # metrics earlier tests created in this process (forked workers reopen them too).
        kinds = {name.rsplit("_", 1)[0] for name in fresh}
        assert {"counter", "histogram", "gauge_livesum"} <= kinds
        assert fresh_files == len(kinds) * POOL, " ".join(fresh)
        # What compaction may add: one archive per type that is not a live gauge.
        archives = len({k for k in kinds if not k.startswith("gauge_live") and k != "gauge_all"})
        for n in range(RECYCLES):
            pid = pool.kill_oldest()
            if n % 2:  # gunicorn's child_exit hook; otherwise the scrape finds it dead
                mark_process_dead(pid, str(tmp_path))
            pool.start()
            samples = scrape(tmp_path)
            ocr = frozenset({("kind", "ocr")})
            assert samples[("jobs_done_total", ocr)] == pool.jobs, n
            assert samples[("job_seconds_count", ocr)] == pool.jobs
            assert samples[("job_seconds_bucket", ocr | {("le", "0.1")})] == pool.fast
            assert samples[("job_seconds_sum", ocr)] == pytest.approx(
                0.05 * pool.fast + 0.5 * (pool.jobs - pool.fast))
            assert samples[("jobs_running", frozenset())] == POOL  # live workers only
            files = len(list(tmp_path.glob("*.db")))
            assert files <= fresh_files + archives, n
    finally:
        pool.stop()
    assert pool.started == POOL + RECYCLES


def test_gunicorn_max_requests_recycles_keep_exact_totals(gunicorn_app, multiproc_dir):
    # Workers exit after 5 requests and gunicorn forks new ones; its child_exit hook
    # (tests/apps/gunicorn_conf.py) compacts each one's files as it goes.
    app = gunicorn_app("metrics_demo:app", workers=2,
                       env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
                       extra_args=["--config", "python:gunicorn_conf", "--max-requests", "5"])
    pids = set()
    for _ in range(30):
        response = _get_through_recycles(app, "/work?d=0.05")
        assert response.status_code == 200
        pids.add(response.json()["pid"])
    # Recycled at least twice (uvicorn's worker may answer a few requests past
    # --max-requests while it shuts down, so 30 requests need not make 6 pids).
    assert len(pids) >= 4
    text = app.get("/metrics").text
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in parse_text(text) for s in family.samples}
    assert samples[("app_requests_total", frozenset({("route", "/work")}))] == 30
    assert samples[("app_work_duration_seconds_count", frozenset({("route", "/work")}))] == 30
    # Per live worker at most counter, histogram, livesum and liveall gauge files,
    # plus the counter and histogram archives: not one file more per recycle.
    names = sorted(p.name for p in multiproc_dir.glob("*.db"))
    assert len(names) <= 2 * 4 + 2, names


def _get_through_recycles(app, path):
    """GET, again when a recycling worker closed the connection before reading it.

    A worker past --max-requests stops and closes the connections it accepted but
    has not read: the client sees no response and nothing was recorded (a request
    it did read is answered before it exits), so asking again keeps totals exact.
    """
    for _ in range(5):
        try:
            return app.get(path)
        except httpx.RemoteProtocolError:
            continue
    return app.get(path)
