"""PII redaction for log events: the patterns and the ``redact_pii`` processor.

Two kinds of rules, both applied at every nesting depth (dicts, lists, tuples):

* **key rules** — a value under a raw-ID key (``user_id`` by default) is
  replaced by ``<key>_hash``: the first 16 hex characters of its SHA-256; a
  value under a blocklisted key (extracted text, file names, storage paths,
  webhook bodies, passwords, tokens, authorization, API keys, emails, IPs...)
  becomes ``"[redacted]"``.
* **text rules** — inside every string: URL query strings and URL user-info,
  email addresses, IPv4 and IPv6 addresses, bearer/basic credentials, API keys
  (``sk-``, ``ghp_``, ``xox?-``, AWS ``AKIA``/``ASIA``, Google ``AIza``), JWTs
  and ``password=...``-style pairs are replaced by a ``[redacted:<kind>]``
  marker.

This module is private; the public names are re-exported by ``promkit.instrument.logs``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

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
"""Raw-ID keys (normalised: lower case, ``-`` → ``_``) and the key their hash goes under."""

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
"""Keys (normalised: lower case, ``-`` → ``_``) whose values are never logged."""

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
_EMAIL = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})+"
)
# ' = ` are legal in a local part but in logs they usually delimit (email='a@b.c').
_EMAIL_DELIMITERS = re.compile(r"^.*['=`]")


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
# Credentials. Each family is one expression with a literal start (fast in sre)
# and runs only when a cheap substring test says it can match; a match glued to
# a preceding letter or digit ("task-..." is not "sk-...") is left alone.
_KV = re.compile(
    r"\b(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token"
    r"|api[_-]?key|access[_-]?key|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|signature|sig)\s*[=:]\s*(?:(?:bearer|basic)\s+)?(?=[^\s&,;\"'<>])",
    re.IGNORECASE,
)
_KV_VALUE = re.compile(r"[^\s&,;\"'<>]+")
_KV_HINTS = ("pass", "pwd", "secret", "token", "key", "sig")
_BEARER = re.compile(r"\b(bearer\s+)[\w.~+/=-]+", re.IGNORECASE)
_BASIC = re.compile(r"\b(basic\s+)([A-Za-z0-9+/]{6,}={0,2})", re.IGNORECASE)
_TOKENS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sk-", re.compile(r"sk-[A-Za-z0-9_-]{16,}")),
    ("k_", re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("gh", re.compile(r"gh(?:[pousr]_[A-Za-z0-9]{20,}|ithub_pat_[A-Za-z0-9_]{20,})")),
    ("xox", re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("IA", re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}")),
    ("AIza", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
    ("eyJ", re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
)
_SECRET_MARK = "[redacted:secret]"


def _glued(match: re.Match[str], extra: str = "") -> bool:
    start = match.start()
    if not start:
        return False
    before = match.string[start - 1]
    return before.isalnum() or before in extra


def _token_sub(match: re.Match[str]) -> str:
    return match.group(0) if _glued(match, "_-") else _SECRET_MARK


def _bearer_sub(match: re.Match[str]) -> str:
    return match.group(1) + _SECRET_MARK


def _basic_sub(match: re.Match[str]) -> str:
    # "Basic <base64 of user:password>"; ordinary prose ("Basic usage") stays.
    try:
        decoded = base64.b64decode(match.group(2) + "==", validate=False)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + _SECRET_MARK if b":" in decoded else match.group(0)


def _redact_kv(text: str) -> str:
    out: list[str] = []
    position = 0
    for match in _KV.finditer(text):
        if match.start() < position:
            continue
        value = _KV_VALUE.match(text, match.end())
        if value is None:  # pragma: no cover - the lookahead guarantees one
            continue
        out.append(text[position:match.end()])
        out.append(_SECRET_MARK)
        position = value.end()
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


def _redact_secrets(text: str) -> str:
    if "=" in text or ":" in text:
        lowered = text.lower()
        if any(hint in lowered for hint in _KV_HINTS):
            text = _redact_kv(text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(_bearer_sub, text)
    if "asic" in text or "ASIC" in text:
        text = _BASIC.sub(_basic_sub, text)
    if len(text) >= 15:
        for hint, pattern in _TOKENS:
            if hint in text:
                text = pattern.sub(_token_sub, text)
    return text


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
    """``text`` with URL query strings, emails, IPs and credentials replaced by markers.

    Cheap substring checks skip the regular expressions that cannot match, so
    short ordinary messages cost a few hundred nanoseconds.
    """
    if len(text) < 2:
        return text
    if "?" in text or "://" in text:
        if "@" in text:
            text = _URL_USERINFO.sub(r"\1[redacted]@", text)
        text = _URL_QUERY.sub(r"\1?[redacted]", text)
    if "@" in text:
        text = _EMAIL.sub(_email_sub, text)
    if "::" in text or text.count(":") >= 6:  # compressed, or full (incl. embedded IPv4)
        text = _IPV6_CANDIDATE.sub(_ipv6_sub, text)
    if text.count(".") >= 3:
        text = _IPV4.sub("[redacted:ip]", text)
    return _redact_secrets(text)


def _normalise_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


# ---------------------------------------------------------------------------- processor

class RedactPII:
    """Processor: remove PII from every value of the event, at any depth.

    * keys in ``hash_keys`` (default ``user_id``) are replaced by
      ``<key>_hash`` (``user_id`` → ``user_id_hash``) holding
      :func:`hash_identifier` of the value;
    * keys in :data:`DEFAULT_PII_KEYS` plus ``pii_keys``, or ending with one of
      :data:`DEFAULT_PII_KEY_SUFFIXES`, get the value ``"[redacted]"``;
    * every other string goes through :func:`redact_text`; objects that are
      not JSON types are turned into their ``repr()`` first, so nothing
      reaches the renderer unredacted.

    The event dict is changed in place; nested containers are copied, never
    mutated. Keys are matched case-insensitively with ``-`` read as ``_``.
    The top-level ``timestamp`` and ``level`` (set by the timestamper and
    ``add_log_level``) are not scanned.
    """

    def __init__(self, pii_keys: Iterable[str] = (), hash_keys: Iterable[str] = ()) -> None:
        self.pii_keys = DEFAULT_PII_KEYS | {_normalise_key(k) for k in pii_keys}
        self.hash_keys: dict[str, str] = dict(DEFAULT_HASH_KEYS)
        for key in hash_keys:
            normalised = _normalise_key(key)
            self.hash_keys.setdefault(normalised, normalised + "_hash")
        # normalised decisions per raw key: None = keep, "" = redact, else the hash key
        self._decisions: dict[str, str | None] = {}

    def _decide(self, key: str) -> str | None:
        decision = self._decisions.get(key, "?")
        if decision != "?":
            return decision
        normalised = _normalise_key(key)
        if normalised in self.hash_keys:
            decision = self.hash_keys[normalised]
        elif normalised in self.pii_keys or normalised.endswith(DEFAULT_PII_KEY_SUFFIXES):
            decision = ""
        else:
            decision = None
        if len(self._decisions) < _KEY_CACHE_LIMIT:
            self._decisions[key] = decision
        return decision

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        for key in list(event_dict):
            if key in _META_KEYS or key in _TRUSTED_KEYS:
                continue
            decision = self._decide(key) if isinstance(key, str) else None
            if decision is None:
                event_dict[key] = self._value(event_dict[key], 0)
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
        return redact_text(_safe_repr(value))

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw_key, item in mapping.items():
            key = raw_key if isinstance(raw_key, str) else _safe_repr(raw_key)
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
