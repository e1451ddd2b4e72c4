"""promkit load's step results: the percentiles its steps are judged on."""

from __future__ import annotations

from promkit.tools.loadgen import percentile


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 95) is None
    assert percentile([3.0], 99) == 3.0
