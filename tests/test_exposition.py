"""The renderers behind /metrics: text 0.0.4, OpenMetrics 1.0 and the JSON snapshot.

Every output is read back with a real parser (prometheus-client's text parser,
its strict OpenMetrics parser, promtool) rather than compared as strings.
"""

import json
import math
import shutil
import subprocess

import pytest
from prometheus_client import Counter as PcCounter
from prometheus_client import Gauge as PcGauge
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from promkit.exporters import render_json, render_openmetrics, render_text
from promkit.exporters._exposition import foreign_exposition
from promkit.instrument import MetricsRegistry
from promkit.instrument.catalog import STANDARD_CATALOG

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
AWKWARD_VALUES = [
    'say "hi"',
    "C:\\temp\\new",
    "line one\nline two",
    "\\n is not a newline",
    "café ☕ 東京 🙂",
    "",
]
LATENCY_LABELS = ["http_request_method", "http_route", "http_response_status_code"]
LATENCY_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.2, 1.0, 10.0, 120.0]


def text_of(registry: MetricsRegistry, chunk_series: int = 256) -> str:
    """What /metrics serves as text: promkit's metrics, then the foreign collectors."""
    return "".join(render_text(registry, chunk_series)) + foreign_exposition(
        registry.collector_registry, False
    )


def openmetrics_of(registry: MetricsRegistry, chunk_series: int = 256) -> str:
    return (
        "".join(render_openmetrics(registry, chunk_series))
        + foreign_exposition(registry.collector_registry, True)
        + "# EOF\n"
    )


def samples(families) -> dict:
    """{(sample name, sorted labels): value} over parsed families (NaN made comparable)."""
    out = {}
    for family in families:
        for s in family.samples:
            value = "NaN" if math.isnan(s.value) else s.value
            out[(s.name, tuple(sorted(s.labels.items())))] = value
    return out


def families_by_name(families) -> dict:
    return {f.name: f for f in families}


@pytest.fixture
def populated(registry: MetricsRegistry) -> MetricsRegistry:
    orders = registry.counter("orders_total", "Orders placed.", ["channel"])
    orders.labels("web").inc(3)
    orders.labels("api").inc(0.5)
    # Own definitions, so these tests don't follow edits to the standard catalog.
    depth = registry.gauge("backlog", "Items waiting.", ["queue"])
    depth.labels("ocr").set(12)
    depth.labels("tts").set(-4.25)
    latency = registry.histogram("request_duration_seconds", "Request latency.", LATENCY_LABELS,
                                 buckets=LATENCY_BUCKETS, unit="seconds")
    for v in (0.003, 0.04, 0.04, 0.2, 7.0, 500.0):
        latency.labels("GET", "/items/{id}", "200").observe(v)
    latency.labels("POST", "/items", "500").observe(0.15)
    return registry


# ------------------------------------------------------------------------ text


def test_text_values_are_what_prometheus_client_parses(populated):
    parsed = samples(parse_text(text_of(populated)))
    assert parsed[("orders_total", (("channel", "web"),))] == 3
    assert parsed[("orders_total", (("channel", "api"),))] == 0.5
    assert parsed[("backlog", (("queue", "ocr"),))] == 12
    assert parsed[("backlog", (("queue", "tts"),))] == -4.25
    get = (("http_request_method", "GET"), ("http_response_status_code", "200"),
           ("http_route", "/items/{id}"))
    bucket = "request_duration_seconds_bucket"
    assert parsed[(bucket, (*get[:2], ("http_route", "/items/{id}"), ("le", "0.005")))] == 1
    assert parsed[(bucket, (*get[:2], ("http_route", "/items/{id}"), ("le", "0.05")))] == 3
    assert parsed[(bucket, (*get[:2], ("http_route", "/items/{id}"), ("le", "0.2")))] == 4
    assert parsed[(bucket, (*get[:2], ("http_route", "/items/{id}"), ("le", "120.0")))] == 5
    assert parsed[(bucket, (*get[:2], ("http_route", "/items/{id}"), ("le", "+Inf")))] == 6
    assert parsed[("request_duration_seconds_count", get)] == 6
    assert parsed[("request_duration_seconds_sum", get)] == pytest.approx(507.283)


