"""Issue 5 end to end: API -> Redis -> worker process -> external service -> webhook.

Every part is a real process on 127.0.0.1: redis-server (fixture), the API
(``tests/apps/e2e_api.py``, uvicorn), the worker (``tests/apps/e2e_worker.py``,
a plain subprocess serving its metrics with ``start_metrics_server``), a slow
external service and a webhook receiver (``tests/apps/e2e_services.py``,
uvicorn), and a Prometheus scraping the API (with the in-process
``RedisQueueCollector``) and the worker. Every service JSON-logs to its own file
with ``configure_logging``.

The test enqueues N jobs through the API while no worker runs (half of the
requests carry an ``X-Correlation-ID``, the others get a generated one), checks
the queue depth through Prometheus, starts the worker, waits for every webhook,
then checks that the latency series Prometheus scraped add up, that every log
line of each job carries the job's correlation ID in the API, worker, external
service and receiver logs, and finally stops Redis and checks that the API and
the scrapes keep working (``queue_up`` 0, enqueue answers 503).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._servers import (
    AppServer,
    ManagedProcess,
    PrometheusServer,
    RedisServer,
    app_env,
    free_port,
    wait_http_ready,
    wait_until,
)

pytest.importorskip("redis")

QUEUE = "e2e_jobs"
JOB_TYPE = "e2e"
N_JOBS = 5  # external calls 1..7: calls 3 and 6 time out (every 3rd), each retried once
CLIENT_TIMEOUT = 0.5  # the worker's timeout for the external service
SLOW_DELAY = 2.0  # what the external service's every 3rd call sleeps
EXPECTED_TIMEOUTS = 2
STAGES = ("fetch", "digest", "store")


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines log, parsed; fails on a line that is not a JSON object."""
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {text!r}") from None
        assert isinstance(line, dict), f"{path.name}:{number} is not a JSON object: {text!r}"
        for key in ("timestamp", "level", "service", "event"):
            assert key in line, f"{path.name}:{number} lacks {key!r}: {text!r}"
        lines.append(line)
    return lines


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def scalar(prom: PrometheusServer, expr: str) -> float:
    value = prom.value(expr)
    assert value is not None, f"{expr!r} returned nothing"
    return value


