"""``make reliability``: run tests/reliability at full size, print the table, write
docs/reliability.md.

    python tests/reliability/report.py          # full sizes (PROMKIT_RELIABILITY=full)
    python tests/reliability/report.py --small  # the make-test sizes, table only
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
COMMAND = "make reliability"


def _get(figures: dict[str, Any], section: str, key: str, default: Any = "n/a") -> Any:
    return figures.get(section, {}).get(key, default)


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, (int, float)) else str(value)


def table(figures: dict[str, Any], outcome: str, seconds: float) -> list[tuple[str, str]]:
    f = figures
    return [
        ("fuzz cases tried (hypothesis)", f"{_n(_get(f, 'fuzz', 'cases'))}"),
        ("expositions checked by promtool + strict OpenMetrics parser",
         f"{_n(_get(f, 'fuzz', 'expositions_promtool'))} in "
         f"{_get(f, 'fuzz', 'promtool_calls')} promtool calls"),
        ("invalid definitions rejected with CatalogError",
         _n(_get(f, "fuzz", "definitions_rejected"))),
        ("promtool lint notes on accepted names",
         str(_get(f, "fuzz", "promtool_name_lints"))),
        ("cardinality: distinct raw paths via middleware",
         f"{_n(_get(f, 'cardinality', 'middleware_paths'))} -> "
         f"{_get(f, 'cardinality', 'middleware_route_series')} route series, RSS "
         f"+{_get(f, 'cardinality', 'middleware_rss_growth_mb')} MB"),
        ("cardinality: leaked raw values via middleware + registry",
         f"{_n(_get(f, 'cardinality', 'registry_values'))} each -> series "
         f"{_get(f, 'cardinality', 'series_http')} (limit "
         f"{_get(f, 'cardinality', 'series_limit_http')}+1), "
         f"{_get(f, 'cardinality', 'series_custom')} (limit "
         f"{_get(f, 'cardinality', 'series_limit_custom')}+1); overflow counted "
         f"{_n(_get(f, 'cardinality', 'overflow_counted'))}; RSS "
         f"+{_get(f, 'cardinality', 'registry_rss_growth_mb')} MB"),
        ("faults survived (real Redis, Prometheus, Alertmanager, gunicorn; psutil; disk)",
         f"{_get(f, 'faults', 'survived')} (full disk: {_get(f, 'faults', 'full_disk')})"),
        ("PII: generated log events / leaks",
         f"{_n(_get(f, 'pii', 'events'))} / {_get(f, 'pii', 'leaks')}"),
        ("PII: adversarial events (secret keys, IDN emails, cards, tokens) / leaks; "
         "controls kept",
         f"{_n(_get(f, 'pii', 'adversarial_events'))} / "
         f"{_get(f, 'pii', 'adversarial_leaks')}; {_n(_get(f, 'pii', 'controls_kept'))}"),
        ("security: token / injection cases, secret leaks",
         f"{_get(f, 'security', 'token_cases')} / {_get(f, 'security', 'injection_cases')}, "
         f"{_get(f, 'security', 'leaks')} leaks; generated files checked: "
         f"{_get(f, 'security', 'generated_files_checked', 'skipped')}"),
        ("soak: duration, requests, req/s; keep-alive races retried",
         f"{_get(f, 'soak', 'seconds')} s, {_n(_get(f, 'soak', 'requests'))}, "
         f"{_get(f, 'soak', 'rps')}; {_get(f, 'soak', 'keepalive_reconnects')}"),
        ("soak: RSS after warm-up, growth; FDs idle -> after; instrumentation errors",
         f"{_get(f, 'soak', 'rss_mb_after_warmup')} MB, +{_get(f, 'soak', 'rss_growth_pct')}%;"
         f" {_get(f, 'soak', 'fd_idle')} -> {_get(f, 'soak', 'fd_after')}; "
         f"{_get(f, 'soak', 'instrumentation_errors')}"),
        ("pytest outcome, wall time", f"{outcome}, {seconds:.0f} s"),
    ]


def markdown(rows: list[tuple[str, str]]) -> str:
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    small = "--small" in argv
    env = dict(os.environ)
    if not small:
        env["PROMKIT_RELIABILITY"] = "full"
    with tempfile.TemporaryDirectory() as tmp:
        figures_path = Path(tmp) / "figures.json"
        env["PROMKIT_RELIABILITY_FIGURES"] = str(figures_path)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "tests/reliability", "-q",
                               "-p", "no:cacheprovider"], cwd=ROOT, env=env, check=False)
        seconds = time.monotonic() - start
        data = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    outcome = "passed" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    rows = table(data.get("figures", {}), outcome, seconds)
    width = max(len(k) for k, _ in rows)
    print("\npromkit reliability figures" + (" (make-test sizes)" if small else ""))
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    print(f"\nreproduce: {COMMAND}" + ("  (full sizes)" if small else ""))
    if not small:
        machine = (f"{platform.node()}, {platform.machine()}, {psutil.cpu_count()} CPUs, "
                   f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
                   f"{platform.system()} {platform.release()}, Python "
                   f"{platform.python_version()}")
        DOC.write_text(
            "# Reliability and security figures\n\n"
            "Written by `make reliability` (tests/reliability at full size: "
            "`PROMKIT_RELIABILITY=full`); `make test` runs the same tests at small sizes.\n"
            "What each figure means is in the docstrings of tests/reliability/test_*.py.\n\n"
            f"Last full run: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on "
            f"{machine}.\n\n" + markdown(rows) + f"\n\nReproduce: `{COMMAND}`\n")
        print(f"wrote {DOC.relative_to(ROOT)}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
