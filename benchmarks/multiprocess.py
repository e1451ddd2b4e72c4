"""Multiprocess scrape: merging N processes' mmap files into one exposition.

N child processes (multiprocessing ``spawn``, so each has its own pid and
files) each write the same 1k synthetic series through
``MetricsRegistry(multiprocess=True)`` under ``PROMETHEUS_MULTIPROC_DIR`` and
exit, like N workers of one app serving the same routes. Then, on that
directory, promkit's ``multiprocess_exposition()`` (encoded to bytes, as its
``/metrics`` app sends it) is timed against the documented prometheus-client
recipe: a fresh ``CollectorRegistry`` + ``MultiProcessCollector`` +
``generate_latest`` per scrape.

The gauges use ``multiprocess_mode="sum"`` (not a ``live*`` mode): promkit
removes dead processes' live-gauge files before merging, which would change
the data between the interleaved runs.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from typing import Any

from benchmarks._common import (
    compare_samples,
    count_series,
    describe_composition,
    fmt_ms,
    interleaved,
    median,
    table,
    verdict,
)

MP_ENV = "PROMETHEUS_MULTIPROC_DIR"


def write_series(series: int) -> None:
    """Child process body: record ``series`` series into this process's mmap files."""
    from prometheus_client import CollectorRegistry

    from benchmarks._common import build_promkit
    from promkit.instrument import MetricsRegistry

    registry = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    build_promkit(series, registry, gauge_mode="sum")


def _write_all(processes: int, series: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=write_series, args=(series,)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        if child.exitcode != 0:
            raise RuntimeError(f"writer process exited with {child.exitcode}")


def run(processes: int, series: int, reps: int) -> tuple[str, dict[str, Any]]:
    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as pc_mp
    from prometheus_client.exposition import generate_latest as pc_text
    from prometheus_client.openmetrics.exposition import generate_latest as pc_om

    from promkit.exporters import multiprocess_exposition

    saved = os.environ.get(MP_ENV)
    with tempfile.TemporaryDirectory(prefix="promkit-bench-mp-") as path:
        os.environ[MP_ENV] = path
        try:
            print(f"[multiprocess] {processes} spawned processes x {series} series",
                  file=sys.stderr)
            _write_all(processes, series)
            files = sorted(os.listdir(path))
            size = sum(os.path.getsize(os.path.join(path, f)) for f in files)

            def pc_body(openmetrics: bool) -> bytes:
                registry = CollectorRegistry()
                pc_mp.MultiProcessCollector(registry, path)
                return (pc_om if openmetrics else pc_text)(registry)

            def pk_body(openmetrics: bool) -> bytes:
                return multiprocess_exposition(openmetrics).encode()

            notes = []
            for fmt, om in (("text", False), ("OpenMetrics", True)):
                a, b = pk_body(om), pc_body(om)
                same, why = compare_samples(a, b, om)
                notes.append(f"{fmt}: {'same samples' if same else 'DIFFERENT'} ({why}); "
                             f"series {count_series(a)} / {count_series(b)}")
            entries = [("pk_text", lambda: pk_body(False)), ("pc_text", lambda: pc_body(False)),
                       ("pk_om", lambda: pk_body(True)), ("pc_om", lambda: pc_body(True))]
            interleaved(entries, 1)
            print(f"[multiprocess] timing, {reps} interleaved reps", file=sys.stderr)
            times = interleaved(entries, reps)
        finally:
            if saved is None:
                os.environ.pop(MP_ENV, None)
            else:
                os.environ[MP_ENV] = saved
    rows, results = [], {}
    for fmt, key in (("text", "text"), ("OpenMetrics", "om")):
        pk_ms, pc_ms = median(times[f"pk_{key}"]), median(times[f"pc_{key}"])
        ratio = pk_ms / pc_ms
        paired = median(a / b for a, b in zip(times[f"pk_{key}"], times[f"pc_{key}"],
                                                  strict=True))
        rows.append([f"{processes} x {series}", fmt, fmt_ms(pk_ms), fmt_ms(pc_ms),
                     f"{ratio:.3f}x", f"{paired:.3f}x",
                     verdict(ratio <= 1.0) if key == "text" else "-"])
        results[key] = {"promkit_ms": pk_ms, "prometheus_client_ms": pc_ms, "ratio": ratio,
                        "paired_ratio": paired,
                        "promkit_runs": times[f"pk_{key}"],
                        "prometheus_client_runs": times[f"pc_{key}"]}
    out = [
        f"### Multiprocess scrape (median of {reps} interleaved runs)",
        "",
        table(["processes x series", "format", "promkit ms", "prometheus_client ms", "ratio",
               "paired ratio", "target <= 1.0x"], rows),
        "",
        f"Each process wrote {describe_composition(series)} (same label values in every "
        f"process, like workers of one app), then exited: {len(files)} files, {size} bytes. "
        "promkit = `multiprocess_exposition(openmetrics).encode()`; prometheus_client = fresh "
        "`CollectorRegistry` + `MultiProcessCollector(registry, path)` + `generate_latest` "
        "per scrape. promkit's path is that same collector + `generate_latest` plus a sweep of "
        "dead processes' live-gauge files, so expect parity: a ratio away from 1.0x by more than "
        "a few % is machine drift, not a real difference. Paired ratio = median over "
        "repetitions of promkit / prometheus_client run back to back in that repetition "
        "(steadier than the ratio of medians). Samples "
        "compared after parsing (multiprocess mode exports no `_created`, hence 924 of 1000 "
        "series): " + " ".join(f"{n}." for n in notes),
    ]
    return "\n".join(out), results
