"""The exemplar files of multiprocess mode: their format, and reading them at a scrape.

prometheus-client's mmap files hold numbers only, so promkit's multiprocess
children keep each process's latest exemplars in ``exemplars_<pid>.json`` in
the multiprocess directory (written at most once a second by a thread in that
process, atomically, in the format :mod:`promkit.instrument._mp_exemplars`
defines). This module
is the exporters' interface to those files:

- :func:`read_exemplar_files` keeps, for each sample (name and label set),
  the newest exemplar over all processes' files. A file that cannot be read
  or parsed is skipped and reported once; it never fails the scrape.
- :func:`remove_stale_files`: a dead process's file stays while its counts
  stay in the totals, as its exemplars still point at real observations, but
  is removed once it is older than :data:`MAX_AGE_SECONDS` (1 h); a dead
  process's leftover temporary file is removed at once.
- :func:`flush_local` writes this process's pending exemplars first, so a
  scrape served by the recording process sees its newest ones.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable

from prometheus_client.samples import Exemplar

from promkit.instrument._exemplars import EXEMPLAR_MAX_RUNES
from promkit.instrument._mp_exemplars import (
    FILE_NAME,
    FORMAT_VERSION,
    LABEL_NAME,
    SampleKey,
    flush_local,
)

__all__ = [
    "MAX_AGE_SECONDS",
    "SampleKey",
    "flush_local",
    "read_exemplar_files",
    "remove_stale_files",
]

logger = logging.getLogger("promkit.exporters")

MAX_AGE_SECONDS = 3600.0
"""A dead process's exemplar file is removed once it is this old."""


def _pid_of(name: str) -> tuple[int, bool] | None:
    """(pid, is temporary) for ``exemplars_<pid>.json[.tmp]``, else None."""
    match = FILE_NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) is not None


def _parse(data: str) -> list[tuple[SampleKey, float, Exemplar]]:
    """The exemplars of one file; ValueError/TypeError/KeyError if it is not ours or damaged."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError("not a promkit exemplar file (version 1)")
    entries = doc["exemplars"]
    if not isinstance(entries, list):
        raise ValueError("'exemplars' is not a list")
    result: list[tuple[SampleKey, float, Exemplar]] = []
    for entry in entries:
        name, pairs, labels, value, timestamp = entry
        if not isinstance(name, str) or not isinstance(labels, dict):
            raise ValueError(f"malformed entry {entry!r:.200}")
        key_pairs = tuple((str(k), str(v)) for k, v in pairs)
        size = 0
        for label, text in labels.items():
            if not isinstance(text, str) or not LABEL_NAME.match(label):
                raise ValueError(f"malformed exemplar labels {labels!r:.200}")
            size += len(label) + len(text)
        if size > EXEMPLAR_MAX_RUNES:
            raise ValueError(f"exemplar labels have {size} characters")
        value, timestamp = float(value), float(timestamp)
        if not math.isfinite(timestamp) or value != value:
            raise ValueError(f"malformed exemplar value/timestamp in {entry!r:.200}")
        result.append(((name, key_pairs), timestamp, Exemplar(labels, value, timestamp)))
    return result


_reported_bad_files: set[str] = set()


def read_exemplar_files(
    directory: str, *, on_bad_file: Callable[[str, BaseException], None] | None = None,
    names: Iterable[str] | None = None,
) -> dict[SampleKey, Exemplar]:
    """The newest exemplar of each sample over every process's file in ``directory``.

    A file that cannot be read or parsed is skipped; the first time a given
    file is skipped it is logged on ``promkit.exporters`` and passed to
    ``on_bad_file`` (e.g. to count it). A file removed since the listing is
    skipped silently.
    """
    newest: dict[SampleKey, tuple[float, Exemplar]] = {}
    listing = os.listdir(directory) if names is None else names
    for name in sorted(listing):
        parsed = _pid_of(name)
        if parsed is None or parsed[1]:
            continue
        full = os.path.join(directory, name)
        try:
            with open(full, encoding="utf-8") as handle:
                found = _parse(handle.read())
        except FileNotFoundError:
            continue  # a dead process's file removed meanwhile
        except Exception as exc:
            if full not in _reported_bad_files:
                _reported_bad_files.add(full)
                logger.warning("promkit: skipping unreadable exemplar file %s: %r", full, exc)
                if on_bad_file is not None:
                    on_bad_file(full, exc)
            continue
        for key, timestamp, exemplar in found:
            current = newest.get(key)
            if current is None or timestamp > current[0]:
                newest[key] = (timestamp, exemplar)
    return {key: exemplar for key, (_, exemplar) in newest.items()}


def remove_stale_files(directory: str, alive: Callable[[int], bool], *,
                       max_age: float = MAX_AGE_SECONDS, now: float | None = None,
                       names: Iterable[str] | None = None) -> list[str]:
    """Remove dead processes' exemplar files older than ``max_age`` and their temp files.

    A dead process's file younger than that stays: its exemplars still point
    at observations its counts (kept in the totals) include. Returns the names
    removed.
    """
    now = time.time() if now is None else now
    removed: list[str] = []
    listing = os.listdir(directory) if names is None else names
    for name in listing:
        parsed = _pid_of(name)
        if parsed is None:
            continue
        pid, temporary = parsed
        if alive(pid):
            continue
        full = os.path.join(directory, name)
        try:
            if temporary or now - os.path.getmtime(full) > max_age:
                os.remove(full)
                removed.append(name)
        except FileNotFoundError:
            continue  # removed by a concurrent scrape in another worker
        except OSError as exc:
            logger.debug("promkit: could not remove exemplar file %s: %s", full, exc)
    return removed
