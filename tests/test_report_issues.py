"""report.issues: firing alerts folded into the findings."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from promkit.tools.report.issues import merge_alerts

WINDOW_START = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("active_at", [
    "2026-12-06T09:05:00Z",
    "2026-12-06T09:05:00.1Z",  # Prometheus drops trailing zeros
    "2026-12-06T09:05:00.12Z",  # VictoriaMetrics: milliseconds
    "2026-12-06T09:05:00.1234Z",
    "2026-12-06T09:05:00.123456789Z",  # nanoseconds
])
def test_an_unknown_alert_active_inside_the_window_is_new(active_at):
    alert = {"state": "firing", "name": "DiskAlmostFull", "severity": "warning",
             "labels": {"alertname": "DiskAlmostFull"}, "active_at": active_at}
    [issue] = merge_alerts([], [alert], window_start=WINDOW_START)
    assert issue.change is not None and issue.change["trend"] == "new"


def test_an_alert_active_before_the_window_is_not_new():
    alert = {"state": "firing", "name": "DiskAlmostFull", "severity": "warning",
             "labels": {"alertname": "DiskAlmostFull"}, "active_at": "2026-12-06T08:05:00.5Z"}
    [issue] = merge_alerts([], [alert], window_start=WINDOW_START)
    assert issue.change is None