def test_text_matches_prometheus_clients_own_rendering_of_the_same_registry(populated):
    # promkit metrics are also prometheus-client collectors; both renderings agree.
    from prometheus_client import generate_latest

    ours = samples(parse_text(text_of(populated)))
    theirs = samples(parse_text(generate_latest(populated.collector_registry).decode()))
    assert ours == theirs


def test_text_types_and_help(populated):
    families = families_by_name(parse_text(text_of(populated)))
    assert families["orders"].type == "counter"
    assert families["orders"].documentation == "Orders placed."
    assert families["backlog"].type == "gauge"
    assert families["request_duration_seconds"].type == "histogram"
    # Text 0.0.4 has no _created: it is a gauge family of its own, as prometheus-client writes it.
    assert families["orders_created"].type == "gauge"
    assert families["request_duration_seconds_created"].type == "gauge"


def test_text_help_with_backslash_newline_and_quote_round_trips(registry):
    help_text = 'Bytes "sent" to C:\\out\nper request.'
    registry.gauge("odd_help_bytes", help_text, unit="bytes").set(1)
    family = families_by_name(parse_text(text_of(registry)))["odd_help_bytes"]
    assert family.documentation == help_text


@pytest.mark.parametrize("label_value", AWKWARD_VALUES)
def test_text_label_values_round_trip(registry, label_value):
    registry.counter("hits_total", "Hits.", ["k"]).labels(label_value).inc(2)
    parsed = samples(parse_text(text_of(registry)))
    assert parsed[("hits_total", (("k", label_value),))] == 2


def test_special_float_values(registry):
    g = registry.gauge("reading", "A reading.", ["k"])
    g.labels("nan").set(math.nan)
    g.labels("inf").set(math.inf)
    g.labels("-inf").set(-math.inf)
    g.labels("big").set(1e300)
    g.labels("tiny").set(5e-324)
    for parsed in (samples(parse_text(text_of(registry))),
                   samples(parse_openmetrics(openmetrics_of(registry)))):
        assert parsed[("reading", (("k", "nan"),))] == "NaN"
        assert parsed[("reading", (("k", "inf"),))] == math.inf
        assert parsed[("reading", (("k", "-inf"),))] == -math.inf
        assert parsed[("reading", (("k", "big"),))] == 1e300
        assert parsed[("reading", (("k", "tiny"),))] == 5e-324


# ------------------------------------------------------------------ OpenMetrics


def test_openmetrics_parses_strictly_and_values_match_text(populated):
    om = openmetrics_of(populated)
    assert om.endswith("# EOF\n")
    families = families_by_name(parse_openmetrics(om))
    assert families["orders"].type == "counter"
    assert families["request_duration_seconds"].unit == "seconds"
    om_samples = samples(families.values())
    text_samples = samples(parse_text(text_of(populated)))
    # Same numbers in both formats (text writes _created as its own family, same names).
    assert om_samples == text_samples


