"""Exemplars in multiprocess mode with real worker processes and a real Prometheus.

The app (written to a tmp dir, below) is Starlette with ``HttpMetricsMiddleware``
on the default registry, multiprocess because ``PROMETHEUS_MULTIPROC_DIR`` is
set. Each request carries a known ``X-Correlation-ID`` and asks for its own
status code, so each lands in its own duration series and its correlation ID
must be that series' exemplar whichever worker served it.
"""

from __future__ import annotations

import collections
import os
import signal
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from ._servers import APPS_DIR, REPO_ROOT, AppServer, wait_until

APP_SOURCE = textwrap.dedent('''
    import os
    import time

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from promkit.exporters import metrics_app
    from promkit.instrument import HttpMetricsMiddleware, default_registry

    registry = default_registry()


    async def index(request):
        return JSONResponse({"pid": os.getpid()})


    async def item(request):
        # Blocking the loop a little makes new connections land on the other workers.
        time.sleep(float(request.query_params.get("block", "0")))
        status = int(request.query_params.get("status", "200"))
        return JSONResponse({"pid": os.getpid()}, status_code=status)


    app = Starlette(routes=[
        Route("/", index),
        Route("/items/{item_id}", item),
        Route("/metrics", metrics_app(registry)),
    ])
    app.add_middleware(HttpMetricsMiddleware, registry=registry, log_requests=False)
''')

WORKERS = 3
DURATION = "http_server_request_duration_seconds"
OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}
# One status code per request: 2xx and 4xx codes that may carry a body.
STATUSES = [*range(210, 300), *range(420, 500)]


