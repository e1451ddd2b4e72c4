"""Multiprocess mode: aggregate every worker's mmap files at scrape time.

Built on prometheus-client's multiprocess support: each process writes its
values to ``$PROMETHEUS_MULTIPROC_DIR/<type>_<pid>.db`` and a scrape merges
them with ``MultiProcessCollector.merge``. Counters and histograms are summed
over every file, including those of processes that have exited, so nothing
already counted is lost when a worker dies or is recycled. Gauges combine by
their catalog ``multiprocess_mode``; before merging, the live-gauge files
(``gauge_live*_<pid>.db``) of processes that no longer run (or are zombies
waiting to be reaped) are removed, so a crashed worker's in-flight gauges do
not linger. gunicorn users should also call :func:`mark_process_dead` from
``child_exit``; see docs/multiprocess.md.

A scrape never fails because of one bad file: a file still being created
(shorter than its header) is skipped, and a file that cannot be read is
skipped and reported once in the log.

Exemplars, which the mmap files cannot hold, come from each process's
``exemplars_<pid>.json`` (see ``instrument/_mp_exemplars.py``): an
OpenMetrics scrape attaches, to each counter and histogram bucket sample, the
newest exemplar any process recorded for it. A dead process's exemplar file
is removed an hour after its last write.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import exposition as _pc_text
from prometheus_client import multiprocess as _pc_mp
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as _pc_om

from promkit.instrument import _mp_exemplars
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

_LIVE_GAUGE_PREFIX = "gauge_live"
# An mmap file starts with an 8-byte "bytes used" header; a shorter file is
# still being created by its process (or was cut short by a crash).
_MIN_FILE_BYTES = 8
_reported_bad_files: set[str] = set()
# prometheus-client is untyped; these are the two functions we call.
_pc_merge: Callable[..., Iterable[Metric]] = _pc_mp.MultiProcessCollector.merge
_pc_mark_dead: Callable[[int, str], None] = _pc_mp.mark_process_dead


def _require_dir(path: str | None = None) -> str:
    path = path or multiprocess_dir()
    if not path or not os.path.isdir(path):
        raise RuntimeError(
            f"multiprocess mode needs PROMETHEUS_MULTIPROC_DIR to name a directory (got {path!r})"
        )
    return path


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


def _live_gauge_pid(filename: str) -> int | None:
    """The pid in ``gauge_live<mode>_<pid>.db``, or None for other files."""
    if not filename.startswith(_LIVE_GAUGE_PREFIX) or not filename.endswith(".db"):
        return None
    pid = filename[:-3].rpartition("_")[2]
    return int(pid) if pid.isdigit() else None  # custom process identifiers: left alone


def _db_files(path: str) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.endswith(".db"))


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Remove a finished process's live-gauge files (call from gunicorn's ``child_exit``).

    Its counter and histogram files stay: their values keep counting in the totals.
    """
    _pc_mark_dead(pid, _require_dir(path))


def _cleanup(path: str, names: Iterable[str]) -> list[int]:
    dead = sorted({pid for pid in map(_live_gauge_pid, names)
                   if pid is not None and not _pid_alive(pid)})
    for pid in dead:
        try:
            _pc_mark_dead(pid, path)
        except OSError as exc:  # e.g. removed by a concurrent scrape in another worker
            logger.debug("promkit: could not remove live-gauge files of pid %d: %s", pid, exc)
    # Exemplar files of dead processes: kept while fresh (their counts stay), then removed.
    try:
        _mp_exemplars.remove_stale_files(path, _pid_alive)
    except OSError as exc:
        logger.debug("promkit: could not clean up exemplar files in %s: %s", path, exc)
    return dead


def cleanup_dead_processes(path: str | None = None) -> list[int]:
    """Remove the live-gauge files of every process that no longer runs; return their pids.

    Runs before every multiprocess scrape. Zombie processes count as dead.
    Exemplar files of dead processes are removed too once they are an hour old
    (:data:`promkit.instrument._mp_exemplars.MAX_AGE_SECONDS`).
    """
    path = _require_dir(path)
    return _cleanup(path, _db_files(path))


def _merge(files: list[str]) -> list[Metric]:
    try:
        return list(_pc_merge(files, accumulate=True))
    except Exception:
        pass
    # Find the file(s) that cannot be read, report each once, merge the rest.
    good: list[str] = []
    for name in files:
        try:
            _pc_merge([name], accumulate=True)
        except FileNotFoundError:
            continue  # removed since the listing (a dead process's file)
        except Exception as exc:
            if name not in _reported_bad_files:
                _reported_bad_files.add(name)
                logger.warning("promkit: skipping unreadable multiprocess file %s: %r", name, exc)
            continue
        good.append(name)
    return list(_pc_merge(good, accumulate=True))


