"""Structured logging: schema, processors, PII redaction, sampling, sinks, access-log fast path."""

import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from promkit.instrument import MetricsRegistry, logs
from promkit.instrument.correlation import (
    bind_correlation_id,
    correlation_id_var,
    valid_correlation_id,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIXED_TIME = 1795381387.123456  # 2026-11-22T21:03:07.123Z


class ListSink:
    """A sink that keeps the lines it is given."""

    name = "list"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


class BrokenStream(io.StringIO):
    """A stream on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


@contextmanager
def configured(**kwargs: Any) -> Iterator[ListSink]:
    """configure_logging into a ListSink with only our handler on the root logger."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    sink = kwargs.pop("stream", None) or ListSink()
    kwargs.setdefault("failures", MetricsRegistry(_fresh_registry()).failures)
    logs.configure_logging(kwargs.pop("service", "svc"), stream=sink, **kwargs)
    try:
        yield sink
    finally:
        logs.reset_logging()
        structlog.contextvars.clear_contextvars()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def _fresh_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture
def sink() -> Iterator[ListSink]:
    with configured() as list_sink:
        yield list_sink


# ------------------------------------------------------------------------ schema and render

def test_line_has_schema_keys_in_order_and_the_rest_in_extra(sink):
    with bind_correlation_id() as cid:
        logs.get_logger("t").info(
            "job_completed", http_status=200, stage="ocr", job_id="j-1", latency_ms=12.5,
            error_code="E1", http_method="GET", http_path="/items/{id}", queue="ocr", pages=3,
        )
    (line,) = sink.lines
    event = json.loads(line)
    assert list(event) == ["timestamp", "level", "service", "event", "correlation_id", "job_id",
                           "stage", "latency_ms", "error_code", "http_method", "http_path",
                           "http_status", "extra"]
    assert event["correlation_id"] == cid and event["service"] == "svc"
    assert event["level"] == "info" and TIMESTAMP.match(event["timestamp"])
    assert event["extra"] == {"queue": "ocr", "pages": 3}
    assert ", " not in line and '": ' not in line  # compact separators


def test_none_values_are_left_out_and_no_extra_when_empty(sink):
    logs.get_logger().info("tick", job_id=None)
    assert json.loads(sink.lines[0]).keys() == {"timestamp", "level", "service", "event"}


def test_render_never_raises_and_uses_repr_for_the_unserialisable():
    class Odd:
        def __repr__(self) -> str:
            return "<Odd>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    circular: list[Any] = []
    circular.append(circular)
    line = logs.render_json_line(None, "info", {
        "event": "x", "obj": Odd(), "broken": Broken(), "nan": math.nan, "inf": math.inf,
        "circular": circular, (1, 2): "tuple key", "text": "caf\u00e9 \ud800",
    })
    event = json.loads(line)
    assert event["extra"]["obj"] == "<Odd>"
    assert event["extra"]["broken"] == "<unrepresentable Broken>"
    assert event["extra"]["nan"] == "nan" and event["extra"]["inf"] == "inf"
    assert event["extra"]["(1, 2)"] == "tuple key"
    assert "café" in line  # ensure_ascii=False
    line.encode("utf-8")  # the lone surrogate became an escape


def test_timestamp_is_rfc3339_utc_millis_and_caches_the_second():
    now = [FIXED_TIME]
    stamper = logs.TimestampRFC3339(clock=lambda: now[0])
    assert stamper(None, "info", {})["timestamp"] == "2026-11-22T21:03:07.123Z"
    now[0] = FIXED_TIME + 0.8
    assert stamper.now() == "2026-11-22T21:03:07.923Z"
    now[0] = FIXED_TIME + 1.0
    assert stamper.now() == "2026-11-22T21:03:08.123Z"
    now[0] = 0.0
    assert stamper.now() == "1970-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------ context processors

def test_add_correlation_context_reads_the_contextvar_and_structlog_contextvars():
    assert logs.add_correlation_context(None, "info", {"event": "x"}) == {"event": "x"}
    with bind_correlation_id() as cid:
        structlog.contextvars.bind_contextvars(job_id="j-9", stage="ocr")
        try:
            event = logs.add_correlation_context(None, "info", {"event": "x", "stage": "mine"})
        finally:
            structlog.contextvars.clear_contextvars()
    assert event == {"event": "x", "correlation_id": cid, "job_id": "j-9", "stage": "mine"}
    explicit = logs.add_correlation_context(None, "info", {"correlation_id": "given"})
    assert explicit["correlation_id"] == "given"


def test_correlation_id_and_bound_job_id_appear_in_logged_lines(sink):
    log = logs.get_logger("worker")
    with bind_correlation_id() as cid:
        structlog.contextvars.bind_contextvars(job_id="j-1")
        log.info("job_created")
        logging.getLogger("library").info("from the stdlib")
    log.info("outside")
    first, second, third = sink.events()
    assert first["correlation_id"] == cid and first["job_id"] == "j-1"
    assert second["correlation_id"] == cid and second["job_id"] == "j-1"
    assert "correlation_id" not in third


@contextmanager
def active_span(trace_id: int = 0x1234, span_id: int = 0x42) -> Iterator[None]:
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    token = otel_context.attach(otel_trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def test_add_trace_context_is_a_no_op_without_a_span_and_adds_ids_with_one():
    assert logs.add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    with active_span(0xABC, 0xDEF):
        event = logs.add_trace_context(None, "info", {"event": "x"})
    assert event["trace_id"] == f"{0xABC:032x}" and event["span_id"] == f"{0xDEF:016x}"
    invalid = NonRecordingSpan(otel_trace.INVALID_SPAN_CONTEXT)
    token = otel_context.attach(otel_trace.set_span_in_context(invalid))
    try:
        assert logs.add_trace_context(None, "info", {}) == {}
    finally:
        otel_context.detach(token)


# ------------------------------------------------------------------------ stdlib records

def test_stdlib_records_come_out_in_the_same_schema(sink):
    with bind_correlation_id() as cid:
        logging.getLogger("some.library").warning("disk at %d%% on %s", 91, "10.1.2.3")
        try:
            raise ValueError("bad value for bob@example.com")
        except ValueError:
            logging.getLogger("some.library").exception("failed")
    warning, error = sink.events()
    assert list(warning) == ["timestamp", "level", "service", "event", "correlation_id", "extra"]
    assert warning["level"] == "warning" and warning["correlation_id"] == cid
    assert warning["event"] == "disk at 91% on [redacted:ip]"
    assert warning["extra"] == {"logger": "some.library"}
    assert error["level"] == "error"
    assert "ValueError" in error["extra"]["exception"]
    assert "bob@example.com" not in sink.lines[1]


# ------------------------------------------------------------------------ PII

def test_user_id_is_hashed_at_any_depth():
    expected = hashlib.sha256(b"42").hexdigest()[:16]
    event = logs.redact_pii(None, "info", {
        "event": "x", "user_id": 42, "nested": {"user_id": "42", "items": [{"userId": 42}]},
    })
    assert event["user_id_hash"] == expected and "user_id" not in event
    assert event["nested"]["user_id_hash"] == expected
    assert event["nested"]["items"][0]["user_id_hash"] == expected
    assert logs.hash_identifier(42) == expected


def test_blocklisted_keys_are_redacted_and_the_list_is_extendable():
    source = {"text": "contract", "doc": {"file_name": "scan.pdf", "storage_path": "s3://b/k"},
              "csrf_token": "abc", "Authorization": "Bearer x", "X-Api-Key": "k", "pages": 3}
    event = logs.redact_pii(None, "info", dict(source))
    assert event["text"] == event["csrf_token"] == event["Authorization"] == "[redacted]"
    assert event["X-Api-Key"] == "[redacted]"
    assert event["doc"] == {"file_name": "[redacted]", "storage_path": "[redacted]"}
    assert event["pages"] == 3
    assert source["doc"]["file_name"] == "scan.pdf"  # nested input not mutated
    custom = logs.RedactPII(pii_keys=["tenant_name"], hash_keys=["customer_id"])
    event = custom(None, "info", {"tenant_name": "ACME", "customer_id": "c1", "text": "t"})
    assert event == {"tenant_name": "[redacted]", "customer_id_hash": logs.hash_identifier("c1"),
                     "text": "[redacted]"}
    assert {"email", "ip", "password", "webhook_body", "extracted_text"} <= logs.DEFAULT_PII_KEYS


def test_non_json_values_are_repr_then_redacted():
    class Account:
        def __repr__(self) -> str:
            return "Account(email='ann@example.org')"

    event = logs.redact_pii(None, "info", {"account": Account(), "raw": b"bob@example.com"})
    assert event["account"] == "Account(email='[redacted:email]')"
    assert "bob@example.com" not in event["raw"]


@pytest.mark.parametrize("text, expected", [
    ("GET https://bucket.s3.amazonaws.com/k.pdf?X-Amz-Signature=abc&X-Amz-Expires=60 done",
     "GET https://bucket.s3.amazonaws.com/k.pdf?[redacted] done"),
    ("redirect to /callback?code=xyz&state=1", "redirect to /callback?[redacted]"),
    ("https://user:pw@example.com/path", "https://[redacted]@example.com/path"),
    ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted:secret]"),
    ("header Basic dXNlcjpwYXNzd29yZA==", "header Basic [redacted:secret]"),
    ("password=hunter2&user=x", "password=[redacted:secret]&user=x"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature",
     "jwt [redacted:secret]"),
    ("key AKIAIOSFODNN7EXAMPLE used", "key [redacted:secret] used"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123 leaked", "[redacted:secret] leaked"),
    ("client at 192.168.1.20:8080", "client at [redacted:ip]:8080"),
    ("peer [2001:db8::1]:443", "peer [[redacted:ip]]:443"),
    ("mail ann.lee+tag@mail.example.co.uk now", "mail [redacted:email] now"),
    # left alone: no PII here
    ("std::vector and Class::method", "std::vector and Class::method"),
    ("task-abcdefghijklmnopqrstu finished", "task-abcdefghijklmnopqrstu finished"),
    ("Basic usage of the API", "Basic usage of the API"),
    ("at 21:03:07.123 the job took 1.5 s", "at 21:03:07.123 the job took 1.5 s"),
    ("/items/{item_id}", "/items/{item_id}"),
])
def test_redact_text_examples(text, expected):
    assert logs.redact_text(text) == expected


SECRET_KEYS = ["DB_PASSWORD", "aws_secret_access_key", "accessToken", "clientSecret",
               "secret_key", "X-Api-Key", "Authorization", "password", "refresh-token",
               "APIKey", "privateKey", "x-amz-signature", "dbpassword", "Set-Cookie"]
HARMLESS_KEYS = ["token_count", "prompt_tokens", "password_policy", "password_changed_at",
                 "secret_name", "token_type", "cache_key", "monkey", "keyboard", "sigma"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_in_any_style_are_redacted_at_any_depth(key):
    event = logs.redact_pii(None, "info", {
        key: "s3cr3t-value", "nested": {"inner": {key: "s3cr3t-value"}},
        "items": [{key: "s3cr3t-value"}, ("x", {key: ["s3cr3t-value"]})],
    })
    assert "s3cr3t-value" not in json.dumps(event)
    assert event[key] == "[redacted]" and event["nested"]["inner"][key] == "[redacted]"


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_keys_where_a_secret_word_is_not_last_are_kept(key):
    event = logs.redact_pii(None, "info", {key: "plain-value", "msg": f"{key}=plain-value"})
    assert event == {key: "plain-value", "msg": f"{key}=plain-value"}


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("form", ["{k}=v4lue-1 next", "{k}: v4lue-1 next", '{{"{k}": "v4lue-1 x"}}',
                                  "{{'{k}': 'v4lue-1 x'}}", "({k} = v4lue-1)",
                                  '{{\\"{k}\\": \\"v4lue-1\\"}}'])
def test_secret_key_values_in_free_text_are_redacted_in_all_four_forms(key, form):
    text = "config " + form.format(k=key) + " done"
    redacted = logs.redact_text(text)
    assert "v4lue-1" not in redacted and "[redacted:secret]" in redacted
    assert redacted.startswith("config ") and redacted.endswith(" done")


@pytest.mark.parametrize("text, expected", [
    ("mail ann@bücher.de now", "mail [redacted:email] now"),
    ("mail ann@xn--bcher-kva.de now", "mail [redacted:email] now"),
    ("an ann@пример.рф, then", "an [redacted:email], then"),
    ("to 用户@例子.广告", "to [redacted:email]"),
    ("ann@例子。广告 x", "[redacted:email] x"),
    ("pay 4111 1111 1111 1111 exp 12/26", "pay [redacted:card] exp 12/26"),
    ("card=5555-5555-5555-4444;", "card=[redacted:card];"),
    ("amex 378282246310005.", "amex [redacted:card]."),
    ("qty 2 4111111111111111 2026", "qty 2 [redacted:card] 2026"),
    # left alone: not cards (Luhn fails, timestamps start with 1, part of an ID or a number)
    ("order 4111 1111 1111 1112", "order 4111 1111 1111 1112"),
    ("at 1733461878123 ms", "at 1733461878123 ms"),
    ("id 0c4f7c2e-8a4b-4a51-4111-111111111111", "id 0c4f7c2e-8a4b-4a51-4111-111111111111"),
    ("sku A4111111111111111 or 3.4111111111111111", "sku A4111111111111111 or 3.4111111111111111"),
])
def test_internationalised_emails_and_card_numbers(text, expected):
    assert logs.redact_text(text) == expected


@pytest.mark.parametrize("token", [
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "ASIAIOSFODNN7EXAMPLE",
    "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz", "sk_live_abcdefghijklmnop1234",
    "sk-abcdefghijklmnopqrstuvwx", "xoxb-1234567890-abcdefghij", "Bearer abc.def.ghi",
    "password=hunter2", "4111 1111 1111 1111",
])
def test_labels_and_logs_share_one_list_of_secret_patterns(token):
    from promkit.instrument.registry import REDACTED_VALUE, clean_label_value

    assert clean_label_value(token) == REDACTED_VALUE
    assert clean_label_value(f"x {token} y") == REDACTED_VALUE
    assert token not in logs.redact_text(f"x {token} y")


def test_stdlib_records_and_exceptions_are_redacted(sink):
    stdlib = logging.getLogger("app.db")
    stdlib.warning("connect failed for %s with %r", "ann@example.org",
                   {"DB_PASSWORD": "pw-1", "host": "db"})
    try:
        raise ValueError({"clientSecret": "pw-2"}, "token=pw-3", "card 4111111111111111")
    except ValueError:
        stdlib.exception("boom %s", "X-Api-Key: pw-4")
        try:
            raise RuntimeError("accessToken='pw-5'")
        except RuntimeError as exc:
            logs.get_logger().error("failed", error=exc, exc_info=True)
    text = "\n".join(sink.lines)
    for secret in ("ann@example.org", "pw-1", "pw-2", "pw-3", "pw-4", "pw-5", "4111111111111111"):
        assert secret not in text
    first, second, third = sink.events()
    assert first["event"] == ("connect failed for [redacted:email] with "
                              "{'DB_PASSWORD': '[redacted:secret]', 'host': 'db'}")
    assert "ValueError" in second["extra"]["exception"]
    assert "RuntimeError" in third["extra"]["exception"]


def test_clean_strings_are_remembered_but_redacted_ones_never():
    from promkit.instrument import _logs_pii

    for _ in range(2):
        assert logs.redact_text("job_created") == "job_created"
        assert logs.redact_text("ann@example.org") == "[redacted:email]"
    assert "job_created" in _logs_pii._clean_texts
    assert "ann@example.org" not in _logs_pii._clean_texts
    for n in range(_logs_pii._CLEAN_TEXTS_LIMIT + 10):
        logs.redact_text(f"value {n}")
    assert len(_logs_pii._clean_texts) <= _logs_pii._CLEAN_TEXTS_LIMIT


SEPARATORS = st.sampled_from([" ", "\n", ", ", "; ", " (", ") ", "=", "\t", " '", "' ", '"'])
FILLER = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@:."), max_size=30)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).filter(lambda ip: ip.exploded.count("0000") < 7).map(str)
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
TOKENS = st.one_of(
    st.text(TOKEN_CHARS, min_size=16, max_size=40).map(lambda t: "sk-" + t),
    st.text(TOKEN_CHARS, min_size=20, max_size=40).map(lambda t: "ghp_" + t),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map(
        lambda t: "AKIA" + t),
    st.text(TOKEN_CHARS + "-_", min_size=8, max_size=30).map(
        lambda t: f"eyJhbGciOiJIUzI1NiJ9.eyJ{t}.{t[::-1]}"),
)


@settings(max_examples=300, deadline=None)
@given(prefix=FILLER, before=SEPARATORS, after=SEPARATORS, suffix=FILLER,
       pii=st.one_of(st.emails(), IPV4, IPV6, TOKENS))
def test_generated_pii_in_random_text_never_survives(prefix, before, after, suffix, pii):
    text = prefix + before + pii + after + suffix
    redacted = logs.redact_text(text)
    assert pii not in redacted
    event = logs.redact_pii(None, "info", {"event": text, "nested": [{"note": text}]})
    assert pii not in json.dumps(event)


@settings(max_examples=200, deadline=None)
@given(token=st.text(TOKEN_CHARS + "-._~+/", min_size=1, max_size=40), before=SEPARATORS)
def test_generated_bearer_tokens_never_survive(token, before):
    redacted = logs.redact_text(f"auth{before}Bearer {token} ok")
    # "[redacted:ip]" when the token is an IPv4 address ("Bearer 0.0.0.0")
    assert f"Bearer {token}" not in redacted and "[redacted:" in redacted


@settings(max_examples=200, deadline=None)
@given(user_id=st.one_of(st.integers(), st.text(max_size=40)))
def test_user_ids_hash_to_the_first_16_hex_of_sha256(user_id):
    event = logs.redact_pii(None, "info", {"user_id": user_id})
    digest = hashlib.sha256(str(user_id).encode("utf-8", "surrogatepass")).hexdigest()
    assert event == {"user_id_hash": digest[:16]}


def test_redaction_cannot_be_turned_off(sink):
    with configured(extra_processors=[lambda _l, _m, ed: {**ed, "added": "eve@example.com"}],
                    pii_keys=()) as own:
        logs.get_logger().info("signup", email="eve@example.com", user_id="u1")
    line = own.lines[0]
    assert "eve@example.com" not in line and '"user_id_hash"' in line


# ------------------------------------------------------------------------ sampling

def test_sampling_drops_by_event_name_deterministically():
    draws = iter([0.05, 0.5, 0.05])
    sampler = logs.sample_events({"cache_hit": 0.1}, random=lambda: next(draws))
    assert sampler(None, "info", {"event": "cache_hit"}) == {"event": "cache_hit"}
    with pytest.raises(structlog.DropEvent):
        sampler(None, "info", {"event": "cache_hit"})
    assert sampler(None, "info", {"event": "other"}) == {"event": "other"}  # no rate: kept
    assert sampler(None, "debug", {"event": "cache_hit"})  # 0.05 < 0.1
    everything = logs.sample_events({"*": 0.0})
    with pytest.raises(structlog.DropEvent):
        everything(None, "info", {"event": "anything"})
    with pytest.raises(ValueError, match="within"):
        logs.sample_events({"x": 2})


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.0, 0.999),
    draw=st.floats(0.0, 0.999999),
    case=st.one_of(
        st.tuples(st.sampled_from(["warning", "error", "critical", "exception"]),
                  st.just("noisy"), st.none()),
        st.tuples(st.just("info"), st.just("noisy"), st.integers(500, 599)),
        st.tuples(st.just("info"), st.sampled_from(sorted(logs.DEFAULT_NEVER_SAMPLE)),
                  st.none()),
        st.tuples(st.just("info"), st.sampled_from(["auth_attempt_failed", "LoginDenied",
                                                    "oauth_token_invalid"]), st.none()),
        st.tuples(st.just("info"), st.just("noisy"), st.sampled_from([401, 403])),
    ),
)
def test_sampling_never_drops_the_never_sample_events(rate, draw, case):
    method, event, status = case
    rates = {event: rate, "*": rate}
    sampler = logs.sample_events(rates, random=lambda: draw)
    event_dict = {"event": event, "http_status": status}
    assert sampler(None, method, dict(event_dict)) == event_dict


def test_sampling_applies_to_stdlib_records_and_structlog_events():
    with configured(sample={"noisy": 0.0, "chatty %s": 0.0}) as own:
        log = logs.get_logger()
        for _ in range(5):
            log.info("noisy")
            logging.getLogger("lib").info("chatty %s", 1)
        log.info("job_failed")
        log.warning("noisy")
    assert [event["event"] for event in own.events()] == ["job_failed", "noisy"]


# ------------------------------------------------------------------------ set-up, sinks

def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logs._JsonLinesHandler)]


