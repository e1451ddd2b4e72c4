"""Multiprocess scaling: scrape time vs number of processes (1, 4, 16, 64) and series.

For each process count P and per-process series count S, P spawned processes
(each its own pid, so its own mmap files) record the same S synthetic series
with ``MetricsRegistry(multiprocess=True)`` and exit, like P workers of one app
serving the same routes. On that directory one scrape is timed both ways:

- promkit: ``multiprocess_exposition().encode()`` (what its ``/metrics`` sends);
- prometheus_client: a fresh ``CollectorRegistry`` + ``MultiProcessCollector``
  + ``generate_latest`` per scrape (its documented recipe).

The exposed series stay the same whatever P (same label values everywhere);
what grows is the number of files and samples to read and merge. The table is
what docs/multiprocess.md and docs/scaling.md quote. Gauges use mode ``sum``
(a ``live*`` mode would let promkit's dead-process sweep change the data
between runs).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from typing import Any

from benchmarks._common import count_series, fmt_ms, interleaved, median, table
from benchmarks.multiprocess import MP_ENV, write_series

PROCESSES = (1, 4, 16, 64)
SERIES = (100, 1000)
_SPAWN_BATCH = 8  # writer processes alive at once (64 interpreters at once would swap)


def _write(processes: int, series: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    remaining = processes
    while remaining:
        batch = [ctx.Process(target=write_series, args=(series,))
                 for _ in range(min(_SPAWN_BATCH, remaining))]
        for child in batch:
            child.start()
        for child in batch:
            child.join(180)
            if child.exitcode != 0:
                raise RuntimeError(f"writer process exited with {child.exitcode}")
        remaining -= len(batch)


def measure(processes: int, series: int, reps: int) -> dict[str, Any]:
    """Time both scrapes on a directory written by ``processes`` x ``series``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as pc_mp
    from prometheus_client.exposition import generate_latest

    from promkit.exporters import multiprocess_exposition

    saved = os.environ.get(MP_ENV)
    with tempfile.TemporaryDirectory(prefix="promkit-bench-mpscale-") as path:
        os.environ[MP_ENV] = path
        try:
            _write(processes, series)
            files = os.listdir(path)
            size = sum(os.path.getsize(os.path.join(path, f)) for f in files)

            def pc() -> bytes:
                registry = CollectorRegistry()
                pc_mp.MultiProcessCollector(registry, path)
                return bytes(generate_latest(registry))

            def pk() -> bytes:
                return multiprocess_exposition().encode()

            exposed = count_series(pk())
            if exposed != count_series(pc()):
                raise RuntimeError("promkit and prometheus_client expose different series")
            entries = [("promkit", pk), ("prometheus_client", pc)]
            interleaved(entries, 1)  # warm-up
            times = interleaved(entries, reps)
        finally:
            if saved is None:
                os.environ.pop(MP_ENV, None)
            else:
                os.environ[MP_ENV] = saved
    return {"processes": processes, "series_per_process": series, "files": len(files),
            "bytes": size, "exposed_series": exposed,
            "samples_read": exposed * processes,
            "promkit_ms": median(times["promkit"]),
            "prometheus_client_ms": median(times["prometheus_client"]),
            "promkit_runs": times["promkit"],
            "prometheus_client_runs": times["prometheus_client"]}


def run(reps: int, processes: tuple[int, ...] = PROCESSES,
        series: tuple[int, ...] = SERIES) -> tuple[str, list[dict[str, Any]]]:
    results: list[dict[str, Any]] = []
    for s in series:
        for p in processes:
            print(f"[multiprocess-scaling] {p} processes x {s} series", file=sys.stderr,
                  flush=True)
            results.append(measure(p, s, reps))
    rows = []
    for r in results:
        per_sample = r["promkit_ms"] * 1e3 / r["samples_read"]
        rows.append([r["processes"], r["series_per_process"], r["exposed_series"],
                     f"{r['samples_read']:,}", r["files"], f"{r['bytes'] / 1e6:.1f}",
                     fmt_ms(r["promkit_ms"], 1), fmt_ms(r["prometheus_client_ms"], 1),
                     f"{r['promkit_ms'] / r['prometheus_client_ms']:.2f}x",
                     f"{per_sample:.1f}"])
    text = "\n".join([
        f"### Multiprocess scaling: scrape time vs processes (median of {reps} interleaved "
        "runs)",
        "",
        table(["processes", "series / process", "series exposed", "samples merged", "files",
               "MB on disk", "promkit ms", "prometheus_client ms", "ratio", "promkit us / sample"],
              rows),
        "",
        "Every process recorded the same label values (workers of one app) and exited. "
        "promkit = `multiprocess_exposition().encode()`; prometheus_client = fresh "
        "`CollectorRegistry` + `MultiProcessCollector` + `generate_latest` per scrape. "
        "Files = 2 per process here (histogram + one gauge mode); a real worker writes one "
        "per metric type and gauge mode it uses.",
    ])
    return text, results


if __name__ == "__main__":
    out, _ = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(out)
