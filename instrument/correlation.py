"""One correlation ID per request, carried across every boundary.

The ID lives in a contextvar, so it follows the request through ``await`` and
into tasks; log processors, tracing and exemplars read it from there. Across
process boundaries it travels in a header (HTTP, webhooks) or a payload field
(queued jobs): :func:`inject` puts it in, :func:`extract` takes it out and
accepts it only when it is a valid UUID (with dashes, or as 32 hex digits),
so a client can never smuggle arbitrary text (CRLF, 10 KB values) into logs
or response headers.
"""

from __future__ import annotations

import binascii
import contextvars
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

__all__ = [
    "CORRELATION_HEADER",
    "CORRELATION_ID_FIELD",
    "REQUEST_ID_HEADER",
    "bind_correlation_id",
    "correlation_id_var",
    "ensure_correlation_id",
    "extract",
    "get_correlation_id",
    "inject",
    "new_correlation_id",
    "valid_correlation_id",
]

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_FIELD = "correlation_id"

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "promkit_correlation_id", default=None
)

# Accepted IDs: a UUID (version 1-8, RFC 4122 variant) with dashes, or the same
# 32 hex digits without them (uuid4().hex: asgi-correlation-id's default and many
# services'), in either case. Nothing else can reach a log line or a header.
_UUID_DASHED = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE
)
_UUID_HEX = re.compile(r"[0-9a-f]{12}[1-8][0-9a-f]{3}[89ab][0-9a-f]{15}", re.IGNORECASE)

# A new ID is made for every request, so it must be cheap, and it must not be
# guessable (IDs show in logs and response headers; one must not predict
# another's): 122 bits from the operating system's random source, like
# uuid.uuid4(). uuid.uuid4() costs ~2.5-4 us (a system call and a UUID object
# per ID). Here one os.urandom call makes _BATCH IDs at once: its hex digits
# are copied into a template of _BATCH dashed UUIDs by strided slices (one C
# copy per character position for the whole batch), the version digit is the
# template's "4" and the variant digit is a random one mapped onto 8-b; each
# request takes one ID with a single list.pop() (~0.25 us per ID in all).
# list.pop/extend are atomic and every batch is fresh random bytes, so threads
# refilling at once never share an ID; a forked child drops the parent's
# unused IDs (the parent may still hand them out).
_BATCH = 64
_STRIDE = 37  # 36 characters and a space: split() cuts the batch into IDs
_TEMPLATE = b"00000000-0000-4000-0000-000000000000 " * _BATCH
_VERSION_DIGIT, _VARIANT_DIGIT = 12, 16  # of the 32 hex digits


def _dashed(digit: int) -> int:
    return digit + (digit >= 8) + (digit >= 12) + (digit >= 16) + (digit >= 20)


# (position in the dashed form, hex digit) of the 30 digits copied as drawn
_RANDOM_DIGITS = tuple((_dashed(d), d) for d in range(32)
                       if d not in (_VERSION_DIGIT, _VARIANT_DIGIT))
_VARIANT_POSITION = _dashed(_VARIANT_DIGIT)
_TO_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")  # keeps 2 random bits
_pool: list[str] = []


def _drop_pool() -> None:
    _pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_pool)


def _refill() -> str:
    digits = binascii.hexlify(os.urandom(16 * _BATCH))
    batch = bytearray(_TEMPLATE)
    for position, digit in _RANDOM_DIGITS:
        batch[position::_STRIDE] = digits[digit::32]
    batch[_VARIANT_POSITION::_STRIDE] = digits[_VARIANT_DIGIT::32].translate(_TO_VARIANT)
    ids = batch.decode("ascii").split()
    cid = ids.pop()
    _pool.extend(ids)
    return cid


def new_correlation_id() -> str:
    """A fresh random version-4 UUID string (lowercase, with dashes)."""
    try:
        return _pool.pop()
    except IndexError:
        return _refill()


def valid_correlation_id(value: object) -> str | None:
    """``value`` as a string when it is a UUID (36 characters with dashes, or 32 hex
    digits), else None. A valid ID is kept as given: a neighbour gets its own ID back."""
    if isinstance(value, bytes):
        if len(value) != 36 and len(value) != 32:
            return None
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    if len(value) == 36:
        return value if _UUID_DASHED.fullmatch(value) else None
    if len(value) == 32:
        return value if _UUID_HEX.fullmatch(value) else None
    return None


def get_correlation_id() -> str | None:
    """The current correlation ID, or None outside any request or job."""
    return correlation_id_var.get()


def ensure_correlation_id() -> str:
    """The current correlation ID, creating and binding one if there is none."""
    current = correlation_id_var.get()
    if current is None:
        current = new_correlation_id()
        correlation_id_var.set(current)
    return current


@contextmanager
def bind_correlation_id(value: str | None = None) -> Iterator[str]:
    """Bind a correlation ID for the block (a new one when ``value`` is not a valid UUID)."""
    cid = valid_correlation_id(value) or new_correlation_id()
    token = correlation_id_var.set(cid)
    try:
        yield cid
    finally:
        correlation_id_var.reset(token)


def inject(carrier: MutableMapping[str, object], key: str = CORRELATION_ID_FIELD,
           correlation_id: str | None = None) -> MutableMapping[str, object]:
    """Put the (current) correlation ID into a payload dict or header map; returns it.

    For headers pass ``key=CORRELATION_HEADER``. With no ID bound a new one is
    used for this carrier only; nothing is bound in the caller's context.
    """
    carrier[key] = correlation_id or correlation_id_var.get() or new_correlation_id()
    return carrier


def extract(carrier: Mapping[str, object] | None,
            keys: tuple[str, ...] = (CORRELATION_ID_FIELD, CORRELATION_HEADER, REQUEST_ID_HEADER),
            ) -> str | None:
    """The first valid correlation ID under ``keys`` (case-insensitively), else None.

    Works on job payloads (``{"correlation_id": ...}``) and header maps alike;
    invalid values are ignored, never returned.
    """
    if not carrier:
        return None
    for key in keys:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = next((v for k, v in carrier.items() if isinstance(k, str)
                          and k.lower() == lowered), None)
        cid = valid_correlation_id(value)
        if cid is not None:
            return cid
    return None
