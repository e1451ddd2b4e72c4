"""PII redaction for log events: the patterns and the ``redact_pii`` processor.

Two kinds of rules, both applied at every nesting depth (dicts, lists, tuples):

* **key rules** — a value under a raw-ID key (``user_id`` by default) is
  replaced by ``<key>_hash``: the first 16 hex characters of its SHA-256; a
  value under a blocklisted key (extracted text, file names, storage paths,
  webhook bodies, emails, IPs...) or a secret key (the key rule of
  ``promkit.instrument._secrets``: ``DB_PASSWORD``, ``accessToken``,
  ``X-Api-Key``...) becomes ``"[redacted]"``. Keys are compared in snake case
  (camelCase, kebab-case and upper case normalised).
* **text rules** — inside every string: URL query strings and URL user-info,
  email addresses (internationalised domains too), IPv4 and IPv6 addresses,
  and the shared secret patterns (values of secret keys in ``k=v``, ``k: v``,
  JSON and Python-repr forms, bearer/basic credentials, API tokens, JWTs) and
  Luhn-checked card numbers are replaced by a ``[redacted:<kind>]`` marker.

This module is private; the public names are re-exported by ``promkit.instrument.logs``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from promkit.instrument._json_line import safe_repr
from promkit.instrument._secrets import (
    is_secret_key,
    normalise_key,
    redact_secrets,
)

__all__ = [
    "DEFAULT_HASH_KEYS",
    "DEFAULT_PII_KEYS",
    "DEFAULT_PII_KEY_SUFFIXES",
    "REDACTED",
    "RedactPII",
    "hash_identifier",
    "redact_pii",
    "redact_text",
]

REDACTED = "[redacted]"
"""What a value under a blocklisted key becomes."""

DEFAULT_HASH_KEYS: Mapping[str, str] = {"user_id": "user_id_hash", "userid": "user_id_hash"}
"""Raw-ID keys (in snake case, see ``normalise_key``) and the key their hash goes under."""

DEFAULT_PII_KEYS: frozenset[str] = frozenset({
    # extracted / user content
    "text", "extracted_text", "ocr_text", "raw_text", "transcript", "content", "document",
    "prompt", "completion",
    # file names and storage paths
    "filename", "file_name", "original_filename", "upload_name", "file_path", "filepath",
    "storage_path", "storage_key", "local_path", "object_key", "s3_key", "s3_path", "gcs_path",
    "blob_name", "blob_path",
    # bodies
    "body", "request_body", "response_body", "webhook_body", "webhook_payload", "payload_body",
    # credentials
    "password", "passwd", "pwd", "secret", "client_secret", "token", "access_token",
    "refresh_token", "id_token", "api_key", "apikey", "x_api_key", "authorization", "auth_header",
    "cookie", "cookies", "set_cookie", "session", "session_id", "private_key", "signature",
    # contact details and network identity
    "email", "email_address", "e_mail", "phone", "phone_number", "ip", "ip_address", "client_ip",
    "remote_ip", "remote_addr", "x_forwarded_for", "x_real_ip",
})
"""Keys (in snake case: ``fileName`` is ``file_name``) whose values are never logged.