def test_configure_twice_does_not_duplicate_handlers_or_lines():
    with configured():
        first = ListSink()
        logs.configure_logging("svc", stream=first)
        second = ListSink()
        logs.configure_logging("svc", stream=second)
        assert len(_our_handlers()) == 1
        logs.get_logger().info("once")
        logging.getLogger("lib").info("once too")
        assert first.lines == [] and len(second.lines) == 2
    assert _our_handlers() == []


def test_level_filters_structlog_and_stdlib_alike():
    with configured(level="WARNING") as own:
        logs.get_logger().info("hidden")
        logging.getLogger("x").info("hidden")
        logs.get_logger().error("shown")
    assert [e["event"] for e in own.events()] == ["shown"]


def test_null_sink_and_stream_none_write_nothing():
    with configured(stream=logs.NullSink()):
        logs.get_logger().info("x")
    logs.configure_logging("svc", stream=None)
    try:
        logs.get_logger().info("x")
        logs.access_logger().log_request("GET", "/", 200, 0.001, None)
    finally:
        logs.reset_logging()


def test_file_sink_rotates_at_the_size_limit(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    with configured(file=path, file_max_bytes=2000, file_backups=2):
        log = logs.get_logger()
        for index in range(100):
            log.info("job_completed", job_id=f"j-{index:03d}")
    files = sorted(tmp_path.joinpath("logs").iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for file in files:
        assert 0 < file.stat().st_size <= 2000
        for line in file.read_text("utf-8").splitlines():
            json.loads(line)
    last = path.read_text("utf-8").splitlines()[-1]
    assert json.loads(last)["job_id"] == "j-099"


def test_file_sink_keeps_history_across_restarts(tmp_path):
    path = tmp_path / "events.jsonl"
    with configured(file=path):
        logs.get_logger().info("before_restart")
    with configured(file=path):
        logs.get_logger().info("after_restart")
    events = [json.loads(line)["event"] for line in path.read_text("utf-8").splitlines()]
    assert events == ["before_restart", "after_restart"]


def test_a_failing_sink_is_swallowed_counted_and_reported_once(tmp_path, collector_registry):
    registry = MetricsRegistry(collector_registry)
    path = tmp_path / "events.jsonl"
    with configured(stream=BrokenStream(), file=path, failures=registry.failures):
        log = logs.get_logger()
        for _ in range(3):
            log.info("job_created")  # must not raise
        logs.access_logger(registry.failures).log_request("GET", "/", 200, 0.001, None)
    count = collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "log_sink_stream:OSError"})
    assert count == 4
    lines = path.read_text("utf-8").splitlines()
    reports = [line for line in lines if "instrumentation failure" in line]
    assert len(reports) == 1 and "log_sink_stream:OSError" in reports[0]
    assert sum('"job_created"' in line for line in lines) == 3


