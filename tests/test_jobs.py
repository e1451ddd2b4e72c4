"""Job lifecycle: payload stamping, runs across processes, outcomes, bad payloads."""

import asyncio
import inspect
import json
import logging
import multiprocessing
import time

import pytest
import structlog
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry, correlation, jobs
from promkit.instrument.jobs import JobTracker
from promkit.instrument.stages import stage_timer


class Boom(Exception):
    pass


def sample(registry, name, **labels):
    return registry.collector_registry.get_sample_value(name, labels)


def errors(registry, cause):
    return sample(registry, "promkit_instrumentation_errors_total", cause=cause)


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test sees a process whose first job is still to come."""
    monkeypatch.setattr(jobs, "_process", jobs._ProcessState())


@pytest.fixture
def tracker(registry):
    return JobTracker(registry, queue="tts", worker_type="gpu")


def over_the_wire(payload):
    """The process boundary of a real queue: JSON out, JSON in."""
    return json.loads(json.dumps(payload))


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


# ----------------------------------------------------------------------------- worker


def test_run_records_wait_run_total_and_restores_context(tracker, registry):
    with correlation.bind_correlation_id() as producer_cid:
        payload = tracker.created({"text": "hi"}, "synthesize")
    payload = over_the_wire(payload)
    payload["created_at"] -= 2.0  # it waited two seconds in the queue
    assert correlation.get_correlation_id() is None

    with tracker.run(payload) as run:
        assert correlation.get_correlation_id() == producer_cid
        assert structlog.contextvars.get_contextvars()["job_id"] == payload["job_id"]
        assert sample(registry, "jobs_in_flight", job_type="synthesize") == 1
        time.sleep(0.05)

    assert correlation.get_correlation_id() is None
    assert "job_id" not in structlog.contextvars.get_contextvars()
    assert sample(registry, "jobs_in_flight", job_type="synthesize") == 0
    assert run.outcome == "success" and run.error_code == "none"
    assert 2.0 <= run.queue_wait_seconds < 2.5
    assert run.run_seconds >= 0.05
    assert run.total_seconds == pytest.approx(run.queue_wait_seconds + run.run_seconds)
    labels = {"queue": "tts", "job_type": "synthesize"}
    wait = sample(registry, "job_queue_wait_seconds_sum", **labels)
    ran = sample(registry, "job_run_duration_seconds_sum", **labels, outcome="success")
    total = sample(registry, "job_duration_seconds_sum", **labels, outcome="success")
    assert wait + ran == pytest.approx(total)
    assert sample(registry, "jobs_finished_total", **labels, outcome="success",
                  error_code="none") == 1
    for from_status, to_status in (("queued", "running"), ("running", "succeeded")):
        assert sample(registry, "job_status_transitions_total", job_type="synthesize",
                      from_status=from_status, to_status=to_status) == 1


def test_failed_run_counts_the_error_code_and_reraises_the_same_exception(tracker, registry):
    payload = over_the_wire(tracker.created({}, "ocr"))
    error = Boom("page 3")
    with pytest.raises(Boom) as info, tracker.run(payload):
        raise error
    assert info.value is error
    labels = {"queue": "tts", "job_type": "ocr"}
    assert sample(registry, "jobs_finished_total", **labels, outcome="failure",
                  error_code="Boom") == 1
    assert sample(registry, "job_duration_seconds_count", **labels, outcome="failure") == 1
    assert sample(registry, "job_status_transitions_total", job_type="ocr",
                  from_status="running", to_status="failed") == 1
    assert sample(registry, "jobs_in_flight", job_type="ocr") == 0


def test_tracker_error_code_mapper(registry):
    tracker = JobTracker(registry, error_code=lambda exc: "timeout")
    with pytest.raises(TimeoutError), tracker.run(tracker.created({}, "ocr")):
        raise TimeoutError()
    assert sample(registry, "jobs_finished_total", queue="default", job_type="ocr",
                  outcome="failure", error_code="timeout") == 1


async def test_async_run_and_stage_timers_inside(tracker, registry):
    logs = []
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars,
                                    lambda _l, _m, ev: logs.append(ev) or ev,
                                    structlog.processors.JSONRenderer()],
                        logger_factory=structlog.ReturnLoggerFactory(),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    @stage_timer("synth", registry=registry)
    async def synth():
        await asyncio.sleep(0.01)
        return correlation.get_correlation_id()

    try:
        with correlation.bind_correlation_id() as cid:
            payload = over_the_wire(tracker.created({}, "synthesize"))
        async with tracker.run(payload):
            seen = await synth()
    finally:
        structlog.configure(**saved)
    assert seen == cid
    assert sample(registry, "job_stage_duration_seconds_count", stage="synth") == 1
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="synthesize",
                  outcome="success", error_code="none") == 1
    events = {e["event"]: e for e in logs}
    assert events["stage completed"]["job_id"] == payload["job_id"]
    assert events["job started"]["job_id"] == payload["job_id"]
    assert "queue_wait_ms" in events["job started"]
    assert events["job succeeded"]["latency_ms"] >= 10


def test_started_and_explicit_end(tracker, registry):
    payload = over_the_wire(tracker.created({}, "ocr"))
    run = tracker.started(payload)
    assert sample(registry, "jobs_in_flight", job_type="ocr") == 1
    run.failed("quota_exceeded")
    run.failed("again")  # finishing twice records once
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="ocr",
                  outcome="failure", error_code="quota_exceeded") == 1
    assert sample(registry, "jobs_in_flight", job_type="ocr") == 0
    assert correlation.get_correlation_id() is None


def test_fail_inside_a_block_without_an_exception(tracker, registry):
    with tracker.run(tracker.created({}, "ocr")) as run:
        run.fail("unreadable")
    assert sample(registry, "jobs_finished_total", queue="tts", job_type="ocr",
                  outcome="failure", error_code="unreadable") == 1


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


def test_cold_start_is_counted_once_per_process(tracker, registry):
    for _ in range(3):
        with tracker.run(tracker.created({}, "ocr")):
            pass
    assert sample(registry, "worker_cold_starts_total", worker_type="gpu") == 1


def test_iso_created_at_is_accepted(tracker, registry):
    payload = {"created_at": "2020-01-01T00:00:00Z", "job_type": "ocr"}
    with tracker.run(payload) as run:
        pass
    assert run.queue_wait_seconds > 86400
    assert errors(registry, "job_payload_created_at:JobPayloadError") is None


# ---------------------------------------------------------------- clocks and bad data


def test_clock_skew_clamps_the_wait_to_zero_and_is_counted(tracker, registry):
    payload = over_the_wire(tracker.created({}, "ocr"))
    payload["created_at"] += 30  # the producer's clock is 30 s ahead
    with tracker.run(payload) as run:
        time.sleep(0.01)
    assert run.queue_wait_seconds == 0.0
    assert run.total_seconds == pytest.approx(run.run_seconds)
    assert sample(registry, "job_queue_wait_seconds_sum", queue="tts", job_type="ocr") == 0
    assert errors(registry, "job_clock_skew:ClockSkewError") == 1


@pytest.mark.parametrize("created_at", [None, "yesterday", True, float("nan"), -5, [1], {}])
def test_bad_created_at_never_raises(tracker, registry, created_at):
    payload = {"job_id": "j1", "job_type": "ocr"}
    if created_at is not None:
        payload["created_at"] = created_at
    with tracker.run(payload) as run:
        pass
    assert run.queue_wait_seconds is None and run.total_seconds is None
    assert run.outcome == "success"
    assert sample(registry, "job_run_duration_seconds_count", queue="tts", job_type="ocr",
                  outcome="success") == 1
    assert sample(registry, "job_duration_seconds_count", queue="tts", job_type="ocr",
                  outcome="success") is None
    assert errors(registry, "job_payload_created_at:JobPayloadError") == 1


def test_bad_payloads_are_logged_once_per_cause(tracker, registry, caplog):
    caplog.set_level(logging.WARNING, logger="promkit")
    for _ in range(3):
        with tracker.run({"job_type": "ocr"}):
            pass
    assert errors(registry, "job_payload_created_at:JobPayloadError") == 3
    messages = [r.getMessage() for r in caplog.records if "job_payload_created_at" in
                r.getMessage()]
    assert len(messages) == 1


def test_a_payload_that_is_not_a_mapping_never_raises(tracker, registry):
    with tracker.run(["not", "a", "dict"]) as run:
        assert correlation.valid_correlation_id(correlation.get_correlation_id())
    assert run.job_type == "unknown" and run.outcome == "success"
    assert errors(registry, "job_payload:JobPayloadError") == 1


def test_invalid_correlation_id_in_the_payload_is_replaced(tracker):
    payload = {"created_at": time.time(), "correlation_id": "x\r\nSet-Cookie: a"}
    with tracker.run(payload) as run:
        assert correlation.get_correlation_id() == run.correlation_id
    assert correlation.valid_correlation_id(run.correlation_id)


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
