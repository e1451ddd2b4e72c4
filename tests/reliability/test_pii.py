"""PII: generated log events carrying emails, IPv4/IPv6 addresses, bearer tokens, API
keys, raw user IDs and signed URLs, through configure_logging's pipeline (structlog and
stdlib loggers) and the access log's fast path: nothing leaks into the JSON lines, and
each redacted form is the documented one. Then 10k adversarial events (issue 16): secret
keys in every style, IDN emails, card numbers, in every place a value can hide."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import logging
import random
import string
from typing import Any

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


# ------------------------------------------------------------------ adversarial classes (#16)

ADVERSARIAL_EVENTS = 10_000
"""Full size in ``make test`` too: it takes about 2 s."""

_PREFIXES = ["", "db", "aws", "app", "stripe", "smtp", "redis", "x", "github", "oauth", "my"]
_SECRET_NAMES = [["password"], ["passwd"], ["secret"], ["token"], ["api", "key"],
                 ["access", "key"], ["secret", "key"], ["private", "key"], ["passphrase"],
                 ["client", "secret"], ["access", "token"], ["refresh", "token"],
                 ["secret", "access", "key"], ["credentials"], ["authorization"]]
_HARMLESS_NAMES = [["token", "count"], ["password", "policy"], ["prompt", "tokens"],
                   ["secret", "name"], ["token", "type"], ["cache", "key"],
                   ["password", "changed", "at"]]
_VALUE_CHARS = string.ascii_letters + string.digits + "-_./+"
_DOMAINS = ["bücher.de", "пример.рф", "例子.广告", "παράδειγμα.δοκιμή", "उदाहरण.भारत",
            "مثال.إختبار", "exämple.中国", "café.fr", "ドメイン.テスト", "köln.example"]
_LOCALS = "abcdefghijklmnopqrstuvwxyz0123456789._+"


def styled(words: list[str], style: int) -> str:
    """``words`` as a key in one of six styles (snake, SCREAMING, camel, Pascal, kebab, Header)."""
    if style == 0:
        return "_".join(words)
    if style == 1:
        return "_".join(words).upper()
    if style == 2:
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == 3:
        return "".join(w.capitalize() for w in words)
    if style == 4:
        return "-".join(words)
    return "-".join(w.capitalize() for w in words)


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits`` + it pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def card_number(rng: random.Random, valid: bool) -> str:
    """A 13-19 digit number starting 2-6, grouped by spaces or dashes (or not)."""
    length = rng.choice([13, 15, 16, 16, 16, 19])
    body = rng.choice("23456") + _word(rng, length - 2, string.digits)
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    digits = body + check
    separator = rng.choice(["", " ", "-"])
    if not separator:
        return digits
    return separator.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def secret_value(rng: random.Random, quoted: bool) -> str:
    value = "Zq" + _word(rng, rng.randint(8, 20), _VALUE_CHARS)
    if quoted and rng.random() < 0.3:
        value += " " + "Zq" + _word(rng, 8)  # a quoted value may hold spaces
    return value


def in_form(key: str, value: str, form: int) -> str:
    """``key`` and ``value`` as k=v, k: v, JSON or Python repr text."""
    return [f"{key}={value}", f"{key}: {value}", json.dumps({key: value}),
            repr({key: value, "n": 1})][form]


def adversarial_event(rng: random.Random) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """(how to log it, what to log, strings that must not appear, strings that must)."""
    kind = rng.choice(["key", "key", "key", "email", "card", "token"])
    keep: list[str] = []
    if kind == "key":
        words = [rng.choice(_PREFIXES), *rng.choice(_SECRET_NAMES)]
        key = styled([w for w in words if w], rng.randrange(6))
        form = rng.randrange(4)
        value = secret_value(rng, quoted=form >= 2)
        text = in_form(key, value, form)
        secrets = value.split(" ")
        harmless = styled(rng.choice(_HARMLESS_NAMES), rng.randrange(6))
        control = "Ok" + _word(rng, 10)
        text += f" {harmless}={control}"
        keep.append(control)
        payload: dict[str, Any] = {"text": text, "key": key, "value": value}
    elif kind == "email":
        domain = rng.choice(_DOMAINS)
        if rng.random() < 0.5:
            domain = domain.encode("idna").decode("ascii")
        address = f"{_word(rng, rng.randint(3, 12), _LOCALS).strip('.') or 'a'}x@{domain}"
        secrets = [address]
        payload = {"text": f"contact {address} now", "key": "contact", "value": address}
    elif kind == "card":
        card = card_number(rng, valid=True)
        order = card_number(rng, valid=False)
        secrets = [card, card.replace(" ", "").replace("-", "")]
        keep.append(order)
        payload = {"text": f"paid with {card} for order {order}", "key": "card",
                   "value": card}
    else:
        token = rng.choice([f"AIza{_word(rng, 35)}",
                            f"ASIA{_word(rng, 16, string.ascii_uppercase)}",
                            f"github_pat_{_word(rng, 40)}", f"sk_live_{_word(rng, 24)}",
                            f"AKIA{_word(rng, 16, string.ascii_uppercase + string.digits)}",
                            f"ghp_{_word(rng, 36)}", f"sk-{_word(rng, 40)}"])
        secrets = [token]
        payload = {"text": f"using {token} today", "key": "credential_ref", "value": token}
    keep.append("ordinary words")
    payload["text"] += " ordinary words"
    where = rng.choice(["message", "key", "nested", "list", "exception", "stdlib", "stdlib_exc"])
    if where == "key" and kind != "key":
        where = "nested"
    return where, payload, secrets, keep


def test_no_leaks_over_adversarial_classes(clean_logging: None) -> None:
    """Secret keys in six styles with prefixes, in four text forms, as keys, nested, in
    lists, in exception arguments and in %s-formatted stdlib records; IDN emails; Luhn-valid
    cards; API tokens. 0 leaks in the JSON lines; controls (harmless keys' values, order
    numbers failing Luhn, ordinary words) come out unchanged."""
    rng = random.Random(16)
    out = io.StringIO()
    configure_logging("pii", stream=out)
    structured = get_logger("pii.adversarial")
    stdlib = logging.getLogger("pii.adversarial.stdlib")
    expected: list[tuple[list[str], list[str]]] = []
    with no_pytest_log_capture():
        for _ in range(ADVERSARIAL_EVENTS):
            where, payload, secrets, keep = adversarial_event(rng)
            text = payload["text"]
            if where == "message":
                structured.info(text)
            elif where == "key":
                structured.info("config", **{payload["key"]: payload["value"]}, note=text)
            elif where == "nested":
                structured.warning("job_failed", detail={"deep": {"note": text},
                                                         payload["key"]: payload["value"]})
            elif where == "list":
                structured.info("batch", items=[{"note": text}, (text, 1)])
            elif where == "exception":
                try:
                    raise ValueError(text, {payload["key"]: payload["value"]})
                except ValueError as exc:
                    structured.error("failed", error=exc, exc_info=True)
            elif where == "stdlib":
                stdlib.warning("call failed: %s (%r)", text, {payload["key"]: payload["value"]})
            else:
                try:
                    raise RuntimeError(text)
                except RuntimeError:
                    stdlib.exception("upstream said %s", text)
            expected.append((secrets, keep))
    lines = out.getvalue().splitlines()
    assert len(lines) == ADVERSARIAL_EVENTS
    leaks = []
    unchanged = 0
    for line, (secrets, keep) in zip(lines, expected):
        decoded = json.dumps(json.loads(line), ensure_ascii=False)  # JSON escapes undone
        for secret in secrets:
            if secret in line or secret in decoded or json.dumps(secret)[1:-1] in line:
                leaks.append((secret, line))
        missing = [control for control in keep if control not in line]
        assert not missing, (missing, line)
        unchanged += len(keep)
    assert leaks == [], leaks[:5]
    record("pii", adversarial_events=ADVERSARIAL_EVENTS, adversarial_leaks=len(leaks),
           controls_kept=unchanged)
