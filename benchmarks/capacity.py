"""Capacity: series per service, bytes per sample, Prometheus storage per month.

``python -m benchmarks.capacity`` prints docs/capacity.md's tables:

1. **Series ceilings from the catalog**: per family, the most series the
   standard catalog can expose (each metric's ``series_limit`` label sets x
   the series one label set gives: 1 for a counter or gauge; buckets + ``+Inf``
   + ``_count`` + ``_sum`` for a histogram). A ceiling, not a forecast: the
   limits exist so one bad label cannot blow past it.
2. With ``--measure SECONDS``: the demo stack (``python -m demo.run
   --no-prometheus``, on shifted ports and its own run dir) is scraped by a
   throwaway Prometheus (admin API on) every ``--scrape-interval`` for
   ``SECONDS``; then the head is persisted with the admin snapshot API and the
   block's ``meta.json`` (samples, series, chunks) and file sizes give bytes
   per sample on disk; ``/api/v1/status/tsdb`` gives the head series.
3. The monthly cost of a 100k-jobs/day service at those numbers, next to a
   per-event SQLite store at ~1 GB/month, with the arithmetic.

Everything runs on loopback; every process started is stopped by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks._common import free_port
from promkit.instrument.catalog import STANDARD_CATALOG, MetricSpec

REPO = Path(__file__).resolve().parents[1]
JOBS_PER_DAY = 100_000
SQLITE_GB_PER_MONTH = 1.0
DAYS_PER_MONTH = 30
# Ports for the demo during --measure (far from its defaults, so a running demo is untouched).
DEMO_PORTS = {"DEMO_API_PORT": 18000, "DEMO_WORKER_METRICS_PORT": 19464,
              "DEMO_QUEUE_EXPORTER_PORT": 19465, "DEMO_REDIS_PORT": 16390,
              "DEMO_RECEIVER_PORT": 19099, "DEMO_FAKE_SERVICES_PORT": 19098,
              "DEMO_PROMETHEUS_PORT": 19090, "DEMO_ALERTMANAGER_PORT": 19093}


def series_per_label_set(spec: MetricSpec) -> int:
    if spec.kind == "histogram":
        return len(spec.buckets or ()) + 1 + 2  # buckets, +Inf, _count, _sum
    return 1


def catalog_ceilings() -> list[tuple[str, int, int]]:
    """(family, metrics, series ceiling) for the standard catalog, by family."""
    metrics: dict[str, int] = defaultdict(int)
    series: dict[str, int] = defaultdict(int)
    for spec in STANDARD_CATALOG:
        metrics[spec.family] += 1
        series[spec.family] += spec.series_limit * series_per_label_set(spec)
    return [(family, metrics[family], series[family]) for family in sorted(metrics)]


@dataclass
class Measured:
    seconds: float
    scrape_interval_s: float
    head_series: int
    samples: int
    series: int
    chunks: int
    chunks_bytes: int
    index_bytes: int
    scraped_by_job: dict[str, int]

    @property
    def bytes_per_sample(self) -> float:
        return self.chunks_bytes / self.samples

    @property
    def bytes_per_sample_with_index(self) -> float:
        return (self.chunks_bytes + self.index_bytes) / self.samples


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout:.0f}s")


def measure(seconds: float, scrape_interval: str = "1s") -> Measured:
    """Scrape the demo for ``seconds``, persist the head, read the block's stats."""
    from demo.settings import CONFIG_PATH as DEMO_CONFIG
    from promkit.tools.generate import load_config
    from promkit.tools.generate.config import parse_duration

    config = load_config(DEMO_CONFIG)
    port_of = {"demo-api": DEMO_PORTS["DEMO_API_PORT"],
               "demo-worker": DEMO_PORTS["DEMO_WORKER_METRICS_PORT"],
               "demo-queues": DEMO_PORTS["DEMO_QUEUE_EXPORTER_PORT"]}
    scrape_configs = [{
        "job_name": t.job, "metrics_path": t.metrics_path,
        "static_configs": [{"targets": [f"127.0.0.1:{port_of[t.job]}"],
                            "labels": {"service": config.service}}],
    } for t in config.targets]
    with tempfile.TemporaryDirectory(prefix="promkit-capacity-") as tmp:
        work = Path(tmp)
        env = {**os.environ, **{k: str(v) for k, v in DEMO_PORTS.items()},
               "DEMO_RUN_DIR": str(work / "demo")}
        with open(work / "demo.log", "wb") as log:
            demo = subprocess.Popen(
                [sys.executable, "-m", "demo.run", "--no-prometheus",
                 "--duration", str(int(seconds + 60))],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        prom: subprocess.Popen[bytes] | None = None
        try:
            _wait(f"http://127.0.0.1:{port_of['demo-api']}/metrics", 90)
            port = free_port()
            (work / "prometheus.yml").write_text(json.dumps({
                "global": {"scrape_interval": scrape_interval}, "scrape_configs": scrape_configs,
            }))
            with open(work / "prometheus.log", "wb") as log:
                prom = subprocess.Popen(
                    ["prometheus", f"--config.file={work / 'prometheus.yml'}",
                     f"--storage.tsdb.path={work / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            _wait(f"{url}/-/ready", 30)
            print(f"[capacity] scraping the demo every {scrape_interval} for {seconds:.0f} s",
                  file=sys.stderr, flush=True)
            time.sleep(seconds)
            scraped = httpx.get(f"{url}/api/v1/query",
                                params={"query": "scrape_samples_scraped"}).json()["data"]
            by_job = {r["metric"]["job"]: int(float(r["value"][1])) for r in scraped["result"]}
            head = httpx.get(f"{url}/api/v1/status/tsdb").json()["data"]["headStats"]
            snap = httpx.post(f"{url}/api/v1/admin/tsdb/snapshot", timeout=60).json()
            snap_dir = work / "data" / "snapshots" / snap["data"]["name"]
            samples = series = chunks = chunk_bytes = index_bytes = 0
            for meta_path in snap_dir.glob("*/meta.json"):
                stats = json.loads(meta_path.read_text())["stats"]
                samples += stats["numSamples"]
                series += stats["numSeries"]
                chunks += stats["numChunks"]
                block = meta_path.parent
                chunk_bytes += sum(f.stat().st_size for f in (block / "chunks").iterdir())
                index_bytes += (block / "index").stat().st_size
        finally:
            if prom is not None:
                _stop(prom)
            _stop(demo)
    return Measured(seconds, parse_duration(scrape_interval), int(head["numSeries"]), samples,
                    series, chunks, chunk_bytes, index_bytes, by_job)


def monthly_bytes(series: int, bytes_per_sample: float, scrape_interval_s: float = 15.0,
                  days: int = DAYS_PER_MONTH) -> float:
    return series * (86400 / scrape_interval_s) * days * bytes_per_sample


def report(measured: Measured | None) -> str:
    lines = ["### Series ceilings of the standard catalog (series_limit x series per label set)",
             "", "| family | metrics | series ceiling |", "|---|---:|---:|"]
    total = 0
    for family, count, ceiling in catalog_ceilings():
        lines.append(f"| {family} | {count} | {ceiling:,} |")
        total += ceiling
    lines += [f"| **all** | {len(list(STANDARD_CATALOG))} | **{total:,}** |", ""]
    if measured is None:
        return "\n".join(lines)
    m = measured
    bps = m.bytes_per_sample_with_index
    lines += [
        f"### Measured: demo scraped every {m.scrape_interval_s:g} s for {m.seconds:.0f} s",
        "",
        "| what | value |", "|---|---:|",
        f"| series in the head (`/api/v1/status/tsdb`) | {m.head_series:,} |",
        *(f"| samples per scrape, job {job} | {n:,} |" for job, n in sorted(
            m.scraped_by_job.items())),
        f"| block after snapshot: series / samples / chunks | {m.series:,} / {m.samples:,} / "
        f"{m.chunks:,} |",
        f"| samples per series | {m.samples / max(m.series, 1):.0f} |",
        f"| chunks bytes | {m.chunks_bytes:,} |",
        f"| index bytes | {m.index_bytes:,} |",
        f"| **bytes per sample** (chunks only) | **{m.bytes_per_sample:.2f}** |",
        f"| bytes per sample (chunks + index) | {bps:.2f} |",
        "",
        f"### A {JOBS_PER_DAY:,}-jobs/day service, 15 s scrape interval, {DAYS_PER_MONTH} days",
        "",
    ]
    samples_month = m.head_series * (86400 / 15) * DAYS_PER_MONTH
    prom_gb = monthly_bytes(m.head_series, m.bytes_per_sample) / 1e9
    prom_gb_max = monthly_bytes(m.head_series, bps) / 1e9
    events = JOBS_PER_DAY * DAYS_PER_MONTH
    lines += [
        f"- Prometheus: {m.head_series:,} series x 5,760 samples/day x {DAYS_PER_MONTH} days = "
        f"{samples_month:,.0f} samples; x {m.bytes_per_sample:.2f} B = **{prom_gb:.2f} "
        f"GB/month** (x {bps:.2f} B with this short run's index: {prom_gb_max:.2f} GB), "
        "whatever the job count (a job changes counter values, not the number of samples).",
        f"- SQLite, one row per event: {JOBS_PER_DAY:,} x {DAYS_PER_MONTH} = {events:,} jobs; "
        f"{SQLITE_GB_PER_MONTH:g} GB / {events:,} = "
        f"{SQLITE_GB_PER_MONTH * 1e9 / events:,.0f} B per job, growing linearly with jobs.",
        f"- At 10x the jobs: Prometheus {prom_gb:.2f} GB (unchanged), SQLite "
        f"{10 * SQLITE_GB_PER_MONTH:g} GB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", type=float, metavar="SECONDS", default=0,
                        help="scrape the demo this long and measure bytes per sample")
    parser.add_argument("--scrape-interval", default="1s",
                        help="scrape interval during --measure (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the measured numbers")
    args = parser.parse_args(argv)
    measured = measure(args.measure, args.scrape_interval) if args.measure else None
    print(report(measured))
    if args.json and measured is not None:
        Path(args.json).write_text(json.dumps({**measured.__dict__,
                                               "bytes_per_sample": measured.bytes_per_sample},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
