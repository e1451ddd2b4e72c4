"""Exemplars in multiprocess mode: the latest per series and bucket, per process, in a file.

prometheus-client's mmap files hold numbers only, so multiprocess mode would
lose exemplars. promkit keeps them beside the mmap files instead:

- **Recording** stays in memory. A multiprocess histogram child keeps its
  latest exemplar per bucket in its own list (as in single-process mode), a
  counter child its latest exemplar; the first exemplar of a child registers
  it with this process's :class:`ExemplarStore`. After that an exemplar costs
  the single-process work plus one attribute test (``store.dirty``); no file
  is touched on the recording path.
- **Flushing**: a daemon thread per process wakes every ``interval`` (1 s)
  and, only when an exemplar was recorded since its last write, writes all of
  this process's latest exemplars to ``exemplars_<pid>.json`` in the
  multiprocess directory: a temporary file, then ``os.replace``, so a
  concurrent scrape reads the previous file or the new one, never a torn one.
  The file is bounded (:data:`MAX_ENTRIES` exemplars, each label set at most
  128 characters, checked once per exemplar before it is written). A thread
  rather than a clock check on the recording path, so that a worker that
  goes idle still publishes its last exemplars within a second. An ``atexit``
  hook writes once more at exit; after ``fork`` the child forgets the
  parent's exemplars (they are in the parent's file) and starts its own thread
  when it records one.
- **Reading and cleanup** are the exporters' side, in the public
  :mod:`promkit.instrument.exemplar_files`.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from promkit.instrument._exemplars import RawExemplar, to_exemplar
from promkit.instrument._multiproc_dir import multiprocess_dir

if TYPE_CHECKING:
    from promkit.instrument._safety import FailureSink

__all__ = [
    "FILE_PREFIX",
    "MAX_ENTRIES",
    "ExemplarStore",
    "SampleKey",
    "flush_local",
    "process_store",
    "store_for",
]

logger = logging.getLogger("promkit.exporters")  # where the exemplar files are reported

FILE_PREFIX = "exemplars_"
FILE_SUFFIX = ".json"
TMP_SUFFIX = ".json.tmp"
FILE_NAME = re.compile(r"^exemplars_(\d+)\.json(\.tmp)?$")
"""``exemplars_<pid>.json``, or ``.json.tmp`` while it is being written."""
FORMAT_VERSION = 1
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

LabelPairs = tuple[tuple[str, str], ...]
SampleKey = tuple[str, LabelPairs]
"""(sample name, sorted label pairs), e.g. ``("x_bucket", (("le", "0.1"), ("route", "/")))``."""

FLUSH_INTERVAL = 1.0
"""Seconds between two writes of one process's exemplar file (at most one write each)."""
MAX_ENTRIES = 10_000
"""Exemplars one process writes at most (newest kept); about 2 MB of JSON."""


class _Tracked:
    """One child whose exemplars the store writes: a key per slot and a reader."""

    __slots__ = ("clear", "keys", "read")

    def __init__(self, keys: list[SampleKey], read: Callable[[], Sequence[RawExemplar | None]],
                 clear: Callable[[], None]) -> None:
        self.keys = keys
        self.read = read
        self.clear = clear


