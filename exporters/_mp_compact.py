"""Fold dead processes' files into one archive file per type, so the directory stays small.

When a process has exited, its files only hold final values. Compaction adds
them into the archive of their type (``counter_archive.db``,
``histogram_archive.db``, ``summary_archive.db``, ``gauge_<mode>_archive.db``,
see ``_mp_files.py``) and deletes them: counters, histograms, summaries and
``sum`` gauges are added, ``max``/``min`` gauges keep the larger/smaller
value, ``mostrecent`` the one with the later timestamp. ``live*`` gauge files
are deleted (a dead process's live gauges no longer count); ``all`` gauge files
are kept, since that mode shows every process ever seen by its pid.

Ordering, so that totals are exact at every moment and after a crash at any step:

1. Take the directory's exclusive lock (scrapes hold it shared while they
   read), so no scrape sees a half-done compaction and two compactions
   (gunicorn's arbiter and a scraping worker) never fold the same file twice.
2. Delete files left by an earlier compaction that crashed between its steps
   4 and 5: the archives name the files they already contain, by inode and
   mtime, so a leftover is known; a newer file under the same name (a reused
   pid) is not mistaken for it.
3. Read each dead process's files; write every new archive (old archive plus
   those values, and the names of the files folded) to a temporary file.
4. Rename each temporary file over its archive (atomic per file).
5. Delete the folded files.

A crash before 4 changes nothing; between 4 and 5 the archives name the files
they include, so readers skip those files and the next compaction deletes them
(step 2). A file that cannot be read is folded from the values this process
last read from it, if it ever did; otherwise it is left where it is (scrapes
leave it out or use their own last values, and a later compaction by a process
that read it folds it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable

from promkit.exporters._mp_files import (
    LIVE_MODES,
    FileId,
    FileKind,
    archive_name,
    decode_trailer,
    directory_lock,
    encode_trailer,
    file_kind,
)
from promkit.exporters._mp_read import DirectoryReader
from promkit.exporters._pc_mmap_format import (
    CorruptFileError,
    encode_file,
    parse_layout,
    read_used,
    used_bytes,
)

__all__ = ["compact_dead_processes"]

logger = logging.getLogger("promkit.exporters")

_TMP_SUFFIX = ".tmp"
_Entries = dict[str, tuple[float, float]]  # key -> (value, timestamp), in file order


def _read_entries(path: str, name: str) -> tuple[_Entries, list[FileId], FileId]:
    """A file's entries, an archive's trailer, and the file's identity."""
    fd = os.open(os.path.join(path, name), os.O_RDONLY)
    try:
        st = os.fstat(fd)
        data = read_used(fd, st.st_size)
    finally:
        os.close(fd)
    ident = (name, st.st_ino, st.st_mtime_ns)
    if not data:
        return {}, [], ident
    used = used_bytes(data)
    layout = parse_layout(data, used)
    raw = layout.values_and_stamps.unpack_from(data)
    entries = {key: (raw[2 * i], raw[2 * i + 1]) for i, key in enumerate(layout.keys)}
    kind = file_kind(name)
    trailer = decode_trailer(bytes(data[used:st.st_size])) if kind and kind.is_archive else []
    return entries, trailer, ident


def _fold(archive: _Entries, entries: _Entries, kind: FileKind) -> None:
    mode = kind.mode if kind.type == "gauge" else ""
    for key, (value, stamp) in entries.items():
        old = archive.get(key)
        if old is None:
            archive[key] = (value, stamp)
        elif mode in ("max",):
            if value > old[0]:
                archive[key] = (value, stamp)
        elif mode in ("min",):
            if value < old[0]:
                archive[key] = (value, stamp)
        elif mode in ("mostrecent",):
            if stamp > old[1]:
                archive[key] = (value, stamp)
        else:  # counter, histogram, summary, sum gauge
            archive[key] = (old[0] + value, 0.0)


def _is_leftover(path: str, ident: FileId) -> bool:
    try:
        st = os.stat(os.path.join(path, ident[0]))
    except FileNotFoundError:
        return False
    return (st.st_ino, st.st_mtime_ns) == (ident[1], ident[2])


