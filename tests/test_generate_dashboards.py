"""Generated Grafana dashboards: drift, metric names, structure, alert links, the missing SDK."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.instrument.catalog import STANDARD_CATALOG
from promkit.tools.generate import generate, load_config
from promkit.tools.generate._grafana_check import dashboard_queries, promql_metric_names
from promkit.tools.generate.config import Config, config_from_mapping

pytest.importorskip("grafana_foundation_sdk", reason="needs promkit[dashboards] (Python >= 3.11)")

from promkit.tools.generate import dashboards

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "grafana"
BUILTINS = frozenset({"up", "scrape_duration_seconds", "ALERTS"})
SCHEMA_VERSION = 39


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="module")
def generated(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full ``promkit generate`` output of the demo config, in a tmp dir."""
    out = tmp_path_factory.mktemp("generated")
    generate(config, out)
    return out


@pytest.fixture(scope="module")
def boards(generated: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((generated / "grafana" / "dashboards").glob("*.json"))}


def catalog_sample_names() -> set[str]:
    names: set[str] = set()
    for spec in STANDARD_CATALOG:
        if spec.kind == "histogram":
            names.update(spec.name + s for s in ("_bucket", "_count", "_sum"))
        else:
            names.add(spec.name)
    return names


def recording_rule_names(rules_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def undefined_names(boards: dict[str, dict[str, Any]], known: set[str]) -> list[str]:
    problems = []
    for name, board in boards.items():
        for query in dashboard_queries(board):
            for metric in sorted(promql_metric_names(query.expr) - known):
                problems.append(f"{name} {query.where}: {metric!r} in {query.expr!r}")
    return problems


# -- drift ----------------------------------------------------------------------------------


def test_committed_grafana_dir_equals_generator_output(generated: Path) -> None:
    fresh = generated / "grafana"
    want = {p.relative_to(fresh).as_posix(): p.read_text(encoding="utf-8")
            for p in fresh.rglob("*") if p.is_file()}
    have = {p.relative_to(COMMITTED).as_posix(): p.read_text(encoding="utf-8")
            for p in COMMITTED.rglob("*") if p.is_file() and p.name != "README.md"}
    assert sorted(have) == sorted(want), "regenerate: promkit generate"
    stale = [name for name in want if have[name] != want[name]]
    assert not stale, f"committed grafana/ files differ from the generator: {stale}; " \
                      "run `promkit generate`"


def test_output_is_deterministic(config: Config) -> None:
    assert dashboards.dashboard_files(config) == dashboards.dashboard_files(config)


# -- metric names ---------------------------------------------------------------------------


def test_every_metric_a_panel_names_is_defined(boards: dict[str, dict[str, Any]],
                                               generated: Path) -> None:
    rules = recording_rule_names(generated / "prometheus" / "rules")
    assert rules, "no recording rules generated"
    known = catalog_sample_names() | rules | BUILTINS
    assert undefined_names(boards, known) == []


def test_committed_rules_define_the_panels_names(boards: dict[str, dict[str, Any]]) -> None:
    rules = recording_rule_names(REPO / "prometheus" / "rules")
    known = catalog_sample_names() | rules | BUILTINS
    assert undefined_names(boards, known) == []


def test_name_check_fails_on_a_bogus_name(boards: dict[str, dict[str, Any]],
                                          generated: Path) -> None:
    known = (catalog_sample_names() | recording_rule_names(generated / "prometheus" / "rules")
             | BUILTINS)
    board = json.loads(json.dumps(boards["service-overview.json"]))
    target = next(p for p in board["panels"] if p.get("targets"))["targets"][0]
    target["expr"] = 'sum(rate(http_server_requests_bogus_total{service="$service"}[5m]))'
    problems = undefined_names({"service-overview.json": board}, known)
    assert len(problems) == 1 and "http_server_requests_bogus_total" in problems[0]


def recording_rules(rules_dir: Path) -> dict[str, str]:
    """Recording rule name -> the expressions that record it (joined)."""
    out: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group["rules"]:
                if "record" in rule:
                    out[rule["record"]] = out.get(rule["record"], "") + "\n" + rule["expr"]
    return out


def uncovered_families(boards: dict[str, dict[str, Any]], rules: dict[str, str]) -> list[str]:
    """Catalog metric families that no panel shows, directly or through recording rules."""
    todo = {name for board in boards.values()
            for query in dashboard_queries(board, variables=False)
            if query.where.startswith("panel ")
            for name in promql_metric_names(query.expr)}
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo |= promql_metric_names(rules.get(name, "")) - reached
    missing = []
    for spec in STANDARD_CATALOG:
        samples = ({spec.name + s for s in ("_bucket", "_count", "_sum")}
                   if spec.kind == "histogram" else {spec.name})
        if not samples & reached:
            missing.append(spec.name)
    return missing


def test_every_catalog_metric_is_on_a_dashboard(boards: dict[str, dict[str, Any]],
                                               generated: Path) -> None:
    """A metric added to the catalog cannot be forgotten: some panel must show it, itself or
    through the recording rules built on it."""
    assert uncovered_families(boards, recording_rules(generated / "prometheus" / "rules")) == []


def test_the_coverage_check_names_what_no_panel_shows(boards: dict[str, dict[str, Any]],
                                                     generated: Path) -> None:
    rules = recording_rules(generated / "prometheus" / "rules")
    without = {k: v for k, v in boards.items() if k not in ("websockets.json", "database.json")}
    assert uncovered_families(without, rules) == [
        "websocket_server_active_connections", "websocket_server_messages_total",
        "websocket_server_session_duration_seconds", "websocket_server_closes_total",
        "db_client_operation_duration_seconds"]


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (le) (rate(a_bucket{x="y", z=~"$v"}[$__rate_interval]))', {"a_bucket"}),
    ("x:y:z / on (service, slo) group_left (extra) b", {"x:y:z", "b"}),
    ('histogram_quantile(0.99, sum by (job, le) (rate(c[5m]))) * 3600 > bool 1e3', {"c"}),
    ('label_values(up{service="$service"}, instance)', {"up"}),
    ('{__name__="d_total", job="j"}', {"d_total"}),
    ("scalar(((day_of_month() - 1) * 86400 + time() % 86400) / (days_in_month() * 86400))",
     set()),
])
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


