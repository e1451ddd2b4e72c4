"""Multiprocess scrape: promkit's merge against prometheus-client's, and a recycling pool.

**Scrape** (issue 19: at least 5x faster, same samples). P worker processes
(forked, each its own pid and files) record the same S synthetic series
through ``MetricsRegistry(multiprocess=True)`` and stay alive, like P workers
of one app. On that directory one scrape is timed each way, interleaved:

- prometheus_client: a fresh ``CollectorRegistry`` + ``MultiProcessCollector``
  + ``generate_latest`` per scrape (its documented recipe);
- promkit warm: ``multiprocess_exposition(openmetrics).encode()`` as its
  ``/metrics`` app calls it, files unchanged since the last scrape;
- promkit cold: the same with this process's reader dropped first (a worker's
  first scrape: every file's layout parsed);
- promkit changed: before the run (untimed) an eighth of the workers record
  every series once more, so their files hold new values.

Both bodies are parsed and compared (same sample set, exact values) before
timing and again after the workers changed their files.

**Recycle** (issue 19: file count and scrape time within 2x a fresh pool).
A pool of 4 workers recording S2 series each; a recycle SIGKILLs one worker,
reaps it and forks a replacement. Measured on a fresh pool, after N recycles
with gunicorn's ``child_exit`` hook (``mark_process_dead``), and after N
recycles without a hook (``uvicorn --workers``: the first scrape compacts what
the dead left behind; prometheus_client is timed on that directory before).
Every worker observed each histogram series once, so each series' count must
be exactly N + 4.

The gauges use ``multiprocess_mode="sum"``, kept by both sides after a process
dies, so the recycled directory's samples can be compared too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchmarks._common import (
    HIST_NAME,
    compare_samples,
    count_series,
    describe_composition,
    fmt_ms,
    interleaved,
    median,
    sample_set,
    table,
    verdict,
)

MP_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL = 4
RECYCLES = 500
RECYCLE_SERIES = 100


def write_series(series: int) -> None:
    """Process body: record ``series`` series into this process's mmap files."""
    from prometheus_client import CollectorRegistry

    from benchmarks._common import build_promkit
    from promkit.instrument import MetricsRegistry

    registry = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    build_promkit(series, registry, gauge_mode="sum")


def _worker(conn: Connection, series: int) -> None:
    """A forked worker: records its series, then once more per "work", until "exit"."""
    write_series(series)
    conn.send("ready")
    while conn.recv() == "work":
        write_series(series)  # get-or-create: the same series, observed once more
        conn.send("done")


