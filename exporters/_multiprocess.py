"""Multiprocess mode: merge every worker's mmap files at scrape time, compact dead workers'.

Each process writes its values to ``$PROMETHEUS_MULTIPROC_DIR/<type>_<pid>.db``
(prometheus-client's files, see ``_pc_mmap_format.py``). A scrape reads and
merges them with promkit's own reader (``_mp_read.py``: each file's layout
parsed once, its values unpacked with one ``struct`` call per scrape; same
samples as prometheus-client's ``MultiProcessCollector``) and writes the
exposition directly (``_mp_render.py``).

Before merging, the files of processes that no longer run (or are zombies
waiting to be reaped) are compacted (``_mp_compact.py``): their counters,
histograms, summaries and non-live gauges are folded into one archive file
per type and deleted, their live gauges deleted, so a server that recycles
workers keeps a bounded directory and exact totals. gunicorn users call
:func:`mark_process_dead` from ``child_exit`` to do it as each worker exits;
see docs/multiprocess.md.

A scrape never fails because of one bad file: a file still being created is
skipped; a file that cannot be read or parsed is logged once, counted in
``promkit_instrumentation_errors_total{cause="multiprocess_read:<Error>"}``,
and merged from the last values this process read from it (so no counter
goes backwards), or left out if it never read it.

Exemplars, which the mmap files cannot hold, come from each process's
``exemplars_<pid>.json`` (see :mod:`promkit.instrument.exemplar_files`): an
OpenMetrics scrape attaches, to each counter and histogram bucket sample, the
newest exemplar any process recorded for it. A dead process's exemplar file
is removed an hour after its last write.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client.metrics_core import Metric

from promkit.exporters._exposition import json_number
from promkit.exporters._mp_compact import compact_dead_processes
from promkit.exporters._mp_files import LIVE_MODES, directory_lock, file_kind
from promkit.exporters._mp_read import DirectoryReader, Merged
from promkit.exporters._mp_render import (
    ExemplarIndex,
    metric_families,
    render_openmetrics,
    render_text,
)
from promkit.instrument import exemplar_files
from promkit.instrument.catalog import STANDARD_CATALOG, Catalog, MetricSpec
from promkit.instrument.registry import MetricsRegistry, multiprocess_dir

__all__ = [
    "cleanup_dead_processes",
    "collect_multiprocess",
    "mark_process_dead",
    "multiprocess_exposition",
    "multiprocess_json",
]

logger = logging.getLogger("promkit.exporters")

# One reader per directory in this process; its lock serialises scrapes (threads).
_readers: dict[str, tuple[DirectoryReader, threading.Lock]] = {}
_readers_lock = threading.Lock()


def _forget_readers_after_fork() -> None:
    # A forked worker starts with no readers and fresh locks: a lock some thread of
    # the parent held at the fork would never be released in the child.
    global _readers_lock
    _readers.clear()
    _readers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_readers_after_fork)
_compaction_failures: set[str] = set()  # logged once each
# gunicorn's arbiter runs child_exit: it must not hang behind a stuck scrape.
# If the lock stays busy this long, the next scrape compacts the process instead.
_HOOK_WAIT = 2.0


def _require_dir(path: str | None = None) -> str:
    path = path or multiprocess_dir()
    if not path or not os.path.isdir(path):
        raise RuntimeError(
            f"multiprocess mode needs PROMETHEUS_MULTIPROC_DIR to name a directory (got {path!r})"
        )
    return path


def _reader(path: str) -> tuple[DirectoryReader, threading.Lock]:
    key = os.path.realpath(path)
    with _readers_lock:
        found = _readers.get(key)
        if found is None:
            found = _readers[key] = (DirectoryReader(path), threading.Lock())
        return found


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited but its parent has not reaped it yet (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:  # no /proc here, or the process just went away: os.kill decides
        return False
    # "<pid> (<comm>) <state> ...": comm may contain spaces and parentheses.
    end = data.rfind(b")")
    return data[end + 2:end + 3] in (b"Z", b"X")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not _is_zombie(pid)


def _dead_pids(names: list[str], alive: Callable[[int], bool] = _pid_alive) -> set[int]:
    """Pids with files to compact whose processes no longer run."""
    pids = set()
    for name in names:
        kind = file_kind(name)
        # An `all` gauge's file is kept after its process dies (see _mp_compact.py).
        if kind is not None and kind.pid is not None and kind.mode != "all":
            pids.add(kind.pid)
    return {pid for pid in pids if not alive(pid)}


def _compact(path: str, dead: set[int], reader: DirectoryReader | None,
             wait: float | None) -> list[int]:
    try:
        return compact_dead_processes(path, dead, reader=reader, wait=wait)
    except Exception as exc:  # never fails a scrape; the next one tries again
        cause = f"{path}:{type(exc).__name__}"
        if cause not in _compaction_failures:
            _compaction_failures.add(cause)
            logger.warning("promkit: could not compact dead processes' files in %s: %r "
                           "(further failures of this kind are not logged)", path, exc)
        return []


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Fold a finished process's files into the archives (call from gunicorn's ``child_exit``).

    Its counters, histograms and non-live gauges keep counting from the
    archive files; its live gauges stop counting. If ``pid`` still runs, only
    its live-gauge files are removed, as prometheus-client's function does.
    """
    path = _require_dir(path)
    if _pid_alive(pid):
        for mode in LIVE_MODES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(path, f"gauge_{mode}_{pid}.db"))
        return
    key = os.path.realpath(path)
    with _readers_lock:
        found = _readers.get(key)
    if found is None:
        _compact(path, {pid}, None, wait=_HOOK_WAIT)
        return
    reader, lock = found
    with lock:
        _compact(path, {pid}, reader, wait=_HOOK_WAIT)


