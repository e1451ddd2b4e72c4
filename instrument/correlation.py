"""One correlation ID per request, carried across every boundary.

The ID lives in a contextvar, so it follows the request through ``await`` and
into tasks; log processors, tracing and exemplars read it from there. Across
process boundaries it travels in a header (HTTP, webhooks) or a payload field
(queued jobs): :func:`inject` puts it in, :func:`extract` takes it out and
accepts it only when it is a valid UUID (with dashes, or as 32 hex digits),
so a client can never smuggle arbitrary text (CRLF, 10 KB values) into logs
or response headers.

One rule picks the ID at every entry point (HTTP and WebSocket requests, job
creation, the three job-run APIs, webhooks): the first valid ID in the
carrier's keys, in the order given, else the ID already bound in this
context, else a new one -- :func:`resolve_correlation_id`. One context
manager binds it -- :class:`bind_correlation_id`.

Binding the ID is binding structlog's context too: the contextvar is named
with structlog's prefix (``structlog_correlation_id``), and structlog's
``merge_contextvars`` merges every set context variable of that prefix (the
same for ``get_contextvars``; checked on structlog 24.1 and 26.1), so a plain
structlog set-up logs ``correlation_id`` with no promkit processor and at no
extra cost per request. ``structlog.contextvars.clear_contextvars()`` clears
it too (it sets the variable to ``Ellipsis``): readers go through
:func:`get_correlation_id`, which treats anything but a string as "no ID".
Bind the ID with :class:`bind_correlation_id`, not ``bind_contextvars``
(which would keep a second variable of the same name).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Mapping, MutableMapping
from types import TracebackType

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
    "resolve_correlation_id",
    "valid_correlation_id",
]

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_FIELD = "correlation_id"
CARRIER_KEYS = (CORRELATION_ID_FIELD, CORRELATION_HEADER, REQUEST_ID_HEADER)
"""Where :func:`extract` and :func:`resolve_correlation_id` look, in this order."""

# structlog's prefix: structlog merges the bound ID into every log line (see above).
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "structlog_correlation_id", default=None
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
# uuid.uuid4(), which costs ~2.5-4 us (a system call and a UUID object per ID).
# Here one os.urandom call makes _BATCH IDs at once, laid out as they will be
# printed: one random byte per character, mapped onto a hex digit by
# bytes.translate (the low 4 bits: 256 byte values map 16 to each digit, so
# every digit is uniform), then the dashes, the version digit "4" and the
# separators written over their columns, and the variant column mapped onto
# 8-b (the low 2 bits). Each request takes one ID with a single list.pop().
# (callgrind: ~1.3k instructions per ID, where hexlified digits copied into a
# template one column at a time cost ~2.7k; promkit_defaults +32.2k -> +31.3k per
# request over bare, python -m benchmarks.instructions.) list.pop/extend are
# atomic and every batch is fresh random bytes, so threads refilling at once
# never share an ID; a forked child drops the parent's unused IDs (the parent
# may still hand them out).
_BATCH = 64
_STRIDE = 37  # 36 characters and a space: split(" ") cuts the batch into IDs
_LENGTH = _STRIDE * _BATCH - 1  # no space after the last ID
_TO_HEX = bytes(b"0123456789abcdef"[i & 15] for i in range(256))
_TO_VARIANT = bytes(b"89ab"[i & 3] for i in range(256))
_DASH_COLUMNS = (8, 13, 18, 23)
_VERSION_COLUMN, _VARIANT_COLUMN, _SEPARATOR_COLUMN = 14, 19, 36
_DASHES, _VERSIONS, _SEPARATORS = b"-" * _BATCH, b"4" * _BATCH, b" " * (_BATCH - 1)
_pool: list[str] = []


def _drop_pool() -> None:
    _pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_pool)


def _refill() -> str:
    raw = os.urandom(_LENGTH)
    batch = bytearray(raw.translate(_TO_HEX))
    for column in _DASH_COLUMNS:
        batch[column::_STRIDE] = _DASHES
    batch[_VERSION_COLUMN::_STRIDE] = _VERSIONS
    batch[_VARIANT_COLUMN::_STRIDE] = raw[_VARIANT_COLUMN::_STRIDE].translate(_TO_VARIANT)
    batch[_SEPARATOR_COLUMN::_STRIDE] = _SEPARATORS
    ids = batch.decode("ascii").split(" ")
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
    """The current correlation ID, or None outside any request or job.

    None too after ``structlog.contextvars.clear_contextvars()``, which sets the
    variable to ``Ellipsis``: anything but a string is "no ID".
    """
    current = correlation_id_var.get()
    return current if type(current) is str else None


def resolve_correlation_id(carrier: Mapping[str, object] | None = None,
                           keys: tuple[str, ...] = CARRIER_KEYS) -> str:
    """The correlation ID of an entry point: the one rule every entry point follows.

    The first valid ID under ``keys`` in ``carrier`` (a job payload or a header
    map, see :func:`extract`), else the ID already bound in this context, else a
    new one. Binds nothing. Entry points that read their carrier themselves (the
    middleware's raw ASGI headers) call :func:`bound_or_new` for the rest of the rule.
    """
    if carrier:
        found = extract(carrier, keys)
        if found is not None:
            return found
    return bound_or_new()


def bound_or_new() -> str:
    """The rest of :func:`resolve_correlation_id`'s rule: the ID bound in this context,
    else a new one. For an entry point that reads its own carrier (the middleware's raw
    ASGI headers) and found no valid ID there."""
    current = correlation_id_var.get()
    if type(current) is str:
        return current
    # new_correlation_id() inline, and the middleware calling this rather than
    # resolve_correlation_id(): two calls less per request without an ID
    # (promkit_defaults 134,181 -> 133,646 instructions, python -m benchmarks.instructions).
    try:
        return _pool.pop()
    except IndexError:
        return _refill()


def ensure_correlation_id() -> str:
    """The current correlation ID, creating and binding one if there is none."""
    current = correlation_id_var.get()
    if type(current) is not str:
        current = new_correlation_id()
        correlation_id_var.set(current)
    return current


class bind_correlation_id:
    """Bind a correlation ID for the block (contextvar and structlog context); yields it.

    ``value`` when it is a valid UUID, else the rule of
    :func:`resolve_correlation_id` with no carrier: the ID already bound, else a
    new one. Restored on exit (left alone when the block ends in another
    context, e.g. a run finished from another task). A class, not
    ``@contextmanager``: no generator per use. Sync and async (``async with``).
    """

    __slots__ = ("_token", "_value", "correlation_id")

    def __init__(self, value: object = None) -> None:
        self._value = value
        self._token: contextvars.Token[str | None] | None = None
        self.correlation_id: str | None = None

    def __enter__(self) -> str:
        cid = valid_correlation_id(self._value)
        if cid is None:
            cid = bound_or_new()
        self.correlation_id = cid
        self._token = correlation_id_var.set(cid)
        return cid

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            # Another context (a run finished from another task), or reset already.
            with contextlib.suppress(ValueError, RuntimeError):
                correlation_id_var.reset(token)

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(typ, exc, tb)


def inject(carrier: MutableMapping[str, object], key: str = CORRELATION_ID_FIELD,
           correlation_id: str | None = None) -> MutableMapping[str, object]:
    """Put the (current) correlation ID into a payload dict or header map; returns it.

    For headers pass ``key=CORRELATION_HEADER``. With no ID bound a new one is
    used for this carrier only; nothing is bound in the caller's context.
    """
    carrier[key] = correlation_id or bound_or_new()
    return carrier


def extract(carrier: Mapping[str, object] | None,
            keys: tuple[str, ...] = CARRIER_KEYS) -> str | None:
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