def _grouped_by_labels(samples: list[Any]) -> list[Any]:
    """``samples`` with each label set's together (a histogram's by labels without
    ``le``), in the order they first appear; the order within a set is kept.

    OpenMetrics wants a metric's samples grouped so; prometheus-client merges them
    so from 0.24 on (this changes nothing there) but before lists the ``_sum`` of
    every label set ahead of all the buckets, which strict parsers reject.
    """
    groups: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for sample in samples:
        key = tuple(sorted(item for item in sample.labels.items() if item[0] != "le"))
        groups.setdefault(key, []).append(sample)
    if len(groups) <= 1:
        return samples
    return [sample for group in groups.values() for sample in group]


def _spec_for(family: Metric, catalog: Catalog) -> MetricSpec | None:
    name = family.name + "_total" if family.type == "counter" else family.name
    return catalog.get(name)


def _catalog(registry: MetricsRegistry | None) -> Catalog:
    return registry.catalog if registry is not None else STANDARD_CATALOG


def collect_multiprocess(registry: MetricsRegistry | None = None, *,
                         path: str | None = None) -> list[Metric]:
    """Every process's metrics merged into prometheus-client metric families.

    Dead processes' live gauges are cleaned up first. Units come from
    ``registry``'s catalog (the standard catalog when None), since the mmap
    files do not store them.
    """
    path = _require_dir(path)
    names = _db_files(path)
    dead = set(_cleanup(path, names))
    files = []
    for name in names:
        if dead and _live_gauge_pid(name) in dead:
            continue
        full = os.path.join(path, name)
        try:
            if os.path.getsize(full) < _MIN_FILE_BYTES:
                continue
        except OSError:
            continue
        files.append(full)
    families = _merge(files)
    catalog = _catalog(registry)
    for family in families:
        family.samples = _grouped_by_labels(family.samples)
        spec = _spec_for(family, catalog)
        if spec is not None and spec.unit and family.name.endswith("_" + spec.unit):
            family.unit = spec.unit
    return families


class _Families:
    """The registry-shaped object prometheus-client's generators want."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _attach_exemplars(families: list[Metric], path: str,
                      registry: MetricsRegistry | None) -> None:
    """Give each counter and histogram bucket sample the newest exemplar of any process."""

    def bad_file(name: str, exc: BaseException) -> None:
        if registry is not None and registry.failures.errors is not None:
            registry.failures.errors.labels(
                f"multiprocess_exemplar_read:{type(exc).__name__}").inc()

    _mp_exemplars.flush_local(path)  # this process's newest, not a second old
    try:
        newest = _mp_exemplars.read_exemplar_files(path, on_bad_file=bad_file)
    except OSError as exc:  # the directory listing itself failed: serve without exemplars
        logger.warning("promkit: cannot read exemplar files in %s: %r", path, exc)
        return
    if not newest:
        return
    for family in families:
        if family.type == "histogram":
            suffix = "_bucket"
        elif family.type == "counter":
            suffix = "_total"
        else:
            continue
        samples = family.samples
        for i, sample in enumerate(samples):
            if sample.name.endswith(suffix):
                exemplar = newest.get((sample.name, tuple(sorted(sample.labels.items()))))
                if exemplar is not None:
                    samples[i] = sample._replace(exemplar=exemplar)


def multiprocess_exposition(openmetrics: bool = False, registry: MetricsRegistry | None = None,
                            *, path: str | None = None) -> str:
    """All processes' metrics, merged, as text 0.0.4 or OpenMetrics (with ``# EOF``).

    OpenMetrics carries exemplars: for each counter and histogram bucket, the
    newest one recorded by any process (text 0.0.4 has no exemplars).
    """
    path = _require_dir(path)
    merged = collect_multiprocess(registry, path=path)
    if openmetrics:
        _attach_exemplars(merged, path, registry)
    families = _Families(merged)
    generate = _pc_om.generate_latest if openmetrics else _pc_text.generate_latest
    return str(generate(families).decode("utf-8"))


def _json_number(value: float) -> float | str:
    # JSON has no Inf/NaN; write them the way Prometheus does (as render_json does).
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return value


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
                    entry["sum"] = _json_number(sample.value)
            samples = list(by_labels.values())
        else:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                samples.append({"labels": dict(sample.labels),
                                "value": _json_number(sample.value)})
        spec = _spec_for(family, catalog)
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