Secret keys need not be listed: any key whose last word names a credential is
redacted too (``promkit.instrument._secrets.is_secret_key``)."""

DEFAULT_PII_KEY_SUFFIXES: tuple[str, ...] = (
    "_password", "_secret", "_token", "_api_key", "_apikey", "_email", "_ip", "_filename",
    "_file_name", "_cookie",
)
"""Key suffixes treated like :data:`DEFAULT_PII_KEYS` (``csrf_token``, ``contact_email``...)."""

_MAX_DEPTH = 16
_KEY_CACHE_LIMIT = 4096
_META_KEYS = frozenset({"_record", "_from_structlog"})
# Values promkit's own processors set (the timestamper, add_log_level): not scanned.
_TRUSTED_KEYS = frozenset({"timestamp", "level"})
_NOT_SCANNED = _META_KEYS | _TRUSTED_KEYS


def hash_identifier(value: object) -> str:
    """First 16 hex characters of the SHA-256 of ``str(value)`` (UTF-8).

    A pseudonym, not anonymisation: anyone holding the raw ID can compute the
    same hash, which is what makes "all lines of user X" answerable.
    """
    text = value if isinstance(value, str) else str(value)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# ---------------------------------------------------------------------------- text rules

_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]{0,20}://)[^/\s@?#]+@")
# Every query string of a URL or absolute path goes: signed URLs carry credentials
# (X-Amz-Signature, sig, token, key...) and others carry emails or IDs, and telling
# them apart by parameter name is a losing game.
_URL_QUERY = re.compile(
    r"((?:\b[A-Za-z][A-Za-z0-9+.-]{0,20}://|(?<![\w/.])/)[^\s?#\"'<>]*)\?[^\s#\"'<>]*"
)
# Domains may be internationalised: punycode (xn--...) or Unicode labels, whose
# letters can carry combining marks (Devanagari vowel signs are not \w), so a label
# is anything but spaces, ASCII punctuation other than "-" and "_", and the dots
# (also the ideographic and full-width ones).
_LABEL = r"[^\s!-,./:-@\[-^`{-~\u3002\uff0e\uff61]"
_EMAIL = re.compile(
    rf"[\w.!#$%&'*+/=?^`{{|}}~-]{{1,64}}@[^\W_]{_LABEL}{{0,62}}"
    rf"(?:[.\u3002\uff0e\uff61]{_LABEL}{{1,63}})+"
)
# ' = ` are legal in a local part but in logs they usually delimit (email='a@b.c').
_EMAIL_DELIMITERS = re.compile(r"^.*['=`]")


# Short strings redact_text left unchanged: most values of a service's lines repeat
# (event, service, queue, model names). Only clean text is kept, never PII.
# Measured (benchmarks/redaction.py, callgrind): 66.9k -> 50.9k instructions per
# line on the realistic mix, no change when no string repeats. IDs of 36 characters
# (UUIDs) are longer than _CLEAN_TEXT_MAX: they would only churn the set.
_clean_texts: set[str] = set()
_CLEAN_TEXT_MAX = 32
_CLEAN_TEXTS_LIMIT = 4096


def _email_sub(match: re.Match[str]) -> str:
    text = match.group(0)
    delimited = _EMAIL_DELIMITERS.match(text[: text.index("@")])
    if delimited is None or delimited.end() == text.index("@"):
        return "[redacted:email]"
    return delimited.group(0) + "[redacted:email]"


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
# A run of hex digits, colons and dots bounded by non-word characters (so
# ``std::vector`` or ``Class::method`` are left alone); validated by ipaddress.
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]{2,45}(?:%[\w.-]{1,32})?(?![\w:])")
def _ipv6_sub(match: re.Match[str]) -> str:
    text = match.group(0)
    core = text.rstrip(".")
    if core.count(":") < 2:
        return text
    try:
        ipaddress.IPv6Address(core)
    except ValueError:
        return text
    return "[redacted:ip]" + text[len(core):]


def redact_text(text: str) -> str:
    """``text`` with URL query strings, emails, IPs, credentials and card numbers marked.

    Cheap substring checks skip the regular expressions that cannot match, and
    short strings found clean before (event names, service names, enum-like
    fields) are recognised by one set lookup.
    """
    if text in _clean_texts:
        return text
    if len(text) < 2:
        return text
    original = text
    colon = ":" in text  # most values have none: one scan instead of three
    if "?" in text or (colon and "://" in text):
        if "@" in text:
            text = _URL_USERINFO.sub(r"\1[redacted]@", text)
        text = _URL_QUERY.sub(r"\1?[redacted]", text)
    if "@" in text:
        text = _EMAIL.sub(_email_sub, text)
    # compressed, or full (incl. embedded IPv4)
    if colon and ("::" in text or text.count(":") >= 6):
        text = _IPV6_CANDIDATE.sub(_ipv6_sub, text)
    if text.count(".") >= 3:
        text = _IPV4.sub("[redacted:ip]", text)
    text = redact_secrets(text)  # credentials and card numbers: the shared list
    if text == original and len(text) <= _CLEAN_TEXT_MAX:
        if len(_clean_texts) >= _CLEAN_TEXTS_LIMIT:
            _clean_texts.clear()  # IDs and messages vary: start over rather than evict
        _clean_texts.add(text)
    return text


# ---------------------------------------------------------------------------- processor

class RedactPII:
    """Processor: remove PII from every value of the event, at any depth.

    * keys in ``hash_keys`` (default ``user_id``) are replaced by
      ``<key>_hash`` (``user_id`` → ``user_id_hash``) holding
      :func:`hash_identifier` of the value;
    * keys in :data:`DEFAULT_PII_KEYS` plus ``pii_keys``, keys ending with one
      of :data:`DEFAULT_PII_KEY_SUFFIXES` and secret keys (the last word names
      a credential: ``DB_PASSWORD``, ``accessToken``, ``X-Api-Key``,
      ``aws_secret_access_key``; not ``token_count`` or ``password_policy``)
      get the value ``"[redacted]"``;
    * every other string goes through :func:`redact_text`; objects that are
      not JSON types are turned into their ``repr()`` first, so nothing
      reaches the renderer unredacted.

    The event dict is changed in place; nested containers are copied, never
    mutated. Keys are matched in snake case: ``userId``, ``User-ID`` and
    ``USER_ID`` are all ``user_id``.
    The top-level ``timestamp`` and ``level`` (set by the timestamper and
    ``add_log_level``) are not scanned.
    """

    def __init__(self, pii_keys: Iterable[str] = (), hash_keys: Iterable[str] = ()) -> None:
        self.pii_keys = DEFAULT_PII_KEYS | {normalise_key(k) for k in pii_keys}
        self.hash_keys: dict[str, str] = dict(DEFAULT_HASH_KEYS)
        for key in hash_keys:
            normalised = normalise_key(key)
            self.hash_keys.setdefault(normalised, normalised + "_hash")
        # normalised decisions per raw key: None = keep, "" = redact, else the hash key
        self._decisions: dict[str, str | None] = {}

    def _decide(self, key: str) -> str | None:
        decision = self._decisions.get(key, "?")
        if decision != "?":
            return decision
        normalised = normalise_key(key)
        if normalised in self.hash_keys:
            decision = self.hash_keys[normalised]
        elif (normalised in self.pii_keys or normalised.endswith(DEFAULT_PII_KEY_SUFFIXES)
              or is_secret_key(key)):
            decision = ""
        else:
            decision = None
        if len(self._decisions) < _KEY_CACHE_LIMIT:
            self._decisions[key] = decision
        return decision

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        # The decision cache and the str case read inline, not through _decide and
        # _value: -8.8k instructions per line on both corpora (every string unique:
        # 72.4k -> 63.6k; python -m benchmarks.redaction --instructions).
        decisions = self._decisions
        for key in list(event_dict):
            if key in _NOT_SCANNED:
                continue
            decision = decisions.get(key, "?")
            if decision == "?":
                decision = self._decide(key) if isinstance(key, str) else None
            if decision is None:
                value = event_dict[key]
                event_dict[key] = (redact_text(value) if type(value) is str
                                   else self._value(value, 0))
            elif decision == "":
                if event_dict[key] is not None:
                    event_dict[key] = REDACTED
            else:
                raw = event_dict.pop(key)
                if raw is not None:
                    event_dict[decision] = hash_identifier(raw)
        return event_dict

    def redact_value(self, key: str, value: object) -> Any:
        """What ``value`` under ``key`` becomes (for keys that are not hashed)."""
        decision = self._decide(key)
        if decision == "":
            return REDACTED if value is not None else None
        return self._value(value, 0)

    def renames(self, key: str) -> bool:
        """Whether ``key`` is a raw-ID key that this processor replaces by a hash."""
        decision = self._decide(key)
        return decision is not None and decision != ""

    def _value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return redact_text(value)
        if value is None or kind is int or kind is float or kind is bool:
            return value
        if depth >= _MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, Mapping):
            return self._mapping(value, depth + 1)
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._value(item, depth + 1) for item in value]
        if isinstance(value, str):
            return redact_text(str(value))
        if isinstance(value, (int, float)):
            return value
        return redact_text(safe_repr(value))

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw_key, item in mapping.items():
            key = raw_key if isinstance(raw_key, str) else safe_repr(raw_key)
            decision = self._decide(key)
            if decision is None:
                out[redact_text(key)] = self._value(item, depth)
            elif decision == "":
                out[key] = REDACTED if item is not None else None
            elif item is not None:
                out[decision] = hash_identifier(item)
        return out


redact_pii = RedactPII()
"""The default :class:`RedactPII` (default key lists); ``configure_logging`` always runs one."""