def test_openmetrics_exemplars_on_counters_and_histogram_buckets(registry):
    c = registry.counter("orders_total", "Orders placed.", ["channel"])
    c.labels("web").inc(2, exemplar={"trace_id": TRACE_ID})
    c.labels("api").inc()  # no exemplar
    h = registry.histogram("work_seconds", "Work.", ["stage"], buckets=[0.1, 1, 10],
                           unit="seconds")
    h.labels("ocr").observe(0.5, exemplar={"trace_id": TRACE_ID, "span_id": "b7ad6b7169203331"})
    h.labels("ocr").observe(0.05)
    h.labels("ocr").observe(50, exemplar={"trace_id": "f" * 32})

    families = families_by_name(parse_openmetrics(openmetrics_of(registry)))
    by_key = {(s.name, tuple(sorted(s.labels.items()))): s
              for f in families.values() for s in f.samples}

    web = by_key[("orders_total", (("channel", "web"),))]
    assert web.exemplar.labels == {"trace_id": TRACE_ID}
    assert web.exemplar.value == 2
    assert by_key[("orders_total", (("channel", "api"),))].exemplar is None

    def bucket(le):
        return by_key[("work_seconds_bucket", (("le", le), ("stage", "ocr")))]

    assert bucket("1.0").exemplar.labels == {"trace_id": TRACE_ID, "span_id": "b7ad6b7169203331"}
    assert bucket("1.0").exemplar.value == 0.5
    assert bucket("1.0").value == 2
    assert bucket("0.1").exemplar is None
    assert bucket("+Inf").exemplar.labels == {"trace_id": "f" * 32}
    assert bucket("+Inf").exemplar.value == 50


def test_text_format_carries_no_exemplars(registry):
    registry.counter("orders_total", "Orders.").inc(exemplar={"trace_id": TRACE_ID})
    text = text_of(registry)
    assert TRACE_ID not in text
    assert samples(parse_text(text))[("orders_total", ())] == 1


@pytest.mark.parametrize("label_value", AWKWARD_VALUES)
def test_openmetrics_label_values_round_trip(registry, label_value):
    registry.counter("hits_total", "Hits.", ["k"]).labels(label_value).inc(2)
    registry.histogram("size_bytes", "Size.", ["k"], buckets=[1, 10], unit="bytes").labels(
        label_value).observe(5)
    parsed = samples(parse_openmetrics(openmetrics_of(registry)))
    assert parsed[("hits_total", (("k", label_value),))] == 2
    assert parsed[("size_bytes_bucket", (("k", label_value), ("le", "10.0")))] == 1


def test_openmetrics_help_with_quotes_backslash_and_newline_parses(registry):
    # OpenMetrics HELP is an escaped string: a bare '"' makes strict parsers fail.
    help_text = 'Bytes "sent" to C:\\out\nper request.'
    registry.gauge("odd_help_bytes", help_text, unit="bytes").set(1)
    om = openmetrics_of(registry)
    assert '# HELP odd_help_bytes Bytes \\"sent\\" to C:\\\\out\\nper request.\n' in om
    family = families_by_name(parse_openmetrics(om))["odd_help_bytes"]
    assert family.documentation == help_text


def test_openmetrics_histogram_with_negative_buckets_has_no_sum_or_count(registry):
    # OpenMetrics: negative bucket bounds forbid _sum, and _count comes only with _sum.
    h = registry.histogram("temperature_delta_celsius", "Change.", buckets=[-10, 0, 10],
                           unit="celsius")
    for v in (-20, -5, 3, 30):
        h.observe(v)
    families = families_by_name(parse_openmetrics(openmetrics_of(registry)))
    names = {s.name for s in families["temperature_delta_celsius"].samples}
    assert names == {"temperature_delta_celsius_bucket", "temperature_delta_celsius_created"}
    parsed = samples(families.values())
    assert parsed[("temperature_delta_celsius_bucket", (("le", "-10.0"),))] == 1
    assert parsed[("temperature_delta_celsius_bucket", (("le", "+Inf"),))] == 4
    # The text format has no such rule: count and sum are there.
    text = samples(parse_text(text_of(registry)))
    assert text[("temperature_delta_celsius_count", ())] == 4
    assert text[("temperature_delta_celsius_sum", ())] == 8


