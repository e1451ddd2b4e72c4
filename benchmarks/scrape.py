"""Scrape: the complete exposition body, promkit vs prometheus-client's generate_latest.

Both sides hold the identical series (see ``_common.build_*``): promkit in a
``MetricsRegistry`` on its own ``CollectorRegistry``, prometheus-client in
plain metrics on another. promkit's body is what its ``/metrics`` app sends:
``"".join`` of the renderer's chunks + ``foreign_exposition`` of its
collector registry (+ ``# EOF`` for OpenMetrics), encoded to bytes.
"""

from __future__ import annotations

import sys
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as pc_text
from prometheus_client.openmetrics.exposition import generate_latest as pc_openmetrics

from benchmarks._common import (
    build_prometheus_client,
    build_promkit,
    compare_samples,
    count_series,
    describe_composition,
    fmt_ms,
    interleaved,
    median,
    table,
    verdict,
)
from promkit.exporters._exposition import foreign_exposition, render_openmetrics, render_text
from promkit.instrument import MetricsRegistry


def promkit_body(registry: MetricsRegistry, openmetrics: bool) -> bytes:
    renderer = render_openmetrics if openmetrics else render_text
    parts = list(renderer(registry))
    parts.append(foreign_exposition(registry.collector_registry, openmetrics))
    if openmetrics:
        parts.append("# EOF\n")
    return "".join(parts).encode()


def _drop_render_caches(registry: MetricsRegistry) -> None:
    # Cold scrape: as if every series were new since the last scrape.
    for metric in registry:
        for child in metric.children():
            child.render_cache = None


def _measure(size: int, reps: int) -> tuple[dict[str, list[float]], list[str]]:
    print(f"[scrape] building {size} series", file=sys.stderr)
    pk = MetricsRegistry(CollectorRegistry(), multiprocess=False)
    build_promkit(size, pk)
    pc = CollectorRegistry()
    build_prometheus_client(size, pc)
    notes = []
    for fmt, openmetrics, pc_fn in (("text", False, pc_text),
                                    ("OpenMetrics", True, pc_openmetrics)):
        a, b = promkit_body(pk, openmetrics), pc_fn(pc)
        same, why = compare_samples(a, b, openmetrics)
        notes.append(f"{size} {fmt}: {'same samples' if same else 'DIFFERENT'} ({why}); "
                     f"series promkit {count_series(a)} / prometheus_client "
                     f"{count_series(b)}; bytes {len(a)} / {len(b)}")
    entries = [
        ("pk_text", lambda: promkit_body(pk, False)),
        ("pc_text", lambda: pc_text(pc)),
        ("pk_text_cold", lambda: promkit_body(pk, False)),
        ("pk_om", lambda: promkit_body(pk, True)),
        ("pc_om", lambda: pc_openmetrics(pc)),
        ("pk_om_cold", lambda: promkit_body(pk, True)),
    ]
    drop = {"pk_text_cold": lambda: _drop_render_caches(pk),
            "pk_om_cold": lambda: _drop_render_caches(pk)}
    interleaved(entries, 2, drop)  # warm-up
    print(f"[scrape] timing {size} series, {reps} interleaved reps", file=sys.stderr)
    return interleaved(entries, reps, drop), notes


def run(sizes: list[int], reps: int) -> tuple[str, list[dict[str, Any]]]:
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for size in sizes:
        times, size_notes = _measure(size, reps)
        notes.extend(size_notes)
        for fmt, key in (("text", "text"), ("OpenMetrics", "om")):
            pk_ms, pc_ms = median(times[f"pk_{key}"]), median(times[f"pc_{key}"])
            cold_ms = median(times[f"pk_{key}_cold"])
            ratio = pk_ms / pc_ms
            target = verdict(ratio <= 1.0) if key == "text" else "-"
            rows.append([size, fmt, fmt_ms(pk_ms), fmt_ms(pc_ms), f"{ratio:.2f}x",
                         fmt_ms(cold_ms), f"{cold_ms / pc_ms:.2f}x", target])
            results.append({"series": size, "format": fmt, "promkit_ms": pk_ms,
                            "prometheus_client_ms": pc_ms, "ratio": ratio,
                            "promkit_cold_ms": cold_ms})
    out = [
        f"### Scrape: complete exposition body (median of {reps} interleaved runs)",
        "",
        table(["series", "format", "promkit ms", "prometheus_client ms", "ratio",
               "promkit cold ms", "cold ratio", "target text <= 1.0x"], rows),
        "",
        "promkit = `\"\".join(render_*(registry))` + `foreign_exposition(...)` encoded to bytes "
        "(render caches warm, as from the 2nd scrape on); cold = every series' cached label "
        "strings dropped before the run (first scrape after the series appear). "
        "prometheus_client = `generate_latest(registry)` (text) / openmetrics `generate_latest`.",
        "Composition: " + "; ".join(f"{s}: {describe_composition(s)}" for s in sizes) + ".",
        "",
        "Honesty check (both bodies parsed with prometheus_client's parsers, `_created` values "
        "ignored):",
        "",
        *[f"- {n}" for n in notes],
    ]
    return "\n".join(out), results
