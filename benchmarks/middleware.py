"""Middleware overhead: promkit side by side with its peers in the shared harness.

Runs ``../shared/bench/middleware_bench.py`` (bare Starlette, a hand-written
prometheus-client middleware, starlette_exporter,
prometheus-fastapi-instrumentator, starlette_prometheus, OpenTelemetry ASGI)
with :mod:`benchmarks.middleware_plugin` added (promkit's entries and the peer
stack), in one process and one run, and prints its tables plus promkit's
targets (paired overhead ÷ hand-written: all features ≤ 2.0×, metrics only
≤ 1.3×, defaults with nothing configured ≤ 1.3×; all features ≤ 0.2× the peer
stack's overhead; defaults ≤ 1.0× the hand-written middleware that gives
their features; HTTP ≥ 0.88× bare requests/s).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "middleware_bench.py"
PLUGIN = Path(__file__).resolve().parent / "middleware_plugin.py"

TARGETS = (("promkit_all", 2.0), ("promkit_metrics", 1.3), ("promkit_defaults", 1.3))
HTTP_TARGET = 0.88
# (entry, peer entry, goal): the entry's paired overhead ÷ the peer's, at most: issue 16's
# peer stack, and DESIGN's "out of the box no more than a hand-written equivalent".
PEER_TARGETS = (("promkit_all", "peer_stack", 0.2),
                ("promkit_defaults", "handwritten_equivalent", 1.0))


def run(quick: bool, http: bool) -> tuple[str, dict[str, Any]]:
    if not HARNESS.exists():
        return (f"middleware: skipped, the shared harness is not at {HARNESS}", {})
    if http and shutil.which("wrk") is None:
        http = False
        note = "(wrk not installed: HTTP part skipped; `apt-get install wrk`)\n\n"
    else:
        note = ""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, str(HARNESS), "--plugin", str(PLUGIN), "--json", str(out)]
        if quick:
            cmd.append("--quick")
        if http:
            cmd.append("--http")
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.run(cmd, cwd=HARNESS.parent, env=env, capture_output=True, text=True,
                              timeout=1800, check=False)
        if proc.returncode != 0:
            return (f"middleware: harness failed ({proc.returncode}):\n```\n"
                    f"{proc.stderr[-3000:]}\n```", {})
        results = json.loads(out.read_text())
    return note + proc.stdout + "\n" + _targets(results, http), results


def _targets(results: dict[str, Any], http: bool) -> str:
    rows = ["| target | goal | measured | result |", "|---|---:|---:|---|"]
    inproc = results.get("inprocess", {}).get("entries", {})
    for name, goal in TARGETS:
        ratio = inproc.get(name, {}).get("overhead_ratio_to_manual_paired_median")
        if ratio is None:
            rows.append(f"| {name} paired overhead ÷ manual | ≤ {goal:.1f}x | n/a | - |")
            continue
        verdict = "PASS" if ratio <= goal else "MISS"
        rows.append(f"| {name} paired overhead ÷ manual | ≤ {goal:.1f}x | {ratio:.2f}x | "
                    f"{verdict} |")
    for name, peer, goal in PEER_TARGETS:
        ratio = _paired_overhead_ratio(results.get("inprocess", {}).get("entries", {}),
                                       name, peer)
        label = f"| {name} paired overhead ÷ {peer}'s | ≤ {goal:.1f}x |"
        if ratio is None:
            rows.append(f"{label} n/a | - |")
        else:
            rows.append(f"{label} {ratio:.3f}x | {'PASS' if ratio <= goal else 'MISS'} |")
    if http:
        entries = results.get("http", {}).get("entries", {})
        bare = entries.get("bare", {}).get("rps_rounds") or []
        for name, _ in TARGETS:
            rounds = entries.get(name, {}).get("rps_rounds") or []
            if bare and len(rounds) == len(bare) and all(bare):
                # paired per round, as the harness's own table does
                ratio = statistics.median(a / b for a, b in zip(rounds, bare))
                verdict = "PASS" if ratio >= HTTP_TARGET else "MISS"
                rows.append(f"| {name} HTTP req/s ÷ bare (paired) | ≥ {HTTP_TARGET:.2f}x | "
                            f"{ratio:.3f}x | {verdict} |")
    return "#### promkit targets\n\n" + "\n".join(rows) + "\n"


def _paired_overhead_ratio(entries: dict[str, Any], name: str, peer: str) -> float | None:
    """Median over repetitions of (name - bare) ÷ (peer - bare), as the harness pairs."""
    reps = [entries.get(n, {}).get("us_per_request_reps") or [] for n in ("bare", name, peer)]
    bare, mine, theirs = reps
    if not bare or len(mine) != len(bare) or len(theirs) != len(bare):
        return None
    ratios = [(m - b) / (t - b) for b, m, t in zip(bare, mine, theirs) if t > b]
    return statistics.median(ratios) if ratios else None
