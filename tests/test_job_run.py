"""One job run (promkit.instrument._job_run): the context it binds, wait/run/total, outcomes,
cold starts, clocks and bad payloads. The tracker's producer side and decorator are in
tests/test_jobs.py."""

import asyncio
import logging
import time

import jobs_support
import pytest
import structlog
from jobs_support import errors, over_the_wire, sample

from promkit.instrument import correlation
from promkit.instrument._job_run import JobContext
from promkit.instrument.stages import stage_timer

# The shared fixtures (tests/jobs_support.py), active in this module.
fresh_process_state = jobs_support.fresh_process_state
tracker = jobs_support.tracker


class Boom(Exception):
    pass


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


# ------------------------------------------------------------------------- context


def test_job_context_binds_the_id_and_job_id_for_plain_structlog_and_restores():
    cid = correlation.new_correlation_id()
    with JobContext({"job_id": "j-1", "correlation_id": cid}) as bound:
        assert bound == cid == correlation.get_correlation_id()
        assert structlog.contextvars.get_contextvars() == {"correlation_id": cid, "job_id": "j-1"}
    assert structlog.contextvars.get_contextvars() == {}
    assert correlation.get_correlation_id() is None


def test_job_context_follows_the_rule_without_a_payload_id():
    with correlation.bind_correlation_id() as outer, JobContext({"correlation_id": "x"}) as cid:
        assert cid == outer  # the ID already bound
    with JobContext({}) as first, JobContext({}) as second:
        assert correlation.valid_correlation_id(first) and second == first


def test_a_run_finished_in_another_context_leaves_that_context_alone(tracker):
    import contextvars

    started_in = contextvars.copy_context()
    run = started_in.run(tracker.started, over_the_wire(tracker.created({}, "ocr")))
    assert started_in.run(correlation.get_correlation_id) == run.correlation_id
    run.succeeded()  # finished from this context, not the one it bound: no error
    assert run.outcome == "success" and correlation.get_correlation_id() is None
    assert started_in.run(correlation.get_correlation_id) == run.correlation_id
