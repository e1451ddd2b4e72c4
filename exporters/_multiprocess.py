"""Multiprocess mode: aggregate every worker's mmap files at scrape time.

Built on prometheus-client's multiprocess support: each process writes its
values to ``$PROMETHEUS_MULTIPROC_DIR/<type>_<pid>.db`` and the scrape merges
them with ``MultiProcessCollector``. Before merging we drop the live-gauge
files of processes that no longer exist, so a crashed or recycled worker's
in-flight gauges don't linger (gunicorn users can also call
:func:`mark_process_dead` from ``child_exit``).
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as _pc_text
from prometheus_client import multiprocess as _pc_mp
from prometheus_client.openmetrics import exposition as _pc_om

from instrument.registry import multiprocess_dir

__all__ = [
    "cleanup_dead_processes",
    "mark_process_dead",
    "multiprocess_exposition",
    "multiprocess_json",
]

_PID_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def _require_dir() -> str:
    path = multiprocess_dir()
    if not path or not os.path.isdir(path):
        raise RuntimeError(
            f"multiprocess mode needs PROMETHEUS_MULTIPROC_DIR to name a directory (got {path!r})"
        )
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Remove a finished process's live-gauge files (call from gunicorn's ``child_exit``)."""
    _pc_mp.mark_process_dead(pid, path or _require_dir())


def cleanup_dead_processes(path: str | None = None) -> list[int]:
    """Mark every process with live-gauge files but no running process as dead."""
    path = path or _require_dir()
    dead: set[int] = set()
    for filename in glob.glob(os.path.join(path, "gauge_live*.db")):
        match = _PID_FILE.match(os.path.basename(filename))
        if match and not _pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in sorted(dead):
        _pc_mp.mark_process_dead(pid, path)
    return sorted(dead)


def _collector_registry() -> CollectorRegistry:
    path = _require_dir()
    cleanup_dead_processes(path)
    registry = CollectorRegistry()
    _pc_mp.MultiProcessCollector(registry, path)
    return registry


def multiprocess_exposition(openmetrics: bool = False) -> str:
    """All processes' metrics, merged, as text 0.0.4 or OpenMetrics (with ``# EOF``)."""
    registry = _collector_registry()
    generate = _pc_om.generate_latest if openmetrics else _pc_text.generate_latest
    return str(generate(registry).decode("utf-8"))


def multiprocess_json() -> dict[str, Any]:
    """All processes' metrics, merged, in the JSON snapshot shape of ``render_json``."""
    metrics: list[dict[str, Any]] = []
    for family in _collector_registry().collect():
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
                    entry["sum"] = sample.value
            samples = list(by_labels.values())
        else:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                samples.append({"labels": dict(sample.labels), "value": sample.value})
        name = family.name + "_total" if family.type == "counter" else family.name
        metrics.append({"name": name, "type": family.type, "help": family.documentation,
                        "unit": family.unit, "labels": sorted({k for s in samples
                                                               for k in s["labels"]}),
                        "samples": samples})
    return {"metrics": metrics}
