"""JobTracker.job() with a queue library's own worker: RQ on a real redis-server."""

from __future__ import annotations

import pytest

from promkit.instrument.correlation import bind_correlation_id

from ._servers import RedisServer

rq = pytest.importorskip("rq")
pytest.importorskip("redis")


def test_rq_jobs_are_tracked_from_the_producer_through_rq_s_worker(
        redis_server: RedisServer) -> None:
    from tests.apps import rq_tasks

    rq_tasks.seen.clear()
    connection = redis_server.client()
    queue = rq.Queue("pdf", connection=connection)
    with bind_correlation_id() as cid:  # the API request that enqueues
        ok = queue.enqueue(rq_tasks.render, kwargs=rq_tasks.tracker.created({"pages": 3},
                                                                            "render"))
        bad = queue.enqueue(rq_tasks.render, kwargs=rq_tasks.tracker.created({"pages": -1},
                                                                             "render"))
        ocr_payload = rq_tasks.tracker.created({"pages": 1}, "ocr")
        ocr = queue.enqueue(rq_tasks.ocr, kwargs=ocr_payload)
    assert connection.llen("rq:queue:pdf") == 3

    rq.SimpleWorker([queue], connection=connection).work(burst=True)

    assert ok.get_status(refresh=True) == "finished" and ok.return_value() == 6
    assert bad.get_status(refresh=True) == "failed"
    assert ocr.return_value() == ocr_payload["job_id"]  # a parameter it names is passed
    # The producer's correlation ID inside every run (and so in every log line).
    assert [s["correlation_id"] for s in rq_tasks.seen] == [cid, cid, cid]

    registry = rq_tasks.REGISTRY.collector_registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("jobs_created_total", queue="pdf", job_type="render") == 2
    assert value("job_queue_wait_seconds_count", queue="pdf", job_type="render") == 2
    assert value("jobs_finished_total", queue="pdf", job_type="render", outcome="success",
                 error_code="none") == 1
    assert value("jobs_finished_total", queue="pdf", job_type="render", outcome="failure",
                 error_code="RenderError") == 1
    assert value("jobs_finished_total", queue="pdf", job_type="ocr", outcome="success",
                 error_code="none") == 1
    # queue wait + run = total, per job type
    wait = value("job_queue_wait_seconds_sum", queue="pdf", job_type="render")
    run = sum(value("job_run_duration_seconds_sum", queue="pdf", job_type="render",
                    outcome=o) or 0.0 for o in ("success", "failure"))
    total = sum(value("job_duration_seconds_sum", queue="pdf", job_type="render",
                      outcome=o) or 0.0 for o in ("success", "failure"))
    assert wait is not None and wait > 0
    assert total == pytest.approx(wait + run, rel=1e-6, abs=1e-6)
    assert value("promkit_instrumentation_errors_total", cause="job_payload_created_at:"
                 "JobPayloadError") is None