def _cleanup(path: str, names: list[str], reader: DirectoryReader | None) -> tuple[list[int],
                                                                                  set[int]]:
    # One liveness check per pid per scrape, for the metric files and the exemplar files.
    alive = functools.cache(_pid_alive)
    dead = _dead_pids(names, alive)
    done = _compact(path, dead, reader, wait=0) if dead else []
    # Exemplar files of dead processes: kept while fresh (their counts stay), then removed.
    try:
        exemplar_files.remove_stale_files(path, alive, names=names)
    except OSError as exc:
        logger.debug("promkit: could not clean up exemplar files in %s: %s", path, exc)
    return done, dead


def cleanup_dead_processes(path: str | None = None) -> list[int]:
    """Compact the files of every process that no longer runs; return their pids.

    Runs before every multiprocess scrape. Zombie processes count as dead.
    Exemplar files of dead processes are removed too once they are an hour old
    (:data:`promkit.instrument.exemplar_files.MAX_AGE_SECONDS`).
    """
    path = _require_dir(path)
    reader, lock = _reader(path)
    with lock:
        return _cleanup(path, os.listdir(path), reader)[0]


def _catalog(registry: MetricsRegistry | None) -> Catalog:
    return registry.catalog if registry is not None else STANDARD_CATALOG


def _spec_for(name: str, kind: str, catalog: Catalog) -> MetricSpec | None:
    return catalog.get(name + "_total" if kind == "counter" else name)


def _unit_of(registry: MetricsRegistry | None) -> Any:
    catalog = _catalog(registry)

    def unit_of(name: str, kind: str) -> str:
        # The mmap files do not store units: catalog metrics get theirs back.
        spec = _spec_for(name, kind, catalog)
        if spec is not None and spec.unit and name.endswith("_" + spec.unit):
            return spec.unit
        return ""

    return unit_of


def _count_failure(registry: MetricsRegistry | None, cause: str) -> None:
    if registry is not None and registry.failures.errors is not None:
        registry.failures.errors.labels(cause).inc()