def test_api_queue_worker_webhook_end_to_end(
        redis_server: RedisServer, prometheus: Callable[..., PrometheusServer],
        uvicorn_app: Callable[..., AppServer], tmp_path: Path) -> None:
    started = time.monotonic()
    logs = {name: tmp_path / f"{name}.jsonl" for name in ("api", "worker", "external", "receiver")}
    external = uvicorn_app("e2e_services:external_app", extra_args=["--factory"], env={
        "E2E_LOG_FILE": str(logs["external"]), "E2E_SLOW_EVERY": "3",
        "E2E_SLOW_DELAY": str(SLOW_DELAY)})
    receiver = uvicorn_app("e2e_services:receiver_app", extra_args=["--factory"],
                           env={"E2E_LOG_FILE": str(logs["receiver"])})
    api = uvicorn_app("e2e_api:app", env={
        "E2E_REDIS_URL": redis_server.url, "E2E_LOG_FILE": str(logs["api"]), "E2E_QUEUE": QUEUE})
    worker_port = free_port()
    worker_address = f"127.0.0.1:{worker_port}"
    prom = prometheus(targets=[api.address, worker_address])
    queue = f'queue="{QUEUE}"'

    # ---- 1. N jobs enqueued through the API while no worker runs -------------------------
    jobs: list[dict[str, str]] = []  # job_id, correlation_id, sent (the header we sent or "")
    first_enqueue = time.time()
    with httpx.Client(base_url=api.url, timeout=5.0) as http:
        for n in range(N_JOBS):
            sent = str(uuid.uuid4()) if n % 2 == 0 else ""
            response = http.post("/jobs", json={"n": n},
                                 headers={"X-Correlation-ID": sent} if sent else {})
            assert response.status_code == 202, response.text
            body = response.json()
            echoed = response.headers["X-Correlation-ID"]
            assert body["correlation_id"] == echoed
            if sent:
                assert echoed == sent
            else:
                assert is_uuid(echoed)
            jobs.append({"job_id": body["job_id"], "correlation_id": echoed, "sent": sent})
    last_enqueue = time.time()
    cids = {job["correlation_id"] for job in jobs}
    assert len(cids) == N_JOBS, "every request has its own correlation ID"

    # Queue depth while the jobs wait: the exporter directly, then Prometheus.
    metrics = api.get("/metrics").text
    assert f'queue_depth{{{queue}}} {float(N_JOBS)}' in metrics, metrics
    prom.wait_for_value(f"queue_depth{{{queue}}}", lambda v: v == N_JOBS, timeout=30)
    assert scalar(prom, f"queue_up{{{queue}}}") == 1
    assert scalar(prom, f"queue_oldest_item_age_seconds{{{queue}}}") > 0
    assert scalar(prom, f'sum(jobs_created_total{{{queue},job_type="{JOB_TYPE}"}})') == N_JOBS

    # ---- 2. the worker process drains the queue --------------------------------------------
    worker_launch = time.time()
    worker = ManagedProcess.start("e2e worker", [
        sys.executable, "-m", "e2e_worker", "--redis-url", redis_server.url, "--queue", QUEUE,
        "--metrics-port", str(worker_port), "--external-url", external.url,
        "--webhook-url", receiver.url + "/hook", "--log-file", str(logs["worker"]),
        "--timeout", str(CLIENT_TIMEOUT),
    ], tmp_path / "worker.out", env=app_env(), cwd=tmp_path)
    try:
        wait_http_ready(worker, f"http://{worker_address}/metrics", 20)

        def webhooks() -> list[dict[str, Any]]:
            received: list[dict[str, Any]] = receiver.get("/received").json()
            return received if len(received) >= N_JOBS else []

        received = wait_until(webhooks, 30, 0.1, f"{N_JOBS} webhooks")
        all_done = time.time()
        assert len(received) == N_JOBS
        by_job = {body["job_id"]: body for body in received}
        for job in jobs:
            body = by_job[job["job_id"]]
            assert body["correlation_id"] == job["correlation_id"]
            assert body["status"] == "done"

        # ---- 3. what Prometheus scraped adds up -------------------------------------------
        jt = f'job_type="{JOB_TYPE}"'
        for expr in (f"sum(job_duration_seconds_count{{{jt}}})",
                     f"sum(job_run_duration_seconds_count{{{jt}}})",
                     f"sum(job_queue_wait_seconds_count{{{jt}}})",
                     f'sum(jobs_finished_total{{{jt},outcome="success"}})',
                     *(f'sum(job_stage_duration_seconds_count{{stage="{s}"}})' for s in STAGES),
                     'sum(external_calls_total{peer_service="webhook",outcome="success"})'):
            prom.wait_for_value(expr, lambda v: v == N_JOBS, timeout=20)
        prom.wait_for_value('sum(external_calls_total{peer_service="lookup",outcome="timeout"})',
                            lambda v: v == EXPECTED_TIMEOUTS, timeout=20)
        prom.wait_for_value(f"queue_depth{{{queue}}}", lambda v: v == 0, timeout=20)

        wait_sum = scalar(prom, f"sum(job_queue_wait_seconds_sum{{{queue},{jt}}})")
        ok = f'{queue},{jt},outcome="success"'
        run_sum = scalar(prom, f"sum(job_run_duration_seconds_sum{{{ok}}})")
        total_sum = scalar(prom, f"sum(job_duration_seconds_sum{{{ok}}})")
        stage_sums = {s: scalar(prom, f'sum(job_stage_duration_seconds_sum{{stage="{s}"}})')
                      for s in STAGES}
        lookup_sum = scalar(prom, 'sum(external_call_duration_seconds_sum{peer_service="lookup"})')
        timeout_sum = scalar(prom, 'sum(external_call_duration_seconds_sum'
                                   '{peer_service="lookup",outcome="timeout"})')
        webhook_sum = scalar(prom, 'sum(external_call_duration_seconds_sum'
                                   '{peer_service="webhook"})')
        summary = (f"wait {wait_sum:.3f} run {run_sum:.3f} total {total_sum:.3f} "
                   f"stages {stage_sums} lookup {lookup_sum:.3f} webhook {webhook_sum:.3f}")

        # queue wait + run = total (the tracker observes exactly that; 10 ms for float noise).
        assert abs(wait_sum + run_sum - total_sum) <= 0.01, summary
        # Every job waited at least from the last enqueue to the worker's launch, at most
        # from the first enqueue to the last webhook.
        assert wait_sum >= N_JOBS * (worker_launch - last_enqueue), summary
        assert wait_sum <= N_JOBS * (all_done - first_enqueue), summary
        assert run_sum <= all_done - worker_launch, summary
        # Stages (and the webhook, sent after them) run inside the job run.
        assert all(v > 0 for v in stage_sums.values()), summary
        assert sum(stage_sums.values()) + webhook_sum <= run_sum + 0.001, summary
        # The external calls happen inside the fetch stage; two of them waited for the timeout.
        assert lookup_sum <= stage_sums["fetch"] + 0.001, summary
        assert EXPECTED_TIMEOUTS * CLIENT_TIMEOUT <= timeout_sum < EXPECTED_TIMEOUTS * SLOW_DELAY
        assert scalar(prom, 'sum(external_calls_total{peer_service="lookup",outcome="success"})') \
            == N_JOBS
        assert scalar(prom, 'sum(external_call_retries_total{peer_service="lookup"})') \
            == EXPECTED_TIMEOUTS
        assert prom.query("sum(job_stage_failures_total)") == []
        assert scalar(prom, f'sum(jobs_in_flight{{{jt}}})') == 0
        assert scalar(prom, "sum(worker_cold_starts_total)") == 1

        # ---- 4. Redis goes away mid-test ----------------------------------------------------
        redis_server.stop()
        down_cid = str(uuid.uuid4())
        t0 = time.monotonic()
        ping = api.get("/ping")
        assert ping.status_code == 200
        failed = httpx.post(api.url + "/jobs", json={"n": 99}, timeout=10.0,
                            headers={"X-Correlation-ID": down_cid})
        assert failed.status_code == 503, failed.text
        assert failed.json() == {"error": "queue unavailable", "correlation_id": down_cid}
        assert time.monotonic() - t0 < 5.0
        t0 = time.monotonic()
        scrape = api.get("/metrics")
        assert scrape.status_code == 200
        assert time.monotonic() - t0 < 1.5, "the scrape waits at most the collector timeout"
        assert f"queue_up{{{queue}}} 0.0" in scrape.text
        assert f"queue_depth{{{queue}}}" not in scrape.text
        prom.wait_for_value(f"queue_up{{{queue}}}", lambda v: v == 0, timeout=20)
        prom.wait_for(f"queue_depth{{{queue}}}", lambda r: r == [], timeout=20)
        assert scalar(prom, f'up{{instance="{api.address}"}}') == 1
        assert api.process.running()
        assert api.get("/ping").status_code == 200
        # The worker survives too (it logs and retries) and keeps serving its metrics.
        wait_until(lambda: any(line["event"] == "queue unavailable"
                               for line in read_log(logs["worker"])), 10, 0.1,
                   "worker logs queue unavailable")
        prom.wait_for_value(f'up{{instance="{worker_address}"}}', lambda v: v == 1, timeout=10)
        assert worker.running()

        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(10) == 0, worker.log_tail()
    finally:
        worker.stop()

    # ---- 5. one correlation ID per job in every JSON line of every service ----------------
    api_log, worker_log = read_log(logs["api"]), read_log(logs["worker"])
    external_log, receiver_log = read_log(logs["external"]), read_log(logs["receiver"])

    cid_of_job = {job["job_id"]: job["correlation_id"] for job in jobs}
    for name, lines in (("api", api_log), ("worker", worker_log), ("external", external_log),
                        ("receiver", receiver_log)):
        for line in lines:
            if "job_id" not in line:
                continue
            # A line about a job carries that job's correlation ID. The one job_id we did not
            # get back is the enqueue that failed while Redis was down: enqueue stamps the
            # payload (and logs "job created") before the push fails.
            expected = cid_of_job.get(line["job_id"], down_cid)
            assert line.get("correlation_id") == expected, (name, line)
            if line["job_id"] not in cid_of_job:
                assert (name, line["event"]) == ("api", "job created"), line
            if line["event"] == "http_request":  # every request line has an ID
                assert is_uuid(line.get("correlation_id")), (name, line)

    for job in jobs:
        jid, cid = job["job_id"], job["correlation_id"]

        api_lines = [line for line in api_log if line.get("correlation_id") == cid]
        assert {line["event"] for line in api_lines} == {"job created", "http_request"}, api_lines
        created = next(line for line in api_lines if line["event"] == "job created")
        assert created["job_id"] == jid
        access = next(line for line in api_lines if line["event"] == "http_request")
        assert (access["http_method"], access["http_path"], access["http_status"]) == \
            ("POST", "/jobs", 202)

        # The worker handles one job at a time: every line from "job started" to
        # "job succeeded" of this job belongs to it, and each carries its ID.
        start = next(i for i, line in enumerate(worker_log)
                     if line["event"] == "job started" and line.get("job_id") == jid)
        end = next(i for i, line in enumerate(worker_log)
                   if line["event"] == "job succeeded" and line.get("job_id") == jid)
        span = worker_log[start:end + 1]
        for line in span:
            assert line.get("correlation_id") == cid, line
            assert line.get("job_id") == jid, line
        assert [line for line in worker_log if line.get("correlation_id") == cid] == span
        events = [line["event"] for line in span]
        assert [line["stage"] for line in span if line["event"] == "stage completed"] \
            == list(STAGES), events
        assert "job handled" in events
        assert span[0]["extra"]["queue_wait_ms"] >= (worker_launch - last_enqueue) * 1000

        receiver_lines = [line for line in receiver_log if line.get("correlation_id") == cid]
        assert sorted(line["event"] for line in receiver_lines) == \
            ["http_request", "webhook received"], receiver_lines
        hook = next(line for line in receiver_lines if line["event"] == "webhook received")
        assert hook["job_id"] == jid and hook["extra"]["body_correlation_id"] == cid

        external_lines = [line for line in external_log if line.get("correlation_id") == cid
                          and line["event"] == "lookup"]
        assert external_lines, f"the external service saw no call with {cid}"

    # Lookups that timed out were logged by the worker with the job's ID (checked above) ...
    timeouts = [line for line in worker_log if line["event"] == "external call completed"
                and line["extra"].get("outcome") == "timeout"]
    assert len(timeouts) == EXPECTED_TIMEOUTS, timeouts
    # ... and the failed enqueue with the caller's ID.
    failed_lines = [line for line in api_log if line.get("correlation_id") == down_cid]
    assert sorted(line["event"] for line in failed_lines) == \
        ["enqueue failed", "http_request", "job created"], failed_lines
    assert next(line for line in failed_lines if line["event"] == "http_request")[
        "http_status"] == 503
    assert time.monotonic() - started < 90
