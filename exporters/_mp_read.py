"""Read and merge every process's multiprocess files, keeping what can be kept between scrapes.

One :class:`DirectoryReader` per directory and process. A scrape reads each
file's used bytes (one or two ``pread``) and unpacks all its values with one
precompiled ``struct`` call; what it keeps between scrapes is what does not
change while a file exists:

- the file's :class:`~promkit.exporters._pc_mmap_format.Layout` (entries never
  move; a grown file is walked from where the last walk stopped, and a new
  file with the same entries as a known one, as workers of one app write, is
  recognised with one more ``struct`` call instead of a walk);
- which merged series each entry adds to (its *plan*), so keys are parsed once;
- archive files, replaced only by rename, by (inode, size, mtime): not re-read.

Values are re-read every scrape: an mmap write does not reliably change a
file's mtime, so no cache of values is trusted for a file a process may write.

Merging follows prometheus-client's ``MultiProcessCollector``: counters,
histograms and summaries summed over files; gauges by their mode (``sum``,
``max``, ``min``, ``mostrecent`` without the ``pid`` label, ``all`` with it;
the ``live`` modes alike, their dead processes' files having been removed).

A file that cannot be read or parsed is reported once per file (logged on
``promkit.exporters`` and passed to ``on_bad_file``); the scrape uses the
last values this process read from it, so its counters do not go backwards,
or leaves it out if this process never read it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import add
from typing import Any

from prometheus_client.utils import floatToGoString

from promkit.exporters._mp_files import FileId, FileKind, decode_trailer, file_kind
from promkit.exporters._pc_mmap_format import (
    Layout,
    parse_key,
    parse_layout,
    read_used,
    used_bytes,
)

__all__ = ["DirectoryReader", "Family", "Group", "Merged", "ReadFailure"]

logger = logging.getLogger("promkit.exporters")

ReadFailure = Callable[[str, BaseException], None]
LabelKey = tuple[tuple[str, str], ...]

_SUM_MODES = frozenset(("sum", "livesum"))
_MAX_MODES = frozenset(("max", "livemax"))
_MIN_MODES = frozenset(("min", "livemin"))
_RECENT_MODES = frozenset(("mostrecent", "livemostrecent"))
_PID_MODES = frozenset(("all", "liveall"))
_SPARE_SERIES = 256  # series no file has that are kept before the table is rebuilt


@dataclass(eq=False)
class Group:
    """The series of one label set of a family: histogram buckets apart, the rest in order."""

    labels: LabelKey  # without ``le``; ``pid`` last for all/liveall gauges
    buckets: list[tuple[float, str, int]] = field(default_factory=list)  # (le, le text, slot)
    samples: list[tuple[str, int]] = field(default_factory=list)  # (sample name, slot)
    render: dict[str, Any] = field(default_factory=dict)  # renderers' cached strings


@dataclass(eq=False)
class Family:
    name: str  # as prometheus-client names it (a counter's without ``_total``)
    type: str
    help: str
    mode: str
    groups: dict[LabelKey, Group] = field(default_factory=dict)


@dataclass
class Merged:
    """A scrape's merged values: ``values[slot]`` for every slot in ``present``."""

    families: list[Family]
    values: list[float]
    present: set[int]
    files: int


class _FileState:
    """What a reader keeps about one file between scrapes."""

    __slots__ = ("ino", "kind", "layout", "mtime_ns", "plan", "reported", "seen_mtime_ns", "size",
                 "trailer", "values")

    def __init__(self, kind: FileKind) -> None:
        self.kind = kind
        self.ino = -1
        self.size = -1
        self.mtime_ns = -1  # of the last good read
        self.seen_mtime_ns = -1  # of the last look at the file, good or not
        self.layout: Layout | None = None
        self.plan: tuple[int, ...] = ()
        # The last good values (value, timestamp pairs for mostrecent gauges).
        self.values: tuple[float, ...] | None = None
        self.trailer: list[FileId] = []
        self.reported = False


