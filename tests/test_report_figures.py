"""report._figures: the figures issue lines and tables share."""

from __future__ import annotations

import pytest

from promkit.tools.report._figures import fmt_seconds
from promkit.tools.report.render import fmt, quantile


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0 ms"), (0.0004, "400 µs"), (0.123, "123 ms"), (4.5, "4.50 s"), (150.0, "2.5 min"),
])
def test_an_issue_line_and_a_table_write_a_duration_alike(seconds, text):
    assert fmt_seconds(seconds) == text
    assert fmt(seconds, "seconds") == text


def test_a_quantile_that_is_only_a_bucket_bound_says_so():
    row = {"p95": 0.1, "quantile_bounds": {"p95": "below"}}
    assert quantile(row, "p95") == "< 100 ms"