class ExemplarStore:
    """This process's latest exemplars for one multiprocess directory, flushed to one file."""

    def __init__(self, directory: str, sink: FailureSink | None = None, *,
                 interval: float = FLUSH_INTERVAL, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory
        self.interval = interval
        self.max_entries = max_entries
        self.sink = sink
        self.dirty = False
        """Set by the recording path; cleared by :meth:`flush` before it reads."""
        self.flushes = 0
        """Files written by this process (for tests and curiosity)."""
        self._tracked: list[_Tracked] = []
        # (tracked index, slot) -> (raw exemplar, its file entry or None if invalid):
        # an unchanged exemplar is neither checked nor counted again.
        self._written: dict[tuple[int, int], tuple[RawExemplar, list[Any] | None]] = {}
        self._lock = threading.Lock()  # tracking and flushing
        self._thread_pid = 0  # the pid whose flush thread runs (0: none)
        self._generation = 0  # a flush thread runs while its generation is current

    # -- recording side ---------------------------------------------------------------

    def track(self, keys: list[SampleKey], read: Callable[[], Sequence[RawExemplar | None]],
              clear: Callable[[], None]) -> None:
        """Write ``read()``'s exemplars (one per key) from now on. Once per child."""
        with self._lock:
            self._tracked.append(_Tracked(keys, read, clear))

    def mark_dirty(self) -> None:
        """Called when an exemplar is recorded and ``dirty`` was false (once per flush)."""
        self.dirty = True
        if self._thread_pid != os.getpid():  # first exemplar in this process (or after fork)
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._thread_pid == pid:
                return
            self._thread_pid = pid
            self._generation += 1
            thread = threading.Thread(target=self._run, args=(self._generation,),
                                      name="promkit-exemplar-flush", daemon=True)
            thread.start()

    def _run(self, generation: int) -> None:
        while True:
            time.sleep(self.interval)
            if self._generation != generation:
                return  # closed (or replaced)
            if self.dirty:
                self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent's exemplars are in the parent's file; the thread did not survive.
        self._lock = threading.Lock()
        self._thread_pid = 0
        self.dirty = False
        self.flushes = 0
        self._written.clear()
        for tracked in self._tracked:
            tracked.clear()

    # -- writing ------------------------------------------------------------------------

    @property
    def filename(self) -> str:
        return os.path.join(self.directory, f"{FILE_PREFIX}{os.getpid()}{FILE_SUFFIX}")

    def flush(self) -> bool:
        """Write this process's latest exemplars now (atomically); True if a file was written."""
        with self._lock:
            self.dirty = False  # before reading: an exemplar recorded meanwhile re-dirties
            try:
                entries = self._entries()
                if not entries and self.flushes == 0:
                    return False
                payload = {"version": FORMAT_VERSION, "pid": os.getpid(),
                           "written": time.time(), "exemplars": entries}
                final = self.filename
                tmp = final[:-len(FILE_SUFFIX)] + TMP_SUFFIX
                data = json.dumps(payload, separators=(",", ":"))
                with open(tmp, "w", encoding="utf-8") as out:
                    out.write(data)
                os.replace(tmp, final)
            except FileNotFoundError:
                # The multiprocess directory is gone (server stopped, test finished).
                logger.debug("promkit: multiprocess directory %s is gone", self.directory)
                return False
            except Exception as exc:
                self._failure("multiprocess_exemplar_write", exc)
                return False
            self.flushes += 1
            return True

    def flush_if_dirty(self) -> None:
        """Write if an exemplar was recorded since the last write (at exit, on close)."""
        if self.dirty:
            self.flush()

    def close(self) -> None:
        """Write what is pending and let the thread end (the next exemplar starts a new one)."""
        with self._lock:
            self._thread_pid = 0
            self._generation += 1
        self.flush_if_dirty()

    def _entries(self) -> list[list[Any]]:
        entries: list[list[Any]] = []
        written = self._written
        for index, tracked in enumerate(self._tracked):
            raws = tracked.read()
            for slot, (key, raw) in enumerate(zip(tracked.keys, raws)):
                if raw is None:
                    continue
                cached = written.get((index, slot))
                if cached is not None and cached[0] is raw:
                    entry = cached[1]
                else:
                    entry = self._entry(key, raw)
                    written[(index, slot)] = (raw, entry)
                if entry is not None:
                    entries.append(entry)
        if len(entries) > self.max_entries:
            entries.sort(key=lambda e: e[4], reverse=True)
            del entries[self.max_entries:]
        return entries

    def _entry(self, key: SampleKey, raw: RawExemplar) -> list[Any] | None:
        sink = self.sink
        if sink is None:
            from promkit.instrument._safety import FailureSink

            sink = self.sink = FailureSink()
        exemplar = to_exemplar(raw, sink)  # counts and logs an oversized label set
        if exemplar is None:
            return None
        try:
            labels = {str(k): str(v) for k, v in exemplar.labels.items()}
            for name in labels:
                if not LABEL_NAME.match(name):
                    raise ValueError(f"exemplar label name {name!r} is not a valid label name")
            value, timestamp = float(raw[1]), float(raw[2])
            if not math.isfinite(timestamp) or value != value:
                raise ValueError(f"exemplar value {value!r} / timestamp {timestamp!r}")
        except Exception as exc:
            sink.failure("exemplar", exc)
            return None
        name, pairs = key
        return [name, [list(p) for p in pairs], labels, value, timestamp]

    def _failure(self, operation: str, exc: BaseException) -> None:
        if self.sink is not None:
            self.sink.failure(operation, exc)
        else:  # pragma: no cover - stores made by the registry always have a sink
            logger.warning("promkit: %s failed: %r", operation, exc)


# ------------------------------------------------------------------ per-process stores

_stores: dict[str, ExemplarStore] = {}
_stores_lock = threading.Lock()


def store_for(directory: str | None, sink: FailureSink) -> ExemplarStore | None:
    """This process's store for ``directory`` (None when there is no directory)."""
    if not directory:
        return None
    with _stores_lock:
        store = _stores.get(directory)
        if store is None:
            store = _stores[directory] = ExemplarStore(directory, sink)
            atexit.register(store.flush_if_dirty)
        return store


class _Disabled:
    """Stands in for a store when there is no multiprocess directory: never asks for a write."""

    dirty = True

    def mark_dirty(self) -> None:  # pragma: no cover - never called: dirty is always true
        pass

    def track(self, keys: list[SampleKey], read: Callable[[], Sequence[RawExemplar | None]],
              clear: Callable[[], None]) -> None:
        pass


DISABLED = _Disabled()


def process_store(sink: FailureSink) -> ExemplarStore | _Disabled:
    """The store of this process's multiprocess directory (from the environment)."""
    return store_for(multiprocess_dir(), sink) or DISABLED


def flush_local(directory: str) -> None:
    """Write this process's pending exemplars for ``directory`` now (a scrape in this process)."""
    store = _stores.get(directory)
    if store is not None and store.dirty:
        store.flush()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children
    global _stores_lock
    _stores_lock = threading.Lock()
    for store in _stores.values():
        store._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