@pytest.fixture
def app_module(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Env putting the tmp app module (``mpx_app:app``) on the workers' PYTHONPATH."""
    apps = tmp_path / "mpx-app"
    apps.mkdir()
    (apps / "mpx_app.py").write_text(APP_SOURCE)
    paths = [str(apps), str(APPS_DIR), str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    yield {"PYTHONPATH": os.pathsep.join(paths)}


def mp_env(path: Path, extra: dict[str, str]) -> dict[str, str]:
    return {"PROMETHEUS_MULTIPROC_DIR": str(path), **extra}


def spread_requests(app: AppServer, workers: int, timeout: float = 30.0
                    ) -> dict[str, tuple[int, int]]:
    """Requests with known correlation IDs until every worker served at least two.

    Returns correlation ID -> (status code, worker pid).
    """
    statuses = iter(STATUSES)
    sent: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout

    def one(status: int) -> tuple[str, int, int]:
        cid = str(uuid.uuid4())
        response = app.get(f"/items/{status}?block=0.03&status={status}",
                           headers={"X-Correlation-ID": cid})
        assert response.status_code == status
        assert response.headers["x-correlation-id"] == cid  # a valid UUID is kept
        return cid, status, int(response.json()["pid"])

    with ThreadPoolExecutor(8) as pool:
        while True:
            per_pid = collections.Counter(pid for _, pid in sent.values())
            if len(per_pid) >= workers and min(per_pid.values()) >= 2:
                return sent
            if time.monotonic() > deadline:
                raise TimeoutError(f"requests did not reach {workers} workers: {dict(per_pid)}")
            batch = [next(statuses) for _ in range(8)]
            for cid, status, pid in pool.map(one, batch):
                sent[cid] = (status, pid)


def bucket_exemplars(text: str) -> dict[tuple[str, str], tuple[str, float, float]]:
    """(status code, le) -> (correlation_id, value, timestamp) of ``/items/{item_id}``.

    From a scrape parsed by prometheus-client's strict OpenMetrics parser.
    """
    found: dict[tuple[str, str], tuple[str, float, float]] = {}
    for family in parse_openmetrics(text):  # prometheus-client's strict parser
        if family.name != DURATION:
            continue
        for s in family.samples:
            if s.exemplar is not None and s.labels["http_route"] == "/items/{item_id}":
                assert s.name == DURATION + "_bucket"
                found[(s.labels["http_response_status_code"], s.labels["le"])] = (
                    s.exemplar.labels["correlation_id"], s.exemplar.value,
                    float(s.exemplar.timestamp or 0))
    return found


def scrape_om(app: AppServer) -> str:
    response = app.get("/metrics", headers=OPENMETRICS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return response.text


def assert_every_request_is_an_exemplar(app: AppServer, sent: dict[str, tuple[int, int]],
                                        timeout: float = 10.0) -> dict[tuple[str, str], Any]:
    """Wait (the workers flush within ~1 s) until each request's ID is its series' exemplar."""
    by_status = {str(status): cid for cid, (status, _) in sent.items()}

    def complete() -> dict[tuple[str, str], Any] | None:
        found = bucket_exemplars(scrape_om(app))
        seen = {status: cid for (status, _), (cid, _, _) in found.items() if status in by_status}
        return found if seen == by_status else None

    result: dict[tuple[str, str], Any] = wait_until(
        complete, timeout, 0.2, "every request's correlation ID on its bucket")
    return result


def test_uvicorn_workers_exemplars_reach_openmetrics_and_prometheus(
        uvicorn_app, multiproc_dir, app_module, prometheus):
    app = uvicorn_app("mpx_app:app", workers=WORKERS, env=mp_env(multiproc_dir, app_module),
                      ready_timeout=30)
    started = time.time() - 5
    sent = spread_requests(app, WORKERS)
    pids = {pid for _, pid in sent.values()}
    assert len(pids) == WORKERS

    found = assert_every_request_is_an_exemplar(app, sent)
    # Each exemplar sits in the bucket its value belongs to, with a recent timestamp.
    for (_status, le), (_, value, timestamp) in found.items():
        assert value <= float(le)
        assert started < timestamp <= time.time() + 1
    # Several workers wrote them, each to its own file.
    files = {p.name for p in multiproc_dir.glob("exemplars_*.json")}
    assert {f"exemplars_{pid}.json" for pid in pids} <= files
    # Text 0.0.4 has no exemplars.
    assert " # {" not in app.get("/metrics").text

    # A real Prometheus negotiates OpenMetrics and stores them.
    prom = prometheus([app.address], features=["exemplar-storage"])
    prom.client.wait_for_targets_up(count=1)
    expected = set(sent)

    def stored() -> set[str] | None:
        series = prom.client.query_exemplars(f"{DURATION}_bucket", started, time.time() + 5)
        cids = {e["labels"].get("correlation_id") for s in series for e in s["exemplars"]}
        return cids if expected <= cids else None

    cids = wait_until(stored, 20, 0.5, "Prometheus stored every request's exemplar")
    assert expected <= cids
    by_pid = collections.defaultdict(set)
    for cid, (_, pid) in sent.items():
        by_pid[pid].add(cid)
    assert all(ids <= cids for ids in by_pid.values())  # from every worker


def test_newest_exemplar_wins_across_workers_and_survives_a_killed_worker(
        gunicorn_app, multiproc_dir, app_module):
    app = gunicorn_app("mpx_app:app", workers=WORKERS, env=mp_env(multiproc_dir, app_module),
                       extra_args=["--config", "python:gunicorn_conf"])
    sent = spread_requests(app, WORKERS)
    assert_every_request_is_an_exemplar(app, sent)

    # One shared series (status 200, no blocking): requests one after another on
    # new connections, served by different workers. Each bucket's exemplar is
    # the newest request that fell in it, whichever worker served it.
    order: list[tuple[str, int]] = []
    while len(order) < 30 or len({pid for _, pid in order[-10:]}) < 2:
        assert len(order) < 300, "sequential requests all went to one worker"
        cid = str(uuid.uuid4())
        response = app.get("/items/1", headers={"X-Correlation-ID": cid})
        assert response.status_code == 200
        order.append((cid, int(response.json()["pid"])))
        time.sleep(0.01)
    rank = {cid: i for i, (cid, _) in enumerate(order)}

    def settled() -> dict[tuple[str, str], Any] | None:
        shared = {le: ex for (status, le), ex in bucket_exemplars(scrape_om(app)).items()
                  if status == "200"}
        newest = max(shared.values(), key=lambda ex: ex[2], default=None)
        return shared if newest is not None and newest[0] == order[-1][0] else None

    shared = wait_until(settled, 10, 0.2, "the last request's exemplar on status 200")
    assert all(cid in rank for cid, _, _ in shared.values())
    # Within a bucket, no later request of that bucket exists (newest wins): the
    # exemplars' ranks follow their timestamps.
    by_time = sorted(shared.values(), key=lambda ex: ex[2])
    assert [rank[cid] for cid, _, _ in by_time] == sorted(rank[cid] for cid, _, _ in by_time)

    # kill -9 a worker that served a request with its own series: its file stays
    # (its counts stay in the totals), so its exemplars are still served.
    victim_cid, (victim_status, victim) = next(iter(sent.items()))
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        pids = set()
        for _ in range(12):
            try:
                pids.add(int(app.get("/").json()["pid"]))
            except httpx.HTTPError:
                return False
        return victim not in pids

    wait_until(replaced, 20, 0.2, f"worker {victim} replaced")
    found = bucket_exemplars(scrape_om(app))
    assert victim_cid in {cid for (status, _), (cid, _, _) in found.items()
                          if status == str(victim_status)}
    assert (multiproc_dir / f"exemplars_{victim}.json").exists()
