"""promkit load's chart: the steps' req/s and p95, the breaking point and the server view."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from promkit.tools.loadgen import LoadConfig, render_chart, run_load
from tests.apps.load_target import FLOW, FakePrometheus, SlowApp, serving, slow_target


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, str]]:
    with slow_target() as target:
        yield target


def test_chart_marks_the_breaking_point_and_the_server_view(
        slow_app: tuple[SlowApp, str], tmp_path: Path) -> None:
    _, url = slow_app
    with serving(FakePrometheus([0.01, 0.9])) as prom:
        config = LoadConfig(url=url, flows=FLOW, users_start=1, users_max=8, step_seconds=0.3,
                            max_seconds=10, p95_max_ms=200, prometheus=prom)
        result = asyncio.run(run_load(config, cpu_clock=lambda: 0.0))
    text = render_chart(result)
    svg = ET.fromstring(text)
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 3
    assert "breaking point: 2 users" in text and "server (dashed)" in text