def _remove(path: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(path, name))


def compact_dead_processes(path: str, pids: Iterable[int], *,
                           reader: DirectoryReader | None = None,
                           wait: float | None = None) -> list[int]:
    """Fold the files of ``pids`` (processes that have exited) into the archives.

    Returns the pids whose files were all folded or removed. ``reader`` (this
    process's reader of ``path``) supplies the last good values of a file that
    cannot be read any more. ``wait``: how long to wait for the directory's
    lock if another process holds it (None: as long as it takes), after which
    it returns [] and leaves the files to a later call.
    """
    wanted = set(pids)
    with directory_lock(path, exclusive=True, wait=wait) as held:
        if not held:
            return []
        by_prefix: dict[str, list[tuple[str, FileKind]]] = {}
        archives: dict[str, str] = {}
        for name in os.listdir(path):
            if name.startswith(".") and name.endswith(_TMP_SUFFIX):
                _remove(path, name)  # an archive never renamed: a compaction that crashed
                continue
            kind = file_kind(name)
            if kind is None:
                continue
            if kind.is_archive:
                archives[kind.prefix] = name
            elif kind.pid in wanted:
                by_prefix.setdefault(kind.prefix, []).append((name, kind))
        handled: set[int | None] = set(wanted)
        to_remove: list[str] = []
        renames: list[tuple[str, str]] = []
        for prefix, files in by_prefix.items():
            mode = files[0][1].mode
            if mode in LIVE_MODES:
                to_remove.extend(name for name, _ in files)
                continue
            if mode == "all":
                continue  # kept: an `all` gauge shows every process by pid, dead ones too
            target = archive_name(prefix)
            archive: _Entries = {}
            if prefix in archives:
                try:
                    archive, old_trailer, _ = _read_entries(path, target)
                except (CorruptFileError, ValueError) as exc:
                    # Rewriting it would lose what it holds: leave these files for now
                    # (scrapes keep reading them and report the archive).
                    logger.debug("promkit: archive %s unreadable (%s); not compacting into it",
                                 target, exc)
                    handled.difference_update(kind.pid for _, kind in files)
                    continue
                for ident in old_trailer:  # step 2
                    if _is_leftover(path, ident):
                        _remove(path, ident[0])
            folded: list[FileId] = []
            for name, kind in files:
                try:
                    entries, _, ident = _read_entries(path, name)
                except FileNotFoundError:
                    continue
                except (OSError, CorruptFileError, ValueError) as exc:
                    last = reader.last_good(name) if reader is not None else None
                    try:
                        st = os.stat(os.path.join(path, name))
                    except OSError:
                        st = None
                    if last is not None and (st is None or st.st_ino != last[1]):
                        last = None  # another file by now: those values are not its
                    if last is None or st is None:
                        # The scrape's reader reports the file; it stays for a process
                        # that read it before (and has its values) to fold.
                        logger.debug("promkit: cannot fold unreadable multiprocess file %s "
                                     "(%s); it is left in place", name, exc)
                        handled.discard(kind.pid)
                        continue
                    entries = last[0]
                    ident = (name, st.st_ino, st.st_mtime_ns)  # as scrapes see it now
                    logger.warning("promkit: folded unreadable multiprocess file %s from the "
                                   "values this process last read from it", name)
                _fold(archive, entries, kind)
                folded.append(ident)
            if not folded:
                continue
            tmp = os.path.join(path, f".{target}.{os.getpid()}{_TMP_SUFFIX}")
            body = encode_file([(k, v, t) for k, (v, t) in archive.items()],
                               encode_trailer(folded))
            with open(tmp, "wb") as out:
                out.write(body)
            renames.append((tmp, os.path.join(path, target)))
            to_remove.extend(ident[0] for ident in folded)
        for tmp, target in renames:  # step 4
            os.replace(tmp, target)
        for name in to_remove:  # step 5
            _remove(path, name)
        touched = {kind.pid for files in by_prefix.values() for _, kind in files}
        return sorted(pid for pid in touched & handled if pid is not None)
