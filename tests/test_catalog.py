"""The catalog: naming, unit, label and bucket rules, and the standard entries."""

import math

import pytest

from promkit.instrument.catalog import (
    HTTP_BUCKETS,
    STANDARD_CATALOG,
    Catalog,
    CatalogError,
    MetricSpec,
)


def spec(**kw):
    base = {"name": "orders_total", "kind": "counter", "help": "Orders placed."}
    base.update(kw)
    return MetricSpec(**base)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "Orders_total"}, "invalid name"),
        ({"name": "orders:rate_total"}, "colons are reserved"),
        ({"name": "__orders_total"}, "reserved by Prometheus"),
        ({"name": "orders"}, "must end in '_total'"),
        ({"name": "orders_total_total"}, "'_total' twice"),
        ({"kind": "gauge", "name": "orders_total"}, "only counters end in '_total'"),
        ({"kind": "gauge", "name": "queue_count"}, "may not end in '_count'"),
        ({"kind": "summary"}, "kind must be counter, gauge or histogram"),
        ({"help": "  "}, "help text is empty"),
        ({"labels": ("le",)}, "'le' is reserved"),
        ({"labels": ("instance",)}, "'instance' is reserved"),
        ({"labels": ("__name",)}, "reserved"),
        ({"labels": ("Route",)}, "invalid label name 'Route'"),
        ({"labels": ("a", "a")}, "declared twice"),
        ({"series_limit": 0}, "series_limit must be a positive integer"),
        ({"buckets": (1.0,)}, "only histograms have buckets"),
        ({"name": "latency_milliseconds_total"}, "'milliseconds' is not a base unit"),
        ({"kind": "gauge", "name": "size_kilobytes"}, "record bytes"),
        ({"kind": "gauge", "name": "latency", "unit": "seconds"}, "name it '..._seconds'"),
        ({"kind": "gauge", "name": "latency_ms", "unit": "ms"}, "not a base unit"),
        ({"kind": "gauge", "name": "heat_furlongs", "unit": "furlongs"}, "unknown unit"),
    ],
)
def test_invalid_definitions_raise_with_a_precise_message(kw, message):
    with pytest.raises(CatalogError, match=message) as info:
        spec(**kw)
    assert repr(kw.get("name", "orders_total")) in str(info.value)


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ((), "at least one finite bucket"),
        ((math.inf,), "at least one finite bucket"),
        ((0.1, 0.1), "strictly increase, but bucket 1 \\(0.1\\) follows 0.1"),
        ((0.5, 0.1), "strictly increase"),
        ((0.1, math.nan), "must be finite"),
        (None, "at least one finite bucket"),
    ],
)
def test_histogram_buckets_must_be_finite_and_increasing(buckets, message):
    with pytest.raises(CatalogError, match=message):
        MetricSpec("job_latency_seconds", "histogram", "Job latency.", unit="seconds",
                   buckets=buckets)


def test_trailing_inf_bucket_is_accepted_and_dropped():
    s = MetricSpec("x_seconds", "histogram", "X.", buckets=[0.1, 1, math.inf])
    assert s.buckets == (0.1, 1.0)


def test_counter_family_name_drops_total():
    assert spec().family_name == "orders"
    assert spec(kind="gauge", name="orders_open").family_name == "orders_open"


def test_same_definition_twice_is_a_noop_but_a_conflict_names_both():
    catalog = Catalog()
    first = catalog.add(spec(labels=("channel",)))
    assert catalog.add(spec(labels=("channel",))) is first
    with pytest.raises(CatalogError) as info:
        catalog.add(spec(labels=("region",)))
    text = str(info.value)
    assert "labels=['channel']" in text and "labels=['region']" in text


def test_family_name_clash_between_counter_and_gauge_is_rejected():
    catalog = Catalog([spec()])
    with pytest.raises(CatalogError, match="share the family name 'orders'"):
        catalog.add(MetricSpec("orders", "gauge", "Orders now."))


def test_standard_catalog_covers_every_family_of_the_use_cases():
    families = STANDARD_CATALOG.families()
    for family in ("http", "websocket", "auth", "llm", "db", "jobs", "stages", "external",
                   "usage", "queues", "resources", "self"):
        assert families.get(family), f"no {family} metrics in the standard catalog"
    names = {s.name for s in STANDARD_CATALOG}
    # The metric lists the use-case teams asked for.
    for name in (
        "http_server_request_duration_seconds", "websocket_server_active_connections",
        "auth_attempts_total", "gen_ai_client_tokens_total",
        "gen_ai_client_operation_duration_seconds", "db_client_operation_duration_seconds",
        "jobs_created_total", "job_status_transitions_total", "job_duration_seconds",
        "job_queue_wait_seconds", "job_stage_duration_seconds", "job_stage_failures_total",
        "job_stage_cpu_seconds_total", "external_calls_total", "jobs_in_flight",
        "process_memory_usage_bytes", "process_open_file_descriptors",
        "system_filesystem_utilization_ratio", "python_event_loop_lag_seconds",
        "job_persist_failures_total", "jobs_recovered_total", "worker_cold_starts_total",
        "promkit_instrumentation_errors_total", "promkit_series_overflow_total",
    ):
        assert name in names


def test_http_buckets_cover_the_slo_and_llm_tail():
    # p95 < 200 ms must be readable from a bucket bound; LLM endpoints run to 120 s.
    assert 0.2 in HTTP_BUCKETS and HTTP_BUCKETS[0] <= 0.1 and HTTP_BUCKETS[-1] == 120.0


def test_standard_http_labels_follow_opentelemetry():
    http = STANDARD_CATALOG["http_server_request_duration_seconds"]
    assert http.labels == ("http_request_method", "http_route", "http_response_status_code",
                           "http_response_status_class")
    assert http.unit == "seconds"


def test_missing_name_lookup_says_what_is_missing():
    with pytest.raises(KeyError, match="'nope_total' is not in the catalog"):
        STANDARD_CATALOG["nope_total"]


def test_catalog_doc_lists_every_standard_metric_as_defined():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "catalog.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines()
            if line.startswith("| `")}
    for spec in STANDARD_CATALOG:
        row = rows.get(spec.name)
        assert row is not None, f"docs/catalog.md has no row for {spec.name}"
        cells = [c.strip() for c in row.split("|")]
        assert cells[2] == spec.kind, spec.name
        assert cells[3] == (", ".join(f"`{label}`" for label in spec.labels) or "—"), spec.name
        if spec.kind == "gauge" and spec.multiprocess_mode != "livesum":  # livesum: the default
            assert f"mp `{spec.multiprocess_mode}`" in row, spec.name
