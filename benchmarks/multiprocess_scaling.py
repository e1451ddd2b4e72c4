"""Multiprocess scaling: scrape time vs number of processes (1, 4, 16, 64) and series.

For each process count P and per-process series count S, P forked worker
processes (each its own pid, so its own mmap files) record the same S
synthetic series with ``MetricsRegistry(multiprocess=True)`` and stay alive,
like P workers of one app serving the same routes (exited writers would be
compacted into one archive by promkit's first scrape). On that directory one
scrape is timed both ways:

- promkit: ``multiprocess_exposition().encode()`` (what its ``/metrics`` sends),
  from the second scrape of the process on (each file's layout already parsed);
- prometheus_client: a fresh ``CollectorRegistry`` + ``MultiProcessCollector``
  + ``generate_latest`` per scrape (its documented recipe).

The exposed series stay the same whatever P (same label values everywhere);
what grows is the number of files and samples to read and merge. The table is
what docs/multiprocess.md and docs/scaling.md quote. Gauges use mode ``sum``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from benchmarks._common import count_series, fmt_ms, interleaved, median, table
from benchmarks.multiprocess import MultiprocDir, WorkerPool

PROCESSES = (1, 4, 16, 64)
SERIES = (100, 1000)


def measure(processes: int, series: int, reps: int) -> dict[str, Any]:
    """Time both scrapes on a directory written by ``processes`` x ``series``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as pc_mp
    from prometheus_client.exposition import generate_latest

    from promkit.exporters import multiprocess_exposition

    with MultiprocDir() as path:
        pool = WorkerPool(series)
        try:
            pool.start(processes)
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
            pool.stop()
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
        "Every process recorded the same label values (workers of one app) and stayed alive. "
        "promkit = `multiprocess_exposition().encode()`; prometheus_client = fresh "
        "`CollectorRegistry` + `MultiProcessCollector` + `generate_latest` per scrape. "
        "Files = 2 per process here (histogram + one gauge mode); a real worker writes one "
        "per metric type and gauge mode it uses.",
    ])
    return text, results


if __name__ == "__main__":
    out, _ = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(out)