class DirectoryReader:
    """Merges one multiprocess directory; keeps layouts and plans between scrapes.

    Not thread-safe: the caller serialises scrapes of one reader.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._files: dict[str, _FileState] = {}
        self._families: dict[str, Family] = {}
        self._slot_of: dict[tuple[Any, ...], int] = {}
        self._nslots = 0
        self._keys: dict[str, tuple[str, str, LabelKey, str]] = {}
        self._layouts_by_used: dict[int, list[Layout]] = {}
        self._plans: dict[tuple[Layout, str, str], tuple[int, ...]] = {}
        self._buffer = bytearray()  # every file is read into this one
        self._stale_series = False

    # ------------------------------------------------------------------ reading

    def _read(self, name: str, state: _FileState) -> None:
        """Bring ``state`` up to date with the file; raises OSError or CorruptFileError."""
        fd = os.open(os.path.join(self.path, name), os.O_RDONLY)
        try:
            st = os.fstat(fd)
            state.seen_mtime_ns = st.st_mtime_ns  # even if what follows fails
            same_inode = st.st_ino == state.ino
            if not same_inode:  # a new file under this name: nothing of the old one applies
                state.layout, state.plan, state.values, state.reported = None, (), None, False
                state.ino, state.size, state.mtime_ns = st.st_ino, -1, -1
            if (state.kind.is_archive and same_inode and st.st_size == state.size
                    and st.st_mtime_ns == state.mtime_ns):
                return  # archives are replaced by rename, never written in place
            layout = state.layout
            data = read_used(fd, st.st_size if state.kind.is_archive else
                             (layout.used if layout is not None else 0), self._buffer)
        finally:
            os.close(fd)
        if not data:  # still being created
            state.layout, state.plan, state.values = None, (), ()
            state.ino, state.size, state.mtime_ns = st.st_ino, st.st_size, st.st_mtime_ns
            return
        used = used_bytes(data)
        if layout is None or layout.used != used:
            layout = self._layout(data, used, layout if layout is not None
                                  and layout.used < used else None)
        recent = state.kind.mode in _RECENT_MODES
        values = (layout.values_and_stamps if recent else layout.values).unpack_from(data)
        trailer = decode_trailer(bytes(data[used:st.st_size])) if state.kind.is_archive else []
        if layout is not state.layout:
            state.plan = self._plan(layout, state.kind)
            state.layout = layout
        state.values = values
        state.trailer = trailer
        state.ino, state.size, state.mtime_ns = st.st_ino, st.st_size, st.st_mtime_ns

    def _layout(self, data: bytes | bytearray, used: int, base: Layout | None) -> Layout:
        for known in self._layouts_by_used.get(used, ()):
            if known.matches(data):
                return known
        layout = parse_layout(data, used, base)
        self._layouts_by_used.setdefault(used, []).append(layout)
        return layout

    def _plan(self, layout: Layout, kind: FileKind) -> tuple[int, ...]:
        pid = kind.ident if kind.type == "gauge" and kind.mode in _PID_MODES else ""
        cache_key = (layout, kind.prefix, pid)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._plans[cache_key] = tuple(
                self._slot(key, kind, pid) for key in layout.keys)
        return plan

    def _slot(self, key: str, kind: FileKind, pid: str) -> int:
        parsed = self._keys.get(key)
        if parsed is None:
            fields = parse_key(key)
            parsed = self._keys[key] = (fields[0], fields[1], tuple(sorted(fields[2].items())),
                                        fields[3])
        metric_name, name, labels, help_text = parsed
        family = self._families.get(metric_name)
        if family is None:
            family_name = metric_name
            if kind.type == "counter" and family_name.endswith("_total"):
                family_name = family_name[:-6]  # as prometheus-client's Metric() does
            family = self._families[metric_name] = Family(family_name, kind.type, help_text,
                                                          kind.mode)
        slot_key = (metric_name, name, labels, pid)
        slot = self._slot_of.get(slot_key)
        if slot is not None:
            return slot
        slot = self._slot_of[slot_key] = self._nslots
        self._nslots += 1
        le = None
        if family.type == "histogram":
            le = next((v for k, v in labels if k == "le"), None)
        group_labels: LabelKey = labels
        if le is not None:
            group_labels = tuple(item for item in labels if item[0] != "le")
        if pid:
            group_labels += (("pid", pid),)
        group = family.groups.get(group_labels)
        if group is None:
            group = family.groups[group_labels] = Group(group_labels)
        if le is not None:
            bound = float(le)
            group.buckets.append((bound, floatToGoString(bound), slot))
            group.buckets.sort()
        else:
            group.samples.append((name, slot))
        return slot

    # ------------------------------------------------------------------ merging

    def _forget_series(self) -> None:
        """Start the series table afresh from the files there are now.

        Series of files that are gone (a dead process's ``liveall`` series by
        pid, label sets no process writes any more) would otherwise be kept,
        and walked by every scrape, for as long as the process runs.
        """
        self._families.clear()
        self._slot_of.clear()
        self._keys.clear()
        self._plans.clear()
        self._nslots = 0
        for state in self._files.values():
            if state.layout is not None:
                state.plan = self._plan(state.layout, state.kind)

    def merge(self, names: list[str], on_bad_file: ReadFailure | None = None) -> Merged:
        """Read ``names`` (base names in the directory, in order) and merge them."""
        if self._stale_series:
            self._stale_series = False
            self._forget_series()
        contributions: list[tuple[str, _FileState]] = []
        folded: set[FileId] = set()
        seen: set[str] = set()
        for name in names:
            kind = file_kind(name)
            if kind is None:
                continue
            seen.add(name)
            state = self._files.get(name)
            if state is None:
                state = self._files[name] = _FileState(kind)
            try:
                self._read(name, state)
            except FileNotFoundError:
                del self._files[name]
                seen.discard(name)
                continue
            except Exception as exc:  # whatever is wrong with one file, the scrape goes on
                self._report(name, state, exc, on_bad_file)
                if state.values is None:
                    continue  # never read well here: left out
            if kind.is_archive:
                folded.update(state.trailer)
            if state.values:
                contributions.append((name, state))
        for gone in set(self._files) - seen:
            del self._files[gone]
        self._prune_layouts()
        values = [0.0] * self._nslots
        present: set[int] = set()
        stamps: list[float] | None = None
        vectors: dict[int, tuple[tuple[int, ...], list[float]]] = {}
        for name, state in contributions:
            if folded and (name, state.ino, state.seen_mtime_ns) in folded:
                continue  # already in an archive: left by a compaction that did not finish
            plan, raw = state.plan, state.values
            assert raw is not None
            kind = state.kind
            mode = kind.mode
            if kind.type != "gauge" or mode in _SUM_MODES:
                # Files with the same plan (workers of one app) are added as whole vectors
                # in C first: 64 x 1k series, 53.5M -> 42.2M instructions a scrape (callgrind).
                group = vectors.get(id(plan))
                if group is None:
                    vectors[id(plan)] = (plan, list(raw))
                else:
                    vectors[id(plan)] = (plan, list(map(add, group[1], raw)))
            elif mode in _MAX_MODES:
                for slot, value in zip(plan, raw):
                    if slot not in present or value > values[slot]:
                        values[slot] = value
                        present.add(slot)
            elif mode in _MIN_MODES:
                for slot, value in zip(plan, raw):
                    if slot not in present or value < values[slot]:
                        values[slot] = value
                        present.add(slot)
            elif mode in _RECENT_MODES:
                if stamps is None:
                    stamps = [0.0] * self._nslots
                # Only values set with a timestamp count, the latest wins (as prometheus-client).
                for slot, value, stamp in zip(plan, raw[0::2], raw[1::2]):
                    if stamps[slot] < stamp:
                        values[slot] = value
                        stamps[slot] = stamp
                        present.add(slot)
            else:  # all, liveall: one series per process, the pid label tells them apart
                for slot, value in zip(plan, raw):
                    values[slot] = value
                present.update(plan)
        for slots, sums in vectors.values():
            for slot, total in zip(slots, sums):
                values[slot] += total
            present.update(slots)
        families = sorted(self._families.values(), key=lambda f: f.name)
        # Mostly series no file has any more: rebuild the table before the next scrape.
        self._stale_series = self._nslots > 2 * len(present) + _SPARE_SERIES
        return Merged(families, values, present, len(contributions))

    def last_good(self, name: str) -> tuple[dict[str, tuple[float, float]], int, int] | None:
        """The entries (key -> value, timestamp), inode and mtime this reader last read
        from ``name``, if it ever read it."""
        state = self._files.get(name)
        if state is None or state.layout is None or not state.values:
            return None
        raw, keys = state.values, state.layout.keys
        if state.kind.mode in _RECENT_MODES:
            entries = {key: (raw[2 * i], raw[2 * i + 1]) for i, key in enumerate(keys)}
        else:
            entries = {key: (raw[i], 0.0) for i, key in enumerate(keys)}
        return entries, state.ino, state.mtime_ns

    def _report(self, name: str, state: _FileState, exc: BaseException,
                on_bad_file: ReadFailure | None) -> None:
        if state.reported:
            return
        state.reported = True
        kept = "its last good values are kept" if state.values else "it is left out"
        logger.warning("promkit: cannot read multiprocess file %s: %s; %s (further failures "
                       "of this file are not logged)", os.path.join(self.path, name), exc, kept)
        if on_bad_file is not None:
            on_bad_file(name, exc)

    def _prune_layouts(self) -> None:
        live = {state.layout for state in self._files.values() if state.layout is not None}
        if sum(len(v) for v in self._layouts_by_used.values()) <= 2 * len(live) + 8:
            return
        self._layouts_by_used = {}
        for layout in live:
            self._layouts_by_used.setdefault(layout.used, []).append(layout)
        self._plans = {k: v for k, v in self._plans.items() if k[0] in live}