def test_file_write_failure_is_counted(tmp_path, collector_registry):
    registry = MetricsRegistry(collector_registry)
    path = tmp_path / "e.jsonl"
    with configured(file=path, failures=registry.failures) as own:
        logs.get_logger().info("first")
        path.rename(tmp_path / "moved.jsonl")
        path.mkdir()  # the sink follows the path, and a directory cannot be written
        logs.get_logger().info("second")
    assert collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "log_sink_file:IsADirectoryError"}) == 1
    assert [e["event"] for e in own.events()][:2] == ["first", "second"]


# ------------------------------------------------------------------------ access logger

def _pipeline_line(access: logs.AccessLogger, sink: ListSink, *args: Any) -> str:
    """The line the structlog pipeline writes for the same request."""
    method, template, status, latency, cid = args
    level = logging.ERROR if status >= 500 or status < 100 else (
        logging.WARNING if status >= 400 else logging.INFO)
    before = len(sink.lines)
    access._log_slow(level, method, template, status, latency, cid or correlation_id_var.get())
    assert len(sink.lines) == before + 1
    return sink.lines.pop()


@contextmanager
def fast_path_only(monkeypatch: Any) -> Iterator[Any]:
    original = logs.AccessLogger._log_slow

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fell back to the pipeline")

    monkeypatch.setattr(logs.AccessLogger, "_log_slow", refuse)
    try:
        yield original
    finally:
        monkeypatch.setattr(logs.AccessLogger, "_log_slow", original)