class WorkerPool:
    """Forked workers kept alive on one directory."""

    def __init__(self, series: int) -> None:
        self.series = series
        self.ctx = multiprocessing.get_context("fork")
        self.workers: list[tuple[Any, Connection]] = []

    def start(self, n: int) -> None:
        started = []
        for _ in range(n):
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=_worker, args=(child, self.series), daemon=True)
            proc.start()
            started.append((proc, parent))
        for proc, conn in started:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError(f"worker {proc.pid} did not start")
        self.workers.extend(started)

    def work(self, n: int) -> None:
        for _, conn in self.workers[:n]:
            conn.send("work")
        for proc, conn in self.workers[:n]:
            if not conn.poll(120) or conn.recv() != "done":
                raise RuntimeError(f"worker {proc.pid} did not answer")

    def kill_oldest(self) -> int:
        proc, conn = self.workers.pop(0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        conn.close()
        return int(proc.pid)

    def stop(self) -> None:
        for _, conn in self.workers:
            with contextlib.suppress(OSError):  # already gone
                conn.send("exit")
        for proc, conn in self.workers:
            proc.join(30)
            conn.close()
        self.workers = []


def _pc_body(path: str, openmetrics: bool) -> bytes:
    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as pc_mp
    from prometheus_client.exposition import generate_latest as pc_text
    from prometheus_client.openmetrics.exposition import generate_latest as pc_om

    registry = CollectorRegistry()
    pc_mp.MultiProcessCollector(registry, path)
    return bytes((pc_om if openmetrics else pc_text)(registry))


def _pk_body(openmetrics: bool, path: str | None = None) -> bytes:
    from promkit.exporters import multiprocess_exposition

    return multiprocess_exposition(openmetrics, path=path).encode()


def _drop_readers() -> None:
    from promkit.exporters import _multiprocess

    _multiprocess._readers.clear()


class MultiprocDir:
    """PROMETHEUS_MULTIPROC_DIR set to a fresh directory for the duration."""

    def __enter__(self) -> str:
        self.saved = os.environ.get(MP_ENV)
        self.tmp = tempfile.TemporaryDirectory(prefix="promkit-bench-mp-")
        os.environ[MP_ENV] = self.tmp.name
        return self.tmp.name

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop(MP_ENV, None)
        else:
            os.environ[MP_ENV] = self.saved
        self.tmp.cleanup()


def _files(path: str) -> tuple[int, int]:
    names = [n for n in os.listdir(path) if n.endswith(".db")]
    return len(names), sum(os.path.getsize(os.path.join(path, n)) for n in names)


def scrape_comparison(processes: int, series: int, reps: int) -> dict[str, Any]:
    """Time promkit (warm, cold, changed) and prometheus_client on live workers' files."""
    with MultiprocDir() as path:
        pool = WorkerPool(series)
        try:
            print(f"[multiprocess] {processes} live workers x {series} series", file=sys.stderr)
            pool.start(processes)
            files, size = _files(path)
            checks = []
            for fmt, om in (("text", False), ("OpenMetrics", True)):
                a, b = _pk_body(om), _pc_body(path, om)
                same, why = compare_samples(a, b, om)
                checks.append((f"{fmt}, unchanged files", same, why, count_series(a)))
            changed = max(1, processes // 8)
            entries: list[tuple[str, Callable[[], Any]]] = [
                ("pc_text", lambda: _pc_body(path, False)),
                ("pk_text", lambda: _pk_body(False)),
                ("pk_text_cold", lambda: _pk_body(False)),
                ("pk_text_changed", lambda: _pk_body(False)),
                ("pc_om", lambda: _pc_body(path, True)),
                ("pk_om", lambda: _pk_body(True)),
            ]
            before = {"pk_text_cold": _drop_readers,
                      "pk_text_changed": lambda: pool.work(changed)}
            interleaved(entries, 1, before)
            print(f"[multiprocess] timing, {reps} interleaved reps", file=sys.stderr)
            times = interleaved(entries, reps, before)
            pool.work(processes // 2)  # files change between scrapes: still the same samples?
            for fmt, om in (("text", False), ("OpenMetrics", True)):
                a, b = _pk_body(om), _pc_body(path, om)
                same, why = compare_samples(a, b, om)
                checks.append((f"{fmt}, after workers changed their files", same, why,
                               count_series(a)))
        finally:
            pool.stop()
    return {"processes": processes, "series": series, "files": files, "bytes": size,
            "changed_workers": changed, "times": times, "checks": checks}


def _sample_count(body: bytes, route: str = "/route/0") -> float:
    for name, labels, value in sample_set(body, False):
        if name == HIST_NAME + "_count" and dict(labels) == {"route": route}:
            return float(value or 0.0)
    return float("nan")


def _close_enough(a: bytes, b: bytes) -> tuple[bool, str]:
    """Same samples; a ``_sum`` may differ in its last bits (summed in another order)."""
    sa = {(n, lab): v for n, lab, v in sample_set(a, False)}
    sb = {(n, lab): v for n, lab, v in sample_set(b, False)}
    if sa.keys() != sb.keys():
        return False, f"{len(sa.keys() ^ sb.keys())} series differ"
    bad = [k for k in sa if not (sa[k] == sb[k] or (
        k[0].endswith("_sum") and abs((sa[k] or 0) - (sb[k] or 0)) <= 1e-9 * abs(sb[k] or 1)))]
    return (not bad), (f"same {len(sa)} samples" if not bad else f"{len(bad)} values differ")


def _timed(fn: Callable[[], Any], reps: int) -> float:
    """Median ms of ``reps`` back-to-back runs (for what cannot be interleaved)."""
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e3)
    return median(runs)


def recycle_scenario(recycles: int, series: int, reps: int) -> dict[str, Any]:
    """Fresh pool vs a pool recycled ``recycles`` times, with and without the hook.

    The three pools stay alive side by side, so their scrapes are timed interleaved.
    """
    from promkit.exporters import mark_process_dead

    out: dict[str, Any] = {"recycles": recycles, "series": series, "pool": POOL}
    dirs: dict[str, MultiprocDir] = {}
    pools: dict[str, WorkerPool] = {}
    paths: dict[str, str] = {}
    try:
        for variant in ("fresh", "hook", "no_hook"):
            dirs[variant] = MultiprocDir()
            path = paths[variant] = dirs[variant].__enter__()
            pool = pools[variant] = WorkerPool(series)
            pool.start(POOL)
            print(f"[multiprocess] recycle: {variant}", file=sys.stderr, flush=True)
            n = 0 if variant == "fresh" else recycles
            for _ in range(n):
                pid = pool.kill_oldest()
                if variant == "hook":
                    mark_process_dead(pid, path)  # gunicorn's child_exit
                pool.start(1)
            row: dict[str, Any] = {"expected_count": n + POOL}
            if variant == "no_hook":
                row["files_before"] = _files(path)[0]
                row["pc_before_ms"] = _timed(lambda path=path: _pc_body(path, False),
                                             max(3, reps // 4))
                before_body = _pc_body(path, False)
                t0 = time.perf_counter()
                first = _pk_body(False, path)
                row["first_scrape_ms"] = (time.perf_counter() - t0) * 1e3
                row["same_as_before"] = _close_enough(first, before_body)
            _pk_body(False, path)
            row["files"] = _files(path)[0]
            out[variant] = row
        entries: list[tuple[str, Callable[[], Any]]] = []
        for variant, path in paths.items():
            entries.append((f"pk_{variant}", lambda path=path: _pk_body(False, path)))
            entries.append((f"pc_{variant}", lambda path=path: _pc_body(path, False)))
        times = interleaved(entries, reps)
        for variant, path in paths.items():
            row = out[variant]
            row["promkit_ms"] = median(times[f"pk_{variant}"])
            row["pc_ms"] = median(times[f"pc_{variant}"])
            body = _pk_body(False, path)
            row["count"] = _sample_count(body)
            row["same_as_pc"] = _close_enough(body, _pc_body(path, False))
    finally:
        for variant, pool in pools.items():
            pool.stop()
            dirs[variant].__exit__()
    return out


def run(processes: int, series: int, reps: int, recycles: int = RECYCLES
        ) -> tuple[str, dict[str, Any]]:
    scrape = scrape_comparison(processes, series, reps)
    recycle = recycle_scenario(recycles, RECYCLE_SERIES, max(5, reps // 2))
    times = scrape["times"]
    pc = {"text": median(times["pc_text"]), "om": median(times["pc_om"])}
    rows = []
    for label, key, base in (("warm: files unchanged", "pk_text", "text"),
                             ("cold: first scrape of a process", "pk_text_cold", "text"),
                             (f"changed: {scrape['changed_workers']} workers wrote since",
                              "pk_text_changed", "text"),
                             ("warm: files unchanged", "pk_om", "om")):
        pk_ms = median(times[key])
        speedup = pc[base] / pk_ms
        rows.append([f"{processes} x {series}", "text" if base == "text" else "OpenMetrics",
                     label, fmt_ms(pk_ms), fmt_ms(pc[base]), f"{speedup:.1f}x",
                     verdict(speedup >= 5.0)])
    fresh, hook, nohook = recycle["fresh"], recycle["hook"], recycle["no_hook"]
    recycle_rows = [
        ["fresh pool (4 workers)", fresh["files"], fmt_ms(fresh["promkit_ms"]),
         fmt_ms(fresh["pc_ms"]), f"{fresh['count']:.0f} / {fresh['expected_count']}", "-", "-"],
        [f"{recycles} recycles, child_exit hook", hook["files"], fmt_ms(hook["promkit_ms"]),
         fmt_ms(hook["pc_ms"]), f"{hook['count']:.0f} / {hook['expected_count']}",
         f"{hook['files'] / fresh['files']:.2f}x / {hook['promkit_ms'] / fresh['promkit_ms']:.2f}x",
         verdict(hook["files"] <= 2 * fresh["files"]
                 and hook["promkit_ms"] <= 2 * fresh["promkit_ms"]
                 and hook["count"] == hook["expected_count"])],
        [f"{recycles} recycles, no hook: before the first scrape", nohook["files_before"], "-",
         fmt_ms(nohook["pc_before_ms"]), "-", "-", "-"],
        [f"{recycles} recycles, no hook: first scrape (compacts)", "-",
         fmt_ms(nohook["first_scrape_ms"]), "-", "-", "-", "-"],
        [f"{recycles} recycles, no hook: after", nohook["files"], fmt_ms(nohook["promkit_ms"]),
         fmt_ms(nohook["pc_ms"]), f"{nohook['count']:.0f} / {nohook['expected_count']}",
         f"{nohook['files'] / fresh['files']:.2f}x / "
         f"{nohook['promkit_ms'] / fresh['promkit_ms']:.2f}x",
         verdict(nohook["files"] <= 2 * fresh["files"]
                 and nohook["promkit_ms"] <= 2 * fresh["promkit_ms"]
                 and nohook["count"] == nohook["expected_count"])],
    ]
    checks = " ".join(f"{what}: {'same samples' if same else 'DIFFERENT'} ({why}; {n} series)."
                      for what, same, why, n in scrape["checks"])
    recycle_checks = (
        f"promkit vs prometheus_client on the same directory: fresh {fresh['same_as_pc'][1]}, "
        f"hook {hook['same_as_pc'][1]}, no hook {nohook['same_as_pc'][1]}; no hook, promkit's "
        f"first scrape (compacting) vs prometheus_client before it: "
        f"{nohook['same_as_before'][1]} (`_sum` within 1e-9 relative: summed in another order).")
    text = "\n".join([
        f"### Multiprocess scrape (median of {reps} interleaved runs)",
        "",
        table(["processes x series", "format", "promkit scrape", "promkit ms",
               "prometheus_client ms", "speed-up", "target >= 5x"], rows),
        "",
        f"{processes} live forked workers each recorded {describe_composition(series)} (same "
        f"label values in every process, like workers of one app): {scrape['files']} files, "
        f"{scrape['bytes']} bytes. promkit = `multiprocess_exposition(openmetrics).encode()`; "
        "cold = this process's reader dropped before the run; changed = "
        f"{scrape['changed_workers']} workers recorded every series again before the run. "
        "prometheus_client = fresh `CollectorRegistry` + `MultiProcessCollector` + "
        "`generate_latest` per scrape. Bodies parsed and compared (exact values): " + checks,
        "",
        f"### Multiprocess recycling: a pool of {POOL} workers x {RECYCLE_SERIES} series "
        f"(median of {max(5, reps // 2)} interleaved scrapes)",
        "",
        table(["directory", "files", "promkit ms", "prometheus_client ms",
               "count of one series / expected", "files / scrape vs fresh",
               "target <= 2x, exact"], recycle_rows),
        "",
        "A recycle SIGKILLs the oldest worker, reaps it and forks a replacement; the three "
        "pools then stay alive side by side and are scraped interleaved (\"before the first "
        "scrape\" and \"first scrape\" are single measurements of the no-hook pool). Every worker "
        "observed each histogram series once, so each series' `_count` must be recycles + 4. "
        + recycle_checks,
    ])
    return text, {"scrape": scrape, "recycle": recycle}


if __name__ == "__main__":
    out, _ = run(int(sys.argv[1]) if len(sys.argv) > 1 else 64,
                 int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
                 int(sys.argv[3]) if len(sys.argv) > 3 else 10,
                 int(sys.argv[4]) if len(sys.argv) > 4 else RECYCLES)
    print(out)
