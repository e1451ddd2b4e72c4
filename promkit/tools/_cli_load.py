"""``promkit load``: the options of a load run, checked before any request, and its
table, JSON and chart."""

from __future__ import annotations

import argparse
import sys

from promkit.tools._cli_usage import Subparsers, UsageError


def add_load(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "load",
        help="ramp concurrent virtual users against a loopback service to find its "
             "breaking point",
        allow_abbrev=False,
        description=(
            "Run virtual users doing weighted request flows against --url, ramping the "
            "number of users step by step until a step's p95 latency or error ratio passes "
            "its limit (the breaking point), --users-max is done, or a bound (--max-seconds, "
            "--max-requests) is hit. Prints a per-step table (users, rps, p50/p95/p99, "
            "errors) and the breaking point, or JSON with --json. Only loopback URLs "
            "(127.0.0.0/8, ::1, localhost) are accepted: our machines must never load-test "
            "anything else. --allow-remote lifts that for a service you own, elsewhere. "
            "Each step records the client's own CPU; a step where the client itself "
            "saturates (--client-cpu-max) is marked client-bound and never reported as the "
            "service's breaking point. "
            "Exit codes: 0 run done (breaking point found or not), 1 --chart could not be "
            "written, 2 bad arguments, or a "
            "URL that is not loopback or cannot be reached (checked before any step)."
        ),
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="base URL of the service (default: %(default)s, the demo API)")
    parser.add_argument("--flows", default="demo", metavar="demo|FILE",
                        help="the demo API's flows, or a JSON/YAML flow file (see "
                             "docs/report.md) (default: %(default)s)")
    parser.add_argument("--users-start", type=int, default=1, metavar="N",
                        help="virtual users in the first step (default: %(default)s)")
    parser.add_argument("--users-max", type=int, default=64, metavar="N",
                        help="most virtual users (default: %(default)s)")
    parser.add_argument("--users-factor", type=float, default=2.0, metavar="X",
                        help="users are multiplied by X each step (default: %(default)s)")
    parser.add_argument("--step-seconds", type=float, default=10.0, metavar="S",
                        help="length of each step (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=120.0, metavar="S",
                        help="stop after S seconds in all (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=100_000, metavar="N",
                        help="stop after N requests in all (default: %(default)s)")
    parser.add_argument("--p95-max-ms", type=float, default=500.0, metavar="MS",
                        help="a step breaks when its p95 exceeds MS (default: %(default)s)")
    parser.add_argument("--error-ratio-max", type=float, default=0.05, metavar="R",
                        help="a step breaks when its error ratio exceeds R "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="per-request timeout (default: %(default)s)")
    parser.add_argument("--think-seconds", type=float, default=0.0, metavar="S",
                        help="mean pause of a user between flows (default: %(default)s)")
    parser.add_argument("--client-cpu-max", type=float, default=0.85, metavar="R",
                        help="a step whose client used more than R of a core per client "
                             "process is client-bound: its client figures never make it the "
                             "breaking point (the --prometheus view still can) and the ramp "
                             "stops (default: %(default)s)")
    parser.add_argument("--prometheus", metavar="URL",
                        help="Prometheus scraping the service: each step also reads the "
                             "service's own p95, error ratio, queue depth and oldest age, "
                             "and the breaking point is judged on both views")
    parser.add_argument("--prometheus-job", metavar="NAME",
                        help="with --prometheus, only series with job=NAME")
    parser.add_argument("--seed", type=int, help="seed the users' flow choices")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--chart", metavar="FILE",
                        help="also write an SVG chart of req/s and p95 against users "
                             "(an .html FILE wraps it in a page)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="accept a non-loopback URL (never on shared or CI machines)")
    parser.set_defaults(handler=_load)


def _load(args: argparse.Namespace) -> int:
    import json

    from promkit.tools.loadgen import LoadConfig, LoadError, check_loopback, load_flows, run_cli

    try:
        url = check_loopback(args.url, allow_remote=args.allow_remote)
        if args.chart:
            import os

            folder = os.path.dirname(args.chart) or "."
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise LoadError(f"--chart {args.chart!r}: folder {folder!r} does not exist "
                                "or is not writable")
        prometheus = (check_loopback(args.prometheus, allow_remote=args.allow_remote,
                                     option="--prometheus")
                      if args.prometheus else None)
        config = LoadConfig(
            url=url, flows=load_flows(args.flows), users_start=args.users_start,
            users_max=args.users_max, users_factor=args.users_factor,
            step_seconds=args.step_seconds, max_seconds=args.max_seconds,
            max_requests=args.max_requests, p95_max_ms=args.p95_max_ms,
            error_ratio_max=args.error_ratio_max, timeout=args.timeout,
            think_seconds=args.think_seconds, client_cpu_max=args.client_cpu_max,
            prometheus=prometheus, prometheus_job=args.prometheus_job, seed=args.seed)
        config.validate()
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = run_cli(config)
    except LoadError as exc:  # the service cannot be reached: nothing was ramped
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print("promkit: load run interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        from promkit.tools.loadgen import render_summary

        sys.stdout.write(render_summary(result))
    if args.chart:
        from promkit.tools.loadgen import render_chart

        svg = render_chart(result)
        if args.chart.endswith((".html", ".htm")):
            svg = ("<!doctype html>\n<meta charset=\"utf-8\">\n<title>promkit load</title>\n"
                   + svg)
        try:
            with open(args.chart, "w", encoding="utf-8") as handle:
                handle.write(svg)
        except OSError as exc:
            print(f"promkit: cannot write --chart {args.chart}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    return 0