REQUEST = st.tuples(
    st.one_of(st.sampled_from(["GET", "POST", "_OTHER"]), st.text(max_size=12)),
    st.one_of(st.sampled_from(["/items/{item_id}", "__unmatched__", "/a?b=c", "/u/bob@x.io"]),
              st.text(max_size=30)),
    st.integers(100, 599),
    st.floats(0, 1e4, allow_nan=False),
    st.one_of(st.none(), st.uuids().map(str), st.text(max_size=40),
              # hex-and-dash IDs the fast path writes itself, unless they hold a card number
              st.sampled_from(["4111111111111111", "4111-1111-1111-1111", "-5555555555554444",
                               "4111111111111112", "abcd-4111111111111111"])),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=REQUEST, traced=st.booleans())
def test_access_fast_path_writes_exactly_the_pipeline_line(request, traced, monkeypatch):
    with configured(service="api\u00e9 \"q\"") as own:
        logs._STATE.timestamper.clock = lambda: FIXED_TIME
        access = logs.access_logger()
        span = active_span(0x5EED, 0xB0B) if traced else _nothing()
        with span:
            # A validated UUID, as the middleware passes it, takes the one-string branch.
            is_uuid = isinstance(request[4], str) and valid_correlation_id(request[4]) == request[4]
            with fast_path_only(monkeypatch) as original:
                access.log_request(*request, correlation_id_is_uuid=is_uuid)
            monkeypatch.setattr(logs.AccessLogger, "_log_slow", original)
            (fast,) = own.lines
            own.lines.clear()
            slow = _pipeline_line(access, own, *request)
    assert fast == slow
    event = json.loads(fast)
    assert event["event"] == "http_request" and event["http_status"] == request[2]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def test_access_level_follows_status_and_disabled_levels_write_nothing(sink):
    access = logs.access_logger()
    with bind_correlation_id() as cid:
        access.log_request("GET", "/a", 200, 0.0125)
        access.log_request("GET", "/a", 404, 0.001, None)
        access.log_request("POST", "/a", 503, 0.2, cid)
    levels = [(e["level"], e["http_status"], e["correlation_id"]) for e in sink.events()]
    assert levels == [("info", 200, cid), ("warning", 404, cid), ("error", 503, cid)]
    assert sink.events()[0]["latency_ms"] == 12.5
    sink.lines.clear()
    logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.WARNING)
    try:
        access.log_request("GET", "/a", 200, 0.001, cid)
        access.log_request("GET", "/a", 500, 0.001, cid)
    finally:
        logging.getLogger(logs.ACCESS_LOGGER_NAME).setLevel(logging.NOTSET)
    assert [e["http_status"] for e in sink.events()] == [500]