# -- structure ------------------------------------------------------------------------------


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board["panels"])


def test_dashboards_present(boards: dict[str, dict[str, Any]]) -> None:
    assert sorted(boards) == ["database.json", "external-cost.json", "jobs-stages.json",
                              "promkit-self.json", "resources.json", "service-overview.json",
                              "slos.json", "websockets.json"]
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)


def test_schema_ids_and_grid(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        assert board["schemaVersion"] == SCHEMA_VERSION, name
        ids = [p["id"] for p in _panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        assert all(isinstance(i, int) and i > 0 for i in ids), name
        cells: dict[tuple[int, int], int] = {}
        for panel in _panels(board):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, (name, panel)
            assert pos["y"] >= 0 and pos["h"] > 0, (name, panel)
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["id"])
                    assert other == panel["id"], \
                        f"{name}: panels {other} and {panel['id']} overlap at ({x}, {y})"


def test_every_panel_has_unit_description_and_queries(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        for panel in _panels(board):
            if panel["type"] == "row":
                continue
            where = f"{name} panel {panel['id']} {panel['title']!r}"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            assert len(panel.get("description", "")) > 20, f"{where}: no description"
            assert panel.get("targets"), f"{where}: no query"
            assert all(t.get("expr") for t in panel["targets"]), where


def test_datasource_uid_matches_provisioning(boards: dict[str, dict[str, Any]],
                                             generated: Path) -> None:
    prov = yaml.safe_load((generated / "grafana/provisioning/datasources/promkit.yml")
                          .read_text(encoding="utf-8"))
    (datasource,) = prov["datasources"]
    assert datasource["type"] == "prometheus"
    uid = datasource["uid"]
    assert uid == dashboards.DATASOURCE_UID
    for name, board in boards.items():
        refs = [p["datasource"] for p in _panels(board) if p["type"] != "row"]
        refs += [t["datasource"] for p in _panels(board) for t in p.get("targets", [])]
        refs += [v["datasource"] for v in board["templating"]["list"]]
        refs += [a["datasource"] for a in board["annotations"]["list"]]
        assert refs and all(r == {"type": "prometheus", "uid": uid} for r in refs), name


def test_provider_reads_where_compose_mounts_the_dashboards(generated: Path) -> None:
    prov = yaml.safe_load((generated / "grafana/provisioning/dashboards/promkit.yml")
                          .read_text(encoding="utf-8"))
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_template_variables_defined_and_used(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        defined = {v["name"] for v in board["templating"]["list"]}
        assert "service" in defined, name
        texts = [q.expr for q in dashboard_queries(board)]
        used = {m for text in texts for m in re.findall(r"\$\{?([a-zA-Z_]\w*)", text)
                if not m.startswith("__")}
        assert used - defined == set(), f"{name}: undefined variables {used - defined}"
        panel_texts = [q.expr for q in dashboard_queries(board, variables=False)]
        for var in defined:
            assert any(f"${var}" in t for t in panel_texts), f"{name}: ${var} is never used"


def test_latency_panels_enable_exemplars(boards: dict[str, dict[str, Any]]) -> None:
    seen = 0
    for name, board in boards.items():
        for panel in _panels(board):
            targets = panel.get("targets", [])
            raw_latency = [t for t in targets if "histogram_quantile" in t["expr"]
                           and "_seconds_bucket" in t["expr"]]
            for target in raw_latency:
                assert target.get("exemplar") is True, f"{name} {panel['title']}"
            if panel["type"] == "timeseries" and panel["fieldConfig"]["defaults"]["unit"] == "s" \
                    and re.search(r"(?i)latency|p99", panel["title"]):
                assert any(t.get("exemplar") for t in targets), f"{name} {panel['title']}"
                seen += 1
    assert seen >= 6


def test_every_alert_links_to_a_panel(config: Config,
                                      boards: dict[str, dict[str, Any]]) -> None:
    from promkit.tools.generate.rules import alert_rules

    by_uid = {b["uid"]: b for b in boards.values()}
    for name in sorted({rule["alert"] for rule in alert_rules(config)}):
        url = urlparse(dashboards.alert_panel_url(config, name))
        uid = url.path.rsplit("/", 1)[-1]
        query = parse_qs(url.query)
        assert query["var-service"] == [config.service]
        panel = next((p for p in by_uid[uid]["panels"]
                      if p["id"] == int(query["viewPanel"][0])), None)
        assert panel is not None and panel["type"] != "row", name


def test_alert_panel_url_shape(config: Config) -> None:
    url = dashboards.alert_panel_url(config, "DiskUsageHigh", "https://grafana.example/")
    assert url.startswith("https://grafana.example/d/promkit-resources?viewPanel=")
    with pytest.raises(KeyError):
        dashboards.alert_panel_url(config, "NoSuchAlert")


# -- config-dependent panels ----------------------------------------------------------------


def _minimal(**extra: Any) -> Config:
    return config_from_mapping({"service": "api", "targets": [
        {"job": "api", "targets": ["127.0.0.1:8000"]}], **extra})


def test_no_slos_no_slo_dashboard_and_no_budget_line() -> None:
    files = dashboards.dashboard_files(_minimal())
    assert "slos.json" not in files
    cost = json.loads(files["external-cost.json"])
    exprs = [q.expr for q in dashboard_queries(cost)]
    assert not any("cpu_hours_budget" in e for e in exprs)
    service = json.loads(files["service-overview.json"])
    (var,) = [v for v in service["templating"]["list"] if v["name"] == "service"]
    assert var["current"]["value"] == "api"


def test_slo_windows_follow_the_config() -> None:
    config = _minimal(slos=[{"name": "avail", "type": "availability", "objective": 0.999,
                             "window": "30d"}])
    slos = json.loads(dashboards.dashboard_files(config)["slos.json"])
    exprs = [q.expr for q in dashboard_queries(slos)]
    assert any("slo:sli_error:ratio_rate30d" in e and 'slo=~"avail"' in e for e in exprs)
