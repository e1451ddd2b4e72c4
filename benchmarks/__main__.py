"""``python -m benchmarks``: run the benchmarks and print markdown tables.

Tables go to stdout, progress to stderr. ``--quick`` is a smoke run of a few
seconds per part; ``--only scrape|stall|multiprocess|mp-scaling|...`` (repeatable or
comma-separated) runs a subset; ``--json PATH`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from typing import Any

from benchmarks._common import environment

PARTS = ("scrape", "stall", "multiprocess", "middleware", "mp-scaling", "stages")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: few repetitions, short phases (numbers not meaningful)")
    ap.add_argument("--only", action="append", default=[], metavar="PART",
                    help=f"run only these parts ({', '.join(PARTS)}); repeat or comma-separate")
    ap.add_argument("--sizes", default="1000,10000", help="scrape: series counts")
    ap.add_argument("--scrape-reps", type=int, help="scrape: interleaved runs (default 25)")
    ap.add_argument("--stall-series", type=int, default=10000, help="stall: series in /metrics")
    ap.add_argument("--stall-formats", default="text,openmetrics,json",
                    help="stall: formats promkit is scraped in at 1 scrape/s (text is always "
                         "run; openmetrics and json add promkit-only phases)")
    ap.add_argument("--rounds", type=int, help="stall: interleaved rounds (default 3)")
    ap.add_argument("--duration", type=float, help="stall: seconds measured per phase (6)")
    ap.add_argument("--conns", type=int, default=10, help="stall: /ping connections (10)")
    ap.add_argument("--processes", type=int,
                    help="multiprocess: live worker processes (default 64)")
    ap.add_argument("--mp-series", type=int, default=1000, help="multiprocess: series each")
    ap.add_argument("--mp-reps", type=int, help="multiprocess: interleaved runs (default 40)")
    ap.add_argument("--recycles", type=int,
                    help="multiprocess: recycles of the 4-worker pool (default 500)")
    ap.add_argument("--scaling-reps", type=int,
                    help="mp-scaling: interleaved runs per cell (default 15)")
    ap.add_argument("--stage-calls", type=int,
                    help="stages: calls per timing (default 20000)")
    ap.add_argument("--stage-reps", type=int,
                    help="stages: interleaved repetitions (default 11)")
    ap.add_argument("--no-http", action="store_true",
                    help="middleware: skip the HTTP-over-loopback part (needs wrk)")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = ap.parse_args(argv)
    only = {p.strip() for item in args.only for p in item.split(",") if p.strip()}
    unknown = only - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    args.parts = [p for p in PARTS if not only or p in only]
    quick = args.quick
    args.scrape_reps = args.scrape_reps or (5 if quick else 25)
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (1.5 if quick else 6.0)
    args.mp_reps = args.mp_reps or (5 if quick else 40)
    args.processes = args.processes or (8 if quick else 64)
    args.recycles = args.recycles or (20 if quick else 500)
    args.scaling_reps = args.scaling_reps or (2 if quick else 15)
    args.stage_calls = args.stage_calls or (5000 if quick else 20000)
    args.stage_reps = args.stage_reps or (3 if quick else 11)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"## promkit benchmarks — {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}\n")
    print(f"`{command.strip()}`; {environment()}\n")
    if args.quick:
        print("**--quick: smoke run, too few repetitions for the numbers to mean much.**\n")
    raw: dict[str, Any] = {"command": command, "environment": environment()}
    for part in args.parts:
        t0 = time.monotonic()
        if part == "scrape":
            from benchmarks import scrape

            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
            text, raw["scrape"] = scrape.run(sizes, args.scrape_reps)
        elif part == "stall":
            from benchmarks import stall

            formats = tuple(f.strip() for f in args.stall_formats.split(",") if f.strip())
            text, raw["stall"] = stall.run(args.stall_series, args.rounds, args.duration,
                                           args.conns, warmup=0.5, formats=formats)
        elif part == "middleware":
            from benchmarks import middleware

            text, raw["middleware"] = middleware.run(args.quick, http=not args.no_http)
        elif part == "mp-scaling":
            from benchmarks import multiprocess_scaling

            processes = (1, 4) if args.quick else multiprocess_scaling.PROCESSES
            text, raw["mp-scaling"] = multiprocess_scaling.run(args.scaling_reps, processes)
        elif part == "stages":
            from benchmarks import stages

            text, raw["stages"] = stages.run(args.stage_calls, args.stage_reps)
        else:
            from benchmarks import multiprocess

            text, raw["multiprocess"] = multiprocess.run(args.processes, args.mp_series,
                                                         args.mp_reps, args.recycles)
        print(text)
        print(f"\n({part}: {time.monotonic() - t0:.0f} s)\n", flush=True)
    total = time.monotonic() - started
    print(f"Total run time: {total:.0f} s.")
    if args.json:
        raw["total_seconds"] = total
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
