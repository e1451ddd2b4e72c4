"""The job tracker: payload stamping (the producer side), the task decorator, counters,
and a job's life across two processes. One run's own behaviour is in tests/test_job_run.py."""

import inspect
import json
import multiprocessing
import time

import jobs_support
import pytest
import structlog
from jobs_support import errors, sample
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry, correlation
from promkit.instrument.jobs import JobTracker
from promkit.instrument.stages import stage_timer

# The shared fixtures (tests/jobs_support.py), active in this module.
fresh_process_state = jobs_support.fresh_process_state
tracker = jobs_support.tracker

# --------------------------------------------------------------------------- producer


def test_created_stamps_the_payload_and_counts(tracker, registry):
    with correlation.bind_correlation_id() as cid:
        before = time.time()
        payload = tracker.created({"text": "hello"}, "synthesize", queue_depth=7)
    assert payload["text"] == "hello"
    assert before <= payload["created_at"] <= time.time()
    assert isinstance(payload["job_id"], str) and len(payload["job_id"]) == 32
    assert payload["correlation_id"] == cid
    assert payload["job_type"] == "synthesize" and payload["queue"] == "tts"
    assert sample(registry, "jobs_created_total", queue="tts", job_type="synthesize") == 1
    assert sample(registry, "job_enqueue_queue_depth_count", queue="tts") == 1
    assert sample(registry, "job_enqueue_queue_depth_sum", queue="tts") == 7


def test_created_keeps_an_existing_job_id_and_correlation_id(tracker):
    cid = correlation.new_correlation_id()
    payload = tracker.created({"job_id": "abc", "correlation_id": cid}, "synthesize")
    assert payload["job_id"] == "abc" and payload["correlation_id"] == cid


def test_batch_producer_outside_a_request_gives_each_job_its_own_correlation_id(tracker):
    assert correlation.get_correlation_id() is None
    ids = {tracker.created({}, "synthesize")["correlation_id"] for _ in range(5)}
    assert len(ids) == 5 and all(correlation.valid_correlation_id(i) for i in ids)
    assert correlation.get_correlation_id() is None  # nothing left bound


def test_created_with_a_non_dict_payload_never_raises(tracker, registry):
    assert tracker.created(None, "synthesize") is None
    assert errors(registry, "job_created:JobPayloadError") == 1


def test_tracker_error_code_mapper(registry):
    tracker = JobTracker(registry, error_code=lambda exc: "timeout")
    with pytest.raises(TimeoutError), tracker.run(tracker.created({}, "ocr")):
        raise TimeoutError()
    assert sample(registry, "jobs_finished_total", queue="default", job_type="ocr",
                  outcome="failure", error_code="timeout") == 1


async def test_job_decorator_takes_the_payload_fields_out_of_the_kwargs(tracker, registry):
    seen = []

    @tracker.job()
    async def transcribe(ctx, seconds):  # arq's shape: ctx first, then the job's kwargs
        seen.append((ctx, seconds, correlation.get_correlation_id()))
        return seconds * 2

    with correlation.bind_correlation_id() as cid:
        payload = tracker.created({"seconds": 4}, "transcribe")
    assert await transcribe({"job_try": 1}, **payload) == 8
    assert seen == [({"job_try": 1}, 4, cid)]
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="transcribe",
                  outcome="success", error_code="none") == 1

    @tracker.job("resize")
    def resize(width, queue):  # names `queue`: passed through, the rest taken out
        return (width, queue)

    assert resize(**tracker.created({"width": 3}, "other")) == (3, "tts")
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="resize",
                  outcome="success", error_code="none") == 1

    @tracker.job()
    def no_payload(x):  # called without a producer's stamp: runs, wait unknown (counted)
        return x

    assert no_payload(x=1) == 1
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="no_payload",
                  outcome="success", error_code="none") == 1

    # Argument checks that read the signature (Celery's) accept the payload's fields.
    assert str(inspect.signature(resize)) == (
        "(width, queue, *, created_at=None, job_id=None, correlation_id=None, job_type=None)")
    assert list(inspect.signature(transcribe).parameters) == [
        "ctx", "seconds", "created_at", "job_id", "correlation_id", "job_type", "queue"]
    inspect.signature(resize).bind(**tracker.created({"width": 1}, "resize"))

    def generator():
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        tracker.job()(generator)


# ------------------------------------------------------------------ other counters


