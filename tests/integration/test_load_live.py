"""``promkit load --prometheus`` against a real Prometheus scraping the app under load.

The app (tests/apps/report_app.py) answers 500 on ``/fail``. The flow expects
those 500s, so the client counts no errors; only the service's own metrics, read
from Prometheus after each step, show the 5xx ratio, and the run must stop at
the first step on the server's view, with both views in the output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from promkit.tools.loadgen import LoadConfig, parse_flows, render_summary, run_load

from ._servers import AppServer, PrometheusServer

SERIES = 'http_server_request_duration_seconds_count{job="load-app"}'


def test_server_view_from_real_prometheus(uvicorn_app: Callable[..., AppServer],
                                          prometheus: Callable[..., PrometheusServer]) -> None:
    app = uvicorn_app("report_app:app", ready_path="/ok")
    prom = prometheus(targets=[app.address], job="load-app", scrape_interval="1s")
    app.get("/ok")
    prom.wait_for(SERIES, lambda r: bool(r), timeout=30)
    flows = parse_flows([
        {"name": "ok", "weight": 3, "requests": [{"path": "/ok"}]},
        {"name": "fail", "weight": 1, "requests": [{"path": "/fail", "expect": [500]}]}])
    # 4 s steps: at a 1 s scrape interval Prometheus has 3+ samples of each step.
    config = LoadConfig(url=app.url, flows=flows, users_start=1, users_max=4,
                        step_seconds=4, max_seconds=40, think_seconds=0.01,
                        error_ratio_max=0.05, p95_max_ms=5000, prometheus=prom.url,
                        prometheus_job="load-app", seed=7)
    result = asyncio.run(run_load(config))
    text = render_summary(result)
    first = result.steps[0]
    assert first.errors == 0, text  # the client expected the 500s
    assert first.server is not None and first.server.error is None, text
    assert first.server.rps is not None and first.server.rps > 0, text
    assert first.server.p95 is not None, text
    # about a quarter of the requests are 500s: far over 5%
    assert first.server.error_ratio is not None and first.server.error_ratio > 0.1, text
    bp = result.breaking_point
    assert bp is not None and bp.users == 1, text
    assert any(r.startswith("server: error ratio") for r in bp.reasons()), text
    assert "srv err %" in text and "SERVER BREAKS" in text
    data = result.to_dict()
    assert data["steps"][0]["server"]["error_ratio"] > 0.1
    assert data["breaking_point"]["client_reasons"] == []