def test_access_falls_back_to_the_pipeline_when_it_cannot_be_sure(monkeypatch):
    with configured() as sink:
        _check_fallbacks(sink, monkeypatch)


def _check_fallbacks(sink: ListSink, monkeypatch: Any) -> None:
    # pytest's own log-capture handler sits on the root logger while a test runs
    # (the fast path then falls back): configured() removes it for the block.
    access = logs.access_logger()
    calls: list[tuple[Any, ...]] = []
    original = logs.AccessLogger._log_slow

    def spy(self: Any, *args: Any) -> None:
        calls.append(args)
        original(self, *args)

    monkeypatch.setattr(logs.AccessLogger, "_log_slow", spy)
    access.log_request("GET", "/a", 200, 0.001)
    assert calls == []
    structlog.contextvars.bind_contextvars(job_id="j-7")
    access.log_request("GET", "/a", 200, 0.001)
    structlog.contextvars.clear_contextvars()
    assert len(calls) == 1 and sink.events()[-1]["job_id"] == "j-7"
    extra_handler = logging.NullHandler()
    logging.getLogger().addHandler(extra_handler)
    try:
        access.log_request("GET", "/a", 200, 0.001)
    finally:
        logging.getLogger().removeHandler(extra_handler)
    assert len(calls) == 2
    access.log_request("GET", "/a", 200, math.nan)
    assert len(calls) == 3 and sink.events()[-1]["latency_ms"] == "nan"
    with configured(extra_processors=[lambda _l, _m, ed: ed]):
        access.log_request("GET", "/a", 200, 0.001)
    assert len(calls) == 4


