"""The multiprocess directory: what each file is, the archive files, and the directory lock.

Processes write ``<type>_<pid>.db`` (``gauge_<mode>_<pid>.db`` for gauges),
named as prometheus-client names them. promkit adds:

- **archive files**, ``<type>_archive.db`` / ``gauge_<mode>_archive.db``:
  what dead processes counted, folded together by ``_mp_compact.py``. They use
  the same format, so prometheus-client's own ``MultiProcessCollector`` reads
  them too. After the entries comes a trailer (which prometheus-client's reader
  never reaches): the files the archive already contains, as (name, inode,
  mtime in ns), so a file left behind by a compaction that crashed before
  deleting it is not counted twice;
- **the lock file** ``promkit_multiprocess.lock``: a scrape holds a shared
  ``flock`` on it while it reads, a compaction an exclusive one, so a scrape
  sees every dead process's values exactly once: in its own files or in the
  archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import struct
import time
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "ARCHIVE_ID",
    "LOCK_NAME",
    "TRAILER_MAGIC",
    "FileId",
    "FileKind",
    "archive_name",
    "decode_trailer",
    "directory_lock",
    "encode_trailer",
    "file_kind",
]

ARCHIVE_ID = "archive"
LOCK_NAME = "promkit_multiprocess.lock"
TRAILER_MAGIC = b"\0promkit-archive-v1\0"
_TRAILER_LEN = struct.Struct("=I")
TYPES = ("counter", "gauge", "histogram", "summary")
LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


class FileKind(NamedTuple):
    """What a ``.db`` file's name says: metric type, gauge mode ('' if none) and writer."""

    type: str
    mode: str
    ident: str  # the pid, "archive", or a custom process identifier

    @property
    def prefix(self) -> str:
        return f"gauge_{self.mode}" if self.type == "gauge" else self.type

    @property
    def pid(self) -> int | None:
        return int(self.ident) if self.ident.isdigit() else None

    @property
    def is_archive(self) -> bool:
        return self.ident == ARCHIVE_ID


FileId = tuple[str, int, int]
"""(file name, inode, mtime in ns): one version of one file."""


# Every scrape asks again for the same names: -1.2M of 42M instructions a 64 x 1k scrape.
@functools.lru_cache(maxsize=8192)
def file_kind(name: str) -> FileKind | None:
    """The kind of ``name`` (a base name), or None when it is no metric file."""
    if not name.endswith(".db"):
        return None
    parts = name[:-3].split("_")
    if parts[0] not in TYPES:
        return None
    if parts[0] == "gauge":
        # As prometheus-client splits it: gauge_<mode>_<pid>.db
        return FileKind("gauge", parts[1], parts[2]) if len(parts) >= 3 else None
    return FileKind(parts[0], "", parts[1]) if len(parts) >= 2 else None


def archive_name(prefix: str) -> str:
    return f"{prefix}_{ARCHIVE_ID}.db"


def encode_trailer(folded: list[FileId]) -> bytes:
    body = json.dumps({"folded": folded}, separators=(",", ":")).encode()
    return TRAILER_MAGIC + _TRAILER_LEN.pack(len(body)) + body


def decode_trailer(data: bytes) -> list[FileId]:
    """The folded files an archive's trailer names ([] for none); ValueError if malformed."""
    if not data:
        return []
    head = len(TRAILER_MAGIC)
    if not data.startswith(TRAILER_MAGIC) or len(data) < head + _TRAILER_LEN.size:
        raise ValueError("archive trailer has no promkit marker")
    (length,) = _TRAILER_LEN.unpack_from(data, head)
    body = data[head + _TRAILER_LEN.size:head + _TRAILER_LEN.size + length]
    if len(body) != length:
        raise ValueError("archive trailer is cut short")
    folded = json.loads(body)["folded"]
    return [(str(name), int(ino), int(mtime)) for name, ino, mtime in folded]


@contextlib.contextmanager
def directory_lock(path: str, exclusive: bool, wait: float | None = None) -> Iterator[bool]:
    """Hold the directory's lock; yields whether it is held.

    ``wait``: None waits as long as it takes, else at most that many seconds
    (0: not at all). Not held: when the wait ran out, or when the lock file
    cannot be opened (a read-only directory: a scrape then reads without it,
    and compaction, which needs it, does not run).
    """
    try:
        fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    try:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if wait is None:
            fcntl.flock(fd, flags)
        elif not _try_lock(fd, flags, wait):
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _try_lock(fd: int, flags: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, flags | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)  # compactions take milliseconds
