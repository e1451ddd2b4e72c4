"""compat_rules: peers' metric names recorded from promkit's series (docs/migration.md).

The central test runs starlette_exporter's and prometheus-fastapi-instrumentator's
own middleware beside promkit's in one Starlette app, sends the same requests
through all three, feeds promkit's samples to the generated rules in promtool and
asserts the peer-named series equal what each peer exported itself.
"""

from __future__ import annotations

import shutil
import subprocess
import types
from pathlib import Path
from typing import Any

import pytest
import starlette_exporter
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from promkit.instrument.middleware import HttpMetricsMiddleware
from promkit.instrument.registry import MetricsRegistry
from promkit.tools.generate import generate
from promkit.tools.generate._rules_compat import (
    INSTRUMENTATOR_HIGHR_BUCKETS,
    STARLETTE_EXPORTER_BUCKETS,
    compat_groups,
    shared_bounds,
)
from promkit.tools.generate.config import ConfigError, config_from_mapping, config_from_yaml

HOOK = [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"}]
TARGET = {"service": "demo", "job": "api", "instance": "127.0.0.1:8000"}
# A prefix of our own: starlette_exporter keeps its metrics in the process-wide registry.
PREFIX = "compat_peer"
APP_NAME = "shop"


def _config(**extra: Any) -> Any:
    return config_from_mapping({
        "service": "demo", "targets": [{"job": "api", "targets": ["127.0.0.1:8000"]}],
        "compat_rules": ["instrumentator",
                         {"peer": "starlette_exporter", "prefix": PREFIX, "app_name": APP_NAME}],
        **extra})


# -- config --------------------------------------------------------------------------------


def _error(text: str) -> str:
    base = "service: demo\ntargets: [{job: api, targets: ['127.0.0.1:8000']}]\n"
    with pytest.raises(ConfigError) as info:
        config_from_yaml(base + text, source="promkit.yaml")
    return str(info.value)


def test_an_unknown_peer_is_named_with_its_place_and_the_known_ones() -> None:
    assert _error("compat_rules:\n  - instrumentator\n  - starlette-exporter\n") == (
        "promkit.yaml:5: compat_rules[1]: unknown peer 'starlette-exporter'; expected one of "
        "starlette_exporter, instrumentator")
    assert _error("compat_rules: [{peer: fastapi}]\n").startswith(
        "promkit.yaml:3: compat_rules[0].peer: unknown peer 'fastapi'")


def test_peer_options_are_checked() -> None:
    assert _error("compat_rules: [{peer: instrumentator, app_name: x}]\n") == (
        "promkit.yaml:3: compat_rules[0].app_name: instrumentator takes no options")
    assert _error("compat_rules: [{peer: starlette_exporter, prefix: 'a-b'}]\n").endswith(
        "compat_rules[0].prefix: 'a-b' is not a valid metric name prefix")
    assert _error("compat_rules: [instrumentator, instrumentator]\n").endswith(
        "compat_rules[1]: 'instrumentator' is listed twice")
    assert _error("compat_rules: instrumentator\n").endswith(
        "compat_rules: expected a list, got a string ('instrumentator')")


def test_a_python_config_keeps_its_compat_rules(tmp_path: Path) -> None:
    from promkit.tools.generate.config import load_config

    path = tmp_path / "config.py"
    path.write_text(
        "from promkit.tools.generate.config import CompatRules, Config, ScrapeTarget\n"
        "CONFIG = Config('demo', (ScrapeTarget('api', ('127.0.0.1:8000',)),), compat_rules=("
        "CompatRules('instrumentator'), CompatRules('starlette_exporter', app_name='shop')))\n")
    assert [(c.peer, c.prefix, c.app_name) for c in load_config(path).compat_rules] == [
        ("instrumentator", None, None), ("starlette_exporter", None, "shop")]


def test_without_compat_rules_nothing_changes(tmp_path: Path) -> None:
    config = config_from_mapping({"service": "demo", "receivers": HOOK, "targets": [
        {"job": "api", "targets": ["127.0.0.1:8000"]}]})
    assert compat_groups(config) == []
    generate(config, tmp_path, dashboards=False)
    assert not (tmp_path / "prometheus/rules/compat.yml").exists()
    assert "rules/compat.yml" not in (tmp_path / "prometheus/prometheus.yml").read_text()


def test_generate_writes_and_loads_the_compat_file(tmp_path: Path) -> None:
    promtool = _promtool()
    config = _config(receivers=HOOK)
    generate(config, tmp_path, dashboards=False)
    prom = tmp_path / "prometheus"
    assert "rules/compat.yml" in yaml.safe_load((prom / "prometheus.yml").read_text())[
        "rule_files"]
    for args in (("check", "rules", str(prom / "rules/compat.yml")),
                 ("check", "config", str(prom / "prometheus.yml")),
                 # the generated cases: a known traffic mix, every peer series it gives
                 ("test", "rules", str(prom / "tests/compat_test.yml"))):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    # The Kubernetes PrometheusRule carries them too.
    assert f"record: {PREFIX}_requests_total" in (
        prom / "kubernetes/prometheusrule.yaml").read_text()
    # A central Prometheus evaluates them; federation pulls their colon-less names too.
    from promkit.tools.generate.remote_write import central_config, federation_config

    assert "../rules/compat.yml" in central_config(config)["rule_files"]
    assert '{service="demo", promkit_compat!=""}' in federation_config(config, ())[
        "scrape_configs"][0]["params"]["match[]"]


# -- the same requests through the peers and promkit -----------------------------------------


class _Clock:
    """perf_counter for all three middlewares: a request lasts what its handler says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app(clock: _Clock, ours: MetricsRegistry, peer_registry: CollectorRegistry) -> Starlette:
    async def item(request: Request) -> JSONResponse:
        clock.now += float(request.query_params.get("seconds", "0.003"))
        return JSONResponse({"id": request.path_params["item_id"]})

    async def create(request: Request) -> PlainTextResponse:
        body = await request.body()
        clock.now += 0.07
        return PlainTextResponse("created " * len(body), status_code=201)

    async def boom(request: Request) -> None:
        clock.now += 3.0
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/items/{item_id}", item),
                            Route("/items", create, methods=["POST"]),
                            Route("/boom", boom)])
    app.add_middleware(PrometheusInstrumentatorMiddleware, registry=peer_registry)
    app.add_middleware(starlette_exporter.PrometheusMiddleware, prefix=PREFIX,
                       app_name=APP_NAME)
    app.add_middleware(HttpMetricsMiddleware, registry=ours, log_requests=False,
                       record_sizes=True)  # the instrumentator's size metrics map onto them
    return app


def _traffic(client: TestClient) -> None:
    for seconds in ("0.003", "0.003", "0.04", "0.2", "0.3", "0.6", "8", "40"):
        assert client.get(f"/items/7?seconds={seconds}").status_code == 200
    for size in (0, 10, 500):
        assert client.post("/items", content=b"x" * size).status_code == 201
    assert client.get("/boom").status_code == 500
    assert client.get("/nowhere").status_code == 404
    assert client.get("/nowhere/else").status_code == 404


def _samples(text: str, keep: Any) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if keep(s.name)]


def _series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    return path


def test_peer_series_equal_what_the_peers_export_for_the_same_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    promtool = _promtool()
    clock = _Clock()
    from prometheus_fastapi_instrumentator import middleware as instrumentator_module
    from starlette_exporter import middleware as exporter_module

    import promkit.instrument.middleware as ours_module

    monkeypatch.setattr(ours_module, "perf_counter", clock)
    monkeypatch.setattr(exporter_module, "time", types.SimpleNamespace(perf_counter=clock))
    monkeypatch.setattr(instrumentator_module, "default_timer", clock)
    ours = MetricsRegistry(CollectorRegistry())
    peer_registry = CollectorRegistry()
    with TestClient(_app(clock, ours, peer_registry), raise_server_exceptions=False) as client:
        _traffic(client)

    config = _config()
    rules = tmp_path / "compat.yml"
    rules.write_text(yaml.safe_dump({"groups": compat_groups(config)}, sort_keys=False))
    recorded = {r["record"] for g in compat_groups(config) for r in g["rules"]}

    # promkit's HTTP samples as a scrape of the target would store them.
    input_series = [
        {"series": _series(name, {**labels, **TARGET}), "values": f"{value!r}x3"}
        for name, labels, value in _samples(generate_latest(ours.collector_registry).decode(),
                                            lambda n: n.startswith("http_server_"))]

    # What the peers exported, with the target's labels and the rules' marker.
    def peer_keep(name: str) -> bool:
        return name in recorded

    exported = (_samples(generate_latest(REGISTRY).decode(), peer_keep)
                + _samples(generate_latest(peer_registry).decode(), peer_keep))
    lowr = {"0.1", "0.5", "1.0", "+Inf"}
    star = {str(b) for b in shared_bounds(STARLETTE_EXPORTER_BUCKETS)} | {"+Inf"}
    highr = {str(b) for b in shared_bounds(INSTRUMENTATOR_HIGHR_BUCKETS)} | {"+Inf"}
    want: dict[str, list[dict[str, Any]]] = {}
    missing_bounds: set[tuple[str, str]] = set()
    for name, labels, value in exported:
        le = labels.get("le")
        carried = {f"{PREFIX}_request_duration_seconds_bucket": star,
                   "http_request_duration_seconds_bucket": lowr,
                   "http_request_duration_highr_seconds_bucket": highr}.get(name)
        if le is not None and carried is not None and le not in carried:
            missing_bounds.add((name, le))
            continue
        peer = "starlette_exporter" if name.startswith(PREFIX) else "instrumentator"
        want.setdefault(name, []).append({
            "labels": _series(name, {**labels, **TARGET, "promkit_compat": peer}),
            "value": value})
    assert set(want) == recorded  # every rule has the peer's series to compare with
    # The peers' bounds promkit's histogram lacks are the documented ones.
    assert {le for _, le in missing_bounds} == {"0.075", "0.25", "7.5", "1.5", "2.0", "3.0",
                                                "3.5", "4.0", "4.5"}
    test = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": input_series,
        "promql_expr_test": [{"expr": name, "eval_time": "1m", "exp_samples": samples}
                             for name, samples in sorted(want.items())]}]}
    path = tmp_path / "compat_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