def test_access_fast_path_rechecks_the_logging_setup_within_a_second(monkeypatch):
    # The full check of handlers, filters and structlog's set-up runs once a
    # second; a filter added on the access logger applies from the next second.
    with configured() as sink:
        clock = [FIXED_TIME]
        logs._STATE.timestamper.clock = lambda: clock[0]
        access = logs.access_logger()
        slow_calls: list[int] = []
        original = logs.AccessLogger._log_slow

        def spy(self: Any, *args: Any) -> None:
            slow_calls.append(args[3])  # (level, method, path, status, ...)
            original(self, *args)

        monkeypatch.setattr(logs.AccessLogger, "_log_slow", spy)
        access.log_request("GET", "/a", 200, 0.001)
        rejecting = logging.Filter("no-such-logger")  # drops every promkit.access record
        logging.getLogger(logs.ACCESS_LOGGER_NAME).addFilter(rejecting)
        try:
            access.log_request("GET", "/a", 201, 0.001)  # same second: verdict kept
            clock[0] += 1.0
            access.log_request("GET", "/a", 202, 0.001)  # re-checked: the pipeline filters it
        finally:
            logging.getLogger(logs.ACCESS_LOGGER_NAME).removeFilter(rejecting)
        clock[0] += 1.0
        access.log_request("GET", "/a", 203, 0.001)  # filter gone: the fast path again
    assert [e["http_status"] for e in sink.events()] == [200, 201, 203]
    assert slow_calls == [202]


