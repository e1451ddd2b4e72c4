"""Where rendered JSON lines go: a stream, a file (rotated, following logrotate), or nowhere.

A sink has one method, ``write_line(line)``; the line has no trailing newline.
Sinks may raise (a full disk, a closed pipe): the logging handler in
``promkit.instrument.logs`` catches, counts and reports that once, so the app never
sees it. Private; ``NullSink`` is re-exported by ``promkit.instrument.logs``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from typing import IO, Protocol

try:
    import fcntl
except ImportError:  # Windows: rotation from several processes is not serialised
    fcntl = None  # type: ignore[assignment]

__all__ = ["LineSink", "NullSink", "RotatingFileSink", "StreamSink"]


class LineSink(Protocol):
    """Anything with ``write_line(line: str) -> None`` (and optionally ``close()``)."""

    name: str

    def write_line(self, line: str) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Discards every line: for benchmarks (the whole pipeline runs, nothing is written)."""

    name = "null"

    def write_line(self, line: str) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class StreamSink:
    """Writes each line plus ``\\n`` to a text stream and flushes it (stdout by default).

    One ``write`` call per line, so lines from different threads do not interleave.
    """

    name = "stream"

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write_line(self, line: str) -> None:
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()

    def close(self) -> None:
        """Flush; the stream belongs to the caller and stays open."""
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


class RotatingFileSink:
    """Appends JSON lines (UTF-8) to ``path``; follows logrotate; rotates at ``max_bytes``.

    - **One ``write(2)`` per line** on a descriptor opened with ``O_APPEND``, nothing
      buffered: a line is in the file when ``write_line`` returns (history survives a
      crash), and on a local filesystem the kernel appends each write whole, so
      several processes (gunicorn workers) can share one file without interleaving
      lines. Not on NFS, whose appends are not atomic.
    - **Follows the path.** Before each line the path is checked against the open
      file (device and inode, as :class:`logging.handlers.WatchedFileHandler`): when
      logrotate (or anyone) moved or removed it, the sink opens the new file at the
      path. Lines written until then are in the moved file; none are lost.
      logrotate's ``copytruncate`` needs nothing: appends go to the new end.
    - **Rotation** like :class:`logging.handlers.RotatingFileHandler`: when the
      file at the path (whoever wrote it) would pass ``max_bytes``, ``path``
      becomes ``path.1``, ``path.1`` becomes ``path.2`` ... up to ``backups``
      files. With ``backups=0`` or ``max_bytes=0`` it never rotates and never
      truncates (as the standard library's handler): bound the file with
      logrotate. Processes sharing the file rotate one at a time under an
      advisory lock (``flock`` on the file being rotated); one that finds the
      file already rotated by another follows the path instead of rotating again.

    Hand-written rather than the standard library's handlers: neither follows a
    moved file *and* rotates, and their buffered text stream may split a long line
    into several writes. Thread-safe.
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, backups: int) -> None:
        if max_bytes < 0 or backups < 0:
            raise ValueError("file_max_bytes and file_backups must be >= 0")
        # Absolute: the path is looked up again before every line, and a chdir must not move it.
        self.path = os.path.abspath(os.fspath(path))
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd = -1
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _open(self) -> int:
        fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        stat = os.fstat(fd)
        self._fd, self._file_id = fd, (stat.st_dev, stat.st_ino)
        return fd

    def _close(self) -> None:
        fd, self._fd, self._file_id = self._fd, -1, None
        if fd >= 0:
            os.close(fd)

    def write_line(self, line: str) -> None:
        # backslashreplace: a lone surrogate becomes "\udxxx", which is still valid JSON.
        data = (line + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            fd = self._file_for(len(data))
            while data:  # a regular file takes it in one write unless the disk is full
                written = os.write(fd, data)
                if not written:
                    raise OSError(errno.EIO, f"wrote nothing to {self.path}")
                data = data[written:]

    def _file_for(self, size: int) -> int:
        """The descriptor the next line of ``size`` bytes goes to: the file now at the
        path (reopened if it moved), rotated first when the line would pass the limit."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._file_id:
            self._close()
            fd = self._open()
            if stat is None:
                return fd  # a new, empty file
            stat = os.fstat(fd)
        else:
            fd = self._fd
        if self.max_bytes and self.backups and stat.st_size and (
                stat.st_size + size > self.max_bytes):
            fd = self._rotate(fd, size)
        return fd

    def _rotate(self, fd: int, size: int) -> int:
        with _exclusive(fd):
            # Another process may have rotated this file while we waited for the lock.
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                stat = None
            if (stat is not None and (stat.st_dev, stat.st_ino) == self._file_id
                    and stat.st_size + size > self.max_bytes):
                for index in range(self.backups - 1, 0, -1):
                    source = f"{self.path}.{index}"
                    if os.path.exists(source):
                        os.replace(source, f"{self.path}.{index + 1}")
                os.replace(self.path, self.path + ".1")
        self._close()
        return self._open()

    def close(self) -> None:
        with self._lock:
            self._close()


_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def _exclusive(fd: int) -> Iterator[None]:
    """An advisory lock on the open file, between processes (none where ``fcntl`` is not)."""
    if fcntl is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