# -------------------------------------------------------------------- chunking


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_chunk_size_does_not_change_the_result(registry, fmt):
    c = registry.counter("hits_total", "Hits.", ["k"])
    h = registry.histogram("work_seconds", "Work.", ["k"], buckets=[0.1, 1], unit="seconds")
    g = registry.gauge("level", "Level.", ["k"])
    for i in range(40):  # far more series than a chunk of 1 or 7
        c.labels(f"s{i}").inc(i)
        h.labels(f"s{i}").observe(i / 10, exemplar={"trace_id": TRACE_ID} if i % 3 else None)
        g.labels(f"s{i}").set(-i)
    render, parse = ((text_of, parse_text) if fmt == "text"
                     else (openmetrics_of, parse_openmetrics))
    reference = render(registry, 100_000)
    for chunk in (1, 7):
        chunked = render(registry, chunk)
        families = list(parse(chunked))
        assert samples(families) == samples(parse(reference))
        # One HELP/TYPE per family, however many chunks it spans (incl. text's _created).
        assert [f.name for f in families] == [f.name for f in parse(reference)]
        type_lines = [line for line in chunked.splitlines() if line.startswith("# TYPE ")]
        assert len(type_lines) == len(set(type_lines))
    if fmt == "text":
        assert reference.count("# TYPE hits_created gauge") == 1


def test_renderers_yield_many_chunks_for_a_large_family(registry):
    c = registry.counter("hits_total", "Hits.", ["k"])
    for i in range(1000):
        c.labels(str(i)).inc()
    # 1000 series in chunks of 100: ten for the samples and ten for text's _created family.
    assert len([part for part in render_text(registry, 100) if "hits_" in part]) == 20
    assert len([part for part in render_openmetrics(registry, 100) if "hits_" in part]) == 10


# ---------------------------------------------------------------- empty families


def test_families_without_series_still_have_help_and_type(registry):
    registry.counter("orders_total", "Orders placed.", ["channel"])
    registry.histogram("work_seconds", "Work.", ["stage"], buckets=[1], unit="seconds")
    registry.gauge("level", "Level.", ["k"])
    text = families_by_name(parse_text(text_of(registry)))
    om = families_by_name(parse_openmetrics(openmetrics_of(registry)))
    for name, kind in (("orders", "counter"), ("work_seconds", "histogram"), ("level", "gauge")):
        assert text[name].type == kind and text[name].samples == []
        assert om[name].type == kind and om[name].samples == []
    assert text["orders"].documentation == "Orders placed."
    assert om["work_seconds"].unit == "seconds"


# ------------------------------------------------------------ foreign collectors


