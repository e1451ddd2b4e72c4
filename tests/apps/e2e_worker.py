"""The worker process of the worker end-to-end test (tests/integration/test_worker_e2e.py).

``python -m e2e_worker --redis-url URL --metrics-port PORT --external-url URL
--webhook-url URL --log-file PATH [--queue e2e_jobs] [--timeout 0.5]``

Pops jobs from the Redis list with ``promkit.instrument.queues.work`` (each job runs
inside ``Job.run()``: the producer's correlation ID restored, queue wait / run /
total latency recorded by ``JobTracker``), runs three ``@stage_timer`` stages
and posts a webhook with ``send_webhook``:

* ``fetch`` -- ``GET /lookup/{job_id}`` on the external service through an
  ``instrument_httpx`` client (service ``lookup``, operation ``get``) with a
  ``--timeout`` client timeout; a timeout is retried once (``record_retry``);
* ``digest`` -- a little CPU work (SHA-256 rounds);
* ``store`` -- ``SET e2e:result:<job_id>`` in Redis.

Serves its metrics with ``promkit.exporters.start_metrics_server`` on ``--metrics-port``
and JSON-logs to ``--log-file`` only. SIGTERM/SIGINT stop the loop after the
current job. When Redis goes away the loop logs ``queue unavailable`` and
retries every 0.5 s instead of dying, so the metrics stay scrapeable.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import threading
from typing import Any

import httpx
import redis
import structlog

from promkit.exporters import start_metrics_server
from promkit.instrument import configure_logging, instrument_httpx, record_retry, stage_timer
from promkit.instrument.queues import Job, send_webhook, work


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="e2e_worker")
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--queue", default="e2e_jobs")
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument("--external-url", required=True)
    ap.add_argument("--webhook-url", required=True)
    ap.add_argument("--log-file", required=True)
    ap.add_argument("--timeout", type=float, default=0.5, help="external client timeout, s")
    args = ap.parse_args(argv)

    configure_logging(service="e2e-worker", stream=None, file=args.log_file)
    log = structlog.get_logger("e2e.worker")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    r = redis.Redis.from_url(args.redis_url, socket_timeout=5.0, socket_connect_timeout=1.0)
    external = instrument_httpx(
        httpx.Client(base_url=args.external_url, timeout=args.timeout), "lookup",
        operation_from="get")
    hooks = httpx.Client(timeout=5.0)

    @stage_timer("fetch")
    def fetch(job: Job) -> int:
        for attempt in (1, 2):
            try:
                response = external.get(f"/lookup/{job.job_id}")
                response.raise_for_status()
                return int(response.json()["value"])
            except httpx.TimeoutException:
                if attempt == 2:
                    raise
                record_retry("lookup", "get")
                log.info("lookup timed out, retrying", attempt=attempt)
        raise AssertionError("unreachable")

    @stage_timer("digest")
    def digest(value: int) -> str:
        data = str(value).encode()
        for _ in range(20_000):
            data = hashlib.sha256(data).digest()
        return data.hex()

    @stage_timer("store")
    def store(job: Job, result: str) -> None:
        r.set(f"e2e:result:{job.job_id}", result, ex=600)

    def handle(job: Job) -> None:
        value = fetch(job)
        result = digest(value)
        store(job, result)
        response = send_webhook(args.webhook_url,
                                {"job_id": job.job_id, "status": "done", "result": result},
                                client=hooks)
        log.info("job handled", webhook_status=response.status_code)

    server = start_metrics_server(port=args.metrics_port)
    log.info("worker started", queue=args.queue, metrics_port=server.port)
    while not stop.is_set():
        try:
            work(r, args.queue, handle, poll_timeout=0.5, stop=stop)
        except redis.RedisError as exc:
            log.warning("queue unavailable", queue=args.queue, error_type=type(exc).__name__)
            stop.wait(0.5)
    log.info("worker stopping")
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