STAGE_CALL = st.tuples(
    st.one_of(st.sampled_from(["ocr", "tts", "mail bob@x.io"]), st.text(max_size=20)),
    st.floats(0, 1e4, allow_nan=False),
    st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)),
    st.one_of(st.none(), st.sampled_from(["j-1", "10.1.2.3", "bob@x.io"]), st.text(max_size=20),
              st.integers()),
    st.sampled_from(["none", "promkit", "structlog", "other key bound"]),
)


@settings(max_examples=300, deadline=None)
@given(call=STAGE_CALL, traced=st.booleans())
def test_stage_fast_path_writes_exactly_the_pipeline_line_or_nothing(call, traced):
    stage, wall, cpu, job_id, context = call
    cid = "0c4f7c2e-8a4b-4a51-9c3e-1234567890ab"
    with configured(service="worker") as own:
        logs._STATE.timestamper.clock = lambda: FIXED_TIME
        writer = logs.StageLineWriter("promkit.worker")
        span = active_span(0x5EED, 0xB0B) if traced else _nothing()
        bound: dict[str, Any] = {
            "none": {}, "promkit": {}, "structlog": {"correlation_id": cid, "job_id": "j-bound"},
            "other key bound": {"tenant": "acme"},
        }[context]
        # Unbound unless "promkit": set to None it would be merged as correlation_id=None
        # (the variable is structlog's context too).
        token = correlation_id_var.set(cid) if context == "promkit" else None
        try:
            with span, structlog.contextvars.bound_contextvars(**bound):
                wrote = writer.completed(stage, wall, cpu, job_id)
                fast = list(own.lines)
                own.lines.clear()
                fields: dict[str, Any] = {} if cpu is None else {"cpu_ms": logs.round_ms(cpu)}
                if job_id is not None:
                    fields["job_id"] = job_id
                structlog.get_logger("promkit.worker").info(
                    logs.STAGE_COMPLETED_EVENT, stage=stage, latency_ms=logs.round_ms(wall),
                    **fields)
        finally:
            if token is not None:
                correlation_id_var.reset(token)
        slow = list(own.lines)
    assert fast == (slow if wrote else [])
    plain = stage in ("ocr", "tts") and job_id in (None, "j-1")
    if plain and context != "other key bound":
        assert wrote  # the common case takes the fast path
    if context == "other key bound":
        assert not wrote and "acme" in slow[0]


