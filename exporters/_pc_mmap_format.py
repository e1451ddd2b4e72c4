"""prometheus-client's multiprocess file format, read and written with ``struct``.

This is another library's internal format (``prometheus_client/mmap_dict.py``,
the same from 0.20 to at least 0.26), kept in this one module so a change is
fixed in one place. ``tests/test_mp_format.py`` fails if it changes: it reads
back files written by the installed prometheus-client's own value class, and
has prometheus-client read the files this module writes.

A file ``<type>_<pid>.db`` (``gauge_<mode>_<pid>.db`` for gauges) is:

- an 8-byte header: a native ``int`` "bytes used", then 4 bytes of padding;
- entries up to "bytes used", each: native ``int`` key length, the UTF-8 key
  (``json.dumps([metric_name, sample_name, labels, help], sort_keys=True)``),
  spaces up to 8-byte alignment, then two native doubles: value, timestamp.

A writer only appends entries and rewrites values in place, so an entry never
moves: a file's :class:`Layout` (where each entry's value is) stays valid while
the file grows, and reading the values of a known layout is one
``Struct.unpack_from`` call. Bytes after "bytes used" are ignored by
prometheus-client's reader; promkit's archive files keep their trailer there
(see ``_mp_compact.py``).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

__all__ = [
    "HEADER_BYTES",
    "CorruptFileError",
    "Layout",
    "ParsedKey",
    "encode_file",
    "parse_key",
    "parse_layout",
    "read_used",
    "used_bytes",
]

HEADER_BYTES = 8
_INT = struct.Struct("i")  # native, as mmap_dict packs it
_FIRST_READ = 1 << 16  # prometheus-client's initial file size: most files fit one read


class CorruptFileError(ValueError):
    """A multiprocess file whose contents do not follow the format."""


ParsedKey = tuple[str, str, dict[str, str], str]
"""(metric name, sample name, labels, help) as a key holds them."""


def parse_key(key: str) -> ParsedKey:
    """A key's four fields; :class:`CorruptFileError` when it is not one."""
    try:
        metric_name, name, labels, help_text = json.loads(key)
    except ValueError as exc:
        raise CorruptFileError(f"entry key is not the expected JSON list: {key[:80]!r}") from exc
    if not (isinstance(metric_name, str) and isinstance(name, str)
            and isinstance(labels, dict) and isinstance(help_text, str)
            and all(isinstance(v, str) for v in labels.values())):
        raise CorruptFileError(f"entry key has unexpected fields: {key[:80]!r}")
    return metric_name, name, labels, help_text


class Layout:
    """Where the entries of a file (up to ``used`` bytes) are: their keys and value offsets.

    ``values`` unpacks every entry's value in one call, ``values_and_stamps``
    every entry's (value, timestamp) (only ``mostrecent`` gauges need those);
    ``check`` unpacks every entry's length and key, to tell whether another
    file has this same layout without walking it.
    """

    __slots__ = ("_check_fmt", "_stamped", "_values_fmt", "check", "check_expected", "keys",
                 "used", "values")

    def __init__(self, keys: tuple[str, ...], encoded: tuple[bytes, ...], used: int,
                 values_fmt: list[str], check_fmt: list[str]) -> None:
        self.keys = keys
        self.used = used
        self._values_fmt = values_fmt
        self._check_fmt = check_fmt
        # Values only: half the float objects of (value, timestamp) pairs.
        self.values = struct.Struct("=" + "".join(values_fmt).replace("dd", "d8x"))
        self._stamped: struct.Struct | None = None
        self.check = struct.Struct("=" + "".join(check_fmt))
        expected: list[Any] = []
        for key in encoded:
            expected.append(len(key))
            expected.append(key)
        self.check_expected = tuple(expected)

    @property
    def values_and_stamps(self) -> struct.Struct:
        if self._stamped is None:
            self._stamped = struct.Struct("=" + "".join(self._values_fmt))
        return self._stamped

    def matches(self, data: bytes | bytearray) -> bool:
        """Whether ``data`` (at least ``used`` bytes) has exactly this layout's entries."""
        return self.check.unpack_from(data) == self.check_expected


