"""Where rendered JSON lines go: a stream, a rotating file, or nowhere.

A sink has one method, ``write_line(line)``; the line has no trailing newline.
Sinks may raise (a full disk, a closed pipe): the logging handler in
``promkit.instrument.logs`` catches, counts and reports that once, so the app never
sees it. Private; ``NullSink`` is re-exported by ``promkit.instrument.logs``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import IO, Protocol

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
    """Appends JSON lines (UTF-8) to ``path``; rotates when the next line would pass ``max_bytes``.

    Rotation works like :class:`logging.handlers.RotatingFileHandler`: ``path``
    becomes ``path.1``, ``path.1`` becomes ``path.2`` ... up to ``backups``
    files; with ``backups=0`` the file is truncated instead. Every line is
    flushed, so history survives a crash or restart. Thread-safe.
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, backups: int) -> None:
        if max_bytes < 0 or backups < 0:
            raise ValueError("file_max_bytes and file_backups must be >= 0")
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        self._size = 0
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _open(self, mode: str = "a") -> IO[str]:
        # backslashreplace: a lone surrogate becomes "\udxxx", which is still valid JSON.
        stream = open(self.path, mode, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        self._stream = stream
        self._size = stream.tell()
        return stream

    def write_line(self, line: str) -> None:
        data = line + "\n"
        size = len(data) if data.isascii() else len(data.encode("utf-8", "backslashreplace"))
        with self._lock:
            stream = self._stream or self._open()
            if self.max_bytes and self._size and self._size + size > self.max_bytes:
                stream = self._rotate()
            stream.write(data)
            stream.flush()
            self._size += size

    def _rotate(self) -> IO[str]:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self.backups == 0:
            return self._open("w")
        for index in range(self.backups - 1, 0, -1):
            source = f"{self.path}.{index}"
            if os.path.exists(source):
                os.replace(source, f"{self.path}.{index + 1}")
        if os.path.exists(self.path):
            os.replace(self.path, self.path + ".1")
        return self._open()

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
