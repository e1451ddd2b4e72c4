"""Recorders: several in-process series updated under one lock by one call, and their
fallback to the children's own calls (multiprocess files)."""

import threading

import pytest
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry
from promkit.instrument._recorders import http_request_recorder, paired_recorder


def value(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def run_in_threads(work, n):
    """Run ``work`` in ``n`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_paired_recorder_updates_both_series_and_shares_one_lock(registry):
    hist = registry.histogram("pair_seconds", "Wall.", ["k"], buckets=[0.1, 1.0])
    counter = registry.counter("pair_cpu_seconds_total", "CPU.", ["k"])
    record = paired_recorder(hist.labels("x"), counter.labels("x"))
    other = counter.labels("x")  # the same series, incremented the ordinary way meanwhile

    def work():
        for _ in range(5_000):
            record(0.5, 0.25)
            other.inc(1.0)

    run_in_threads(work, 4)
    assert value(registry, "pair_seconds_bucket", k="x", le="0.1") == 0
    assert value(registry, "pair_seconds_bucket", k="x", le="1.0") == 20_000
    assert value(registry, "pair_seconds_sum", k="x") == 10_000.0
    assert value(registry, "pair_cpu_seconds_total", k="x") == 20_000 * 1.25  # nothing lost
    record(float("nan"), 1.0)  # counted, not raised
    record(0.5, -1.0)
    assert value(registry, "pair_seconds_sum", k="x") == 10_000.0
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="paired_record:ValueError") == 2


def test_http_request_recorder_records_duration_exemplar_and_sizes(registry):
    duration = registry.histogram("http_server_request_duration_seconds")
    request = registry.histogram("http_server_request_body_size_bytes")
    response = registry.histogram("http_server_response_body_size_bytes")
    labels = ("GET", "/items/{item_id}")
    record = http_request_recorder(duration.labels(*labels, "200", "2xx"),
                                   request.labels(*labels), response.labels(*labels))
    record(0.2, "corr-1", 10, 300)
    record(0.4, None, -1, 500)  # request size unknown: not recorded
    ok = {"http_request_method": "GET", "http_route": "/items/{item_id}",
          "http_response_status_code": "200", "http_response_status_class": "2xx"}
    assert value(registry, "http_server_request_duration_seconds_count", **ok) == 2
    assert value(registry, "http_server_request_duration_seconds_sum", **ok) == \
        pytest.approx(0.6)
    route = {"http_request_method": "GET", "http_route": "/items/{item_id}"}
    assert value(registry, "http_server_request_body_size_bytes_count", **route) == 1
    assert value(registry, "http_server_request_body_size_bytes_sum", **route) == 10
    assert value(registry, "http_server_response_body_size_bytes_sum", **route) == 800
    exemplars = [e for e in duration.labels(*labels, "200", "2xx").get_exemplars() or () if e]
    assert [(e.labels, e.value) for e in exemplars] == [({"correlation_id": "corr-1"}, 0.2)]
    record(float("nan"), None, 1, 1)  # counted, not raised, nothing half-recorded
    assert value(registry, "http_server_request_duration_seconds_count", **ok) == 2
    assert value(registry, "http_server_request_body_size_bytes_count", **route) == 1
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="http_record:ValueError") == 1


def test_recorders_in_multiprocess_mode_write_the_mmap_values(tmp_path, monkeypatch):
    # Read back through the children's mmap values: prometheus-client keeps one file
    # per kind per process, in the directory of whichever test created it first.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mp = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    wall = mp.histogram("job_stage_duration_seconds").labels("ocr")
    cpu = mp.counter("job_stage_cpu_seconds_total").labels("ocr")
    record = paired_recorder(wall, cpu)
    record(0.2, 0.05)
    record(0.4, 0.05)
    assert sum(wall.snapshot()[0]) == 2 and wall.snapshot()[1] == pytest.approx(0.6)
    assert cpu.get() == pytest.approx(0.1)

    labels = ("POST", "/jobs")
    duration = mp.histogram("http_server_request_duration_seconds").labels(*labels, "202", "2xx")
    request = mp.histogram("http_server_request_body_size_bytes").labels(*labels)
    response = mp.histogram("http_server_response_body_size_bytes").labels(*labels)
    record_request = http_request_recorder(duration, request, response)
    record_request(0.05, None, 120, 40)
    record_request(0.05, None, -1, 40)  # request size unknown
    assert sum(duration.snapshot()[0]) == 2
    assert request.snapshot()[1] == 120 and sum(request.snapshot()[0]) == 1
    assert response.snapshot()[1] == 80 and sum(response.snapshot()[0]) == 2
