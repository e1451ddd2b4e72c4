"""``promkit load`` as a command: options checked before any request (exit 2, one line),
the table, JSON and chart of a run against a real local app (tests/apps/load_target.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.load_target import SlowApp, closed_port, slow_target


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, str]]:
    with slow_target() as target:
        yield target


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promkit", "load", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_refuses_remote_url() -> None:
    proc = _cli("--url", "http://192.0.2.1:8000")
    assert proc.returncode == 2
    assert "loopback" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_json_run(slow_app: tuple[SlowApp, str], tmp_path: Path) -> None:
    _, url = slow_app
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps([{"name": "get", "requests": [{"path": "/"}]}]))
    chart = tmp_path / "load.svg"
    proc = _cli("--url", url, "--flows", str(flows), "--users-max", "4", "--step-seconds",
                "0.3", "--max-seconds", "5", "--p95-max-ms", "10000", "--json", "--chart",
                str(chart))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "promkit.load/v1"
    assert [s["users"] for s in data["steps"]] == [1, 2, 4]
    assert data["breaking_point"] is None and data["stop_reason"] == "users_max"
    assert all(isinstance(s["client_cpu_seconds"], float) and s["client_bound"] is False
               for s in data["steps"])
    assert data["limits"]["client_cpu_max"] == 0.85
    import xml.etree.ElementTree as ET

    svg = ET.fromstring(chart.read_text())
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2  # req/s and p95; no server view
    assert all(len(line.get("points", "").split()) == 3 for line in lines)
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_cli_table_run(slow_app: tuple[SlowApp, str]) -> None:
    _, url = slow_app
    proc = _cli("--url", url, "--flows", "demo", "--users-max", "2", "--step-seconds", "0.3",
                "--max-seconds", "5", "--error-ratio-max", "1")
    assert proc.returncode == 0, proc.stderr
    assert "users" in proc.stdout and "breaking point" in proc.stdout


def test_cli_unreachable_url_is_one_line_exit_2() -> None:
    port = closed_port()
    started = time.monotonic()
    proc = _cli("--url", f"http://127.0.0.1:{port}", "--max-seconds", "30")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no table: nothing was ramped
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "refused" in lines[0]
    assert time.monotonic() - started < 20


def test_cli_refuses_remote_prometheus() -> None:
    proc = _cli("--url", "http://127.0.0.1:1", "--prometheus", "http://192.0.2.1:9090")
    assert proc.returncode == 2
    assert "--prometheus 'http://192.0.2.1:9090' is not a loopback" in proc.stderr


def test_cli_chart_folder_checked_first(tmp_path: Path) -> None:
    proc = _cli("--url", "http://127.0.0.1:1", "--chart", str(tmp_path / "no" / "x.svg"))
    assert proc.returncode == 2
    assert "--chart" in proc.stderr and "does not exist" in proc.stderr
