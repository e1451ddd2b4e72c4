"""compat_rules on a real Prometheus: the recorded peer-named series equal the peers' own.

One app runs promkit's middleware beside starlette_exporter's and
prometheus-fastapi-instrumentator's; Prometheus scrapes it and evaluates the
generated ``compat.yml``. Every peer counter series then exists twice, the
peer's own and the recorded one (``promkit_compat``), with the same labels and
values: the comparison docs/migration.md tells users to make while both run,
and proof that the two never collide. Counts only: real durations differ by
microseconds between the middlewares (bucket equality is tested in
tests/test_compat_rules.py with one clock).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from promkit.tools.generate._rules_compat import compat_groups
from promkit.tools.generate.config import config_from_mapping

pytestmark = pytest.mark.integration

# Per counter: the label the peers give the route, and the route they count that promkit
# does not (its exclude_paths).
COUNTERS = {
    "starlette_requests_total": "path",
    "starlette_request_duration_seconds_count": "path",
    "http_requests_total": "handler",
    "http_request_duration_seconds_count": "handler",
    "http_request_size_bytes_count": "handler",
    "http_response_size_bytes_sum": "handler",
}


def _by_source(result: list[dict[str, Any]]) -> dict[str, dict[frozenset[tuple[str, str]], str]]:
    out: dict[str, dict[frozenset[tuple[str, str]], str]] = {}
    for sample in result:
        labels = dict(sample["metric"])
        source = labels.pop("promkit_compat", "peer")
        labels.pop("__name__", None)
        out.setdefault(source, {})[frozenset(labels.items())] = sample["value"][1]
    return out


def test_recorded_series_equal_the_peers_own_in_prometheus(
        uvicorn_app: Callable[..., Any], prometheus: Callable[..., Any], tmp_path: Path) -> None:
    app = uvicorn_app("compat_peers_app:app", ready_path="/items/0")
    config = config_from_mapping({
        "service": "demo", "targets": [{"job": "api", "targets": [app.address]}],
        "compat_rules": ["instrumentator", {"peer": "starlette_exporter", "app_name": "shop"}]})
    rules = tmp_path / "compat.yml"
    rules.write_text(yaml.safe_dump({"groups": compat_groups(config)}, sort_keys=False))
    server = prometheus(rule_files=[rules], scrape_configs=[{
        "job_name": "api", "static_configs": [{"targets": [app.address],
                                                "labels": {"service": "demo"}}]}])
    for i in range(6):
        assert app.get(f"/items/{i}").status_code == 200
    for size in (0, 10, 500):
        assert httpx.post(app.url + "/items", content=b"x" * size, timeout=10).status_code == 201
    assert app.get("/boom").status_code == 500
    assert app.get("/nowhere").status_code == 404
    for name, route in COUNTERS.items():
        expr = f'{name}{{service="demo", {route}!="/metrics"}}'
        peer = "starlette_exporter" if name.startswith("starlette") else "instrumentator"

        def same(result: list[dict[str, Any]], peer: str = peer) -> bool:
            sources = _by_source(result)
            return len(sources) == 2 and sources["peer"] == sources.get(peer)

        try:
            server.wait_for(expr, same, timeout=20)
        except TimeoutError:
            pytest.fail(f"{name}: {_by_source(server.query(expr))}")