def test_foreign_collectors_appear_exactly_once(collector_registry):
    registry = MetricsRegistry(collector_registry)
    registry.counter("orders_total", "Orders.").inc(2)
    PcCounter("legacy_events_total", "Legacy.", registry=collector_registry).inc(5)
    PcGauge("legacy_temperature_celsius", "Legacy gauge.", registry=collector_registry).set(21)

    for text, parse in ((text_of(registry), parse_text),
                        (openmetrics_of(registry), parse_openmetrics)):
        names = [f.name for f in parse(text)]
        assert len(names) == len(set(names)), names
        parsed = samples(parse(text))
        assert parsed[("legacy_events_total", ())] == 5
        assert parsed[("legacy_temperature_celsius", ())] == 21
        assert parsed[("orders_total", ())] == 2
        type_lines = [line for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(type_lines) == len(set(type_lines))
        assert len([line for line in type_lines if "legacy_events" in line]) == (
            1 if parse is parse_openmetrics else 2  # text: legacy_events_total + _created
        )
        assert text.count("\norders_total ") == 1


def test_foreign_exposition_skips_promkit_metrics_and_has_no_eof(collector_registry):
    registry = MetricsRegistry(collector_registry)
    registry.counter("orders_total", "Orders.").inc()
    PcCounter("legacy_events_total", "Legacy.", registry=collector_registry).inc()
    for openmetrics in (False, True):
        foreign = foreign_exposition(collector_registry, openmetrics)
        assert "legacy_events_total" in foreign
        assert "orders" not in foreign and "promkit_" not in foreign
        assert "# EOF" not in foreign
    # The skip is only for the duration of the call: prometheus-client still sees promkit.
    from prometheus_client import generate_latest

    assert "orders_total 1.0" in generate_latest(collector_registry).decode()


# ------------------------------------------------------------------- promtool

PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool not found (Debian package prometheus; `make test` installs it)"


@pytest.mark.skipif(PROMTOOL is None,
                    reason=NO_PROMTOOL)
def test_promtool_check_metrics_is_silent_for_the_standard_catalog(collector_registry):
    registry = MetricsRegistry(collector_registry)
    PcCounter("legacy_events_total", "Legacy.", registry=collector_registry).inc()
    for spec in STANDARD_CATALOG:
        metric = registry.metric(spec)
        child = metric.labels(*["value"] * len(spec.labels))
        if spec.kind == "counter":
            child.inc(2, exemplar={"trace_id": TRACE_ID})
        elif spec.kind == "gauge":
            child.set(3)
        else:
            child.observe(0.3, exemplar={"trace_id": TRACE_ID})
    text = text_of(registry)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                            capture_output=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


@pytest.mark.skipif(PROMTOOL is None,
                    reason=NO_PROMTOOL)
def test_promtool_would_complain_about_a_bad_exposition():
    # Guards the test above: promtool really lints what it is given on stdin.
    bad = "# HELP orders_ms Orders.\n# TYPE orders_ms counter\norders_ms 1\n"
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=bad.encode(),
                            capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"_total" in result.stdout + result.stderr


# ----------------------------------------------------------------------- JSON


def test_json_snapshot_shape(populated):
    populated.gauge("reading", "A reading.", ["k"]).labels("nan").set(math.nan)
    populated.gauge("reading", "A reading.", ["k"]).labels("inf").set(math.inf)
    snapshot = render_json(populated)
    # Strict JSON: no bare NaN/Infinity tokens.
    encoded = json.dumps(snapshot, allow_nan=False)
    by_name = {m["name"]: m for m in json.loads(encoded)["metrics"]}

    orders = by_name["orders_total"]
    assert orders["type"] == "counter" and orders["help"] == "Orders placed."
    assert orders["labels"] == ["channel"]
    assert {"labels": {"channel": "web"}, "value": 3.0} in orders["samples"]

    depth = by_name["backlog"]
    assert depth["type"] == "gauge"
    assert {"labels": {"queue": "tts"}, "value": -4.25} in depth["samples"]

    latency = by_name["request_duration_seconds"]
    assert latency["type"] == "histogram" and latency["unit"] == "seconds"
    sample = next(s for s in latency["samples"] if s["labels"]["http_request_method"] == "GET")
    assert sample["labels"] == {"http_request_method": "GET", "http_route": "/items/{id}",
                                "http_response_status_code": "200"}
    buckets = sample["buckets"]
    assert list(buckets)[-1] == "+Inf"
    assert buckets["0.005"] == 1 and buckets["0.05"] == 3 and buckets["+Inf"] == 6
    counts = list(buckets.values())
    assert counts == sorted(counts)  # cumulative
    assert sample["count"] == 6
    assert sample["sum"] == pytest.approx(507.283)

    readings = {s["labels"]["k"]: s["value"] for s in by_name["reading"]["samples"]}
    assert readings == {"nan": "NaN", "inf": "+Inf"}


def test_json_values_agree_with_text(populated):
    parsed = samples(parse_text(text_of(populated)))
    for metric in render_json(populated)["metrics"]:
        for s in metric["samples"]:
            labels = tuple(sorted(s["labels"].items()))
            if metric["type"] == "histogram":
                assert parsed[(metric["name"] + "_count", labels)] == s["count"]
                assert parsed[(metric["name"] + "_sum", labels)] == s["sum"]
                for le, n in s["buckets"].items():
                    key = (metric["name"] + "_bucket", tuple(sorted((*labels, ("le", le)))))
                    assert parsed[key] == n
            else:
                assert parsed[(metric["name"], labels)] == s["value"]
