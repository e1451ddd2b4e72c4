"""MetricsRegistry: get-or-create, validation, cardinality limits, never-raise."""

import logging
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PcCounter

from promkit.instrument import OVERFLOW_VALUE, CatalogError, MetricsRegistry
from promkit.instrument.registry import REDACTED_VALUE, clean_label_value


def value(registry: MetricsRegistry, name: str, **labels: str) -> float | None:
    return registry.collector_registry.get_sample_value(name, labels)


def run_in_threads(work, n):
    """Run ``work`` in ``n`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_catalog_metric_by_name_and_get_or_create(registry):
    h = registry.histogram("http_server_request_duration_seconds")
    assert registry.histogram("http_server_request_duration_seconds") is h
    h.labels("GET", "/items/{id}", 200, "2xx").observe(0.05)
    assert value(registry, "http_server_request_duration_seconds_count",
                 http_request_method="GET", http_route="/items/{id}",
                 http_response_status_code="200", http_response_status_class="2xx") == 1


def test_new_metric_needs_help_and_is_added_to_the_registry_catalog(registry):
    with pytest.raises(CatalogError, match="not in the catalog; define it with a help text"):
        registry.counter("orders_total")
    c = registry.counter("orders_total", "Orders placed.", ["channel"])
    assert "orders_total" in registry.catalog
    c.labels(channel="web").inc(3)
    assert value(registry, "orders_total", channel="web") == 3


def test_conflicting_redefinition_names_both_definitions(registry):
    registry.counter("orders_total", "Orders placed.", ["channel"])
    with pytest.raises(CatalogError) as info:
        registry.counter("orders_total", "Orders placed.", ["region"])
    assert "labels=['channel']" in str(info.value) and "labels=['region']" in str(info.value)
    with pytest.raises(CatalogError, match="cannot also be a gauge"):
        registry.gauge("orders_total", "Orders placed.")
    with pytest.raises(CatalogError, match="cannot redefine"):
        registry.histogram("http_server_request_duration_seconds", buckets=[1, 2])


def test_labels_given_as_a_string_is_a_clear_error(registry):
    with pytest.raises(CatalogError, match="labels must be a list of names"):
        registry.counter("orders_total", "Orders.", "channel")


def test_collision_with_a_prometheus_client_metric_is_reported(collector_registry):
    PcCounter("orders_total", "Orders from prometheus-client.", registry=collector_registry)
    registry = MetricsRegistry(collector_registry)
    with pytest.raises(CatalogError, match="collides with a collector already registered"):
        registry.counter("orders_total", "Orders placed.")


def test_prometheus_client_metrics_keep_working_beside_promkit(collector_registry):
    registry = MetricsRegistry(collector_registry)
    legacy = PcCounter("legacy_events_total", "Legacy.", registry=collector_registry)
    legacy.inc()
    registry.counter("orders_total", "Orders.").inc(2)
    text = generate_latest(collector_registry).decode()
    assert "legacy_events_total 1.0" in text and "orders_total 2.0" in text


def test_series_limit_folds_new_label_sets_into_overflow_and_counts_them(registry):
    c = registry.counter("hits_total", "Hits.", ["user"], series_limit=3)
    for i in range(10):
        c.labels(f"u{i}").inc()
    m = registry.get("hits_total")
    assert m.series_count() == 4  # 3 regular + the overflow series
    assert value(registry, "hits_total", user=OVERFLOW_VALUE) == 7
    assert value(registry, "promkit_series_overflow_total", metric="hits_total") == 7
    # Existing label sets keep recording after the limit is reached.
    c.labels("u0").inc()
    assert value(registry, "hits_total", user="u0") == 2


def test_overflow_does_not_grow_memory_with_distinct_values(registry):
    c = registry.counter("hits_total", "Hits.", ["user"], series_limit=10)
    for i in range(20_000):
        c.labels(f"user-{i}").inc()
    m = registry.get("hits_total")
    assert len(m._cache) <= 40 and len(m._series) == 10


def test_label_values_are_cleaned_once_and_cached(registry):
    c = registry.counter("hits_total", "Hits.", ["path"])
    c.labels("/a?token=secret").inc()
    c.labels("/a").inc()
    assert value(registry, "hits_total", path="/a") == 2
    assert value(registry, "hits_total", path="/a?token=secret") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/items/1?sig=abc", "/items/1"),
        ("https://bucket.example/x.pdf?X-Amz-Signature=abc", "https://bucket.example/x.pdf"),
        ("alice@example.com", REDACTED_VALUE),
        ("Bearer abc.def.ghi", REDACTED_VALUE),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", REDACTED_VALUE),
        ("sk-abcdefghijklmnopqrstuvwx", REDACTED_VALUE),
        ("x" * 500, "x" * 128),
        (200, "200"),
        ("GET", "GET"),
    ],
)
def test_clean_label_value(raw, expected):
    assert clean_label_value(raw) == expected


def test_recording_never_raises_and_failures_are_counted_by_cause(registry, caplog):
    c = registry.counter("orders_total", "Orders.", ["channel"])
    h = registry.histogram("latency_seconds", "Latency.", buckets=[0.1, 1])
    g = registry.gauge("depth", "Depth.")
    with caplog.at_level(logging.WARNING, logger="promkit"):
        c.labels("web").inc(-1)
        c.labels("web").inc(-5)
        c.labels("web").inc(float("nan"))
        c.labels("a", "b").inc()  # wrong number of labels
        c.labels(["unhashable"]).inc()
        c.inc()  # needs labels
        h.observe("slow")
        h.observe(float("nan"))
        g.set("high")
    assert value(registry, "orders_total", channel="web") == 0
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="counter_inc:ValueError") == 3
    assert value(registry, "promkit_instrumentation_errors_total", cause="labels:ValueError") == 2
    assert value(registry, "promkit_instrumentation_errors_total", cause="labels:TypeError") == 1
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="histogram_observe:TypeError") == 1
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="histogram_observe:ValueError") == 1
    assert value(registry, "promkit_instrumentation_errors_total",
                 cause="gauge_set:ValueError") == 1
    # Logged once per cause, not once per failure.
    inc_logs = [r for r in caplog.records if "counter_inc:ValueError" in r.getMessage()]
    assert len(inc_logs) == 1


def test_application_exceptions_propagate_unchanged_through_timers(registry):
    h = registry.histogram("work_seconds", "Work.", buckets=[0.1, 1])

    class Boom(Exception):
        pass

    @h.time()
    def work():
        raise Boom("from the app")

    with pytest.raises(Boom, match="from the app"):
        work()
    assert value(registry, "work_seconds_count") == 1


def test_histogram_buckets_le_semantics(registry):
    h = registry.histogram("size_bytes", "Size.", buckets=[10, 100], unit="bytes")
    for v in (5, 10, 11, 100, 1000):
        h.observe(v)
    get = registry.collector_registry.get_sample_value
    assert get("size_bytes_bucket", {"le": "10.0"}) == 2
    assert get("size_bytes_bucket", {"le": "100.0"}) == 4
    assert get("size_bytes_bucket", {"le": "+Inf"}) == 5
    assert get("size_bytes_sum") == 1126


def test_gauge_and_inprogress(registry):
    g = registry.gauge("jobs_in_flight")
    child = g.labels("ocr")
    with child.track_inprogress():
        assert value(registry, "jobs_in_flight", job_type="ocr") == 1
    assert value(registry, "jobs_in_flight", job_type="ocr") == 0
    child.set(7)
    child.dec(2)
    assert value(registry, "jobs_in_flight", job_type="ocr") == 5


def test_in_progress_tokens_add_to_the_gauge_and_are_shared_per_series(registry):
    child = registry.gauge("jobs_in_flight").labels("ocr")
    tokens, again = child.in_progress_tokens(), child.in_progress_tokens()
    assert tokens is again  # every user of the series counts into one list
    child.set(2)
    tokens.append(None)
    again.append(None)
    assert value(registry, "jobs_in_flight", job_type="ocr") == 4
    tokens.pop()
    assert value(registry, "jobs_in_flight", job_type="ocr") == 3

    def work():
        for _ in range(20_000):
            tokens.append(None)
            tokens.pop()

    run_in_threads(work, 4)
    assert value(registry, "jobs_in_flight", job_type="ocr") == 3


def test_in_progress_tokens_in_multiprocess_mode_go_to_the_mmap_file(tmp_path, monkeypatch):
    from prometheus_client import multiprocess

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mp = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    tokens = mp.gauge("http_server_active_requests").labels("GET").in_progress_tokens()
    tokens.append(None)
    tokens.append(None)
    tokens.pop()
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=str(tmp_path))
    assert merged.get_sample_value("http_server_active_requests",
                                   {"http_request_method": "GET"}) == 1


def test_concurrent_increments_are_not_lost(registry):
    c = registry.counter("hits_total", "Hits.", ["k"])

    def work():
        child = c.labels("x")
        for _ in range(20_000):
            child.inc()

    run_in_threads(work, 4)
    assert value(registry, "hits_total", k="x") == 80_000


def test_remove_drops_a_series(registry):
    g = registry.gauge("queue_depth")
    g.labels("a").set(1)
    g.labels("b").set(2)
    registry.get("queue_depth").remove("a")
    assert value(registry, "queue_depth", queue="a") is None
    assert value(registry, "queue_depth", queue="b") == 2


def test_multiprocess_true_without_directory_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    with pytest.raises(ValueError, match="needs PROMETHEUS_MULTIPROC_DIR"):
        MetricsRegistry(CollectorRegistry(), multiprocess=True)


def test_registries_on_one_collector_registry_share_their_metrics(collector_registry):
    first = MetricsRegistry(collector_registry)
    second = MetricsRegistry(collector_registry)
    counter = first.counter("orders_total", "Orders.", ["channel"])
    assert second.counter("orders_total") is counter
    assert second.failures is first.failures
    with pytest.raises(ValueError, match="already exists on this collector registry"):
        MetricsRegistry(collector_registry, max_label_length=10)
