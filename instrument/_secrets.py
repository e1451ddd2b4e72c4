"""Secrets and card numbers: the one list of patterns behind log redaction and label cleaning.

* :func:`is_secret_key` — the key rule: a key (``DB_PASSWORD``, ``accessToken``,
  ``X-Api-Key``...) whose value is a credential, whatever its style.
* :func:`redact_secrets` — inside free text: the values of such keys in the
  ``k=v``, ``k: v``, JSON ``"k": "v"`` and Python-repr ``'k': 'v'`` forms,
  bearer/basic credentials, API tokens (``sk-``, ``sk_live_``, ``ghp_``,
  ``github_pat_``, ``xox?-``, AWS ``AKIA``/``ASIA``, Google ``AIza``, JWTs)
  and card numbers.
* :func:`redact_card_numbers` — card numbers alone: 13-19 digits, optionally
  grouped by single spaces or dashes, starting with 2-6 (the card networks'
  ranges, so millisecond and nanosecond Unix timestamps are not cards), that
  pass the Luhn check (so most order numbers are not cards), not glued to a
  letter, digit or dot (``a4111...``, ``2.4111...``) and not part of a hex ID
  (dash-joined to 4 hex digits before or a letter or digit after: a UUID's
  groups). Digits joined by single spaces are one number when they total 19 or
  fewer (``5 4111 1111 1111 1111`` is a 17-digit number, not a card); a longer
  run is searched for a card among its space-separated groups.

Log redaction (``promkit.instrument._logs_pii``) replaces what these find by
markers; label cleaning (``promkit.instrument.registry``) drops a label value
that holds any of it (:func:`contains_secret`).
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = [
    "CARD_MARK",
    "SECRET_MARK",
    "contains_secret",
    "is_secret_key",
    "key_words",
    "normalise_key",
    "redact_card_numbers",
    "redact_secrets",
]

SECRET_MARK = "[redacted:secret]"
CARD_MARK = "[redacted:card]"

# ---------------------------------------------------------------------------- the key rule

# The last word of a key that names a credential...
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "authorization",
    "credential", "credentials", "cookie", "signature", "sig", "apikey",
})
# ...or a last word ending in one of these glued to another (dbpassword, clientsecret).
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey")
# "<word> key" that is a credential (api_key, secret_key, aws_secret_access_key).
_KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "signing", "encryption", "client", "master", "auth",
    "session",
})
_GLUED_KEYS = frozenset(q + "key" for q in _KEY_QUALIFIERS)
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise_key(key: str) -> str:
    """``key`` in snake case: camelCase and acronyms split, lower case, other characters ``_``.

    ``accessToken`` → ``access_token``, ``X-Api-Key`` → ``x_api_key``,
    ``APIKey`` → ``api_key``, ``DB_PASSWORD`` → ``db_password``.
    """
    if not key.isascii():
        key = key.encode("ascii", "replace").decode("ascii")
    text = _CAMEL.sub(r"\1_\2", _CAMEL_ACRONYM.sub(r"\1_\2", key.strip()))
    return _NON_ALNUM.sub("_", text.lower()).strip("_")


def key_words(key: str) -> list[str]:
    """The words of :func:`normalise_key` (``aws_secret_access_key`` → 4 words)."""
    return [word for word in normalise_key(key).split("_") if word]


def is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` is a credential: the key's *last* word names one.

    The last word (after :func:`normalise_key`) is ``password``, ``passwd``,
    ``pwd``, ``passphrase``, ``secret``, ``token``, ``authorization``,
    ``credential(s)``, ``cookie``, ``signature``, ``sig`` or ``apikey``, or ends
    with ``password``/``secret``/``token``/... glued to another word
    (``dbpassword``); or the last two words are ``key`` after ``api``,
    ``access``, ``secret``, ``private``, ``signing``, ``encryption``,
    ``client``, ``master``, ``auth`` or ``session``. A secret word followed by
    another word describes something else and is kept: ``token_count``,
    ``password_policy``, ``secret_name``, ``tokens``.
    """
    words = key_words(key)
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_WORDS or last in _GLUED_KEYS or last.endswith(_SECRET_ENDINGS):
        return True
    return last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


# ---------------------------------------------------------------------------- values in text

# A secret word at the end of a key, then an optional closing quote (JSON or repr,
# maybe backslash-escaped), then = or : — the key's start is found by looking back
# and judged by is_secret_key, so text and event keys follow one rule.
_KV = re.compile(
    r"(?:password|passwd|pwd|passphrase|secret|token|authorization|credentials?|cookie"
    r"|signature|sig|key)(?:\\?[\"'])?[ \t]*[=:][ \t]*",
    re.IGNORECASE,
)
_KV_HINTS = ("pass", "pwd", "secret", "token", "key", "sig", "auth", "cred", "cookie")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_LOOKBACK = 64
# Unquoted: up to a space or delimiter; a nested {...} or [...] is left to its own keys.
_UNQUOTED_VALUE = re.compile(
    r"(?:(?:bearer|basic)\s+)?([^\s&,;\"'<>\\{\[][^\s&,;\"'<>\\]*)", re.IGNORECASE)