def _merged(path: str, registry: MetricsRegistry | None) -> Merged:
    reader, lock = _reader(path)

    def bad_file(name: str, exc: BaseException) -> None:
        _count_failure(registry, f"multiprocess_read:{type(exc).__name__}")

    with lock:
        _, dead = _cleanup(path, os.listdir(path), reader)
        with directory_lock(path, exclusive=False):
            names = os.listdir(path)
            if dead:  # not compacted (the lock was busy): their live gauges still must not count
                names = [n for n in names if not _dead_live_gauge(n, dead)]
            return reader.merge(names, bad_file)


def _dead_live_gauge(name: str, dead: set[int]) -> bool:
    kind = file_kind(name)
    return kind is not None and kind.mode in LIVE_MODES and kind.pid in dead


def collect_multiprocess(registry: MetricsRegistry | None = None, *,
                         path: str | None = None) -> list[Metric]:
    """Every process's metrics merged into prometheus-client metric families.

    Dead processes' files are compacted first. Units come from ``registry``'s
    catalog (the standard catalog when None), since the mmap files do not
    store them.
    """
    path = _require_dir(path)
    return metric_families(_merged(path, registry), _unit_of(registry))


def _exemplars(path: str, registry: MetricsRegistry | None) -> ExemplarIndex | None:
    """The newest exemplar of any process for each counter and histogram bucket sample."""

    def bad_file(name: str, exc: BaseException) -> None:
        _count_failure(registry, f"multiprocess_exemplar_read:{type(exc).__name__}")

    exemplar_files.flush_local(path)  # this process's newest, not a second old
    try:
        return exemplar_files.read_exemplar_files(path, on_bad_file=bad_file) or None
    except OSError as exc:  # the directory listing itself failed: serve without exemplars
        logger.warning("promkit: cannot read exemplar files in %s: %r", path, exc)
        return None


def multiprocess_exposition(openmetrics: bool = False, registry: MetricsRegistry | None = None,
                            *, path: str | None = None) -> str:
    """All processes' metrics, merged, as text 0.0.4 or OpenMetrics (with ``# EOF``).

    OpenMetrics carries exemplars: for each counter and histogram bucket, the
    newest one recorded by any process (text 0.0.4 has no exemplars).
    """
    path = _require_dir(path)
    merged = _merged(path, registry)
    if openmetrics:
        return render_openmetrics(merged, _unit_of(registry), _exemplars(path, registry))
    return render_text(merged)


def multiprocess_json(registry: MetricsRegistry | None = None, *,
                      path: str | None = None) -> dict[str, Any]:
    """All processes' metrics, merged, in the JSON snapshot shape of ``render_json``.

    Gauges in ``all``/``liveall`` mode keep a ``pid`` label per process.
    """
    catalog = _catalog(registry)
    metrics: list[dict[str, Any]] = []
    for family in collect_multiprocess(registry, path=path):
        samples: list[dict[str, Any]] = []
        if family.type == "histogram":
            by_labels: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                entry = by_labels.setdefault(key, {"labels": labels, "buckets": {}, "count": 0,
                                                   "sum": 0.0})
                if sample.name.endswith("_bucket"):
                    entry["buckets"][sample.labels["le"]] = int(sample.value)
                elif sample.name.endswith("_count"):
                    entry["count"] = int(sample.value)
                elif sample.name.endswith("_sum"):
                    entry["sum"] = json_number(sample.value)
            samples = list(by_labels.values())
        else:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                samples.append({"labels": dict(sample.labels),
                                "value": json_number(sample.value)})
        spec = _spec_for(family.name, family.type, catalog)
        seen = {k for s in samples for k in s["labels"]}
        if spec is not None:
            label_names = [*spec.labels, *sorted(seen - set(spec.labels))]
        else:
            label_names = sorted(seen)
        name = family.name + "_total" if family.type == "counter" else family.name
        metrics.append({"name": name, "type": family.type, "help": family.documentation,
                        "unit": family.unit or (spec.unit if spec is not None else ""),
                        "labels": label_names, "samples": samples})
    return {"metrics": metrics}
