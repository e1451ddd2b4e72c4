"""PII: generated log events carrying emails, IPv4/IPv6 addresses, bearer tokens, API
keys, raw user IDs and signed URLs, through configure_logging's pipeline (structlog and
stdlib loggers) and the access log's fast path: nothing leaks into the JSON lines, and
each redacted form is the documented one."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import logging
import random
import string

from promkit.instrument.logs import access_logger, configure_logging, get_logger

from .conftest import no_pytest_log_capture, record, size

EVENTS = size(1_000, 10_000)
_ALNUM = string.ascii_letters + string.digits


def _word(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def make_secret(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """(text to log, the part that must never appear, the marker that must appear)."""
    if kind == "email":
        value = f"{_word(rng, 8).lower()}.{_word(rng, 5).lower()}@{_word(rng, 7).lower()}.com"
        return value, value, "[redacted:email]"
    if kind == "ipv4":
        value = str(ipaddress.IPv4Address(rng.getrandbits(32) | 0x0A000001))
        return value, value, "[redacted:ip]"
    if kind == "ipv6":
        address = ipaddress.IPv6Address(rng.getrandbits(128) | (0x2001 << 112))
        value = address.compressed if rng.random() < 0.5 else address.exploded
        return value, value, "[redacted:ip]"
    if kind == "bearer":
        token = _word(rng, 32)
        return f"Authorization: Bearer {token}", token, "Bearer [redacted:secret]"
    if kind == "api_key":
        key = rng.choice([f"sk-{_word(rng, 40)}", f"ghp_{_word(rng, 36)}",
                          f"AKIA{_word(rng, 16, string.ascii_uppercase + string.digits)}",
                          f"xoxb-{_word(rng, 24)}", f"AIza{_word(rng, 35)}"])
        return key, key, "[redacted:secret]"
    if kind == "signed_url":
        signature = _word(rng, 40)
        url = (f"https://bucket.s3.amazonaws.com/u/{_word(rng, 6)}.pdf?X-Amz-Signature="
               f"{signature}&X-Amz-Expires=300")
        return url, signature, "pdf?[redacted]"
    raise AssertionError(kind)


KINDS = ("email", "ipv4", "ipv6", "bearer", "api_key", "signed_url")


def test_no_pii_leaks(clean_logging: None) -> None:
    rng = random.Random(20240917)
    out = io.StringIO()
    configure_logging("pii", stream=out)
    structured = get_logger("pii")
    stdlib = logging.getLogger("pii.stdlib")
    access = access_logger()
    expected: list[tuple[str, str, str | None, str | None]] = []  # secret, marker, uid, hash
    with no_pytest_log_capture():
        for n in range(EVENTS):
            kind = KINDS[n % len(KINDS)]
            text, secret, marker = make_secret(rng, kind)
            user_id = f"user-{rng.getrandbits(40)}"
            where = n % 5
            if where == 0:  # in the message
                structured.info(f"login from {text} ok", user_id=user_id)
            elif where == 1:  # in a neutral field, nested
                structured.warning("job_failed", detail={"note": [f"see {text}"]},
                                   user_id=user_id)
            elif where == 2:  # stdlib logger, formatted message
                stdlib.error("webhook to %s failed", text)
                user_id = ""
            elif where == 3:  # a blocklisted key: the whole value goes
                structured.info("contact", email=text, client_ip=text, authorization=text,
                                user_id=user_id)
                marker = "[redacted]"
            else:  # the access log fast path: PII in a template and a bogus correlation ID
                access.log_request("GET", f"/u/{text}", 200, 0.01, correlation_id=text)
                user_id = ""
            expected.append((secret, marker, user_id or None,
                             hashlib.sha256(user_id.encode()).hexdigest()[:16]
                             if user_id else None))
    lines = out.getvalue().splitlines()
    assert len(lines) == EVENTS
    leaks = 0
    for line, (secret, marker, user_id, user_hash) in zip(lines, expected):
        record_ = json.loads(line)
        if secret in line or (user_id is not None and user_id in line):
            leaks += 1
        assert secret not in line, line
        assert marker in line, (marker, line)
        if user_id is not None:
            assert record_["user_id_hash"] == user_hash
            assert "user_id" not in line.replace('"user_id_hash"', "")
    assert leaks == 0
    record("pii", events=EVENTS, leaks=leaks)
