"""``promkit report``: the report from Prometheus in the chosen format, the webhook digest,
and the exit code that says what happened."""

from __future__ import annotations

import argparse
import os
import sys

from promkit.tools._cli_usage import EXIT_USAGE, Subparsers, UsageError

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"
EXIT_ISSUES = 1
EXIT_POST_FAILED = 3


def add_report(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="answer the five questions (health, latency, failures, cost, trends) from "
             "Prometheus",
        allow_abbrev=False,
        description=(
            "Query Prometheus's HTTP API over a window and report: is it healthy (alerts, "
            "SLO error budgets, targets down), where the time goes (latency by route, job "
            "queue wait / run, stages, external calls), what fails and why, what it costs "
            "(month to date and projected against budgets) and what it will need (trends "
            "with a linear projection). Terminal text by default; --json, --markdown or "
            "--html FILE; --post URL sends the digest to a webhook, always: when no report "
            "can be made it posts a warning saying what could not be read. Exit codes: 0 "
            "report made (issues or not), 1 issues found with --fail-on-issues, 2 Prometheus "
            "unreachable or empty or a bad argument (with --post the warning was posted), 3 "
            "the --post webhook failed: nothing was posted."
        ),
    )
    parser.add_argument("--prometheus", metavar="URL", default=DEFAULT_PROMETHEUS,
                        help="Prometheus base URL (default: %(default)s, the demo's)")
    parser.add_argument("--since", default="1h", metavar="DURATION",
                        help="report window: 1h, 24h, 7d, 30m... (default: %(default)s)")
    parser.add_argument("--service", metavar="JOB",
                        help="only series and targets with this job label")
    parser.add_argument("--at", metavar="TIME",
                        help="end the window at TIME instead of now: ISO 8601 "
                             "(2026-11-16T12:00:00Z; no zone means UTC) or Unix seconds; "
                             "alerts are then read from the ALERTS series at that time")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the report as JSON (schema promkit.report/v1)")
    out.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML page with charts to FILE")
    parser.add_argument("--no-color", action="store_true",
                        help="no ANSI colours in terminal text (default: colour on a TTY "
                             "unless NO_COLOR is set)")
    parser.add_argument("--post", metavar="URL",
                        help="POST the digest to URL, always: '✓ nominal', '⚠ n issues', or "
                             "'⚠ promkit report failed' with what could not be read")
    parser.add_argument("--post-format", default="auto",
                        choices=("auto", "discord", "slack", "ntfy", "generic"),
                        help="webhook payload (default: by URL host; else generic JSON)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-request timeout for Prometheus and the webhook "
                             "(default: %(default)s)")
    parser.add_argument("--fail-on-issues", action="store_true",
                        help="exit 1 when the report found issues")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from promkit.tools.report import ReportError, generate, parse_time
    from promkit.tools.report.html import render_html
    from promkit.tools.report.post import PostError, post_failure, post_report
    from promkit.tools.report.render import render_json, render_markdown, render_text

    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout must be in (0, 300] seconds, not {args.timeout}")
    at = None
    if args.at is not None:
        try:
            at = parse_time(args.at)
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None
    try:
        report = generate(args.prometheus, args.since, service=args.service,
                          timeout=args.timeout, now=at)
    except ReportError as exc:
        if not args.post:
            raise UsageError(str(exc)) from None
        # The digest always fires: most of all when Prometheus cannot be read.
        print(f"promkit: error: {exc}", file=sys.stderr)
        try:
            used = post_failure(str(exc), args.post, prometheus=args.prometheus,
                                since=args.since, service=args.service, fmt=args.post_format,
                                timeout=args.timeout)
        except PostError as post_exc:
            print(f"promkit: error: {post_exc}; nothing was posted", file=sys.stderr)
            return EXIT_POST_FAILED
        print(f"promkit: posted the failure ({used}): ⚠ promkit report failed",
              file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(render_json(report))
    elif args.markdown:
        sys.stdout.write(render_markdown(report))
    else:
        color = (sys.stdout.isatty() and not args.no_color
                 and not os.environ.get("NO_COLOR"))
        sys.stdout.write(render_text(report, color=color))
    sys.stdout.flush()
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(render_html(report))
        except OSError as exc:
            raise UsageError(f"cannot write --html {args.html!r}: {exc.strerror or exc}"
                             ) from None
        print(f"promkit: wrote {args.html}", file=sys.stderr)
    if args.post:
        try:
            used = post_report(report, args.post, fmt=args.post_format, timeout=args.timeout)
        except PostError as exc:
            print(f"promkit: error: {exc}; nothing was posted", file=sys.stderr)
            return EXIT_POST_FAILED
        print(f"promkit: posted the digest ({used}): {report.headline()}", file=sys.stderr)
    if args.fail_on_issues and report.current_issues:
        return EXIT_ISSUES
    return 0