_QUOTED_BODY = {'"': re.compile(r'(?:[^"\\]|\\.)*'), "'": re.compile(r"(?:[^'\\]|\\.)*")}
_STRING_PREFIXES = frozenset("bBrRuU")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_KEY_CACHE: dict[str, bool] = {}
_KEY_CACHE_LIMIT = 1024

_BEARER = re.compile(r"\b(bearer\s+)[\w.~+/=-]+", re.IGNORECASE)
_BASIC = re.compile(r"\b(basic\s+)([A-Za-z0-9+/]{6,}={0,2})", re.IGNORECASE)
# Each family is one expression with a literal start (fast in sre), run only when
# its hint is a substring (tested in redact_secrets); a match glued to a letter or
# digit ("task-...") stays.
_SK = re.compile(r"sk-[A-Za-z0-9_-]{16,}")  # hint "sk-"
_STRIPE = re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}")  # hint "k_"
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}")  # hint "gh"
_GITHUB_PAT = re.compile(r"github_pat_[A-Za-z0-9_]{20,}")  # hint "github_pat_"
_SLACK = re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")  # hint "xox"
_AWS = re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}")  # hint "IA"
_GOOGLE = re.compile(r"AIza[0-9A-Za-z_-]{35}")  # hint "AIza"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")  # hint "eyJ"


def _secret_key_cached(key: str) -> bool:
    # Keys in text repeat: a hit is ~0.1 us, is_secret_key 3.5-7.5 us (timeit, this VM).
    found = _KEY_CACHE.get(key)
    if found is None:
        found = is_secret_key(key)
        if len(_KEY_CACHE) >= _KEY_CACHE_LIMIT:
            _KEY_CACHE.clear()  # as the other caches here: start over rather than stop
        _KEY_CACHE[key] = found
    return found


def _key_before(text: str, end: int) -> str:
    start = end
    floor = max(0, end - _KEY_LOOKBACK)
    while start > floor and text[start - 1] in _KEY_CHARS:
        start -= 1
    if start - 1 > floor and text[start - 1] == " " and text[start - 2] in _KEY_CHARS:
        # One word more across a single space: "API Key", "Secret Key" ("<word> key"
        # judges the word before it); is_secret_key decides on the last two words.
        start -= 1
        while start > floor and text[start - 1] in _KEY_CHARS:
            start -= 1
    return text[start:end]


def _value_span(text: str, position: int) -> tuple[int, int] | None:
    """Where the value starting at ``position`` is (quoted: inside the quotes)."""
    first = text[position:position + 1]
    if first in _STRING_PREFIXES and text[position + 1:position + 2] in _QUOTED_BODY:
        position += 1  # b'...' / r'...' / u'...' in a repr
        first = text[position]
    if first == "\\" and text[position + 1:position + 2] in ('"', "'"):
        quote = text[position:position + 2]
        end = text.find(quote, position + 2)
        return position + 2, len(text) if end < 0 else end
    if first in _QUOTED_BODY:
        body = _QUOTED_BODY[first].match(text, position + 1)
        return (position + 1, body.end()) if body is not None else None
    value = _UNQUOTED_VALUE.match(text, position)
    if value is None:
        return None
    start, end = value.span(1)
    # A closing bracket the value did not open closes what holds it ({"pin": 1234},
    # Creds(token=abc)): it stays. One a secret ends with is all that could show.
    while end - start > 1 and text[end - 1] in _CLOSERS and (
            text.count(text[end - 1], start, end)
            > text.count(_CLOSERS[text[end - 1]], start, end)):
        end -= 1
    return start, end


def _redact_kv(text: str) -> str:
    out: list[str] = []
    position = 0
    for match in _KV.finditer(text):
        if match.start() < position:
            continue
        separator = match.group(0)
        word_end = match.start() + len(separator.rstrip(" \t=:").rstrip("\"'\\"))
        key = _key_before(text, match.start()) + text[match.start():word_end]
        if not _secret_key_cached(key):
            continue
        span = _value_span(text, match.end())
        if span is None or span[0] == span[1]:
            continue
        out.append(text[position:span[0]])
        out.append(SECRET_MARK)
        position = span[1]
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


def _glued(match: re.Match[str], extra: str = "") -> bool:
    start = match.start()
    if not start:
        return False
    before = match.string[start - 1]
    return before.isalnum() or before in extra


def _token_sub(match: re.Match[str]) -> str:
    return match.group(0) if _glued(match, "_-") else SECRET_MARK


def _bearer_sub(match: re.Match[str]) -> str:
    return match.group(1) + SECRET_MARK


