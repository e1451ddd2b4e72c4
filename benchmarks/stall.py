"""Event-loop stall: a tiny endpoint's latency while the same app serves /metrics.

Two uvicorn servers (one process each, 1 worker, ``http=h11``,
``loop=asyncio``, 127.0.0.1, random ports): A = promkit's ``metrics_app``,
B = prometheus-client's ``make_asgi_app``, both over 10k identical series
(``_stall_app``). For each phase a fresh load client process
(``_loadclient``) keeps ~10 keep-alive connections busy with ``/ping`` while
``/metrics/`` is not scraped, scraped once a second, or scraped back to back.
These scrapes ask for Prometheus text; A also gets one 1 scrape/s phase for
each other format it serves (OpenMetrics, JSON with ``?format=json``), which
B has no counterpart for. Phases run interleaved (A-none, B-none, A-1s, B-1s,
A-1s-openmetrics, A-1s-json, A-stress, B-stress) for several rounds; the
tables give medians over rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import (
    compare_samples,
    fmt_ms,
    free_port,
    median,
    stop_process,
    table,
    verdict,
)

ROOT = Path(__file__).resolve().parent.parent
APPS = {"promkit": "benchmarks._stall_app:promkit_app",
        "prometheus_client": "benchmarks._stall_app:prometheus_client_app"}
LABEL = {"promkit": "promkit metrics_app", "prometheus_client": "make_asgi_app"}
MODES = ("none", "1s", "1s-openmetrics", "1s-json", "stress")
MODE_LABEL = {"none": "no scrapes", "1s": "1 scrape/s (text)",
              "1s-openmetrics": "1 scrape/s (OpenMetrics)", "1s-json": "1 scrape/s (JSON)",
              "stress": "back to back (text)"}
# Load-client mode and scrape format of each phase mode.
MODE_ARGS = {"none": ("none", "text"), "1s": ("1s", "text"),
             "1s-openmetrics": ("1s", "openmetrics"), "1s-json": ("1s", "json"),
             "stress": ("stress", "text")}
PROMKIT_ONLY = ("1s-openmetrics", "1s-json")
FORMATS = ("text", "openmetrics", "json")


def _env(series: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() != "prometheus_multiproc_dir"}
    env["BENCH_SERIES"] = str(series)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def start_server(target: str, series: int) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(5):
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--http", "h11", "--loop", "asyncio",
               "--lifespan", "off", "--log-level", "warning", "--no-access-log"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(series))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    return proc, port
            except httpx.HTTPError:
                time.sleep(0.2)
        stop_process(proc, 5)  # the port was taken or the app failed: try again
    raise RuntimeError(f"could not start uvicorn for {target}")


def run_phase(port: int, mode: str, duration: float, conns: int, warmup: float,
              fmt: str = "text") -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks._loadclient", str(port), mode, str(duration),
           str(conns), str(warmup), fmt]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(0), capture_output=True, check=True,
                         timeout=duration + warmup + 120)
    return dict(json.loads(out.stdout))


def _check_same(ports: dict[str, int]) -> str:
    bodies = {name: httpx.get(f"http://127.0.0.1:{port}/metrics/", timeout=30).content
              for name, port in ports.items()}
    # promkit's app also exports its own promkit_exposition_duration_seconds.
    pk = b"\n".join(line for line in bodies["promkit"].split(b"\n")
                    if b"promkit_" not in line) + b"\n"
    same, why = compare_samples(pk, bodies["prometheus_client"], openmetrics=False)
    doc = httpx.get(f"http://127.0.0.1:{ports['promkit']}/metrics/?format=json",
                    timeout=30).json()
    json_samples = sum(len(m["samples"]) for m in doc["metrics"]
                       if not m["name"].startswith("promkit_"))
    return (f"/metrics bodies: {len(bodies['promkit'])} / {len(bodies['prometheus_client'])} "
            f"bytes; {'same samples' if same else 'DIFFERENT'} ({why}; promkit's own "
            f"promkit_* self-metrics excluded); promkit's JSON body parses, "
            f"{json_samples} label sets outside promkit_*")


def _phases(formats: tuple[str, ...]) -> list[tuple[str, str]]:
    """(app, mode) of every phase, in the order of a round."""
    out = []
    for mode in MODES:
        if mode in PROMKIT_ONLY and MODE_ARGS[mode][1] not in formats:
            continue
        out.extend((app, mode) for app in APPS
                   if mode not in PROMKIT_ONLY or app == "promkit")
    return out


def run(series: int, rounds: int, duration: float, conns: int,
        warmup: float, formats: tuple[str, ...] = FORMATS) -> tuple[str, dict[str, Any]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    phases = _phases(formats)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in phases}
    try:
        ports: dict[str, int] = {}
        for name, target in APPS.items():
            print(f"[stall] starting {name} server ({series} series)", file=sys.stderr)
            procs[name], ports[name] = start_server(target, series)
        for port in ports.values():  # warm: first render, imports, caches
            for _ in range(3):
                httpx.get(f"http://127.0.0.1:{port}/metrics/", timeout=30)
        check = _check_same(ports)
        for port in ports.values():  # one discarded phase each: warm the /ping path too
            run_phase(port, "none", 1.0, conns, 0.0)
        for r in range(rounds):
            for mode in MODES:
                order = list(APPS) if r % 2 == 0 else list(reversed(APPS))
                for app in order:
                    if (app, mode) not in results:
                        continue
                    client_mode, fmt = MODE_ARGS[mode]
                    res = run_phase(ports[app], client_mode, duration, conns, warmup, fmt)
                    results[(app, mode)].append(res)
                    print(f"[stall] round {r + 1}/{rounds} {app:17} {mode:14} "
                          f"p50 {res['p50_ms']:.2f} p99 {res['p99_ms']:.2f} "
                          f"max {res['max_ms']:.1f} ms, {res['rps']:.0f}/s, "
                          f"{len(res['scrapes_ms'])} scrapes, client cpu "
                          f"{res['client_cpu']:.0%}", file=sys.stderr)
    finally:
        for proc in procs.values():
            stop_process(proc, 5)
    return _report(results, series, rounds, duration, conns, check)


def _agg(runs: list[dict[str, Any]]) -> dict[str, float]:
    scrapes = [s for r in runs for s in r["scrapes_ms"]]
    return {
        "p50": median(r["p50_ms"] for r in runs),
        "p99": median(r["p99_ms"] for r in runs),
        "max": median(r["max_ms"] for r in runs),
        "worst_max": max(r["max_ms"] for r in runs),
        "rps": median(r["rps"] for r in runs),
        "scrapes": float(len(scrapes)) / len(runs),
        "scrape_ms": median(scrapes),
        "client_cpu": max(r["client_cpu"] for r in runs),
    }


def _report(results: dict[tuple[str, str], list[dict[str, Any]]], series: int, rounds: int,
            duration: float, conns: int, check: str) -> tuple[str, dict[str, Any]]:
    agg = {key: _agg(runs) for key, runs in results.items()}
    rows = []
    for mode in MODES:
        for app in APPS:
            if (app, mode) not in agg:
                continue
            a = agg[(app, mode)]
            base = agg[(app, "none")]
            rows.append([MODE_LABEL[mode], LABEL[app], fmt_ms(a["p50"]), fmt_ms(a["p99"]),
                         f"{a['p99'] / base['p99']:.2f}x", fmt_ms(a["max"], 1),
                         fmt_ms(a["worst_max"], 1), f"{a['rps']:.0f}",
                         f"{a['rps'] / base['rps']:.2f}x",
                         "-" if mode == "none" else f"{a['scrapes']:.0f}",
                         fmt_ms(a["scrape_ms"], 1), f"{a['client_cpu']:.0%}"])
    pk, pc = "promkit", "prometheus_client"
    p99_ratio = agg[(pk, "1s")]["p99"] / agg[(pk, "none")]["p99"]
    max_1s = agg[(pk, "1s")]["max"]
    stress_gain = agg[(pc, "stress")]["p99"] / agg[(pk, "stress")]["p99"]
    pc_p99_ratio = agg[(pc, "1s")]["p99"] / agg[(pc, "none")]["p99"]

    def paired(num: tuple[str, str], den: tuple[str, str]) -> float:
        # Per round (phases a few seconds apart), then the median over rounds.
        return median(a["p99_ms"] / b["p99_ms"]
                      for a, b in zip(results[num], results[den], strict=True))

    p99_paired = paired((pk, "1s"), (pk, "none"))
    stress_paired = paired((pc, "stress"), (pk, "stress"))
    targets = [
        ["1 scrape/s: promkit p99 / its no-scrape p99", "<= 1.50x", f"{p99_ratio:.2f}x",
         verdict(p99_ratio <= 1.5),
         f"paired per round {p99_paired:.2f}x; make_asgi_app {pc_p99_ratio:.2f}x"],
        *([f"1 scrape/s in {name}: promkit p99 / its no-scrape p99 (issue 19)", "<= 1.50x",
           f"{ratio:.2f}x", verdict(ratio <= 1.5),
           f"paired per round {paired((pk, mode), (pk, 'none')):.2f}x"]
          for name, mode in (("OpenMetrics", "1s-openmetrics"), ("JSON", "1s-json"))
          if (pk, mode) in agg
          for ratio in [agg[(pk, mode)]["p99"] / agg[(pk, "none")]["p99"]]),
        ["1 scrape/s: promkit max /ping latency (median of rounds)", "<= 50 ms",
         f"{max_1s:.1f} ms", verdict(max_1s <= 50),
         f"worst round {agg[(pk, '1s')]['worst_max']:.1f} ms; make_asgi_app "
         f"{agg[(pc, '1s')]['max']:.1f} ms"],
        ["back to back: make_asgi_app p99 / promkit p99", ">= 5x", f"{stress_gain:.1f}x",
         verdict(stress_gain >= 5),
         f"paired per round {stress_paired:.1f}x; throughput promkit "
         f"{agg[(pk, 'stress')]['rps'] / agg[(pk, 'none')]['rps']:.2f}x vs "
         f"make_asgi_app {agg[(pc, 'stress')]['rps'] / agg[(pc, 'none')]['rps']:.2f}x of "
         "no-scrape"],
    ]
    out = [
        f"### Event-loop stall: /ping while /metrics ({series} series) is scraped "
        f"(median of {rounds} interleaved rounds x {duration:g} s, {conns} connections)",
        "",
        table(["scrapes", "app", "p50 ms", "p99 ms", "p99 / no-scrape", "max ms",
               "worst max ms", "/ping per s", "÷ no-scrape", "scrapes per phase",
               "scrape ms (median)", "client CPU (max)"], rows,
              ["l", "l"] + ["r"] * 10),
        "",
        table(["target", "goal", "measured", "", "context"],
              targets, ["l", "r", "r", "l", "l"]),
        "",
        "uvicorn: 1 process each, `--workers 1 --http h11 --loop asyncio`, 127.0.0.1. Latency is "
        "measured by the load client (its own process, raw asyncio sockets, closed loop) from "
        "sending a request to the last byte of the answer; scrape ms = full /metrics/ response "
        "time at the same client. Text phases send `Accept: text/plain`, OpenMetrics "
        "`Accept: application/openmetrics-text`, JSON `?format=json` (make_asgi_app serves no "
        "JSON, so those rows are promkit's only); no gzip. max ms = median over rounds of each "
        "phase's maximum; worst max = the single worst phase. " + check + ".",
    ]
    raw = {f"{app}/{mode}": runs for (app, mode), runs in results.items()}
    return "\n".join(out), {"aggregate": {f"{a}/{m}": v for (a, m), v in agg.items()},
                            "runs": raw}