def used_bytes(data: bytes | bytearray) -> int:
    """The "bytes used" header of a file's first bytes."""
    return int(_INT.unpack_from(data, 0)[0])


def read_used(fd: int, size_hint: int, buffer: bytearray | None = None) -> bytes | bytearray:
    """The used part of an open file (header included), read with at most two reads.

    With ``buffer`` the bytes are read into it (grown as needed) and it is
    returned, possibly longer than the used part. Reusing one buffer spares a
    fresh allocation and its page faults per file: reading the 128 files of
    64 x 1k series took 3.4 instead of 6.9 ms of CPU (median of 41, alternated). A file still
    being created (shorter than the header, or a zero header) gives ``b""``.
    :class:`CorruptFileError` when the header claims more bytes than the file
    has or fewer than the header itself.
    """
    if buffer is None:
        buffer = bytearray()
    want = max(size_hint, _FIRST_READ)
    if len(buffer) < want:
        buffer.extend(bytes(want - len(buffer)))
    got = os.preadv(fd, [buffer], 0)
    if got < HEADER_BYTES:
        return b""
    used = _INT.unpack_from(buffer, 0)[0]
    if used == 0:
        return b""
    if used < HEADER_BYTES:
        raise CorruptFileError(f"header says {used} bytes used, less than the header")
    if used > got:
        if len(buffer) < used:
            buffer.extend(bytes(used - len(buffer)))
        got += os.preadv(fd, [memoryview(buffer)[got:used]], got)
        if used > got:
            raise CorruptFileError(f"header says {used} bytes used but the file has {got}")
    return buffer


def parse_layout(data: bytes | bytearray, used: int, base: Layout | None = None) -> Layout:
    """The layout of ``data[:used]``, walking only the entries after ``base`` (same file).

    :class:`CorruptFileError` when an entry runs past ``used`` or its key is not UTF-8.
    """
    if base is not None:
        keys, encoded = list(base.keys), list(base.check_expected[1::2])
        values_fmt, check_fmt = list(base._values_fmt), list(base._check_fmt)
        pos = base.used
    else:
        keys, encoded, values_fmt, check_fmt = [], [], ["8x"], ["8x"]
        pos = HEADER_BYTES
    unpack_int = _INT.unpack_from
    while pos < used:
        if pos + 4 > used:
            raise CorruptFileError(f"entry at byte {pos} runs past the {used} bytes used")
        length = unpack_int(data, pos)[0]
        padded = length + (8 - (length + 4) % 8)
        end = pos + 4 + padded + 16
        if length <= 0 or end > used:
            raise CorruptFileError(f"entry at byte {pos} (key of {length} bytes) runs past "
                                   f"the {used} bytes used")
        raw = bytes(data[pos + 4:pos + 4 + length])
        try:
            keys.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CorruptFileError(f"entry key at byte {pos} is not UTF-8") from exc
        encoded.append(raw)
        values_fmt.append(f"{4 + padded}xdd")
        check_fmt.append(f"i{length}s{padded - length + 16}x")
        pos = end
    return Layout(tuple(keys), tuple(encoded), used, values_fmt, check_fmt)


def encode_file(entries: list[tuple[str, float, float]], trailer: bytes = b"") -> bytes:
    """A whole file holding ``entries`` (key, value, timestamp), then ``trailer``.

    Byte for byte what prometheus-client's ``MmapedDict`` writes for the same
    entries, minus its preallocated zeros.
    """
    parts = [b""]
    used = HEADER_BYTES
    for key, value, timestamp in entries:
        raw = key.encode("utf-8")
        padded = raw + b" " * (8 - (len(raw) + 4) % 8)
        parts.append(_INT.pack(len(raw)) + padded + struct.pack("dd", value, timestamp))
        used += 4 + len(padded) + 16
    parts[0] = _INT.pack(used) + b"\0" * 4
    parts.append(trailer)
    return b"".join(parts)