def test_transitions_recovered_skipped_persist_and_cache(tracker, registry):
    payload = tracker.created({}, "ocr")
    tracker.transition(payload, "running", "retrying")
    tracker.transition("ocr", "retrying", "queued")
    tracker.recovered("ocr", "worker_lost")
    tracker.skipped("ocr", "expired")
    tracker.persist_failed("postgres")
    tracker.cache_hit("audio")
    tracker.cache_hit("audio")
    tracker.cache_miss("audio")
    tracker.cache_lookup("audio", hit=False)
    assert sample(registry, "job_status_transitions_total", job_type="ocr",
                  from_status="running", to_status="retrying") == 1
    assert sample(registry, "job_status_transitions_total", job_type="ocr",
                  from_status="retrying", to_status="queued") == 1
    assert sample(registry, "jobs_recovered_total", job_type="ocr", reason="worker_lost") == 1
    assert sample(registry, "jobs_skipped_total", job_type="ocr", reason="expired") == 1
    assert sample(registry, "job_persist_failures_total", store="postgres") == 1
    assert sample(registry, "cache_requests_total", cache="audio", result="hit") == 2
    assert sample(registry, "cache_requests_total", cache="audio", result="miss") == 2


# --------------------------------------------------------- a real second process


def _worker_process(payload_lines: list[str], results) -> None:
    """The worker side, in a spawned process: its own registry, the payloads as JSON."""
    registry = MetricsRegistry(CollectorRegistry())
    tracker = JobTracker(registry, queue="tts", worker_type="cpu")

    @stage_timer("synth", registry=registry)
    def synth():
        time.sleep(0.05)
        return correlation.get_correlation_id()

    seen = []
    for line in payload_lines:
        payload = json.loads(line)
        with tracker.run(payload) as run:
            seen.append({
                "cid_in_run": synth(),
                "job_id_in_logs": structlog.contextvars.get_contextvars().get("job_id"),
                "queue_wait": run.queue_wait_seconds,
            })
        seen[-1]["run"] = run.run_seconds
        seen[-1]["total"] = run.total_seconds

    def value(name, **labels):
        return registry.collector_registry.get_sample_value(name, labels)

    labels = {"queue": "tts", "job_type": "synthesize"}
    results.put({
        "jobs": seen,
        "wait_sum": value("job_queue_wait_seconds_sum", **labels),
        "run_sum": value("job_run_duration_seconds_sum", **labels, outcome="success"),
        "total_sum": value("job_duration_seconds_sum", **labels, outcome="success"),
        "total_count": value("job_duration_seconds_count", **labels, outcome="success"),
        "stage_count": value("job_stage_duration_seconds_count", stage="synth"),
        "in_flight": value("jobs_in_flight", job_type="synthesize"),
        "cold_starts": value("worker_cold_starts_total", worker_type="cpu"),
        "cid_after": correlation.get_correlation_id(),
    })


def test_job_lifecycle_across_two_processes(tracker, registry):
    cids = []
    lines = []
    for _ in range(2):
        with correlation.bind_correlation_id() as cid:
            cids.append(cid)
            lines.append(json.dumps(tracker.created({"text": "hi"}, "synthesize",
                                                    queue_depth=len(lines))))
    created = time.time()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_worker_process, args=(lines, results))
    child.start()
    try:
        out = results.get(timeout=60)
    finally:
        child.join(timeout=30)
    elapsed = time.time() - created
    assert child.exitcode == 0

    assert [job["cid_in_run"] for job in out["jobs"]] == cids
    assert [job["job_id_in_logs"] for job in out["jobs"]] == [json.loads(x)["job_id"]
                                                              for x in lines]
    assert out["cid_after"] is None
    # The wait spans the child's start-up: positive, and no longer than the whole test.
    for job in out["jobs"]:
        assert 0 < job["queue_wait"] <= elapsed
        assert job["run"] >= 0.05
        assert job["total"] == pytest.approx(job["queue_wait"] + job["run"])
    assert out["wait_sum"] + out["run_sum"] == pytest.approx(out["total_sum"])
    assert out["total_count"] == 2 and out["stage_count"] == 2
    assert out["in_flight"] == 0
    assert out["cold_starts"] == 1  # once in the worker process, not per job
    # The producer side was recorded here, in this process's registry.
    assert sample(registry, "jobs_created_total", queue="tts", job_type="synthesize") == 2
    assert sample(registry, "worker_cold_starts_total", worker_type="cpu") is None
