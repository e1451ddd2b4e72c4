"""PII redaction of log events: key rules, text rules, generated PII that never survives."""

import hashlib
import json
import logging
from collections.abc import Iterator

import pytest
from _log_helpers import (  # tests/ is on sys.path
    ListSink,
    configured,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from promkit.instrument import logs


@pytest.fixture
def sink() -> Iterator[ListSink]:
    with configured() as list_sink:
        yield list_sink


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
               "APIKey", "privateKey", "x-amz-signature", "dbpassword", "Set-Cookie",
               "API Key", "Secret Key"]
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