def _basic_sub(match: re.Match[str]) -> str:
    # "Basic <base64 of user:password>"; ordinary prose ("Basic usage") stays.
    try:
        decoded = base64.b64decode(match.group(2) + "==", validate=False)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + SECRET_MARK if b":" in decoded else match.group(0)


def redact_secrets(text: str) -> str:
    """``text`` with everything on the shared list marked: secret-key values,
    bearer/basic credentials, API tokens and card numbers.

    Substring tests skip every expression that cannot match, so ordinary
    text costs a few membership tests.
    """
    if "=" in text or ":" in text:
        lowered = text.lower()
        for hint in _KV_HINTS:
            if hint in lowered:
                text = _redact_kv(text)
                break
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(_bearer_sub, text)
    if "asic" in text or "ASIC" in text:
        text = _BASIC.sub(_basic_sub, text)
    if len(text) >= 13:
        if len(text) >= 15:
            # One test per token family, written out: a loop over (hint, pattern)
            # pairs cost 3.1k instructions more per line with every string unique,
            # 1.4k on the realistic mix (python -m benchmarks.redaction --instructions).
            if "sk-" in text:
                text = _SK.sub(_token_sub, text)
            if "k_" in text:
                text = _STRIPE.sub(_token_sub, text)
            if "gh" in text:
                text = _GITHUB.sub(_token_sub, text)
            if "github_pat_" in text:
                text = _GITHUB_PAT.sub(_token_sub, text)
            if "xox" in text:
                text = _SLACK.sub(_token_sub, text)
            if "IA" in text:
                text = _AWS.sub(_token_sub, text)
            if "AIza" in text:
                text = _GOOGLE.sub(_token_sub, text)
            if "eyJ" in text:
                text = _JWT.sub(_token_sub, text)
        # redact_card_numbers inlined: two calls less per string (measured with
        # benchmarks/redaction.py, every string unique: 79.9k -> 78.0k per line)
        try:
            shape = text.encode().translate(_DIGITS_AS_ZERO, b" -").decode()
        except UnicodeEncodeError:  # lone surrogates: let the regex look
            shape = _THIRTEEN_DIGITS
        if _THIRTEEN_DIGITS in shape:
            text = _DIGIT_RUN.sub(_card_sub, text)
    return text


# ---------------------------------------------------------------------------- card numbers

# A run of 13 or more digits joined by single spaces or dashes, not glued to a
# letter, digit or dot, nor dash-joined to a group of 4 hex digits before or a
# letter or digit after (then it is part of a hex ID: a UUID's last groups can be
# 16 digits that pass Luhn, 1 UUID in ~40k); _card_sub looks for the card in it.
# The first digit comes before the look-behinds so sre scans for it as a
# character set: measured 2x faster than leading look-behinds on a 73-char line.
_DIGIT_RUN = re.compile(
    r"[0-9](?<![\w.][0-9])(?<![0-9A-Fa-f]{4}-[0-9])(?:[ -]?[0-9]){12,}(?!\w)(?!-\w)")
_CARD_FIRST = frozenset("23456")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and text[0] in _CARD_FIRST and _luhn(digits)


def _card_sub(match: re.Match[str]) -> str:
    run = match.group(0)
    if _is_card(run):
        return CARD_MARK
    if len(run.replace(" ", "").replace("-", "")) <= 19:
        # Judged whole: a 19-digit order number grouped by 4 holds 15- and 16-digit
        # spans that pass Luhn 1 time in 10 each; splitting it would redact ~20%.
        return run
    # Longer than any card: it may be a card beside other numbers ("2 4111111111111111
    # 2026"); try each span of whole space-separated groups. A dash-joined group is
    # one ID (UUIDs, phone numbers) and never split.
    groups = run.split(" ")
    out: list[str] = []
    i = 0
    while i < len(groups):
        for j in range(len(groups), i, -1):
            if _is_card(" ".join(groups[i:j])):
                out.append(CARD_MARK)
                i = j
                break
        else:
            out.append(groups[i])
            i += 1
    return " ".join(out)


# Pre-check: with spaces and dashes deleted and every digit made "0", a card is 13
# zeros in a row; one C pass and a substring search instead of a regex scan
# (measured: 7.7k -> 1.3k instructions per string, callgrind, Python 3.11). The
# shape is decoded to search it as str: bytes' "in" costs 180 ns, str's 40 ns.
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_THIRTEEN_DIGITS = "0" * 13


def _may_hold_card(text: str) -> bool:
    try:
        shape = text.encode().translate(_DIGITS_AS_ZERO, b" -").decode()
    except UnicodeEncodeError:  # lone surrogates: let the regex look
        return True
    return _THIRTEEN_DIGITS in shape


def redact_card_numbers(text: str) -> str:
    """``text`` with payment card numbers (Luhn-valid, see the module doc) marked."""
    if len(text) < 13 or not _may_hold_card(text):
        return text
    return _DIGIT_RUN.sub(_card_sub, text)


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds anything on the shared list (:func:`redact_secrets` marks it)."""
    return redact_secrets(text) != text