def test_access_sampling_and_never_raising(collector_registry):
    registry = MetricsRegistry(collector_registry)
    with configured(sample={"http_request": 0.0}) as own:
        access = logs.access_logger(registry.failures)
        access.log_request("GET", "/a", 200, 0.001)
        access.log_request("GET", "/a", 404, 0.001)
        access.log_request("GET", "/a", 500, 0.001)
        access.log_request("GET", "/a", "oops", 0.001)  # type: ignore[arg-type]
    assert [e["http_status"] for e in own.events() if e["event"] == "http_request"] == [404, 500]
    assert collector_registry.get_sample_value(
        "promkit_instrumentation_errors_total", {"cause": "access_log:TypeError"}) == 1


def test_access_logger_without_configure_logging_goes_through_structlog(capsys):
    logs.reset_logging()
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    try:
        logs.access_logger().log_request("GET", "/a", 200, 0.001, None)
    finally:
        structlog.reset_defaults()
    assert json.loads(capsys.readouterr().out)["http_path"] == "/a"


# ------------------------------------------------------------------------ DuckDB over the file

def test_duckdb_answers_p95_per_route_and_lines_of_a_correlation_id(tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (pip install duckdb)")
    path = tmp_path / "events.jsonl"
    with configured(file=path):
        access = logs.access_logger()
        with bind_correlation_id() as wanted:
            logs.get_logger().info("job_created", job_id="j-1")
            access.log_request("POST", "/jobs", 201, 0.050)
        for index in range(100):
            access.log_request("GET", "/items/{item_id}", 200, (index + 1) / 1000)
    con = duckdb.connect()
    rows = con.execute(
        """
        SELECT http_path, quantile_cont(latency_ms, 0.95) AS p95_ms, count(*) AS requests
        FROM read_json_auto(?)
        WHERE event = 'http_request'
          AND CAST(timestamp AS TIMESTAMP) >= now()::TIMESTAMP - INTERVAL 7 DAY
        GROUP BY http_path ORDER BY http_path
        """,
        [str(path)],
    ).fetchall()
    assert rows[0][0] == "/items/{item_id}" and rows[0][2] == 100
    assert rows[0][1] == pytest.approx(95.05)
    events = con.execute(
        "SELECT event FROM read_json_auto(?) WHERE correlation_id = ? ORDER BY timestamp",
        [str(path), wanted],
    ).fetchall()
    assert [e[0] for e in events] == ["job_created", "http_request"]


def test_httpx_request_lines_with_webhook_urls_are_not_logged_by_default():
    import io
    import logging as _logging

    from promkit.instrument.logs import configure_logging, reset_logging

    out = io.StringIO()
    configure_logging("svc", stream=out)
    try:
        _logging.getLogger("httpx").info(
            'HTTP Request: POST https://hooks.slack.com/services/T0/B0/XyZsecret "HTTP/1.1 200 OK"')
        _logging.getLogger("app").info("kept")
    finally:
        reset_logging()
    assert "XyZsecret" not in out.getvalue() and "kept" in out.getvalue()
