"""Live: the CPU-hours month-to-date survives a 10-minute Prometheus outage.

A 10-minute gap must not cost 10 minutes of wall time, so the hour before the
outage is backfilled: ``promtool tsdb create-blocks-from openmetrics`` writes
TSDB blocks holding what the previous Prometheus had stored until 10 minutes
ago (the scraped CPU counter every 15 s, and every minute what the generated
month-to-date rules record: the counter's copy, the month-to-date and its
month). A real Prometheus then starts on those blocks, now, with the generated
rules, and scrapes an exporter whose counter grew through the outage. Its first
evaluations must give the month's CPU within 5%, counted from the counters.

The recorded history is modelled, not evaluated (a real Prometheus evaluates
rules only at the present): for a counter that rises from 0 at a steady rate
the rules record ``counter / 3600`` hours from their first evaluation on; the
promtool cases in prometheus/tests/alerts_test.yml run the same rules through
a scrape gap and a restart minute by minute. The rule this replaced, fed the
same history, drops to 0 after the outage: the test checks that too, so it
shows the scenario bites.
"""

from __future__ import annotations

import http.server
import math
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from promkit.tools.generate.config import config_from_mapping
from promkit.tools.generate.prometheus_config import prometheus_config
from promkit.tools.generate.rules import recording_groups

from ._servers import find_binary, start_prometheus

RATE = 2.0            # CPU-seconds per second: two cores busy
RUN = 70 * 60         # the worker has run this long
OUTAGE = 10 * 60      # Prometheus was down the last 10 minutes of it
SCRAPE, EVALUATION = 15, 60
USAGE_RATE = 50.0     # tokens per second

# The month-to-date rule before this change: it integrated the 5m rate into itself and
# read its own last sample through the 5-minute lookback.
OLD = ("(\n    old:cpu_hours:month_to_date\n  + on (service)\n"
       "    (service:cpu_seconds:rate5m or on (service) old:cpu_hours:month_to_date * 0)\n"
       "  * on (service) (time() - timestamp(old:cpu_hours:month_to_date)) / 3600\n"
       ") and on (service) (month(timestamp(old:cpu_hours:month_to_date)) == scalar(month()))\n"
       "or on (service)\nservice:cpu_seconds:rate5m * 0")


class _Exporter(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _openmetrics(families: dict[str, tuple[str, dict[str, list[tuple[float, float]]]]]) -> str:
    lines = []
    for family, (kind, series) in families.items():
        lines.append(f"# TYPE {family} {kind}")
        for name_labels, samples in series.items():
            lines.extend(f"{name_labels} {value!r} {ts:.3f}" for ts, value in samples)
    return "\n".join([*lines, "# EOF", ""])


def test_month_to_date_survives_a_10_minute_outage(tmp_path: Path, exporter: str) -> None:
    prometheus = find_binary("prometheus")
    promtool = find_binary("promtool")
    if prometheus is None or promtool is None:
        pytest.skip("prometheus/promtool are not installed (Debian package 'prometheus')")
    now = time.time()
    month_start = datetime.fromtimestamp(now, timezone.utc).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    if now - RUN < month_start + EVALUATION:
        pytest.skip("the backfilled hour would start in the previous month (UTC)")

    config = config_from_mapping({
        "service": "demo", "scrape_interval": "1s", "evaluation_interval": "1s",
        "targets": [{"job": "worker", "targets": [exporter]}],
        "budgets": {"cpu_hours_per_month": 100}}, source="live")
    start, down = now - RUN, now - OUTAGE

    def cpu(t: float) -> float:
        return RATE * (t - start)

    # The exporter: the counters as they are now, after the outage.
    series = _labels(service="demo", job="worker", instance=exporter, stage="ocr")
    usage = _labels(service="demo", job="worker", instance=exporter, resource="llm_tokens",
                    provider="p", model="m", role="input")
    _Exporter.body = (f"job_stage_cpu_seconds_total{{stage=\"ocr\"}} {cpu(now)!r}\n"
                      f"usage_units_total{{resource=\"llm_tokens\",provider=\"p\",model=\"m\","
                      f"role=\"input\"}} {USAGE_RATE * RUN!r}\n").encode()

    # What the previous Prometheus stored until it went down.
    scrapes = [start + i * SCRAPE for i in range(int((down - start) // SCRAPE) + 1)]
    evaluations = [start + i * EVALUATION for i in range(int((down - start) // EVALUATION) + 1)]
    month = datetime.fromtimestamp(now, timezone.utc).month
    svc = _labels(service="demo")
    hours = [(t, cpu(t) / 3600) for t in evaluations]
    om = _openmetrics({
        "job_stage_cpu_seconds": ("counter", {
            f"job_stage_cpu_seconds_total{series}": [(t, cpu(t)) for t in scrapes]}),
        "usage_units": ("counter", {
            f"usage_units_total{usage}": [(t, USAGE_RATE * (t - start)) for t in scrapes]}),
        "service_instance_stage:job_stage_cpu_seconds_total:last": ("gauge", {
            f"service_instance_stage:job_stage_cpu_seconds_total:last{series}":
                [(t, cpu(t)) for t in evaluations]}),
        "service:cpu_hours:month_to_date": ("gauge", {
            f"service:cpu_hours:month_to_date{svc}": hours}),
        "service:cpu_hours:month_to_date_month": ("gauge", {
            f"service:cpu_hours:month_to_date_month{svc}": [(t, month) for t, _ in hours]}),
        "old:cpu_hours:month_to_date": ("gauge", {f"old:cpu_hours:month_to_date{svc}": hours}),
    })
    (tmp_path / "history.om").write_text(om)
    workdir = tmp_path / "prometheus"
    result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics",
                             str(tmp_path / "history.om"), str(workdir / "data")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    # The generated rules (evaluated every second here; they read no interval) and the old one.
    groups = recording_groups(config)
    for group in groups:
        group.pop("interval", None)
    groups.append({"name": "old", "rules": [{"record": "old:cpu_hours:month_to_date",
                                             "expr": OLD}]})
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    prom_config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                   "rule_files": [str(rules)],
                   "scrape_configs": prometheus_config(config)["scrape_configs"]}
    server = start_prometheus(workdir, prom_config, binary=prometheus)
    try:
        truth = cpu(now) / 3600
        # Before the change: 0 once the 5m rate exists again (its last sample is 10 min old).
        old = server.wait_for_value('old:cpu_hours:month_to_date{service="demo"}',
                                    lambda v: v < 0.1 * truth, timeout=30)
        value = server.wait_for_value('service:cpu_hours:month_to_date{service="demo"}',
                                      lambda v: abs(v - truth) <= 0.05 * truth, timeout=30)
        # What the outage hid (10 of 70 minutes, 14%) is in it, not only the backfilled part.
        assert value > cpu(down) / 3600 * 1.1, (value, truth)
        # Usage month-to-date (the report's and the dashboards' query) reads the counters
        # over the whole month, across the gap.
        since = math.ceil(now - month_start)
        used = server.value(f'sum(increase(usage_units_total{{service="demo"}}[{since}s]))')
        assert used is not None and abs(used - USAGE_RATE * RUN) <= 0.05 * USAGE_RATE * RUN
        print(f"month-to-date {value:.4f} h (truth {truth:.4f} h, before the gap "
              f"{cpu(down) / 3600:.4f} h, old rule {old:.4f} h); usage {used:.0f} "
              f"(truth {USAGE_RATE * RUN:.0f})")
    finally:
        server.stop()
