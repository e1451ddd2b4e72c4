"""The demo worker: pops OCR jobs from Redis and runs them in four timed stages.

fetch (document cache: hits and misses) → quality (CPU work) → ocr (the fake
OCR API on the fake-services port; it sometimes times out or answers 503:
retried, three tries in all) →
packaging. Records pages and CPU seconds as usage, posts a completion webhook
to the receiver, samples its resources and serves /metrics on port 9464.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import signal
import threading
import time
from collections import OrderedDict
from typing import Any

import httpx
import redis
import structlog

from demo import pricing, settings
from promkit import (
    JobTracker,
    ResourceSampler,
    configure_logging,
    instrument_httpx,
    record_cpu_seconds,
    record_retry,
    record_usage,
    send_webhook,
    set_error_code_mapper,
    stage_timer,
    start_metrics_server,
    work,
)
from promkit.instrument.queues import Job

log = structlog.get_logger("demo.worker")
faults = settings.FaultReader(settings.faults_path())
stop = threading.Event()
tracker = JobTracker(queue=settings.QUEUE, worker_type="cpu")


OCR_ATTEMPTS = 3
"""Tries per OCR call. The fake OCR API fails 4% of calls (3% time out, 1% answer
503), so 0.04**3 = 0.0064% of jobs fail: the jobs SLO (99%) tickets at 0.2333 x
its 1% budget = 0.23%, a 36x margin. With one retry of timeouts only, 1.1% of
jobs failed and the SLO was spent."""


class InjectedFault(Exception):
    """A failure switched on with the error_rate knob."""


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        return str(exc.response.status_code)
    if isinstance(exc, InjectedFault):
        return "injected_fault"
    if isinstance(exc, redis.RedisError):
        return "redis"
    return None


class DocumentCache:
    """A small LRU of fetched documents, so repeated documents are cache hits."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        tracker.cache_lookup("documents", value is not None)
        return value

    def put(self, key: str, value: bytes) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


cache = DocumentCache()
ocr_client = instrument_httpx(
    httpx.Client(base_url=settings.url("fake_services"), timeout=1.0),
    pricing.OCR_PROVIDER, operation_from="ocr")
webhook_client = httpx.Client(timeout=3.0)


def _slowdown() -> None:
    ms = faults.get()["latency_ms"]
    if ms:
        time.sleep(ms / 1000 * random.uniform(0.8, 1.2))


@stage_timer("fetch")
def fetch(document: str, pages: int) -> bytes:
    data = cache.get(document)
    if data is None:
        time.sleep(random.uniform(0.02, 0.06))   # "download" it
        data = hashlib.sha256(document.encode()).digest() * (256 * pages)
        cache.put(document, data)
    return data


@stage_timer("quality")
def quality(data: bytes) -> float:
    digest = data
    for _ in range(random.randint(200, 600)):    # some real CPU time
        digest = hashlib.sha256(digest).digest()
    return digest[0] / 255


@stage_timer("ocr")
def ocr(pages: int) -> dict[str, Any]:
    _slowdown()
    current = faults.get()
    # error_route aims error_rate at one API route: the worker then stays healthy.
    if (current["error_rate"] and not current["error_route"]
            and random.random() < current["error_rate"]):
        raise InjectedFault("error_rate knob")
    for attempt in range(1, OCR_ATTEMPTS + 1):
        try:
            response = ocr_client.post("/v1/ocr", json={"pages": pages})
            response.raise_for_status()
            return dict(response.json())
        except (httpx.TimeoutException, httpx.HTTPStatusError) as exc:
            if attempt == OCR_ATTEMPTS or not _transient(exc):
                raise
            record_retry(pricing.OCR_PROVIDER, "ocr")
    raise AssertionError("unreachable")


def _transient(exc: Exception) -> bool:
    """A timeout, a 429 or a 5xx may pass on a retry; another 4xx will not."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return True


@stage_timer("packaging")
def packaging(result: dict[str, Any], score: float) -> str:
    return json.dumps({"result": result, "quality": round(score, 3)})


def handle(job: Job) -> None:
    """One job: the four stages, usage, status in Redis, the completion webhook."""
    while faults.get()["stuck_worker"] and not stop.is_set():
        time.sleep(0.2)                          # stuck: the job stays in flight
    payload = job.payload
    pages = int(payload.get("pages", 1)) if str(payload.get("pages", "")).isdigit() else 1
    cpu_start = time.thread_time()
    status = "failed"
    try:
        data = fetch(str(payload.get("document", "doc-0")), pages)
        score = quality(data)
        result = ocr(pages)
        packaging(result, score)
        record_usage("ocr_pages", pages, provider=pricing.OCR_PROVIDER)
        status = "done"
    finally:
        record_cpu_seconds(time.thread_time() - cpu_start, role="ocr")
        _set_status(job, status)
        _notify(job, status, pages)


def _set_status(job: Job, status: str) -> None:
    with contextlib.suppress(redis.RedisError):
        job_redis.set(f"demo:job:{job.job_id}", status, ex=3600)


def _notify(job: Job, status: str, pages: int) -> None:
    try:
        send_webhook(settings.url("receiver", "/webhook"),
                     {"event": "job.completed" if status == "done" else "job.failed",
                      "job_id": job.job_id, "status": status, "pages": pages},
                     client=webhook_client)
    except httpx.HTTPError as exc:
        log.warning("webhook_failed", error_type=type(exc).__name__)


job_redis = redis.Redis.from_url(settings.redis_url(), socket_timeout=3.0,
                                 socket_connect_timeout=1.0)


def main() -> None:
    configure_logging(service="demo-worker")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one line per call is noise here
    set_error_code_mapper(error_code)
    pricing.export()
    server = start_metrics_server(port=settings.port("worker_metrics"), host=settings.host())
    sampler = ResourceSampler(disk_paths=(str(settings.run_dir()),))
    sampler.start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("worker_started", metrics_url=server.url, queue=settings.QUEUE)
    outage_logged = False
    try:
        while not stop.is_set():
            if faults.get()["redis_outage"]:
                if not outage_logged:
                    log.error("redis_unavailable", reason="redis_outage knob")
                    outage_logged = True
                stop.wait(1.0)
                continue
            outage_logged = False
            try:
                work(job_redis, settings.QUEUE, handle, tracker=tracker, stop=stop,
                     poll_timeout=1.0)
            except redis.RedisError as exc:
                log.error("redis_unavailable", error_type=type(exc).__name__)
                stop.wait(1.0)
    finally:
        sampler.stop()
        server.stop()
        log.info("worker_stopped")


if __name__ == "__main__":
    main()
